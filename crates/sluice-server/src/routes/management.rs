//! Management API (`/management/v1`): warehouses in Lakekeeper's request shape, whoami,
//! and this API's own OpenAPI document.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_api::{DeleteProfileSchema, StorageCredentialSchema, StorageProfileSchema};
use sluice_api::{
    DeletedTablesResponse, ErrorBody, ErrorModel, ListWarehousesResponse, RenameWarehouseRequest,
    UndropRequest, Warehouse,
};
use sluice_auth::policy::Action;
use sluice_storage::{DeleteProfile, StorageCredential, StorageProfile};
use utoipa::OpenApi;
use uuid::Uuid;

// The request bodies read the storage settings straight into sluice-storage's types.
type CreateWarehouseRequest =
    sluice_api::CreateWarehouseRequest<StorageProfile, StorageCredential, DeleteProfile>;
type UpdateStorageRequest = sluice_api::UpdateStorageRequest<StorageProfile, StorageCredential>;
type UpdateCredentialRequest = sluice_api::UpdateCredentialRequest<StorageCredential>;
type UpdateDeleteProfileRequest = sluice_api::UpdateDeleteProfileRequest<DeleteProfile>;

type Result<T> = std::result::Result<T, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/management/v1/openapi.json", get(openapi))
        .route(
            "/management/v1/warehouse",
            get(list_warehouses).post(create_warehouse),
        )
        .route(
            "/management/v1/warehouse/{id}",
            get(get_warehouse).delete(delete_warehouse),
        )
        .route(
            "/management/v1/warehouse/{id}/rename",
            post(rename_warehouse),
        )
        .route(
            "/management/v1/warehouse/{id}/storage",
            post(update_storage),
        )
        .route(
            "/management/v1/warehouse/{id}/storage-credential",
            post(update_credential),
        )
        .route(
            "/management/v1/warehouse/{id}/delete-profile",
            post(update_delete_profile),
        )
        .route("/management/v1/warehouse/{id}/activate", post(activate))
        .route("/management/v1/warehouse/{id}/deactivate", post(deactivate))
        .route(
            "/management/v1/warehouse/{id}/deleted-tables",
            get(list_deleted_tables),
        )
        .route(
            "/management/v1/warehouse/{id}/deleted-tables/{table_id}/undrop",
            post(undrop_table),
        )
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice management API", description = "Warehouses and identity management for the Sluice Iceberg REST catalog."),
    paths(
        list_warehouses, create_warehouse, get_warehouse, delete_warehouse,
        rename_warehouse, update_storage, update_credential, update_delete_profile, activate, deactivate,
        list_deleted_tables, undrop_table
    ),
    components(schemas(
        CreateWarehouseRequest, Warehouse, ListWarehousesResponse, RenameWarehouseRequest,
        UpdateStorageRequest, UpdateCredentialRequest, UpdateDeleteProfileRequest, ErrorModel, ErrorBody,
        DeletedTablesResponse, UndropRequest, StorageProfileSchema, StorageCredentialSchema,
        DeleteProfileSchema
    )),
    modifiers(&Security),
    security(("basic" = []), ("bearer" = []))
)]
pub struct ManagementApi;

struct Security;
impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The served document: every management route, each with the error answers it can give.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ManagementApi::openapi();
    doc.merge(super::identity::IdentityApi::openapi());
    doc.merge(super::login::PrincipalsApi::openapi());
    utoipa::Modify::modify(&ErrorResponses, &mut doc);
    server_rules(doc)
}

/// What the derived schemas cannot say on their own, written into the document so it is as
/// strict as the server: the known actions (from `sluice-auth`'s list, so a new action is
/// documented the moment it exists), and the optional undrop body, which may be left out
/// but is never `null`.
fn server_rules(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use serde_json::json;
    let mut v = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
    let schemas = &mut v["components"]["schemas"];
    schemas["CheckRequest"]["properties"]["action"]["enum"] = json!(known);
    schemas["Statement"]["properties"]["action"]["items"] = json!({
        "type": "string",
        "pattern": action_pattern(&known),
        "description": "A known action, `*`, or a known action's prefix followed by `*` \
                        (`catalog:*`, `catalog:Read*`). The server also takes other globs \
                        (`?`, a `*` inside) when they match a known action."
    });
    // A soft delete profile refuses unknown fields; serde cannot refuse them beside a unit
    // variant's tag, so `{"type":"hard",...}` stays open, as the server reads it.
    if let Some(variants) = schemas["DeleteProfile"]["oneOf"].as_array_mut() {
        for variant in variants {
            if variant["properties"].get("expiration-seconds").is_some() {
                variant["additionalProperties"] = json!(false);
            }
        }
    }
    let undrop = &mut v["paths"]["/management/v1/warehouse/{id}/deleted-tables/{table_id}/undrop"]
        ["post"]["requestBody"];
    undrop["content"]["application/json"]["schema"] =
        json!({"$ref": "#/components/schemas/UndropRequest"});
    undrop["required"] = json!(false);
    serde_json::from_value(v).expect("the adjusted OpenAPI document deserializes")
}

/// A regular expression for a statement's action: a known action exactly, or any prefix of
/// one followed by `*` (or `**`: a glob that matches at least one action, as the server
/// requires).
/// Built as a trie so each branch is a real prefix.
fn action_pattern(known: &[&str]) -> String {
    #[derive(Default)]
    struct Node {
        end: bool,
        next: std::collections::BTreeMap<char, Node>,
    }
    fn emit(n: &Node, out: &mut String) {
        out.push_str("(?:\\*+");
        if n.end {
            out.push('|');
        }
        for (c, child) in &n.next {
            out.push('|');
            out.push(*c);
            emit(child, out);
        }
        out.push(')');
    }
    let mut root = Node::default();
    for a in known {
        let mut n = &mut root;
        for c in a.chars() {
            n = n.next.entry(c).or_default();
        }
        n.end = true;
    }
    let mut out = String::from("^");
    emit(&root, &mut out);
    out.push('$');
    out
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_document())
}

/// Adds to every operation the error answers any authenticated route can give, in the
/// error model: bad input, authentication (401, 429 when throttled), authorization, hidden
/// or missing objects, the HTTP layer's limits (413, 414, 431, 504) and server-side
/// failures (500, 503). Changes can also conflict (409) or be refused as unprocessable (422).
struct ErrorResponses;
impl utoipa::Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        const ALWAYS: &[(u16, &str)] = &[
            (400, "The request is malformed or invalid."),
            (401, "No valid credentials were given."),
            (403, "The caller may not do this."),
            (404, "The object does not exist or the caller may not see it."),
            (413, "The request body is larger than the server accepts."),
            (414, "The request target is too long."),
            (429, "Too many failed authentications from this source or for this key; see Retry-After."),
            (431, "The request headers are too large."),
            (500, "An unexpected server error."),
            (503, "The database or a storage service is unavailable; retry."),
            (504, "The request did not complete within the server's request timeout."),
        ];
        const CHANGES: &[(u16, &str)] = &[
            (406, "The operation is not supported for this object."),
            (409, "The change conflicts with the current state."),
            (422, "The request is well-formed but cannot be processed."),
        ];
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.put, true),
                (&mut item.post, true),
                (&mut item.delete, true),
                (&mut item.patch, true),
            ];
            for (op, changes) in ops {
                let Some(op) = op.as_mut() else { continue };
                let extra: &[(u16, &str)] = if changes { CHANGES } else { &[] };
                for (code, description) in ALWAYS.iter().chain(extra) {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorModel")))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/management/v1/warehouse", responses((status = 200, body = ListWarehousesResponse)))]
async fn list_warehouses(
    State(s): State<AppState>,
    Caller(c): Caller,
) -> Result<Json<ListWarehousesResponse>> {
    let warehouses = s
        .services
        .list_warehouses(&c)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(ListWarehousesResponse { warehouses }))
}

/// Create a warehouse.
///
/// The server probes the storage before it stores anything (it writes, reads and deletes a
/// small object with the given profile and credential), so a request that matches the
/// schema can still be refused with 400 when the storage is unreachable or refuses.
#[utoipa::path(post, path = "/management/v1/warehouse", request_body = CreateWarehouseRequest,
    responses((status = 201, body = Warehouse), (status = 400, body = ErrorModel), (status = 409, body = ErrorModel)))]
async fn create_warehouse(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(req): ApiJson<CreateWarehouseRequest>,
) -> Result<(StatusCode, Json<Warehouse>)> {
    let w = s
        .services
        .create_warehouse(
            &c,
            &req.warehouse_name,
            req.storage_profile,
            req.storage_credential,
            req.delete_profile,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(w.into())))
}

#[utoipa::path(get, path = "/management/v1/warehouse/{id}", params(("id" = Uuid, Path)),
    responses((status = 200, body = Warehouse), (status = 404, body = ErrorModel)))]
async fn get_warehouse(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Warehouse>> {
    Ok(Json(s.services.get_warehouse(&c, id).await?.into()))
}

#[utoipa::path(delete, path = "/management/v1/warehouse/{id}", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorModel), (status = 409, body = ErrorModel)))]
async fn delete_warehouse(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode> {
    s.services.delete_warehouse(&c, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/management/v1/warehouse/{id}/rename", params(("id" = Uuid, Path)), request_body = RenameWarehouseRequest,
    responses((status = 200, body = Warehouse), (status = 409, body = ErrorModel)))]
async fn rename_warehouse(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<RenameWarehouseRequest>,
) -> Result<Json<Warehouse>> {
    Ok(Json(
        s.services
            .rename_warehouse(&c, id, &req.new_name)
            .await?
            .into(),
    ))
}

/// Change a warehouse's storage profile (and optionally its credential).
///
/// The new settings are probed against the storage first, so a request that matches the
/// schema can still be refused with 400 when the storage is unreachable or refuses, or
/// when the change would send the stored credential elsewhere without a new one.
#[utoipa::path(post, path = "/management/v1/warehouse/{id}/storage", params(("id" = Uuid, Path)), request_body = UpdateStorageRequest,
    responses((status = 200, body = Warehouse), (status = 400, body = ErrorModel)))]
async fn update_storage(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateStorageRequest>,
) -> Result<Json<Warehouse>> {
    Ok(Json(
        s.services
            .update_storage(&c, id, req.storage_profile, req.storage_credential)
            .await?
            .into(),
    ))
}

/// Replace or remove a warehouse's storage credential.
///
/// The new credential is probed against the storage first and must fit the profile's type,
/// so a request that matches the schema can still be refused with 400.
#[utoipa::path(post, path = "/management/v1/warehouse/{id}/storage-credential", params(("id" = Uuid, Path)), request_body = UpdateCredentialRequest,
    responses((status = 200, body = Warehouse), (status = 400, body = ErrorModel)))]
async fn update_credential(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateCredentialRequest>,
) -> Result<Json<Warehouse>> {
    Ok(Json(
        s.services
            .update_credential(&c, id, req.new_storage_credential)
            .await?
            .into(),
    ))
}

#[utoipa::path(post, path = "/management/v1/warehouse/{id}/delete-profile", params(("id" = Uuid, Path)), request_body = UpdateDeleteProfileRequest,
    responses((status = 200, body = Warehouse)))]
async fn update_delete_profile(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateDeleteProfileRequest>,
) -> Result<Json<Warehouse>> {
    Ok(Json(
        s.services
            .update_delete_profile(&c, id, req.delete_profile)
            .await?
            .into(),
    ))
}

#[utoipa::path(post, path = "/management/v1/warehouse/{id}/activate", params(("id" = Uuid, Path)), responses((status = 200, body = Warehouse)))]
async fn activate(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Warehouse>> {
    Ok(Json(
        s.services.set_warehouse_active(&c, id, true).await?.into(),
    ))
}

#[utoipa::path(post, path = "/management/v1/warehouse/{id}/deactivate", params(("id" = Uuid, Path)), responses((status = 200, body = Warehouse)))]
async fn deactivate(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Warehouse>> {
    Ok(Json(
        s.services.set_warehouse_active(&c, id, false).await?.into(),
    ))
}

#[derive(Deserialize)]
struct DeletedQuery {
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<u32>,
}

#[utoipa::path(get, path = "/management/v1/warehouse/{id}/deleted-tables",
    params(("id" = Uuid, Path), ("pageToken" = Option<String>, Query), ("pageSize" = Option<u32>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, body = DeletedTablesResponse)))]
async fn list_deleted_tables(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DeletedQuery>,
) -> Result<Json<DeletedTablesResponse>> {
    let tables = s
        .services
        .list_deleted_tables(&c, id, q.page_token.as_deref(), q.page_size)
        .await?;
    Ok(Json(DeletedTablesResponse { tables }))
}

#[utoipa::path(post, path = "/management/v1/warehouse/{id}/deleted-tables/{table_id}/undrop",
    params(("id" = Uuid, Path), ("table_id" = Uuid, Path)), request_body = Option<UndropRequest>,
    responses((status = 200, body = Object), (status = 404, body = ErrorModel), (status = 409, body = ErrorModel)))]
async fn undrop_table(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((id, table_id)): ApiPath<(Uuid, Uuid)>,
    body: axum::body::Bytes,
) -> Result<Json<sluice_service::soft_delete::UndroppedTable>> {
    // The body is optional: an empty POST restores under the original name.
    let req: UndropRequest = if body.iter().all(u8::is_ascii_whitespace) {
        UndropRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))?
    };
    Ok(Json(
        s.services
            .undrop_table(&c, id, table_id, req.new_name.as_deref())
            .await?,
    ))
}
