//! Iceberg REST view routes (`/v1/{prefix}/namespaces/{namespace}/views...`,
//! `/v1/{prefix}/views/rename`). Each handler parses, calls one service function, and maps
//! the result.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::routes::catalog::ListQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_service::rest::{ListTablesResponse, RenameTableRequest};
use sluice_service::view::{
    CommitViewRequest, CreateViewRequest, LoadViewResult, RegisterViewRequest,
};

type Result<T> = std::result::Result<T, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/{prefix}/namespaces/{namespace}/views",
            get(list_views).post(create_view),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/views/{view}",
            get(load_view)
                .head(view_exists)
                .post(replace_view)
                .delete(drop_view),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/register-view",
            post(register_view),
        )
        .route("/v1/{prefix}/views/rename", post(rename_view))
}

async fn list_views(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ListTablesResponse>> {
    Ok(Json(
        s.services
            .list_views(&c, &prefix, &ns, q.page_token.as_deref(), q.page_size)
            .await?,
    ))
}

async fn create_view(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CreateViewRequest>,
) -> Result<Json<LoadViewResult>> {
    Ok(Json(s.services.create_view(&c, &prefix, &ns, req).await?))
}

async fn register_view(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RegisterViewRequest>,
) -> Result<Json<LoadViewResult>> {
    Ok(Json(s.services.register_view(&c, &prefix, &ns, req).await?))
}

async fn load_view(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, view)): ApiPath<(String, String, String)>,
) -> Result<Json<LoadViewResult>> {
    Ok(Json(s.services.load_view(&c, &prefix, &ns, &view).await?))
}

async fn view_exists(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, view)): ApiPath<(String, String, String)>,
) -> Result<StatusCode> {
    s.services.view_exists(&c, &prefix, &ns, &view).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn replace_view(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, view)): ApiPath<(String, String, String)>,
    ApiJson(req): ApiJson<CommitViewRequest>,
) -> Result<Json<LoadViewResult>> {
    Ok(Json(
        s.services
            .replace_view(&c, &prefix, &ns, &view, req)
            .await?,
    ))
}

#[derive(Deserialize)]
struct DropQuery {
    /// Not in the spec for views; accepted like the table drop's, so a purge can be asked for.
    #[serde(rename = "purgeRequested")]
    purge_requested: Option<String>,
}

async fn drop_view(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((prefix, ns, view)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<DropQuery>,
) -> Result<StatusCode> {
    let purge = crate::routes::catalog::parse_bool("purgeRequested", q.purge_requested.as_deref())?;
    s.services.drop_view(&c, &prefix, &ns, &view, purge).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename_view(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(prefix): ApiPath<String>,
    ApiJson(req): ApiJson<RenameTableRequest>,
) -> Result<StatusCode> {
    s.services.rename_view(&c, &prefix, req).await?;
    Ok(StatusCode::NO_CONTENT)
}
