//! CLI failures: one line `error: <message>` (+ `hint: ...`) on stderr and an exit code a
//! script can branch on.

use sluice_client::ClientError;

/// 0 ok; 1 API or usage error; 2 bad arguments (clap's own); 3 authentication; 4 not
/// found; 5 server unreachable.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    /// Bad arguments: clap exits with this itself.
    #[allow(dead_code)]
    pub const USAGE: i32 = 2;
    pub const AUTH: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const UNREACHABLE: i32 = 5;
}

#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
    pub hint: Option<String>,
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// A usage problem found after parsing (bad JSON in a flag, an unreadable @file, ...).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(exit::FAILURE, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the error to stderr; returns the exit code.
    pub fn report(&self) -> i32 {
        eprintln!("error: {}", single_line(&self.message));
        if let Some(h) = &self.hint {
            eprintln!("hint: {}", single_line(h));
        }
        self.code
    }
}

fn single_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        // The server's own explanation first; status and error type after it, for reference.
        let message = match &e {
            ClientError::Api {
                status,
                kind,
                message,
            } => format!("{message} ({status} {kind})"),
            other => other.to_string(),
        };
        match &e {
            ClientError::Config(_) => CliError::new(exit::FAILURE, message)
                .with_hint("see `sluice config show`; set --endpoint/--profile, SLUICE_* variables or run `sluice login`"),
            // Already says what to do, in one line.
            ClientError::LoginRequired { .. } => CliError::new(exit::AUTH, message),
            ClientError::Auth(_) => CliError::new(exit::AUTH, message)
                .with_hint("check the credentials of this profile, then run `sluice login`"),
            ClientError::Api { status: 401, .. } => CliError::new(exit::AUTH, format!("authentication failed: {message}"))
                .with_hint("check the credentials of this profile, then run `sluice login`"),
            ClientError::Api { status: 403, .. } => CliError::new(exit::FAILURE, message)
                .with_hint("your user lacks a policy allowing this; `sluice whoami` lists your groups and policies"),
            ClientError::Api { status: 404, .. } => CliError::new(exit::NOT_FOUND, message),
            ClientError::Transport { .. } => CliError::new(exit::UNREACHABLE, message)
                .with_hint("is the server running and the endpoint right? (`sluice config show`)"),
            _ => CliError::new(exit::FAILURE, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let c = |e: ClientError| CliError::from(e).code;
        assert_eq!(c(ClientError::Auth("bad".into())), exit::AUTH);
        let e = CliError::from(ClientError::LoginRequired {
            profile: Some("prod".into()),
            expired: true,
        });
        assert_eq!(
            (e.code, e.message.as_str(), e.hint.is_none()),
            (
                exit::AUTH,
                "session expired: run sluice login --profile prod",
                true
            )
        );
        assert_eq!(
            c(ClientError::Api {
                status: 401,
                kind: "x".into(),
                message: "m".into()
            }),
            exit::AUTH
        );
        assert_eq!(
            c(ClientError::Api {
                status: 404,
                kind: "x".into(),
                message: "m".into()
            }),
            exit::NOT_FOUND
        );
        assert_eq!(
            c(ClientError::Api {
                status: 409,
                kind: "x".into(),
                message: "m".into()
            }),
            exit::FAILURE
        );
        assert_eq!(
            c(ClientError::Transport {
                url: "u".into(),
                message: "m".into()
            }),
            exit::UNREACHABLE
        );
        assert_eq!(single_line("a\n  b\r\n"), "a b");
    }
}
