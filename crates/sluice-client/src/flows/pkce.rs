//! Browser login: OAuth 2.0 authorization code grant (RFC 6749 §4.1) with PKCE S256
//! (RFC 7636) and a loopback redirect (RFC 8252 §7.3), refreshed with the refresh token.

use super::oauth::{self, printable};
use super::oidc::{Need, OidcOptions, ResolvedOidc};
use super::ui::{self, BrowserOpener, PromptSink};
use super::DEFAULT_LOGIN_TIMEOUT;
use crate::auth::{AuthContext, Authenticator, Token};
use crate::error::{ClientError, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// 32 random bytes, base64url: a 43-character verifier (RFC 7636 §4.1) or state.
pub(crate) fn random_string() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    B64URL.encode(b)
}

/// `BASE64URL(SHA256(ASCII(verifier)))` (RFC 7636 §4.2, S256).
pub(crate) fn s256_challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// The interactive half shared by the PKCE and web-identity logins.
#[derive(Clone)]
pub(crate) struct BrowserStep {
    pub redirect_port: u16,
    pub login_timeout: Duration,
    pub opener: Arc<dyn BrowserOpener>,
    pub sink: Arc<dyn PromptSink>,
}

impl Default for BrowserStep {
    fn default() -> Self {
        BrowserStep {
            redirect_port: 0,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            opener: ui::default_opener(),
            sink: ui::default_sink(),
        }
    }
}

/// What the browser step hands back: the authorization code and what redeems it.
pub(crate) struct CodeGrant {
    pub code: String,
    pub state: String,
    pub redirect_uri: String,
    pub verifier: String,
}

impl BrowserStep {
    /// Listens on the loopback, sends the person to the authorization endpoint and waits
    /// (at most `login_timeout`) for the redirect back.
    pub(crate) async fn run(&self, oidc: &ResolvedOidc) -> Result<CodeGrant> {
        let listener = TcpListener::bind(("127.0.0.1", self.redirect_port))
            .await
            .map_err(|e| {
                ClientError::Config(format!(
                    "cannot listen on 127.0.0.1:{} for the login redirect: {e}{}",
                    self.redirect_port,
                    if self.redirect_port != 0 {
                        " (change redirect-port / SLUICE_REDIRECT_PORT, or 0 for any)"
                    } else {
                        ""
                    }
                ))
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| ClientError::Other(format!("loopback listener: {e}")))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        let verifier = random_string();
        let state = random_string();
        let mut url = url::Url::parse(&oidc.authorization_endpoint).map_err(|e| {
            ClientError::Config(format!(
                "authorization endpoint '{}': {e}",
                oidc.authorization_endpoint
            ))
        })?;
        {
            // Appended: a query the endpoint already has is kept (RFC 6749 §3.1).
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", oidc.client.client_id())
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", &oidc.scope())
                .append_pair("state", &state)
                .append_pair("code_challenge", &s256_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
            // OpenID Connect Core §11: offline_access is ignored unless consent is prompted.
            if oidc.scopes.iter().any(|s| s == "offline_access") {
                q.append_pair("prompt", "consent");
            }
            if let Some(a) = &oidc.audience {
                q.append_pair("audience", a);
            }
        }
        let expected_iss = oidc.issuer.clone();
        let wait = async {
            ui::open_browser(&self.opener, &self.sink, url.as_str()).await;
            wait_for_callback(&listener, &state, expected_iss.as_deref()).await
        };
        let code = match tokio::time::timeout(self.login_timeout, wait).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ClientError::Auth(format!(
                    "no browser login completed within {} s (login-timeout-seconds)",
                    self.login_timeout.as_secs()
                )))
            }
        };
        Ok(CodeGrant {
            code,
            state,
            redirect_uri,
            verifier,
        })
    }
}

enum Outcome {
    /// Not the callback (a favicon, a probe): keep listening.
    Ignore,
    Done(Result<String>),
}

async fn wait_for_callback(
    listener: &TcpListener,
    state: &str,
    issuer: Option<&str>,
) -> Result<String> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| ClientError::Other(format!("loopback listener: {e}")))?;
        // One slow or silent connection must not hold up the real redirect for long.
        match tokio::time::timeout(Duration::from_secs(10), handle(stream, state, issuer)).await {
            Ok(Outcome::Done(r)) => return r,
            Ok(Outcome::Ignore) | Err(_) => continue,
        }
    }
}

async fn handle(mut stream: TcpStream, state: &str, issuer: Option<&str>) -> Outcome {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Outcome::Ignore,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > 16 * 1024 {
            let _ = respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "Request too large",
                "",
            )
            .await;
            return Outcome::Ignore;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        let _ = respond(&mut stream, "404 Not Found", "Not found", "").await;
        return Outcome::Ignore;
    }
    if method != "GET" {
        let _ = respond(
            &mut stream,
            "405 Method Not Allowed",
            "Method not allowed",
            "",
        )
        .await;
        return Outcome::Ignore;
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let result = callback_result(&get, state, issuer);
    let (status, title, detail) = match &result {
        Ok(_) => (
            "200 OK",
            "Login complete",
            "You can close this window and return to the terminal.".to_string(),
        ),
        Err(e) => ("400 Bad Request", "Login failed", e.to_string()),
    };
    let _ = respond(&mut stream, status, title, &detail).await;
    Outcome::Done(result)
}

/// Checks an authorization response (RFC 6749 §4.1.2 / §4.1.2.1, RFC 9207).
fn callback_result(
    get: &dyn Fn(&str) -> Option<String>,
    state: &str,
    issuer: Option<&str>,
) -> Result<String> {
    let given = get("state").unwrap_or_default();
    if !sluice_core::Secret::new(state).ct_eq(&given) {
        return Err(ClientError::Auth(
            "the login redirect carried the wrong state (a forged or stale redirect); log in again"
                .into(),
        ));
    }
    if let Some(error) = get("error") {
        let desc = get("error_description")
            .map(|d| format!(" ({})", printable(&d)))
            .unwrap_or_default();
        return Err(ClientError::Auth(format!(
            "the identity provider refused the login: {}{desc}",
            printable(&error)
        )));
    }
    if let (Some(expected), Some(iss)) = (issuer, get("iss")) {
        if expected.trim_end_matches('/') != iss.trim_end_matches('/') {
            return Err(ClientError::Auth(format!(
                "the login redirect came from issuer '{}', expected '{expected}'",
                printable(&iss)
            )));
        }
    }
    get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ClientError::Auth("the login redirect carried no authorization code".into()))
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    title: &str,
    detail: &str,
) -> std::io::Result<()> {
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Sluice: {t}</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{t}</h1><p>{d}</p></body></html>",
        t = html_escape(title),
        d = html_escape(detail)
    );
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Redeems an authorization code at the token endpoint (RFC 6749 §4.1.3 + RFC 7636 §4.5).
pub(crate) async fn redeem_code(
    http: &reqwest::Client,
    oidc: &ResolvedOidc,
    grant: &CodeGrant,
) -> Result<Token> {
    let form = vec![
        ("grant_type".to_string(), "authorization_code".to_string()),
        ("code".to_string(), grant.code.clone()),
        ("redirect_uri".to_string(), grant.redirect_uri.clone()),
        ("code_verifier".to_string(), grant.verifier.clone()),
    ];
    let what = format!("token endpoint {}", oidc.token_endpoint);
    oauth::token_request(http, &oidc.token_endpoint, Some(&oidc.client), form)
        .await
        .map_err(|f| f.into_error(&what))?
        .into_token(&what)
}

/// Browser login with PKCE against the identity provider; the provider's access token is the
/// token. Options come from [`OidcOptions`] (config or the server's metadata).
pub struct PkceAuth {
    options: OidcOptions,
    step: BrowserStep,
}

impl PkceAuth {
    pub fn new(options: OidcOptions) -> Self {
        PkceAuth {
            options,
            step: BrowserStep::default(),
        }
    }

    /// Loopback port of the redirect URI (`0`, the default: any free port).
    pub fn redirect_port(mut self, port: u16) -> Self {
        self.step.redirect_port = port;
        self
    }

    /// How long to wait for the browser login (default 5 minutes).
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.step.login_timeout = timeout;
        self
    }

    /// How the authorization URL is opened (default: the system browser).
    pub fn opener(mut self, opener: Arc<dyn BrowserOpener>) -> Self {
        self.step.opener = opener;
        self
    }

    /// Where the URL is shown (default: stderr).
    pub fn prompt_sink(mut self, sink: Arc<dyn PromptSink>) -> Self {
        self.step.sink = sink;
        self
    }

    pub fn options(&self) -> &OidcOptions {
        &self.options
    }
}

#[async_trait::async_trait]
impl Authenticator for PkceAuth {
    fn name(&self) -> &'static str {
        "pkce"
    }

    fn needs_person(&self) -> bool {
        true
    }

    fn cache_identity(&self) -> Option<String> {
        Some(format!(
            "pkce:{}",
            self.options
                .client_id
                .as_deref()
                .unwrap_or("server-default")
        ))
    }

    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        let oidc = self.options.resolve(ctx, Need::Authorization).await?;
        let grant = self.step.run(&oidc).await?;
        redeem_code(&ctx.http, &oidc, &grant).await
    }

    async fn refresh(&self, ctx: &AuthContext, current: &Token) -> Result<Option<Token>> {
        if current.refresh_token.is_none() {
            return Ok(None);
        }
        let oidc = self.options.resolve(ctx, Need::TokenOnly).await?;
        oauth::refresh_token_grant(&ctx.http, &oidc.token_endpoint, &oidc.client, current).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = random_string();
        assert_eq!(v.len(), 43);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn callback_checks() {
        let q = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            callback_result(&q(&[("state", "s"), ("code", "c")]), "s", None).unwrap(),
            "c"
        );
        let e = callback_result(&q(&[("state", "x"), ("code", "c")]), "s", None).unwrap_err();
        assert!(e.to_string().contains("wrong state"), "{e}");
        let e = callback_result(
            &q(&[
                ("state", "s"),
                ("error", "access_denied"),
                ("error_description", "no"),
            ]),
            "s",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("access_denied (no)"), "{e}");
        let e = callback_result(
            &q(&[("state", "s"), ("code", "c"), ("iss", "http://evil")]),
            "s",
            Some("http://idp"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("issuer"), "{e}");
        assert!(callback_result(&q(&[("state", "s")]), "s", None).is_err());
        assert_eq!(
            html_escape("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
    }
}
