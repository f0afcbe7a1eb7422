//! Iceberg REST catalog routes (`/v1/...`). Each handler parses, calls one service
//! function, and maps the result.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, Delegation};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_service::rest::*;

type Result<T> = std::result::Result<T, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/config", get(config))
        .route(
            "/v1/{prefix}/namespaces",
            get(list_namespaces).post(create_namespace),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}",
            get(load_namespace)
                .head(namespace_exists)
                .delete(drop_namespace),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/properties",
            post(update_properties),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables",
            get(list_tables).post(create_table),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/register",
            post(register_table),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}",
            get(load_table)
                .head(table_exists)
                .post(commit_table)
                .delete(drop_table),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
            post(report_metrics),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
            get(load_credentials),
        )
        .route("/v1/{prefix}/tables/{table_id}/sign", post(sign_scoped))
        .route("/v1/{prefix}/staged-tables/{grant}/sign", post(sign_staged))
        .route("/v1/aws/s3/sign", post(sign_unscoped))
        .route("/v1/{prefix}/tables/rename", post(rename_table))
        .route("/v1/{prefix}/transactions/commit", post(commit_transaction))
}

#[derive(Deserialize)]
struct ConfigQuery {
    warehouse: Option<String>,
}

async fn config(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> Result<Response> {
    let body = s
        .services
        .catalog_config(&c, q.warehouse.as_deref())
        .await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        axum::body::Bytes::from_owner(body),
    )
        .into_response())
}

/// Paging (and, for namespaces, `parent`) of every listing route, views included.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    parent: Option<String>,
    #[serde(rename = "pageToken")]
    pub(crate) page_token: Option<String>,
    #[serde(rename = "pageSize")]
    pub(crate) page_size: Option<u32>,
}

async fn list_namespaces(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(prefix): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListNamespacesResponse>> {
    Ok(Json(
        s.services
            .list_namespaces(
                &c,
                &prefix,
                q.parent.as_deref(),
                q.page_token.as_deref(),
                q.page_size,
            )
            .await?,
    ))
}

async fn create_namespace(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(prefix): ApiPath<String>,
    ApiJson(req): ApiJson<CreateNamespaceRequest>,
) -> Result<Json<NamespaceResponse>> {
    Ok(Json(s.services.create_namespace(&c, &prefix, req).await?))
}

async fn load_namespace(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
) -> Result<Json<NamespaceResponse>> {
    Ok(Json(s.services.load_namespace(&c, &prefix, &ns).await?))
}

async fn namespace_exists(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services.load_namespace(&c, &prefix, &ns).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn drop_namespace(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services.drop_namespace(&c, &prefix, &ns).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn update_properties(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<UpdateNamespacePropertiesRequest>,
) -> Result<Json<UpdateNamespacePropertiesResponse>> {
    Ok(Json(
        s.services
            .update_namespace_properties(&c, &prefix, &ns, req)
            .await?,
    ))
}

async fn list_tables(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListTablesResponse>> {
    Ok(Json(
        s.services
            .list_tables(&c, &prefix, &ns, q.page_token.as_deref(), q.page_size)
            .await?,
    ))
}

async fn create_table(
    State(s): State<AppState>,
    Caller(c): Caller,
    Delegation(d): Delegation,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CreateTableRequest>,
) -> Result<Response> {
    Ok(load_result(
        s.services.create_table(&c, &prefix, &ns, req, &d).await?,
    ))
}

async fn register_table(
    State(s): State<AppState>,
    Caller(c): Caller,
    Delegation(d): Delegation,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RegisterTableRequest>,
) -> Result<Response> {
    Ok(load_result(
        s.services.register_table(&c, &prefix, &ns, req, &d).await?,
    ))
}

/// Says how `X-Iceberg-Access-Delegation` was answered (`X-Sluice-Delegation`), so a client
/// that got no credentials can tell why. The body is the service's, written once.
fn load_result(result: LoadTableResult) -> Response {
    let mut resp = (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        result.to_json(),
    )
        .into_response();
    add_delegation_header(&mut resp, &result);
    resp
}

fn add_delegation_header(resp: &mut Response, result: &LoadTableResult) {
    let outcome = result.delegation.as_ref().map(|o| o.header_value());
    if let Some(v) = outcome.and_then(|v| axum::http::HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(DELEGATION_OUTCOME_HEADER, v);
    }
}

/// Whether an `If-None-Match` header names `etag` (RFC 9110 13.1.2: weak comparison, so a
/// `W/` prefix is ignored; `*` matches any current representation).
fn none_match(headers: &axum::http::HeaderMap, etag: &str) -> bool {
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

pub const DELEGATION_OUTCOME_HEADER: &str = "x-sluice-delegation";

#[derive(Deserialize)]
struct LoadQuery {
    snapshots: Option<String>,
}

/// Load-table with the spec's `ETag`: a client that sends the tag of its copy in
/// `If-None-Match` gets `304 Not Modified` and no body while its copy is current.
async fn load_table(
    State(s): State<AppState>,
    Caller(c): Caller,
    Delegation(d): Delegation,
    ApiPath((prefix, ns, table)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<LoadQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response> {
    let mode = match q.snapshots.as_deref() {
        None | Some("all") => SnapshotsMode::All,
        Some("refs") => SnapshotsMode::Refs,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid snapshots mode '{other}': expected 'all' or 'refs'"
            )))
        }
    };
    let result = s
        .services
        .load_table(&c, &prefix, &ns, &table, mode, &d)
        .await?;
    let etag = result.etag(mode);
    let mut resp = if none_match(&headers, &etag) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        add_delegation_header(&mut resp, &result);
        resp
    } else {
        load_result(result)
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(axum::http::header::ETAG, v);
    }
    Ok(resp)
}

async fn table_exists(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, table)): ApiPath<(String, String, String)>,
) -> Result<StatusCode> {
    s.services.table_exists(&c, &prefix, &ns, &table).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn commit_table(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, table)): ApiPath<(String, String, String)>,
    ApiJson(req): ApiJson<CommitTableRequest>,
) -> Result<Json<CommitTableResponse>> {
    Ok(Json(
        s.services
            .commit_table(&c, &prefix, &ns, &table, req)
            .await?,
    ))
}

#[derive(Deserialize)]
struct DropQuery {
    /// A string, because clients send `true`, `True` and `TRUE` alike.
    #[serde(rename = "purgeRequested")]
    purge_requested: Option<String>,
}

pub(crate) fn parse_bool(name: &str, v: Option<&str>) -> Result<bool> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, got '{other}'"
        ))),
    }
}

async fn drop_table(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, table)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<DropQuery>,
) -> Result<StatusCode> {
    let purge = parse_bool("purgeRequested", q.purge_requested.as_deref())?;
    s.services
        .drop_table(&c, &prefix, &ns, &table, purge)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn report_metrics(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, table)): ApiPath<(String, String, String)>,
    ApiJson(_report): ApiJson<serde_json::Value>,
) -> Result<StatusCode> {
    s.services.report_metrics(&c, &prefix, &ns, &table).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename_table(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(prefix): ApiPath<String>,
    ApiJson(req): ApiJson<RenameTableRequest>,
) -> Result<StatusCode> {
    s.services.rename_table(&c, &prefix, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn commit_transaction(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(prefix): ApiPath<String>,
    ApiJson(req): ApiJson<CommitTransactionRequest>,
) -> Result<StatusCode> {
    s.services.commit_transaction(&c, &prefix, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn load_credentials(
    State(s): State<AppState>,
    Caller(c): Caller,
    Delegation(d): Delegation,
    ApiPath((prefix, ns, table)): ApiPath<(String, String, String)>,
) -> Result<Json<sluice_service::delegation::LoadCredentialsResponse>> {
    Ok(Json(
        s.services
            .load_credentials(&c, &prefix, &ns, &table, &d.base_url)
            .await?,
    ))
}

/// Signed headers are only good for this caller and a few minutes: clients may reuse them
/// privately but no shared cache may.
fn signed_response(signed: sluice_storage::s3::SignedRequest) -> Response {
    // Serialized into a buffer of about the answer's size: axum's `Json` starts at 128 bytes
    // and grows four times for a signed request with a session token.
    let size = signed.uri.len()
        + signed
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.iter().map(|v| v.len() + 4).sum::<usize>() + 8)
            .sum::<usize>()
        + 32;
    let mut body = Vec::with_capacity(size);
    if let Err(e) = serde_json::to_writer(&mut body, &signed) {
        return ApiError::from(sluice_service::ServiceError::internal(e)).into_response();
    }
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            ),
            (
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("private, max-age=60"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn sign_scoped(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, table_id)): ApiPath<(String, uuid::Uuid)>,
    ApiJson(req): ApiJson<sluice_storage::s3::SignRequest>,
) -> Result<Response> {
    Ok(signed_response(
        s.services
            .sign_s3_request(&c, Some((&prefix, table_id)), req)
            .await?,
    ))
}

/// The signer endpoint of a table created with `stage-create` (not in the catalog until
/// its create commits); `grant` is the sealed description the create response handed out.
async fn sign_staged(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, grant)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<sluice_storage::s3::SignRequest>,
) -> Result<Response> {
    Ok(signed_response(
        s.services
            .sign_staged_s3_request(&c, &prefix, &grant, req)
            .await?,
    ))
}

async fn sign_unscoped(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(req): ApiJson<sluice_storage::s3::SignRequest>,
) -> Result<Response> {
    Ok(signed_response(
        s.services.sign_s3_request(&c, None, req).await?,
    ))
}
