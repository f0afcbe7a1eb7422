//! Warehouses: the list, the create form (one set of fields per storage type), rename and
//! activate/deactivate. The form is turned into the management API's JSON shape and read
//! by sluice-storage's own types, so validation is the API's.

use crate::error::{message_of, status_of, ConsoleError, Result};
use crate::layout::{self, csrf, dash, page};
use crate::session::{Change, User};
use crate::{ConsoleState, BASE};
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_service::warehouse::WarehouseInfo;
use sluice_storage::{DeleteProfile, StorageCredential, StorageProfile};
use std::collections::HashMap;
use uuid::Uuid;

/// Where a warehouse keeps its data, in one line.
pub fn storage_summary(p: &StorageProfile) -> (String, String) {
    let v = serde_json::to_value(p).unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let kind = s("type");
    let place = match kind.as_str() {
        "file" => s("root"),
        "s3" | "gcs" => {
            let pre = s("key-prefix");
            let scheme = if kind == "s3" { "s3" } else { "gs" };
            if pre.is_empty() {
                format!("{scheme}://{}", s("bucket"))
            } else {
                format!("{scheme}://{}/{pre}", s("bucket"))
            }
        }
        "adls" => format!("abfss://{}@{}", s("filesystem"), s("account-name")),
        _ => String::new(),
    };
    (kind, place)
}

pub async fn list(State(state): State<ConsoleState>, user: User) -> Result<Html<String>> {
    // The console's home page: a user without any rights yet (a first SSO or LDAP login)
    // sees why the list is empty instead of an error page.
    let (whs, refused) = match state.services.list_warehouses(&user.principal).await {
        Ok(w) => (w, None),
        Err(e @ sluice_service::ServiceError::Forbidden(_)) => (Vec::new(), Some(message_of(&e))),
        Err(e) => return Err(e.into()),
    };
    let body = html! {
        h1 { "Warehouses" }
        @if let Some(m) = &refused {
            p.notice role="status" { "You may not list warehouses (" (m) "). An administrator can add you to a group." }
        }
        @if user.caps.create_warehouse {
            div.actions { a.button href={(BASE) "/warehouses/new"} { "Create warehouse" } }
        }
        @if whs.is_empty() {
            p.empty { "No warehouses you can see yet." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "Name" } th { "Storage" } th { "Location" } th { "Status" } } }
                    tbody {
                        @for w in &whs {
                            @let (kind, place) = storage_summary(&w.storage_profile);
                            tr {
                                td data-label="Name" { a href={(BASE) "/warehouses/" (w.id)} { (w.name) } }
                                td data-label="Storage" { (kind) }
                                td data-label="Location" { code { (place) } }
                                td data-label="Status" { (w.status) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Html(
        page("Warehouses", &user, "warehouses", body).into_string(),
    ))
}

/// One input of the create form: `(wire name, label, kind)`.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Secret,
    Check,
    Area,
}

struct StorageForm {
    ty: &'static str,
    label: &'static str,
    profile: &'static [(&'static str, &'static str, Kind)],
    /// The credential's wire `type` and `credential-type`, and its fields.
    credential: Option<(&'static str, &'static str)>,
    credential_fields: &'static [(&'static str, &'static str, Kind)],
}

const FORMS: &[StorageForm] = &[
    StorageForm {
        ty: "s3",
        label: "S3 or S3-compatible",
        profile: &[
            ("bucket", "Bucket", Kind::Text),
            ("key-prefix", "Key prefix (optional)", Kind::Text),
            ("region", "Region", Kind::Text),
            (
                "endpoint",
                "Endpoint URL (S3-compatible stores)",
                Kind::Text,
            ),
            ("path-style-access", "Path-style access", Kind::Check),
            ("flavor", "Flavor (aws or s3-compat)", Kind::Text),
            ("sts-enabled", "Vend credentials through STS", Kind::Check),
        ],
        credential: Some(("s3", "access-key")),
        credential_fields: &[
            ("aws-access-key-id", "Access key ID", Kind::Text),
            ("aws-secret-access-key", "Secret access key", Kind::Secret),
        ],
    },
    StorageForm {
        ty: "file",
        label: "Local directory",
        profile: &[("root", "Directory (absolute path)", Kind::Text)],
        credential: None,
        credential_fields: &[],
    },
    StorageForm {
        ty: "adls",
        label: "Azure Data Lake Storage Gen2",
        profile: &[
            ("account-name", "Storage account", Kind::Text),
            ("filesystem", "Filesystem (container)", Kind::Text),
            ("key-prefix", "Key prefix (optional)", Kind::Text),
            ("host", "Host (optional)", Kind::Text),
        ],
        credential: Some(("az", "client-credentials")),
        credential_fields: &[
            ("tenant-id", "Tenant ID", Kind::Text),
            ("client-id", "Client ID", Kind::Text),
            ("client-secret", "Client secret", Kind::Secret),
        ],
    },
    StorageForm {
        ty: "gcs",
        label: "Google Cloud Storage",
        profile: &[
            ("bucket", "Bucket", Kind::Text),
            ("key-prefix", "Key prefix (optional)", Kind::Text),
        ],
        credential: Some(("gcs", "service-account-key")),
        credential_fields: &[("key", "Service account key (JSON)", Kind::Area)],
    },
];

/// What the form held, to show it again with the errors.
#[derive(Default)]
struct Filled {
    values: HashMap<String, String>,
    /// Field name → error shown next to it; `""` for the form as a whole.
    errors: HashMap<String, String>,
}

impl Filled {
    fn get(&self, k: &str) -> &str {
        self.values.get(k).map_or("", String::as_str)
    }
    fn err(&self, k: &str) -> Option<&str> {
        self.errors.get(k).map(String::as_str)
    }
}

fn input(name: &str, label: &str, kind: Kind, filled: &Filled) -> Markup {
    let id = format!("f-{}", name.replace('.', "-"));
    let err = filled.err(name);
    let err_id = format!("{id}-err");
    html! {
        div.field {
            @match kind {
                Kind::Check => {
                    input id=(id) name=(name) type="checkbox" value="true" checked[filled.get(name) == "true"];
                    " " label.inline for=(id) { (label) }
                }
                Kind::Area => {
                    label for=(id) { (label) }
                    textarea id=(id) name=(name) rows="6" aria-invalid=[err.map(|_| "true")] aria-describedby=[err.map(|_| &err_id)] {}
                }
                Kind::Secret => {
                    label for=(id) { (label) }
                    input id=(id) name=(name) type="password" autocomplete="off" aria-invalid=[err.map(|_| "true")] aria-describedby=[err.map(|_| &err_id)];
                }
                Kind::Text => {
                    label for=(id) { (label) }
                    input id=(id) name=(name) type="text" value=(filled.get(name)) aria-invalid=[err.map(|_| "true")] aria-describedby=[err.map(|_| &err_id)];
                }
            }
            @if let Some(e) = err { p.field-error id=(err_id) role="alert" { (e) } }
        }
    }
}

fn create_form(user: &User, filled: &Filled) -> Markup {
    let chosen = match filled.get("storage-type") {
        "" => "s3",
        t => t,
    };
    html! {
        h1 { "Create a warehouse" }
        (layout::error_box(filled.err("")))
        form.card method="post" action={(BASE) "/warehouses/new"} {
            (csrf(user))
            (layout::field("Name", "name", filled.get("name"), true, filled.err("name")))
            div.field {
                label for="f-storage-type" { "Storage type" }
                select #f-storage-type name="storage-type" {
                    @for f in FORMS {
                        option value=(f.ty) selected[f.ty == chosen] { (f.label) }
                    }
                }
            }
            @for f in FORMS {
                // Without JavaScript every fieldset shows; only the chosen type's are read.
                fieldset data-storage=(f.ty) {
                    legend { (f.label) }
                    @for (name, label, kind) in f.profile {
                        (input(&format!("{}.{}", f.ty, name), label, *kind, filled))
                    }
                    @if !f.credential_fields.is_empty() {
                        p.muted { "Credential (write-only: never shown again)" }
                        @for (name, label, kind) in f.credential_fields {
                            (input(&format!("{}.cred.{}", f.ty, name), label, *kind, filled))
                        }
                    }
                }
            }
            button type="submit" #create-warehouse { "Create warehouse" }
        }
    }
}

pub async fn new_form(user: User) -> Result<Html<String>> {
    Ok(Html(
        page(
            "Create warehouse",
            &user,
            "warehouses",
            create_form(&user, &Filled::default()),
        )
        .into_string(),
    ))
}

/// The form's fields as the management API's JSON: the chosen type's profile and
/// credential objects (empty inputs left out, checkboxes as booleans).
fn to_json(
    values: &HashMap<String, String>,
) -> std::result::Result<(&'static StorageForm, Value, Option<Value>), (String, String)> {
    let ty = values.get("storage-type").map_or("", String::as_str);
    let form = FORMS.iter().find(|f| f.ty == ty).ok_or_else(|| {
        (
            "storage-type".to_string(),
            format!("unknown storage type '{ty}'"),
        )
    })?;
    let mut profile = Map::new();
    profile.insert("type".into(), Value::from(ty));
    for (name, _, kind) in form.profile {
        let v = values.get(&format!("{ty}.{name}")).map_or("", |v| v.trim());
        match kind {
            Kind::Check => {
                profile.insert((*name).into(), Value::Bool(v == "true"));
            }
            _ if v.is_empty() => {}
            _ => {
                profile.insert((*name).into(), Value::from(v));
            }
        }
    }
    let credential = credential_json(form, values)?;
    Ok((form, Value::Object(profile), credential))
}

/// The credential fields of a storage type's form as the API's credential object; `None`
/// when they are all empty.
fn credential_json(
    form: &StorageForm,
    values: &HashMap<String, String>,
) -> std::result::Result<Option<Value>, (String, String)> {
    let Some((ctype, ckind)) = form.credential else {
        return Ok(None);
    };
    let mut c = Map::new();
    for (name, _, kind) in form.credential_fields {
        let key = format!("{}.cred.{name}", form.ty);
        let v = values.get(&key).map_or("", |v| v.trim());
        if v.is_empty() {
            continue;
        }
        let v = match kind {
            Kind::Area => serde_json::from_str(v)
                .map_err(|e| (key.clone(), format!("not valid JSON: {e}")))?,
            _ => Value::from(v),
        };
        c.insert((*name).into(), v);
    }
    if c.is_empty() {
        return Ok(None);
    }
    c.insert("type".into(), Value::from(ctype));
    c.insert("credential-type".into(), Value::from(ckind));
    Ok(Some(Value::Object(c)))
}

/// The input an error message is about: the first field of the chosen type whose wire
/// name or label it mentions; else the form as a whole.
fn field_of(form: &StorageForm, message: &str) -> String {
    let m = message.to_ascii_lowercase();
    for (name, _, _) in form.profile {
        let snake = name.replace('-', "_");
        let spaced = name.replace('-', " ");
        if m.contains(name) || m.contains(&snake) || m.contains(&spaced) {
            return format!("{}.{}", form.ty, name);
        }
    }
    for (name, _, _) in form.credential_fields {
        if m.contains(name) || m.contains(&name.replace('-', "_")) {
            return format!("{}.cred.{}", form.ty, name);
        }
    }
    // The store refusing the probe's request is the credential's fault: point at its secret.
    let refused = [
        "credential",
        "access denied",
        "signature",
        "403",
        "forbidden",
        "401",
    ];
    if refused.iter().any(|r| m.contains(r)) {
        if let Some((name, _, _)) = form.credential_fields.last() {
            return format!("{}.cred.{}", form.ty, name);
        }
    }
    String::new()
}

pub async fn create(
    State(state): State<ConsoleState>,
    Change { user, form }: Change<HashMap<String, String>>,
) -> Result<Response> {
    let mut filled = Filled {
        values: form.clone(),
        errors: HashMap::new(),
    };
    let name = form.get("name").map_or("", |v| v.trim()).to_string();
    let result = match to_json(&form) {
        Err((field, msg)) => Err((field, msg, axum::http::StatusCode::BAD_REQUEST)),
        Ok((sf, profile, credential)) => {
            let parsed = serde_json::from_value::<StorageProfile>(profile)
                .map_err(|e| (field_of(sf, &e.to_string()), e.to_string()))
                .and_then(|p| match credential {
                    None => Ok((p, None)),
                    Some(c) => serde_json::from_value::<StorageCredential>(c)
                        .map(|c| (p, Some(c)))
                        .map_err(|e| (field_of(sf, &e.to_string()), e.to_string())),
                });
            match parsed {
                Err((f, m)) => Err((f, m, axum::http::StatusCode::BAD_REQUEST)),
                Ok((p, c)) => match state
                    .services
                    .create_warehouse(&user.principal, &name, p, c, None)
                    .await
                {
                    Ok(w) => Ok(w),
                    Err(e) => {
                        let m = message_of(&e);
                        let f = if m.contains("name") && !m.contains("bucket") {
                            "name".to_string()
                        } else {
                            field_of(sf, &m)
                        };
                        Err((f, m, status_of(&e)))
                    }
                },
            }
        }
    };
    match result {
        Ok(w) => Ok(Redirect::to(&format!("{BASE}/warehouses/{}", w.id)).into_response()),
        Err((field, message, status)) => {
            filled.errors.insert(field, message);
            let body = create_form(&user, &filled);
            Ok((
                status,
                Html(page("Create warehouse", &user, "warehouses", body).into_string()),
            )
                .into_response())
        }
    }
}

/// The warehouse's own actions, shown on its page.
pub fn actions(user: &User, w: &WarehouseInfo) -> Markup {
    let active = w.status == "active";
    html! {
        details.card {
            summary { "Manage warehouse" }
            form method="post" action={(BASE) "/warehouses/" (w.id) "/rename"} {
                (csrf(user))
                (layout::field("New name", "new_name", &w.name, true, None))
                button.secondary type="submit" { "Rename" }
            }
            form method="post" action={(BASE) "/warehouses/" (w.id) "/status"} {
                (csrf(user))
                input type="hidden" name="active" value=(if active { "false" } else { "true" });
                p { "Status: " strong { (w.status) } " " button.secondary type="submit" { @if active { "Deactivate" } @else { "Activate" } } }
            }
            form method="post" action={(BASE) "/warehouses/" (w.id) "/delete-profile"} {
                (csrf(user))
                @let (soft, secs) = match w.delete_profile {
                    DeleteProfile::Soft { expiration_seconds } => (true, expiration_seconds),
                    DeleteProfile::Hard => (false, 7 * 24 * 3600),
                };
                div.field {
                    label for="f-delete-kind" { "When a table is dropped" }
                    select #f-delete-kind name="kind" {
                        option value="hard" selected[!soft] { "Delete it at once (hard)" }
                        option value="soft" selected[soft] { "Keep it for undrop (soft)" }
                    }
                }
                div.field {
                    label for="f-expiration" { "Keep dropped tables for (seconds, soft only)" }
                    input #f-expiration type="number" min="1" name="expiration_seconds" value=(secs);
                }
                button.secondary type="submit" #save-delete-profile { "Save delete profile" }
            }
            p.muted { "Stored credential: " @if w.has_storage_credential { "set (write-only: never shown)" } @else { (dash()) } }
            @if let Some(f) = FORMS.iter().find(|f| f.ty == storage_summary(&w.storage_profile).0) {
                @if !f.credential_fields.is_empty() {
                    form method="post" action={(BASE) "/warehouses/" (w.id) "/credential"} {
                        (csrf(user))
                        fieldset {
                            legend { "Replace the storage credential" }
                            @for (name, label, kind) in f.credential_fields {
                                (input(&format!("{}.cred.{}", f.ty, name), label, *kind, &Filled::default()))
                            }
                            button.secondary type="submit" { "Replace credential" }
                        }
                    }
                }
            }
            form method="post" action={(BASE) "/warehouses/" (w.id) "/delete"} data-confirm=(w.name) {
                (csrf(user))
                (layout::field(&format!("Type the warehouse name ({}) to delete it", w.name), "confirm", "", true, None))
                button.danger type="submit" { "Delete warehouse" }
            }
        }
    }
}

pub async fn update_credential(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    Change { user, form }: Change<HashMap<String, String>>,
) -> Result<Response> {
    let w = state.services.get_warehouse(&user.principal, id).await?;
    let kind = storage_summary(&w.storage_profile).0;
    let sf = FORMS
        .iter()
        .find(|f| f.ty == kind)
        .ok_or_else(|| ConsoleError::BadRequest("this storage type has no credential".into()))?;
    let credential = credential_json(sf, &form)
        .map_err(|(_, m)| ConsoleError::BadRequest(m))?
        .map(serde_json::from_value::<StorageCredential>)
        .transpose()
        .map_err(|e| ConsoleError::BadRequest(format!("invalid credential: {e}")))?;
    state
        .services
        .update_credential(&user.principal, id, credential)
        .await?;
    Ok(Redirect::to(&format!("{BASE}/warehouses/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    Change { user, form }: Change<DeleteForm>,
) -> Result<Response> {
    let w = state.services.get_warehouse(&user.principal, id).await?;
    if form.confirm != w.name {
        return Err(ConsoleError::BadRequest(
            "the name typed does not match the warehouse's name; nothing was deleted".into(),
        ));
    }
    state.services.delete_warehouse(&user.principal, id).await?;
    Ok(Redirect::to(&format!("{BASE}/warehouses")).into_response())
}

#[derive(Deserialize)]
pub struct DeleteProfileForm {
    kind: String,
    #[serde(default)]
    expiration_seconds: String,
}

pub async fn set_delete_profile(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    Change { user, form }: Change<DeleteProfileForm>,
) -> Result<Response> {
    let profile = match form.kind.as_str() {
        "hard" => DeleteProfile::Hard,
        "soft" => DeleteProfile::Soft {
            expiration_seconds: form.expiration_seconds.trim().parse().map_err(|_| {
                ConsoleError::BadRequest("the expiration must be a whole number of seconds".into())
            })?,
        },
        other => {
            return Err(ConsoleError::BadRequest(format!(
                "unknown delete profile '{other}'"
            )))
        }
    };
    state
        .services
        .update_delete_profile(&user.principal, id, profile)
        .await?;
    Ok(Redirect::to(&format!("{BASE}/warehouses/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct RenameForm {
    new_name: String,
}

pub async fn rename(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    Change { user, form }: Change<RenameForm>,
) -> Result<Response> {
    state
        .services
        .rename_warehouse(&user.principal, id, form.new_name.trim())
        .await?;
    Ok(Redirect::to(&format!("{BASE}/warehouses/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct StatusForm {
    active: String,
}

pub async fn set_status(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    Change { user, form }: Change<StatusForm>,
) -> Result<Response> {
    let active = match form.active.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(ConsoleError::BadRequest(
                "active must be true or false".into(),
            ))
        }
    };
    state
        .services
        .set_warehouse_active(&user.principal, id, active)
        .await?;
    Ok(Redirect::to(&format!("{BASE}/warehouses/{id}")).into_response())
}
