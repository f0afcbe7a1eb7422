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
    /// A conditional read found the object unchanged (`If-None-Match`, `If-Modified-Since`).
    #[error("object not modified: {0}")]
    NotModified(String),
    /// A conditional read or write found the object in another state than required.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// A byte range that lies outside the object.
    #[error("range not satisfiable: {0}")]
    InvalidRange(String),
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

impl StorageError {
    /// This error as the client that configured the storage may see it: which step failed
    /// and the HTTP status of the remote answer, but nothing the remote server said. A
    /// warehouse creator chooses the endpoints, so echoing answer bodies (`<Error><Code>…`,
    /// a token endpoint's JSON) would make Sluice an oracle into whatever they point it at.
    /// The full text ([`std::fmt::Display`]) is for the server log.
    pub fn client_message(&self) -> String {
        match self {
            StorageError::Probe {
                step,
                location,
                message,
            } => format!(
                "storage validation failed at step '{step}' for {location}: {}",
                summarize_remote(message)
            ),
            StorageError::Io(m) => format!("storage i/o error: {}", summarize_remote(m)),
            StorageError::Sts(m) => format!("STS error: {}", summarize_remote(m)),
            other => other.to_string(),
        }
    }
}

/// Probe messages Sluice writes itself; they carry nothing from the remote side.
const OWN_PROBE_TEXTS: &[&str] = &[
    "no answer from the object store within",
    "read back ",
    "the probe object was not found",
];

/// What failed and the remote status, without the remote's words.
pub(crate) fn summarize_remote(detail: &str) -> String {
    if OWN_PROBE_TEXTS.iter().any(|t| detail.starts_with(t)) {
        return detail.to_string();
    }
    let credential_step = [
        "STS error",
        "access token",
        "token request",
        "token response",
        "AssumeRole",
        "User Delegation Key",
        "Cloudflare",
    ]
    .iter()
    .any(|k| detail.contains(k));
    let what = if credential_step {
        "obtaining credentials for the storage failed"
    } else {
        "the storage request failed"
    };
    let lower = detail.to_ascii_lowercase();
    match http_status(detail) {
        Some(status) => {
            format!("{what}: the remote answered HTTP {status} (details in the server log)")
        }
        None if [
            "connect",
            "dns error",
            "connection refused",
            "connection reset",
            "timed out",
        ]
        .iter()
        .any(|k| lower.contains(k)) =>
        {
            format!("{what}: the endpoint could not be reached (details in the server log)")
        }
        None => format!("{what} (details in the server log)"),
    }
}

/// The first HTTP status in an error text: `403 Forbidden` as HTTP clients print a status,
/// or a bare code after `status`, `status code`, `HTTP` or `answered`.
fn http_status(detail: &str) -> Option<String> {
    let b = detail.as_bytes();
    for i in 0..b.len().saturating_sub(2) {
        let three = &b[i..i + 3];
        if !three.iter().all(u8::is_ascii_digit)
            || (i > 0 && b[i - 1].is_ascii_digit())
            || b.get(i + 3).is_some_and(u8::is_ascii_digit)
        {
            continue;
        }
        // Digits are ASCII, so both ends are char boundaries.
        let Ok(code) = detail[i..i + 3].parse::<u16>() else {
            continue;
        };
        if !(300..600).contains(&code) {
            continue;
        }
        let Ok(status) = reqwest::StatusCode::from_u16(code) else {
            continue;
        };
        if let Some(reason) = status.canonical_reason() {
            if detail[i + 3..].starts_with(&format!(" {reason}")) {
                return Some(format!("{code} {reason}"));
            }
        }
        let before = detail[..i].to_ascii_lowercase();
        let before = before.trim_end_matches([' ', ':', '=']);
        if ["status", "status code", "http", "answered"]
            .iter()
            .any(|w| before.ends_with(w))
        {
            return Some(code.to_string());
        }
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_keep_step_and_status_only() {
        let s3 = StorageError::Probe {
            step: ProbeStep::Write,
            location: "s3://b/wh/.sluice-probe-1".into(),
            message: "Error performing PUT http://10.0.0.7:9000/b/wh/.sluice-probe-1 in 3ms - Server returned \
                      non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                      <Message>internal-secret-bucket-name</Message></Error>"
                .into(),
        };
        let m = s3.client_message();
        assert!(
            m.contains("step 'write'") && m.contains("HTTP 404 Not Found"),
            "{m}"
        );
        assert!(
            !m.contains("<Error>") && !m.contains("NoSuchBucket") && !m.contains("internal-secret"),
            "{m}"
        );
        assert!(!m.contains("10.0.0.7"), "{m}");

        let token = StorageError::Probe {
            step: ProbeStep::Write,
            location: "gs://b/.sluice-probe-2".into(),
            message: "Generic GCS error: STS error: access token from http://127.0.0.1:8/token: 400 Bad Request: \
                      invalid_grant: {\"secret\":\"internal\"}"
                .into(),
        };
        let m = token.client_message();
        assert!(
            m.contains("obtaining credentials") && m.contains("HTTP 400 Bad Request"),
            "{m}"
        );
        assert!(
            !m.contains("invalid_grant") && !m.contains("internal"),
            "{m}"
        );

        let azure = StorageError::Io("Get Account Information answered 403 Forbidden".into());
        assert!(azure.client_message().contains("HTTP 403 Forbidden"));
        let refused = StorageError::Io(
            "put x: error sending request: tcp connect error: Connection refused (os error 111)"
                .into(),
        );
        assert!(
            refused.client_message().contains("could not be reached"),
            "{}",
            refused.client_message()
        );
        let own = StorageError::Probe {
            step: ProbeStep::Write,
            location: "s3://b/x".into(),
            message: "no answer from the object store within 30s (is the endpoint reachable?)"
                .into(),
        };
        assert!(own
            .client_message()
            .ends_with("(is the endpoint reachable?)"));
        // Digits that are not a status (ports, ids) are not taken for one.
        assert_eq!(http_status("http://h:9000/a4031b/x404y"), None);
        assert_eq!(http_status("status: 503"), Some("503".into()));
        assert!(StorageError::Invalid("bad".into())
            .client_message()
            .contains("bad"));
    }
}
