use sluice_storage::StorageError;
use sluice_store::StoreError;

/// One error enum for every service operation. The HTTP edge maps each variant to a status
/// code and an Iceberg exception type; services never pick status codes themselves.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    /// Syntactically fine but semantically unprocessable (e.g. a key both removed and set).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NoSuchWarehouse(String),
    #[error("{0}")]
    NoSuchNamespace(String),
    #[error("{0}")]
    NoSuchTable(String),
    #[error("{0}")]
    NoSuchView(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NamespaceNotEmpty(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    CommitFailed(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Unavailable(String),
    /// Details go to the log; callers see a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ServiceError::NotFound(format!("{m} not found")),
            StoreError::AlreadyExists(m) => {
                ServiceError::AlreadyExists(format!("{m} already exists"))
            }
            StoreError::Conflict(m) => ServiceError::CommitFailed(format!("commit conflict: {m}")),
            StoreError::NotEmpty(m) => ServiceError::NamespaceNotEmpty(format!("{m} is not empty")),
            // `m` names the other table, which the caller may not be allowed to see.
            StoreError::LocationOverlap(_) => ServiceError::BadRequest(
                "the table location is already in use (it overlaps the location of another table)"
                    .into(),
            ),
            StoreError::Database(sqlx_err) if is_busy(&sqlx_err) => {
                ServiceError::Unavailable("database is busy, retry".into())
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

fn is_busy(e: &sluice_store::SqlxError) -> bool {
    sluice_store::is_busy_error(e)
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(m) => ServiceError::BadRequest(m),
            p @ StorageError::Probe { .. } => ServiceError::BadRequest(p.to_string()),
            // The storage message is only the location; say which field is wrong.
            StorageError::NotInWarehouse(m) => ServiceError::BadRequest(format!(
                "location {m} is not within the warehouse storage"
            )),
            StorageError::NotFound(m) => ServiceError::NotFound(m),
            StorageError::AlreadyExists(m) => ServiceError::Conflict(m),
            // Almost always the warehouse's role, trust policy or endpoint: the operator's
            // problem, reported without secrets.
            // What the STS/token endpoint answered stays in the server log: the warehouse's
            // creator chose that endpoint, and its answer is not the caller's business.
            s @ StorageError::Sts(_) => {
                tracing::warn!(error = %s, "the storage credential service failed");
                ServiceError::Unavailable(format!(
                    "the storage credential service failed: {}",
                    s.client_message()
                ))
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<iceberg::Error> for ServiceError {
    fn from(e: iceberg::Error) -> Self {
        match e.kind() {
            iceberg::ErrorKind::CatalogCommitConflicts => ServiceError::CommitFailed(e.to_string()),
            iceberg::ErrorKind::DataInvalid
            | iceberg::ErrorKind::FeatureUnsupported
            | iceberg::ErrorKind::PreconditionFailed => ServiceError::BadRequest(e.to_string()),
            _ => ServiceError::Internal(e.to_string()),
        }
    }
}

// Identity-provider errors. Each provider's failure reads the same to every caller
// (bearer check or login endpoint); the detail goes to the server log only.

impl From<sluice_auth::oidc::OidcError> for ServiceError {
    fn from(e: sluice_auth::oidc::OidcError) -> Self {
        use sluice_auth::oidc::OidcError;
        match e {
            OidcError::InvalidToken(m) => {
                tracing::debug!(reason = %m, "OIDC token rejected");
                ServiceError::Unauthorized("invalid bearer token".into())
            }
            OidcError::Unavailable(m) => {
                tracing::warn!(reason = %m, "identity provider unavailable");
                ServiceError::Unavailable("the identity provider is unavailable".into())
            }
            other => {
                tracing::error!(error = %other, "OIDC configuration error");
                ServiceError::Internal(other.to_string())
            }
        }
    }
}

impl From<sluice_auth::ldap::LdapError> for ServiceError {
    fn from(e: sluice_auth::ldap::LdapError) -> Self {
        if !matches!(e, sluice_auth::ldap::LdapError::InvalidCredentials) {
            tracing::warn!(error = ?e, "LDAP login failed");
        }
        ServiceError::Unauthorized("invalid credentials".into())
    }
}

impl From<sluice_auth::aws_iam::AwsIamError> for ServiceError {
    fn from(e: sluice_auth::aws_iam::AwsIamError) -> Self {
        use sluice_auth::aws_iam::AwsIamError;
        match e {
            AwsIamError::Invalid(m) => {
                tracing::info!(reason = %m, "AWS IAM login refused");
                ServiceError::Unauthorized(format!("AWS identity rejected: {m}"))
            }
            e => {
                tracing::warn!(error = %e, "AWS IAM login: STS unavailable");
                ServiceError::Unavailable("AWS STS is unavailable".into())
            }
        }
    }
}
