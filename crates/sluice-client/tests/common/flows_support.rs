//! Helpers of the login-flow tests (tests/flows.rs): an in-process Sluice server with the
//! identity providers configured, a cookie-jar "browser" for the provider's device and abort
//! pages, and a small counting proxy in front of the provider's token endpoint that can
//! answer device-flow polls itself (`slow_down`, `expired_token`, ...), which the real
//! provider never does.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sluice_client::auth::AuthContext;
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN_ID: &str = "AKIATESTADMIN0000001";
pub const ADMIN_SECRET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123";

/// The HTTP client a flow gets (as the real client would build it: redirects are fine).
pub fn ctx(endpoint: &str) -> AuthContext {
    AuthContext {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        endpoint: url::Url::parse(endpoint).unwrap(),
        metadata: Arc::new(tokio::sync::OnceCell::new()),
    }
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The claims of a JWT (no verification: the tests only look at what was issued).
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

// ------------------------------------------------------------------------------------------
// Sluice in-process
// ------------------------------------------------------------------------------------------

pub struct Sluice {
    pub base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Sluice {
    pub async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            allowed_file_roots: vec![dir.path().to_path_buf()],
            // Tests fail authentication on purpose from 127.0.0.1; keep the throttle from tripping.
            auth_failures_per_minute: 10_000,
            ..ServerConfig::default()
        };
        configure(&mut config);
        let server = Server::open(config, Some((ADMIN_ID.into(), Secret::new(ADMIN_SECRET))))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server.serve(listener, std::future::pending()));
        Sluice {
            base,
            http: no_redirects(),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `whoami` with a bearer token: (status, body).
    pub async fn whoami(&self, bearer: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url("/management/v1/whoami"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .basic_auth(ADMIN_ID, Some(ADMIN_SECRET));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_user(&self, name: &str) {
        let (s, b) = self
            .admin(
                Method::POST,
                "/management/v1/users",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
}

// ------------------------------------------------------------------------------------------
// A cookie-jar browser for the provider's pages
// ------------------------------------------------------------------------------------------

pub struct Jar {
    client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

fn attr_after(html: &str, anchor: &str, prefix: &str) -> Option<String> {
    let at = html.find(anchor)?;
    let rest = &html[at..];
    let start = rest.find(prefix)? + prefix.len();
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].replace("&amp;", "&"))
}

impl Default for Jar {
    fn default() -> Self {
        Self::new()
    }
}

impl Jar {
    pub fn new() -> Self {
        Jar {
            client: no_redirects(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let cookie = {
            let jar = self.cookies.lock().unwrap();
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        let resp = req.send().await.unwrap();
        let mut jar = self.cookies.lock().unwrap();
        for sc in resp.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let (k, v) = sc.split(';').next().unwrap().split_once('=').unwrap();
            if v.is_empty() || sc.to_ascii_lowercase().contains("expires=thu, 01 jan 1970") {
                jar.remove(k);
            } else {
                jar.insert(k.to_string(), v.to_string());
            }
        }
        resp
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.send(self.client.get(url)).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.send(self.client.post(url).form(form)).await
    }

    /// Follows redirects and the devInteractions login/consent pages from `location` until a
    /// redirect leaves the issuer (returned as Err(location)) or a page that is neither a
    /// redirect nor an interaction is reached (returned as Ok(body)).
    pub async fn drive(
        &self,
        issuer: &str,
        mut location: String,
        login: &str,
    ) -> Result<String, String> {
        for _ in 0..12 {
            if !location.starts_with(issuer) {
                return Err(location);
            }
            let url = url::Url::parse(&location).unwrap();
            let resp = if url.path().starts_with("/interaction/") {
                let html = self.get(&location).await.text().await.unwrap();
                let action = attr_after(&html, "<form", "action=\"").expect("interaction form");
                let prompt = attr_after(&html, "name=\"prompt\"", "value=\"").expect("prompt");
                let form: Vec<(&str, &str)> = if prompt == "login" {
                    vec![("prompt", "login"), ("login", login), ("password", "x")]
                } else {
                    vec![("prompt", prompt.as_str())]
                };
                self.post(url.join(&action).unwrap().as_str(), &form).await
            } else {
                self.get(&location).await
            };
            match resp.headers().get("location") {
                Some(l) if resp.status().is_redirection() => {
                    location = url.join(l.to_str().unwrap()).unwrap().to_string();
                }
                _ => return Ok(resp.text().await.unwrap()),
            }
        }
        panic!("too many steps");
    }

    /// RFC 8628 user side on the provider's pages: enter the user code, then confirm (and log
    /// in + consent as `login`) or abort.
    pub async fn device(
        &self,
        issuer: &str,
        user_code: &str,
        login: &str,
        approve: bool,
    ) -> String {
        let page = self
            .get(&format!("{issuer}/device"))
            .await
            .text()
            .await
            .unwrap();
        let xsrf = attr_after(&page, "name=\"xsrf\"", "value=\"").expect("xsrf");
        let action =
            attr_after(&page, "id=\"op.deviceInputForm\"", "action=\"").expect("device input form");
        let action = url::Url::parse(issuer)
            .unwrap()
            .join(&action)
            .unwrap()
            .to_string();
        let r = self
            .post(&action, &[("xsrf", &xsrf), ("user_code", user_code)])
            .await;
        assert_eq!(r.status(), 200, "user code entry");
        let page = r.text().await.unwrap();
        let xsrf = attr_after(&page, "name=\"xsrf\"", "value=\"").expect("xsrf 2");
        let action =
            attr_after(&page, "id=\"op.deviceConfirmForm\"", "action=\"").expect("confirm form");
        let action = url::Url::parse(issuer)
            .unwrap()
            .join(&action)
            .unwrap()
            .to_string();
        let code = attr_after(&page, "name=\"user_code\"", "value=\"").expect("user_code field");
        let last = if approve {
            ("confirm", "yes")
        } else {
            ("abort", "yes")
        };
        let r = self
            .post(&action, &[("xsrf", &xsrf), ("user_code", &code), last])
            .await;
        if !approve {
            return r.text().await.unwrap();
        }
        assert!(r.status().is_redirection(), "confirm: {}", r.status());
        let next = url::Url::parse(issuer)
            .unwrap()
            .join(r.headers()["location"].to_str().unwrap())
            .unwrap();
        match self.drive(issuer, next.to_string(), login).await {
            Ok(body) => body,
            Err(l) => panic!("device login left the issuer: {l}"),
        }
    }

    /// Starts a browser login at `auth_url` and aborts it on the first interaction page
    /// (`/interaction/<uid>/abort`); returns where the provider sends the browser (the
    /// client's redirect URI with `error=access_denied`).
    pub async fn abort_login(&self, issuer: &str, auth_url: &str) -> String {
        let r = self.get(auth_url).await;
        let loc = url::Url::parse(auth_url)
            .unwrap()
            .join(r.headers()["location"].to_str().unwrap())
            .unwrap();
        assert!(loc.path().starts_with("/interaction/"), "{loc}");
        let abort = format!("{}{}/abort", issuer, loc.path());
        let r = self.get(&abort).await;
        assert!(r.status().is_redirection(), "abort: {}", r.status());
        let next = loc.join(r.headers()["location"].to_str().unwrap()).unwrap();
        match self.drive(issuer, next.to_string(), "nobody").await {
            Err(l) => l,
            Ok(body) => panic!("abort did not redirect: {body}"),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Counting proxy in front of the provider
// ------------------------------------------------------------------------------------------

/// One device-flow poll seen by the proxy.
#[derive(Clone, Debug)]
pub struct Poll {
    pub at: Instant,
    /// `canned:<error>` or `upstream:<status>:<error or "token">`.
    pub outcome: String,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    canned: Mutex<VecDeque<String>>,
    polls: Mutex<Vec<Poll>>,
    device_expires_in: Mutex<Option<i64>>,
}

/// Forwards everything to the provider, except device-code polls of `/token` while canned
/// answers are queued; can rewrite `expires_in` of `/device/auth`.
pub struct TokenProxy {
    pub base: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl TokenProxy {
    pub async fn start(upstream: &str) -> TokenProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            http: no_redirects(),
            canned: Mutex::new(VecDeque::new()),
            polls: Mutex::new(Vec::new()),
            device_expires_in: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TokenProxy { base, state, task }
    }

    /// Queue answers (OAuth error codes) for the next device-code polls.
    pub fn answer(&self, errors: &[&str]) {
        self.state
            .canned
            .lock()
            .unwrap()
            .extend(errors.iter().map(|s| s.to_string()));
    }

    pub fn set_device_expires_in(&self, secs: i64) {
        *self.state.device_expires_in.lock().unwrap() = Some(secs);
    }

    pub fn polls(&self) -> Vec<Poll> {
        self.state.polls.lock().unwrap().clone()
    }

    /// Seconds between consecutive polls.
    pub fn gaps(&self) -> Vec<f64> {
        self.polls()
            .windows(2)
            .map(|w| (w[1].at - w[0].at).as_secs_f64())
            .collect()
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(s): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let is_poll = path == "/token"
        && url::form_urlencoded::parse(&body)
            .any(|(k, v)| k == "grant_type" && v == "urn:ietf:params:oauth:grant-type:device_code");
    if is_poll {
        let canned = s.canned.lock().unwrap().pop_front();
        if let Some(error) = canned {
            s.polls.lock().unwrap().push(Poll {
                at: Instant::now(),
                outcome: format!("canned:{error}"),
            });
            let desc = format!("answered by the test proxy: {error}");
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": error, "error_description": desc})),
            )
                .into_response();
        }
    }
    let at = Instant::now();
    let url = format!(
        "{}{}",
        s.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut rb = s.http.request(method, &url).body(body.to_vec());
    for name in ["authorization", "content-type", "accept", "cookie"] {
        if let Some(v) = headers.get(name) {
            rb = rb.header(name, v.clone());
        }
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let ctype = r.headers().get("content-type").cloned();
    let location = r.headers().get("location").cloned();
    let mut bytes = r.bytes().await.unwrap().to_vec();
    if is_poll {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let what = v["error"].as_str().unwrap_or("token").to_string();
        s.polls.lock().unwrap().push(Poll {
            at,
            outcome: format!("upstream:{}:{what}", status.as_u16()),
        });
    }
    if path == "/device/auth" && status.is_success() {
        if let Some(e) = *s.device_expires_in.lock().unwrap() {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            v["expires_in"] = json!(e);
            bytes = serde_json::to_vec(&v).unwrap();
        }
    }
    let mut resp = (StatusCode::from_u16(status.as_u16()).unwrap(), bytes).into_response();
    if let Some(c) = ctype {
        resp.headers_mut().insert("content-type", c);
    }
    if let Some(l) = location {
        resp.headers_mut().insert("location", l);
    }
    resp
}
