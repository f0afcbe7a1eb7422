use std::fmt;

/// The step of a validation probe that failed, so an operator can tell "cannot write"
/// (credentials, bucket policy) from "cannot list" (missing s3:ListBucket) at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStep {
    Write,
    Read,
    List,
    Delete,
}

impl fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeStep::Write => "write",
            ProbeStep::Read => "read",
            ProbeStep::List => "list",
            ProbeStep::Delete => "delete",
        })
    }
}

/// Errors of the storage layer. No variant ever carries a secret: messages quote the object
/// store's answer (status, error code, message) and locations, nothing from the credential.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The profile, credential or location is malformed or not allowed (a client error).
    #[error("invalid storage configuration: {0}")]
    Invalid(String),
    /// A validation probe against the real store failed.
    #[error("storage validation failed at step '{step}' for {location}: {message}")]
    Probe {
        step: ProbeStep,
        location: String,
        message: String,
    },
    /// The location lies outside the warehouse's storage.
    #[error("location is not within the warehouse storage: {0}")]
    NotInWarehouse(String),
    #[error("object not found: {0}")]
    NotFound(String),
    /// `write_new` found an object already there.
    #[error("object already exists: {0}")]
    AlreadyExists(String),
    /// Any other failure talking to the object store.
    #[error("storage i/o error: {0}")]
    Io(String),
    /// STS refused or failed to issue credentials (its error code and message, or the
    /// transport failure). Usually a server-side misconfiguration (role, trust policy,
    /// endpoint), not the client's fault.
    #[error("STS error: {0}")]
    Sts(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Renders an error with its whole source chain. object_store wraps the interesting part
/// (HTTP status, S3 error code and message) a few sources deep; a bare `to_string()` of the
/// outer error sometimes hides it. Parts already contained in the text so far are skipped,
/// because many wrappers repeat their source in their own message.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
