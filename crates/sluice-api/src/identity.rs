//! Users, groups, policies, access keys, whoami, the authorization explain endpoint, the
//! audit log and external principals.

use crate::policy::{Statement, StatementRef};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sluice_core::Secret;
use utoipa::ToSchema;
use uuid::Uuid;

// ------------------------------------------------------------------ requests

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(pattern = "^[A-Za-z0-9._@+=,-]{1,128}$")]
    pub name: String,
    /// An address with an `@`, at most 320 bytes, without whitespace or control characters.
    #[schema(
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]*@[^\\s\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 320
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateGroupRequest {
    #[schema(pattern = "^[A-Za-z0-9._@+=,-]{1,128}$")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Create (with `name`) or replace (name taken from the path) a policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicyRequest {
    #[schema(pattern = "^[A-Za-z0-9._@+=,-]{1,128}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `[{"effect":"allow"|"deny","action":["catalog:ReadTable",...],"resource":"sluice:catalog:::warehouse/prod/*"}]`
    #[schema(value_type = Vec<crate::policy::StatementSchema>, min_items = 1, max_items = 100)]
    pub statements: Vec<Statement>,
}

// Schema-only twins: `POST /policies` needs a name (`PolicyRequest` serves create and
// replace), and `PATCH /users/{user}` reads a JSON object to tell an absent field from `null`.

/// `POST /management/v1/policies`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = CreatePolicyRequest)]
#[allow(dead_code)]
pub struct CreatePolicySchema {
    #[schema(pattern = "^[A-Za-z0-9._@+=,-]{1,128}$")]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[schema(value_type = Vec<crate::policy::StatementSchema>, min_items = 1, max_items = 100)]
    statements: Vec<Statement>,
}

/// `PUT /management/v1/policies/{policy}`: the name is the path's (policies cannot be
/// renamed; a `name` equal to the path's is tolerated for older clients).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = ReplacePolicyRequest)]
#[allow(dead_code)]
pub struct ReplacePolicySchema {
    #[serde(default)]
    description: Option<String>,
    #[schema(value_type = Vec<crate::policy::StatementSchema>, min_items = 1, max_items = 100)]
    statements: Vec<Statement>,
}

/// `PATCH /management/v1/users/{user}`: a field left out is kept, `null` clears it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schema(as = UpdateUserRequest)]
#[allow(dead_code)]
pub struct UpdateUserSchema {
    /// An address with an `@`, at most 320 bytes, without whitespace or control characters.
    #[schema(
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]*@[^\\s\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 320
    )]
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    friendly_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub user: String,
    /// One of the known actions (the document lists them as an enum).
    pub action: String,
    /// `*` or a resource string; no whitespace or control characters.
    #[schema(pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]+$")]
    pub resource: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachPrincipal {
    /// An IAM user or role ARN, or an STS assumed-role ARN: `arn:aws…` with at least six
    /// `:`-separated parts.
    #[schema(pattern = "^arn:aws[^:]*:[^:]*:[^:]*:[^:]*:")]
    pub arn: String,
}

// ------------------------------------------------------------------ responses

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Where the user comes from (`local`, `oidc`, `ldap`, ...).
    pub source: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Policy {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub statements: Vec<Statement>,
    /// Built-in policies cannot be changed or deleted.
    #[serde(default)]
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An access key as listed (the secret is only ever returned at creation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AccessKey {
    pub access_key_id: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The only response that ever carries a secret: shown once, at creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = NewKeyResponse)]
pub struct NewAccessKey {
    pub access_key_id: String,
    // A `Secret` so it cannot reach a log line by accident (`.expose()` to print it); it is
    // written out only here, in this one response.
    #[serde(serialize_with = "expose_secret")]
    #[schema(value_type = String)]
    pub secret_access_key: Secret,
    pub user: String,
}

fn expose_secret<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub actor_id: Option<Uuid>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// A policy that applies to the caller, and the group it comes through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EffectivePolicy {
    pub policy: String,
    /// The group it comes through; absent when attached to the user directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_group: Option<String>,
}

/// `GET /management/v1/whoami`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WhoAmI {
    pub user_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Where the user comes from (`local`, `oidc`, `ldap`, ...).
    pub source: String,
    /// The access key that authenticated the call, if one did.
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub policies: Vec<EffectivePolicy>,
}

/// `POST /management/v1/authz/check`: why a user may or may not do something.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckResult {
    pub user: String,
    pub action: String,
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The statement that decided; absent for an implicit deny (nothing matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<StatementRef>,
    pub reason: String,
}

impl CheckResult {
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

/// An external principal (an AWS IAM ARN) bound to a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExternalPrincipal {
    /// `aws-iam`.
    pub source: String,
    /// The principal ARN (an assumed-role ARN is stored as its role ARN).
    pub id: String,
    pub created_at: DateTime<Utc>,
}

// ------------------------------------------------------------------ list envelopes

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsersResponse {
    #[schema(value_type = Vec<Object>)]
    pub users: Vec<User>,
}
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupsResponse {
    #[schema(value_type = Vec<Object>)]
    pub groups: Vec<Group>,
}
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PoliciesResponse {
    #[schema(value_type = Vec<Object>)]
    pub policies: Vec<Policy>,
}
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct KeysResponse {
    #[schema(value_type = Vec<Object>)]
    pub access_keys: Vec<AccessKey>,
}
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditResponse {
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<AuditEntry>,
}
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PrincipalsResponse {
    #[schema(value_type = Vec<ExternalPrincipalView>)]
    pub principals: Vec<ExternalPrincipal>,
}

/// An external principal bound to a user (schema of `ExternalPrincipalInfo`).
#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
pub struct ExternalPrincipalView {
    /// `aws-iam`.
    source: String,
    /// The principal ARN (an assumed-role ARN is stored as its role ARN).
    id: String,
    created_at: chrono::DateTime<chrono::Utc>,
}
