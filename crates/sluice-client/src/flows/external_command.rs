//! A token from a command (`token-command`), run with `sh -c`.
//!
//! stdout is the token, trimmed; or, when stdout parses as a JSON object, its `access_token`
//! (or `token`) and `expires_in` (seconds) or `token_expiration` (unix seconds). A non-zero
//! exit, a timeout or an empty token is an error that quotes the command's stderr.

use super::oauth::{self, printable};
use crate::auth::{AuthContext, Authenticator, Token};
use crate::error::{ClientError, Result};
use chrono::{TimeZone, Utc};
use sluice_core::Secret;
use std::process::Stdio;
use std::time::Duration;

/// Default time a token command may take.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_OUTPUT: usize = 1024 * 1024;

pub struct ExternalCommandAuth {
    command: String,
    timeout: Duration,
}

impl ExternalCommandAuth {
    pub fn new(command: impl Into<String>) -> Self {
        ExternalCommandAuth {
            command: command.into(),
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    /// Runs the command once and parses its output.
    pub async fn run(&self) -> Result<Token> {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| ClientError::Config(format!("cannot run token-command with sh: {e}")))?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Err(ClientError::Other(format!("token-command failed: {e}"))),
            // Dropping the future drops the child, which kills it (kill_on_drop).
            Err(_) => {
                return Err(ClientError::Auth(format!(
                    "token-command did not finish within {} s",
                    self.timeout.as_secs()
                )))
            }
        };
        let stderr = tail(&out.stderr);
        if !out.status.success() {
            let how = match out.status.code() {
                Some(c) => format!("exited with status {c}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(ClientError::Auth(format!(
                "token-command {how}{}",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            )));
        }
        if out.stdout.len() > MAX_OUTPUT {
            return Err(ClientError::Protocol(
                "token-command printed more than 1 MiB".into(),
            ));
        }
        let stdout = String::from_utf8(out.stdout).map_err(|_| {
            ClientError::Protocol("token-command printed something that is not UTF-8".into())
        })?;
        parse_output(stdout.trim(), &stderr)
    }
}

fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let s = s.trim();
    let start = s.char_indices().rev().nth(499).map(|(i, _)| i).unwrap_or(0);
    printable(&s[start..])
}

fn parse_output(out: &str, stderr: &str) -> Result<Token> {
    if out.starts_with('{') {
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(out) {
            let token = o
                .get("access_token")
                .or_else(|| o.get("token"))
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ClientError::Protocol(
                        "token-command printed JSON without an access_token".into(),
                    )
                })?;
            let expires_at = match o.get("expires_in").and_then(oauth::json_seconds) {
                Some(s) => Some(oauth::expires_in_to_at(s)),
                None => o
                    .get("token_expiration")
                    .and_then(oauth::json_seconds)
                    .and_then(|t| Utc.timestamp_opt(t, 0).single()),
            };
            return Ok(Token {
                access_token: Secret::new(token),
                refresh_token: None,
                expires_at,
            });
        }
    }
    if out.is_empty() {
        return Err(ClientError::Auth(format!(
            "token-command printed no token{}",
            if stderr.is_empty() {
                String::new()
            } else {
                format!(" (stderr: {stderr})")
            }
        )));
    }
    if out.contains(char::is_whitespace) {
        return Err(ClientError::Protocol(
            "token-command printed more than one word; print only the token (or JSON with access_token)".into(),
        ));
    }
    Ok(Token {
        access_token: Secret::new(out),
        refresh_token: None,
        expires_at: None,
    })
}

#[async_trait::async_trait]
impl Authenticator for ExternalCommandAuth {
    fn name(&self) -> &'static str {
        "external-command"
    }

    fn cache_identity(&self) -> Option<String> {
        None
    }

    async fn authenticate(&self, _ctx: &AuthContext) -> Result<Token> {
        self.run().await
    }

    async fn refresh(&self, _ctx: &AuthContext, _current: &Token) -> Result<Option<Token>> {
        self.run().await.map(Some)
    }
}
