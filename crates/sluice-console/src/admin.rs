//! Administration: users, groups, policies (a JSON editor checked by the service's own
//! statement rules), "Check access" (the explain decision) and the audit log. The
//! navigation hides it from users who may not list users; every page and action is
//! still authorized by the service, so a direct request is refused the same way.

use crate::error::{message_of, status_of, Result};
use crate::layout::{self, copy_button, csrf, page};
use crate::session::{Change, User};
use crate::{ConsoleState, BASE};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use sluice_api::Statement;
use sluice_service::identity::Attachment;
use sluice_service::ServiceError;

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn admin_page(title: &str, user: &User, body: Markup) -> Html<String> {
    let body = html! {
        nav.actions aria-label="Administration" {
            a href={(BASE) "/admin/users"} { "Users" }
            a href={(BASE) "/admin/groups"} { "Groups" }
            a href={(BASE) "/admin/policies"} { "Policies" }
            a href={(BASE) "/admin/check"} { "Check access" }
            a href={(BASE) "/admin/audit"} { "Audit log" }
        }
        (body)
    };
    Html(page(title, user, "admin", body).into_string())
}

fn failed(title: &str, user: &User, e: &ServiceError, body: Markup) -> Response {
    let body = html! { p.error role="alert" { (message_of(e)) } (body) };
    (status_of(e), admin_page(title, user, body)).into_response()
}

pub async fn index(State(state): State<ConsoleState>, user: User) -> Result<Html<String>> {
    // The users list is the entry; refused here if the caller may not administer.
    let users = state.services.list_users(&user.principal).await?;
    Ok(admin_page(
        "Administration",
        &user,
        html! {
            h1 { "Administration" }
            p { (users.len()) " users. Choose a section above." }
        },
    ))
}

fn users_body(user: &User, users: &[sluice_api::User]) -> Markup {
    html! {
        h1 { "Users" }
        form.card method="post" action={(BASE) "/admin/users"} {
            h2 { "Create user" }
            (csrf(user))
            (layout::field("User name", "name", "", true, None))
            (layout::field("Email (optional)", "email", "", false, None))
            button type="submit" { "Create user" }
        }
        @if users.is_empty() { p.empty { "No users." } }
        @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Name" } th { "Source" } th { "Email" } th { "Created" } } }
                tbody { @for u in users {
                    tr {
                        td data-label="Name" { a href={(BASE) "/admin/users/" (enc(&u.name))} { (u.name) } }
                        td data-label="Source" { (u.source) }
                        td data-label="Email" { (u.email.as_deref().unwrap_or("")) }
                        td data-label="Created" { (layout::time(&u.created_at)) }
                    }
                } }
            } }
        }
    }
}

pub async fn users(State(state): State<ConsoleState>, user: User) -> Result<Html<String>> {
    let users = state.services.list_users(&user.principal).await?;
    Ok(admin_page("Users", &user, users_body(&user, &users)))
}

#[derive(Deserialize)]
pub struct CreateUser {
    name: String,
    #[serde(default)]
    email: String,
}

pub async fn create_user(
    State(state): State<ConsoleState>,
    Change { user, form }: Change<CreateUser>,
) -> Result<Response> {
    let email = Some(form.email.trim().to_string()).filter(|e| !e.is_empty());
    match state
        .services
        .create_user(&user.principal, form.name.trim(), email, None)
        .await
    {
        Ok(u) => Ok(Redirect::to(&format!("{BASE}/admin/users/{}", enc(&u.name))).into_response()),
        Err(e) => {
            let users = state
                .services
                .list_users(&user.principal)
                .await
                .unwrap_or_default();
            Ok(failed("Users", &user, &e, users_body(&user, &users)))
        }
    }
}

async fn user_body(
    state: &ConsoleState,
    user: &User,
    name: &str,
    new_key: Option<&sluice_service::auth::NewAccessKey>,
) -> Result<Markup> {
    let p = &user.principal;
    let u = state.services.get_user(p, name).await?;
    let groups = state.services.list_user_groups(p, name).await?;
    let attached = state
        .services
        .list_attached_policies(p, Attachment::User(name))
        .await?;
    let keys = state.services.list_user_keys(p, name).await?;
    Ok(html! {
        h1 { "User " (u.name) }
        dl.kv.card {
            dt { "Source" } dd { (u.source) }
            dt { "Created" } dd { (layout::time(&u.created_at)) }
        }
        form.card method="post" action={(BASE) "/admin/users/" (enc(name)) "/edit"} {
            (csrf(user))
            (layout::field("Email", "email", u.email.as_deref().unwrap_or(""), false, None))
            (layout::field("Display name", "friendly_name", u.friendly_name.as_deref().unwrap_or(""), false, None))
            button.secondary type="submit" { "Save" }
        }
        h2 { "Groups" }
        @if groups.is_empty() { p.empty { "In no group." } }
        @else { ul { @for g in &groups { li { a href={(BASE) "/admin/groups/" (enc(&g.name))} { (g.name) } } } } }
        h2 { "Policies attached to the user" }
        @if attached.is_empty() { p.empty { "None (group policies still apply)." } }
        @else { ul { @for pol in &attached { li { a href={(BASE) "/admin/policies/" (enc(&pol.name))} { (pol.name) } } } } }
        h2 { "Access keys" }
        @if let Some(k) = new_key {
            section.secret role="status" {
                p { strong { "Copy the secret now: it is shown only this once." } }
                p { "Access key ID " code #new-key-id { (k.access_key_id) } " " (copy_button("new-key-id")) }
                p { "Secret " code #new-key-secret { (k.secret_access_key.expose()) } " " (copy_button("new-key-secret")) }
            }
        }
        @if keys.is_empty() { p.empty { "No access keys." } }
        @else {
            ul { @for k in &keys {
                li.row {
                    code { (k.access_key_id) } " created " (layout::time(&k.created_at))
                    form method="post" action={(BASE) "/admin/users/" (enc(name)) "/keys/delete"} {
                        (csrf(user))
                        input type="hidden" name="key_id" value=(k.access_key_id);
                        button.danger type="submit" aria-label={"Delete key " (k.access_key_id)} { "Delete" }
                    }
                }
            } }
        }
        form.actions method="post" action={(BASE) "/admin/users/" (enc(name)) "/keys"} {
            (csrf(user))
            button.secondary type="submit" { "Create access key for " (name) }
        }
        h2 { "Delete user" }
        form.card method="post" action={(BASE) "/admin/users/" (enc(name)) "/delete"} data-confirm=(name) {
            (csrf(user))
            (layout::field(&format!("Type the user name ({name}) to confirm"), "confirm", "", true, None))
            button.danger type="submit" { "Delete user" }
        }
    })
}

pub async fn user(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    user: User,
) -> Result<Html<String>> {
    let body = user_body(&state, &user, &name, None).await?;
    Ok(admin_page(&name, &user, body))
}

#[derive(Deserialize)]
pub struct Confirm {
    #[serde(default)]
    confirm: String,
}

pub async fn delete_user(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    Change { user, form }: Change<Confirm>,
) -> Result<Response> {
    if form.confirm != name {
        let e =
            ServiceError::BadRequest("the name typed does not match; nothing was deleted".into());
        let body = user_body(&state, &user, &name, None).await?;
        return Ok(failed(&name, &user, &e, body));
    }
    state.services.delete_user(&user.principal, &name).await?;
    Ok(Redirect::to(&format!("{BASE}/admin/users")).into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

#[derive(Deserialize)]
pub struct EditUser {
    #[serde(default)]
    email: String,
    #[serde(default)]
    friendly_name: String,
}

pub async fn edit_user(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    Change { user, form }: Change<EditUser>,
) -> Result<Response> {
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    state
        .services
        .update_user(
            &user.principal,
            &name,
            Some(opt(&form.email)),
            Some(opt(&form.friendly_name)),
        )
        .await?;
    Ok(Redirect::to(&format!("{BASE}/admin/users/{}", enc(&name))).into_response())
}

#[derive(Deserialize)]
pub struct DeleteKey {
    key_id: String,
}

pub async fn delete_user_key(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    Change { user, form }: Change<DeleteKey>,
) -> Result<Response> {
    state
        .services
        .delete_user_key(&user.principal, &name, &form.key_id)
        .await?;
    Ok(Redirect::to(&format!("{BASE}/admin/users/{}", enc(&name))).into_response())
}

pub async fn create_user_key(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    Change { user, .. }: Change<Empty>,
) -> Result<Response> {
    let key = state
        .services
        .create_user_key(&user.principal, &name)
        .await?;
    let body = user_body(&state, &user, &name, Some(&key)).await?;
    Ok(admin_page(&name, &user, body).into_response())
}

fn groups_body(user: &User, groups: &[sluice_api::Group]) -> Markup {
    html! {
        h1 { "Groups" }
        form.card method="post" action={(BASE) "/admin/groups"} {
            h2 { "Create group" }
            (csrf(user))
            (layout::field("Group name", "name", "", true, None))
            (layout::field("Description (optional)", "description", "", false, None))
            button type="submit" { "Create group" }
        }
        @if groups.is_empty() { p.empty { "No groups." } }
        @else {
            ul { @for g in groups {
                li { a href={(BASE) "/admin/groups/" (enc(&g.name))} { (g.name) } @if let Some(d) = &g.description { span.muted { " — " (d) } } }
            } }
        }
    }
}

pub async fn groups(State(state): State<ConsoleState>, user: User) -> Result<Html<String>> {
    let groups = state.services.list_groups(&user.principal).await?;
    Ok(admin_page("Groups", &user, groups_body(&user, &groups)))
}

#[derive(Deserialize)]
pub struct CreateGroup {
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn create_group(
    State(state): State<ConsoleState>,
    Change { user, form }: Change<CreateGroup>,
) -> Result<Response> {
    let d = Some(form.description.trim().to_string()).filter(|d| !d.is_empty());
    match state
        .services
        .create_group(&user.principal, form.name.trim(), d)
        .await
    {
        Ok(g) => Ok(Redirect::to(&format!("{BASE}/admin/groups/{}", enc(&g.name))).into_response()),
        Err(e) => {
            let groups = state
                .services
                .list_groups(&user.principal)
                .await
                .unwrap_or_default();
            Ok(failed("Groups", &user, &e, groups_body(&user, &groups)))
        }
    }
}

pub async fn group(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    user: User,
) -> Result<Html<String>> {
    let p = &user.principal;
    let g = state.services.get_group(p, &name).await?;
    let members = state.services.list_group_members(p, &name).await?;
    let attached = state
        .services
        .list_attached_policies(p, Attachment::Group(&name))
        .await?;
    let body = html! {
        h1 { "Group " (g.name) }
        @if let Some(d) = &g.description { p { (d) } }
        h2 { "Members" }
        @if members.is_empty() { p.empty { "No members." } }
        @else { ul { @for m in &members { li { a href={(BASE) "/admin/users/" (enc(&m.name))} { (m.name) } } } } }
        form.card method="post" action={(BASE) "/admin/groups/" (enc(&name)) "/members"} {
            (csrf(&user))
            (layout::field("User name", "user", "", true, None))
            div.row {
                button type="submit" name="op" value="add" { "Add member" }
                button.secondary type="submit" name="op" value="remove" { "Remove member" }
            }
        }
        h2 { "Policies" }
        @if attached.is_empty() { p.empty { "No policies attached." } }
        @else { ul { @for pol in &attached { li { a href={(BASE) "/admin/policies/" (enc(&pol.name))} { (pol.name) } } } } }
        form.card method="post" action={(BASE) "/admin/groups/" (enc(&name)) "/policies"} {
            (csrf(&user))
            (layout::field("Policy name", "policy", "", true, None))
            div.row {
                button type="submit" name="op" value="attach" { "Attach policy" }
                button.secondary type="submit" name="op" value="detach" { "Detach policy" }
            }
        }
    };
    Ok(admin_page(&name, &user, body))
}

#[derive(Deserialize)]
pub struct MemberForm {
    user: String,
    op: String,
}

pub async fn group_members(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    Change { user, form }: Change<MemberForm>,
) -> Result<Response> {
    let p = &user.principal;
    let who = form.user.trim();
    if form.op == "remove" {
        state.services.remove_group_member(p, &name, who).await?;
    } else {
        state.services.add_group_member(p, &name, who).await?;
    }
    Ok(Redirect::to(&format!("{BASE}/admin/groups/{}", enc(&name))).into_response())
}

#[derive(Deserialize)]
pub struct AttachForm {
    policy: String,
    op: String,
}

pub async fn group_policies(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    Change { user, form }: Change<AttachForm>,
) -> Result<Response> {
    let p = &user.principal;
    let to = Attachment::Group(&name);
    if form.op == "detach" {
        state
            .services
            .detach_policy(p, to, form.policy.trim())
            .await?;
    } else {
        state
            .services
            .attach_policy(p, to, form.policy.trim())
            .await?;
    }
    Ok(Redirect::to(&format!("{BASE}/admin/groups/{}", enc(&name))).into_response())
}

const EXAMPLE_STATEMENTS: &str = r#"[
  {
    "effect": "allow",
    "action": ["catalog:ReadTable", "catalog:ListTables"],
    "resource": "sluice:catalog:::warehouse/*"
  }
]"#;

fn policy_editor(
    user: &User,
    name: &str,
    description: &str,
    statements: &str,
    existing: bool,
    error: Option<&str>,
) -> Markup {
    html! {
        form.card method="post" action={(BASE) "/admin/policies"} {
            h2 { @if existing { "Edit policy" } @else { "New policy" } }
            (csrf(user))
            @if existing {
                input type="hidden" name="name" value=(name);
                input type="hidden" name="existing" value="true";
                p { "Policy " strong { (name) } }
            } @else {
                (layout::field("Policy name", "name", name, true, None))
            }
            (layout::field("Description (optional)", "description", description, false, None))
            div.field {
                label for="f-statements" { "Statements (JSON array)" }
                textarea #f-statements name="statements" rows="14" spellcheck="false"
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "f-statements-err")] { (statements) }
                @if let Some(e) = error { p.field-error #f-statements-err role="alert" { (e) } }
            }
            button type="submit" #save-policy { "Save policy" }
        }
    }
}

fn policies_body(policies: &[sluice_api::Policy], editor: Markup) -> Markup {
    html! {
        h1 { "Policies" }
        @if policies.is_empty() { p.empty { "No policies." } }
        @else {
            ul { @for pol in policies {
                li {
                    a href={(BASE) "/admin/policies/" (enc(&pol.name))} { (pol.name) }
                    @if pol.builtin { span.muted { " (built-in)" } }
                    @if let Some(d) = &pol.description { span.muted { " — " (d) } }
                }
            } }
        }
        (editor)
    }
}

pub async fn policies(State(state): State<ConsoleState>, user: User) -> Result<Html<String>> {
    let list = state.services.list_policies(&user.principal).await?;
    let editor = policy_editor(&user, "", "", EXAMPLE_STATEMENTS, false, None);
    Ok(admin_page("Policies", &user, policies_body(&list, editor)))
}

pub async fn policy(
    State(state): State<ConsoleState>,
    Path(name): Path<String>,
    user: User,
) -> Result<Html<String>> {
    let pol = state.services.get_policy(&user.principal, &name).await?;
    let text = serde_json::to_string_pretty(&pol.statements).unwrap_or_default();
    let body = html! {
        h1 { "Policy " (pol.name) }
        @if pol.builtin { p.muted { "A built-in policy: upgrades bring its text." } }
        (policy_editor(&user, &pol.name, pol.description.as_deref().unwrap_or(""), &text, true, None))
    };
    Ok(admin_page(&name, &user, body))
}

#[derive(Deserialize)]
pub struct PolicyForm {
    name: String,
    #[serde(default)]
    description: String,
    statements: String,
    #[serde(default)]
    existing: Option<String>,
}

/// The statements as the API reads them; a syntax or shape error names its line and
/// column (and the JSON path of the offending value).
fn parse_statements(text: &str) -> std::result::Result<Vec<Statement>, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            format!("invalid policy JSON: {inner}")
        } else {
            format!("invalid policy JSON at {path}: {inner}")
        }
    })
}

pub async fn save_policy(
    State(state): State<ConsoleState>,
    Change { user, form }: Change<PolicyForm>,
) -> Result<Response> {
    let p = &user.principal;
    let existing = form.existing.as_deref() == Some("true");
    let name = form.name.trim().to_string();
    let description = Some(form.description.trim().to_string()).filter(|d| !d.is_empty());
    let result = match parse_statements(&form.statements) {
        Err(m) => Err((StatusCode::BAD_REQUEST, m)),
        Ok(statements) => {
            let r = if existing {
                state
                    .services
                    .update_policy(p, &name, description.clone(), statements)
                    .await
            } else {
                state
                    .services
                    .create_policy(p, &name, description.clone(), statements)
                    .await
            };
            r.map_err(|e| (status_of(&e), message_of(&e)))
        }
    };
    match result {
        Ok(pol) => {
            Ok(Redirect::to(&format!("{BASE}/admin/policies/{}", enc(&pol.name))).into_response())
        }
        Err((status, message)) => {
            let editor = policy_editor(
                &user,
                &name,
                description.as_deref().unwrap_or(""),
                &form.statements,
                existing,
                Some(&message),
            );
            let list = state.services.list_policies(p).await.unwrap_or_default();
            Ok((
                status,
                admin_page("Policies", &user, policies_body(&list, editor)),
            )
                .into_response())
        }
    }
}

#[derive(Deserialize, Default)]
pub struct CheckQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    resource: String,
}

pub async fn check(
    State(state): State<ConsoleState>,
    Query(q): Query<CheckQuery>,
    user: User,
) -> Result<Response> {
    let result = if q.user.is_empty() {
        None
    } else {
        Some(
            state
                .services
                .check_permission(
                    &user.principal,
                    q.user.trim(),
                    q.action.trim(),
                    q.resource.trim(),
                )
                .await,
        )
    };
    let body = html! {
        h1 { "Check access" }
        form.card method="get" action={(BASE) "/admin/check"} {
            (layout::field("User", "user", &q.user, true, None))
            (layout::field("Action (e.g. catalog:ReadTable)", "action", &q.action, true, None))
            (layout::field("Resource (e.g. sluice:catalog:::warehouse/wh/namespace/ns/table/t)", "resource", &q.resource, true, None))
            button type="submit" #check-access { "Check" }
        }
        @match &result {
            None => {},
            Some(Ok(r)) => {
                section.card #decision role="status" {
                    h2 { "Decision: " @if r.allowed() { "allow" } @else { "deny" } }
                    p { (r.reason) }
                    @if let Some(s) = &r.statement {
                        p { "Deciding statement: " a href={(BASE) "/admin/policies/" (enc(&s.policy))} { (s.policy) } " #" (s.statement) }
                    }
                }
            },
            Some(Err(e)) => p.error role="alert" { (message_of(e)) },
        }
    };
    let status = match &result {
        Some(Err(e)) => status_of(e),
        _ => StatusCode::OK,
    };
    Ok((status, admin_page("Check access", &user, body)).into_response())
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    before: Option<i64>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    action: String,
}

const AUDIT_PAGE: usize = 50;

pub async fn audit(
    State(state): State<ConsoleState>,
    Query(q): Query<AuditQuery>,
    user: User,
) -> Result<Html<String>> {
    // The log is read newest first in batches; the filters apply to what is read, so a
    // page holds up to AUDIT_PAGE matches from at most a few thousand entries.
    let mut rows = Vec::new();
    let mut before = q.before;
    let mut exhausted = false;
    for _ in 0..10 {
        let batch = state
            .services
            .list_audit(&user.principal, before, Some(500))
            .await?;
        if batch.is_empty() {
            exhausted = true;
            break;
        }
        before = batch.last().map(|e| e.id);
        for e in batch {
            let user_ok = q.user.is_empty() || e.actor == q.user;
            let action_ok = q.action.is_empty() || e.action.contains(q.action.as_str());
            if user_ok && action_ok {
                rows.push(e);
            }
        }
        if rows.len() >= AUDIT_PAGE {
            break;
        }
    }
    rows.truncate(AUDIT_PAGE);
    let next = if rows.len() == AUDIT_PAGE {
        rows.last().map(|e| e.id)
    } else if !exhausted {
        before
    } else {
        None
    };
    let body = html! {
        h1 { "Audit log" }
        form.card method="get" action={(BASE) "/admin/audit"} {
            div.row {
                div.field { label for="f-user" { "User" } input #f-user type="text" name="user" value=(q.user); }
                div.field { label for="f-action" { "Action contains" } input #f-action type="text" name="action" value=(q.action); }
            }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() { p.empty { "No matching entries." } }
        @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Time" } th { "User" } th { "Action" } th { "Target" } th { "Result" } } }
                tbody { @for e in &rows {
                    tr {
                        td data-label="Time" { (layout::time(&e.at)) }
                        td data-label="User" { (e.actor) }
                        td data-label="Action" { code { (e.action) } }
                        td data-label="Target" { code { (e.target) } }
                        td data-label="Result" { (e.result) @if let Some(d) = &e.detail { span.muted { " — " (d) } } }
                    }
                } }
            } }
        }
        @if let Some(n) = next {
            p { a.button.secondary rel="next" href={(BASE) "/admin/audit?before=" (n) "&user=" (enc(&q.user)) "&action=" (enc(&q.action))} { "Older entries" } }
        } @else if !rows.is_empty() { p.muted { "End of the log." } }
    };
    Ok(admin_page("Audit log", &user, body))
}
