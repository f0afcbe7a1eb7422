//! Management API for identity: users, access keys, groups, memberships, policies and
//! their attachments, whoami, the authorization explain endpoint and the audit log.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_api::policy::{EffectSchema, StatementSchema};
use sluice_api::{
    AuditResponse, CheckRequest, CreateGroupRequest, CreatePolicySchema, CreateUserRequest,
    GroupsResponse, KeysResponse, NewAccessKey, PoliciesResponse, PolicyRequest,
    ReplacePolicySchema, UpdateUserSchema, UsersResponse,
};
use sluice_service::identity::*;
use sluice_service::ServiceError;
use utoipa::OpenApi;

type Result<T> = std::result::Result<T, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/management/v1/whoami", get(whoami))
        .route("/management/v1/authz/check", post(check))
        .route("/management/v1/audit", get(audit))
        .route("/management/v1/users", get(list_users).post(create_user))
        .route(
            "/management/v1/users/{user}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route(
            "/management/v1/users/{user}/access-keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/management/v1/users/{user}/access-keys/{key}",
            axum::routing::delete(delete_key),
        )
        .route("/management/v1/users/{user}/groups", get(user_groups))
        .route("/management/v1/users/{user}/policies", get(user_policies))
        .route(
            "/management/v1/users/{user}/policies/{policy}",
            put(attach_user).delete(detach_user),
        )
        .route("/management/v1/groups", get(list_groups).post(create_group))
        .route(
            "/management/v1/groups/{group}",
            get(get_group).delete(delete_group),
        )
        .route("/management/v1/groups/{group}/members", get(members))
        .route(
            "/management/v1/groups/{group}/members/{user}",
            put(add_member).delete(remove_member),
        )
        .route(
            "/management/v1/groups/{group}/policies",
            get(group_policies),
        )
        .route(
            "/management/v1/groups/{group}/policies/{policy}",
            put(attach_group).delete(detach_group),
        )
        .route(
            "/management/v1/policies",
            get(list_policies).post(create_policy),
        )
        .route(
            "/management/v1/policies/{policy}",
            get(get_policy).put(update_policy).delete(delete_policy),
        )
}

#[derive(OpenApi)]
#[openapi(
    paths(
        whoami,
        check,
        audit,
        list_users,
        create_user,
        get_user,
        update_user,
        delete_user,
        list_keys,
        create_key,
        delete_key,
        user_groups,
        user_policies,
        attach_user,
        detach_user,
        list_groups,
        create_group,
        get_group,
        delete_group,
        members,
        add_member,
        remove_member,
        group_policies,
        attach_group,
        detach_group,
        list_policies,
        create_policy,
        get_policy,
        update_policy,
        delete_policy
    ),
    components(schemas(
        CreateUserRequest,
        CreateGroupRequest,
        PolicyRequest,
        CreatePolicySchema,
        UpdateUserSchema,
        ReplacePolicySchema,
        StatementSchema,
        EffectSchema,
        CheckRequest,
        NewAccessKey,
        UsersResponse,
        GroupsResponse,
        PoliciesResponse,
        KeysResponse,
        AuditResponse
    ))
)]
pub struct IdentityApi;

#[utoipa::path(get, path = "/management/v1/whoami", responses((status = 200, body = Object)))]
async fn whoami(State(s): State<AppState>, Caller(c): Caller) -> Result<Json<WhoAmI>> {
    Ok(Json(s.services.whoami(&c).await?))
}

#[utoipa::path(post, path = "/management/v1/authz/check", request_body = CheckRequest, responses((status = 200, body = Object)))]
async fn check(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<CheckRequest>,
) -> Result<Json<CheckResult>> {
    Ok(Json(
        s.services
            .check_permission(&c, &r.user, &r.action, &r.resource)
            .await?,
    ))
}

#[derive(Deserialize)]
struct AuditQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/management/v1/audit", params(("before" = Option<i64>, Query), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000)), responses((status = 200, body = AuditResponse)))]
async fn audit(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditResponse>> {
    Ok(Json(AuditResponse {
        entries: s.services.list_audit(&c, q.before, q.limit).await?,
    }))
}

#[utoipa::path(get, path = "/management/v1/users", responses((status = 200, body = UsersResponse)))]
async fn list_users(State(s): State<AppState>, Caller(c): Caller) -> Result<Json<UsersResponse>> {
    Ok(Json(UsersResponse {
        users: s.services.list_users(&c).await?,
    }))
}

#[utoipa::path(post, path = "/management/v1/users", request_body = CreateUserRequest, responses((status = 201, body = Object)))]
async fn create_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserInfo>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            s.services
                .create_user(&c, &r.name, r.email, r.friendly_name)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/management/v1/users/{user}", params(("user" = String, Path)), responses((status = 200, body = Object)))]
async fn get_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<UserInfo>> {
    Ok(Json(s.services.get_user(&c, &user).await?))
}

/// A field absent from the body is left alone; `null` clears it.
fn optional_field(
    body: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<Option<String>>> {
    match body.get(key) {
        None => Ok(None),
        Some(serde_json::Value::Null) => Ok(Some(None)),
        Some(serde_json::Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::bad_request(format!(
            "'{key}' must be a string or null"
        ))),
    }
}

#[utoipa::path(patch, path = "/management/v1/users/{user}", params(("user" = String, Path)), request_body = UpdateUserSchema, responses((status = 200, body = Object)))]
async fn update_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
    ApiJson(body): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<UserInfo>> {
    if let Some(k) = body.keys().find(|k| *k != "email" && *k != "friendly-name") {
        return Err(ApiError::bad_request(format!(
            "unknown field '{k}': expected 'email' or 'friendly-name'"
        )));
    }
    let email = optional_field(&body, "email")?;
    let friendly = optional_field(&body, "friendly-name")?;
    Ok(Json(
        s.services.update_user(&c, &user, email, friendly).await?,
    ))
}

#[utoipa::path(delete, path = "/management/v1/users/{user}", params(("user" = String, Path)), responses((status = 204)))]
async fn delete_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<StatusCode> {
    s.services.delete_user(&c, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/management/v1/users/{user}/access-keys", params(("user" = String, Path)), responses((status = 200, body = KeysResponse)))]
async fn list_keys(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<KeysResponse>> {
    Ok(Json(KeysResponse {
        access_keys: s.services.list_user_keys(&c, &user).await?,
    }))
}

#[utoipa::path(post, path = "/management/v1/users/{user}/access-keys", params(("user" = String, Path)), responses((status = 201, body = NewAccessKey)))]
async fn create_key(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<(StatusCode, Json<NewAccessKey>)> {
    let k = s.services.create_user_key(&c, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewAccessKey {
            access_key_id: k.access_key_id,
            secret_access_key: k.secret_access_key,
            user,
        }),
    ))
}

#[utoipa::path(delete, path = "/management/v1/users/{user}/access-keys/{key}", params(("user" = String, Path), ("key" = String, Path)), responses((status = 204)))]
async fn delete_key(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((user, key)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services.delete_user_key(&c, &user, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/management/v1/users/{user}/groups", params(("user" = String, Path)), responses((status = 200, body = GroupsResponse)))]
async fn user_groups(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<GroupsResponse>> {
    Ok(Json(GroupsResponse {
        groups: s.services.list_user_groups(&c, &user).await?,
    }))
}

#[utoipa::path(get, path = "/management/v1/users/{user}/policies", params(("user" = String, Path)), responses((status = 200, body = PoliciesResponse)))]
async fn user_policies(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<PoliciesResponse>> {
    Ok(Json(PoliciesResponse {
        policies: s
            .services
            .list_attached_policies(&c, Attachment::User(&user))
            .await?,
    }))
}

#[utoipa::path(put, path = "/management/v1/users/{user}/policies/{policy}", params(("user" = String, Path), ("policy" = String, Path)), responses((status = 204)))]
async fn attach_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((user, policy)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services
        .attach_policy(&c, Attachment::User(&user), &policy)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/management/v1/users/{user}/policies/{policy}", params(("user" = String, Path), ("policy" = String, Path)), responses((status = 204)))]
async fn detach_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((user, policy)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services
        .detach_policy(&c, Attachment::User(&user), &policy)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/management/v1/groups", responses((status = 200, body = GroupsResponse)))]
async fn list_groups(State(s): State<AppState>, Caller(c): Caller) -> Result<Json<GroupsResponse>> {
    Ok(Json(GroupsResponse {
        groups: s.services.list_groups(&c).await?,
    }))
}

#[utoipa::path(post, path = "/management/v1/groups", request_body = CreateGroupRequest, responses((status = 201, body = Object)))]
async fn create_group(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<CreateGroupRequest>,
) -> Result<(StatusCode, Json<GroupInfo>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.services.create_group(&c, &r.name, r.description).await?),
    ))
}

#[utoipa::path(get, path = "/management/v1/groups/{group}", params(("group" = String, Path)), responses((status = 200, body = Object)))]
async fn get_group(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<GroupInfo>> {
    Ok(Json(s.services.get_group(&c, &group).await?))
}

#[utoipa::path(delete, path = "/management/v1/groups/{group}", params(("group" = String, Path)), responses((status = 204)))]
async fn delete_group(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(group): ApiPath<String>,
) -> Result<StatusCode> {
    s.services.delete_group(&c, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/management/v1/groups/{group}/members", params(("group" = String, Path)), responses((status = 200, body = UsersResponse)))]
async fn members(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<UsersResponse>> {
    Ok(Json(UsersResponse {
        users: s.services.list_group_members(&c, &group).await?,
    }))
}

#[utoipa::path(put, path = "/management/v1/groups/{group}/members/{user}", params(("group" = String, Path), ("user" = String, Path)), responses((status = 204)))]
async fn add_member(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((group, user)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services.add_group_member(&c, &group, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/management/v1/groups/{group}/members/{user}", params(("group" = String, Path), ("user" = String, Path)), responses((status = 204)))]
async fn remove_member(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((group, user)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services.remove_group_member(&c, &group, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/management/v1/groups/{group}/policies", params(("group" = String, Path)), responses((status = 200, body = PoliciesResponse)))]
async fn group_policies(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<PoliciesResponse>> {
    Ok(Json(PoliciesResponse {
        policies: s
            .services
            .list_attached_policies(&c, Attachment::Group(&group))
            .await?,
    }))
}

#[utoipa::path(put, path = "/management/v1/groups/{group}/policies/{policy}", params(("group" = String, Path), ("policy" = String, Path)), responses((status = 204)))]
async fn attach_group(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((group, policy)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services
        .attach_policy(&c, Attachment::Group(&group), &policy)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/management/v1/groups/{group}/policies/{policy}", params(("group" = String, Path), ("policy" = String, Path)), responses((status = 204)))]
async fn detach_group(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((group, policy)): ApiPath<(String, String)>,
) -> Result<StatusCode> {
    s.services
        .detach_policy(&c, Attachment::Group(&group), &policy)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/management/v1/policies", responses((status = 200, body = PoliciesResponse)))]
async fn list_policies(
    State(s): State<AppState>,
    Caller(c): Caller,
) -> Result<Json<PoliciesResponse>> {
    Ok(Json(PoliciesResponse {
        policies: s.services.list_policies(&c).await?,
    }))
}

#[utoipa::path(post, path = "/management/v1/policies", request_body = CreatePolicySchema, responses((status = 201, body = Object)))]
async fn create_policy(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<PolicyRequest>,
) -> Result<(StatusCode, Json<PolicyInfo>)> {
    let name = r
        .name
        .ok_or_else(|| ApiError(ServiceError::BadRequest("missing field 'name'".into())))?;
    Ok((
        StatusCode::CREATED,
        Json(
            s.services
                .create_policy(&c, &name, r.description, r.statements)
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/management/v1/policies/{policy}", params(("policy" = String, Path)), responses((status = 200, body = Object)))]
async fn get_policy(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(policy): ApiPath<String>,
) -> Result<Json<PolicyInfo>> {
    Ok(Json(s.services.get_policy(&c, &policy).await?))
}

#[utoipa::path(put, path = "/management/v1/policies/{policy}", params(("policy" = String, Path)), request_body = ReplacePolicySchema, responses((status = 200, body = Object)))]
async fn update_policy(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(policy): ApiPath<String>,
    ApiJson(r): ApiJson<PolicyRequest>,
) -> Result<Json<PolicyInfo>> {
    if r.name.as_deref().is_some_and(|n| n != policy) {
        return Err(ApiError::bad_request(
            "the name in the body does not match the path; policies cannot be renamed",
        ));
    }
    Ok(Json(
        s.services
            .update_policy(&c, &policy, r.description, r.statements)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/management/v1/policies/{policy}", params(("policy" = String, Path)), responses((status = 204)))]
async fn delete_policy(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(policy): ApiPath<String>,
) -> Result<StatusCode> {
    s.services.delete_policy(&c, &policy).await?;
    Ok(StatusCode::NO_CONTENT)
}
