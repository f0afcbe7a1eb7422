//! Test peers for the OIDC tests:
//! * [`OidcPeer`]: the real node `oidc-provider` (tests/peers/oidc/server.mjs), installed by
//!   `tests/peers/oidc.sh install` into `$SLUICE_OIDC_PEER_DIR` or `<workspace>/.peers/oidc`,
//!   started on 127.0.0.1 with an ephemeral port and killed on drop;
//! * [`Browser`]: a cookie-jar HTTP client without auto-redirects that scripts the provider's
//!   login and consent pages (devInteractions), like `authcode_curl.sh` / `flows.mjs`;
//! * [`FakeIssuer`]: a tiny local issuer (discovery + JWKS) whose keys the tests hold, to forge
//!   tokens the real provider would never issue (expired, alg none, HS256, wrong key, ...).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const API_AUDIENCE: &str = "urn:lakehouse:api";
pub const CONFIDENTIAL: (&str, &str) = ("lake-client", "lake-secret");
pub const PUBLIC_CLIENT: &str = "lake-cli";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Where `tests/peers/oidc.sh install` put the provider. Panics (the tests FAIL, they do not
/// skip) with instructions when it is missing.
pub fn peer_dir() -> PathBuf {
    let dir = match std::env::var_os("SLUICE_OIDC_PEER_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join(".peers/oidc"),
    };
    let ok = dir.join("server.mjs").is_file() && dir.join("node_modules/oidc-provider").is_dir();
    if !ok {
        panic!(
            "the node oidc-provider test peer is not installed in {}.\n\
             Install it with:  tests/peers/oidc.sh install {}\n\
             (needs node >= 18 and npm; or point SLUICE_OIDC_PEER_DIR at an installed copy)",
            dir.display(),
            dir.display()
        );
    }
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The real node oidc-provider, one process per instance; killed on drop.
pub struct OidcPeer {
    pub port: u16,
    dir: PathBuf,
    tmp: tempfile::TempDir,
    child: Option<Child>,
    starts: usize,
}

impl OidcPeer {
    pub async fn start() -> Self {
        Self::start_with(None, None).await
    }

    /// `jwks`: a private JWKS (`{"keys":[...]}`) handed to server.mjs via `JWKS_FILE`;
    /// without it the provider makes a fresh RS256 key (kid `test-rs256`) on every start.
    pub async fn start_on(port: u16, jwks: Option<&Value>) -> Self {
        Self::start_with(Some(port), jwks).await
    }

    /// Without a port, one is picked, and picked again when another process took it first.
    async fn start_with(port: Option<u16>, jwks: Option<&Value>) -> Self {
        let mut peer = OidcPeer {
            port: port.unwrap_or_else(free_port),
            dir: peer_dir(),
            tmp: tempfile::tempdir().unwrap(),
            child: None,
            starts: 0,
        };
        peer.spawn(jwks, port.is_none()).await;
        peer
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.tmp.path().join(format!("oidc-{}.log", self.starts))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts node and waits until the provider answers discovery. A start that hangs is
    /// killed and tried again on the same port: now and then node prints oidc-provider's
    /// import-time warning and then deadlocks before it listens (its main thread waits on a
    /// mutex while every other thread idles; twice in about 10,000 starts on a loaded 2-core
    /// machine here, once in CI), while an idle start takes 0.3 s and a loaded one under 2 s.
    /// Waiting longer does not help; a fresh process does.
    ///
    /// `may_move`: the port was picked here (not given, not a restart), so a start that
    /// finds it taken by another process moves to a new one.
    async fn spawn(&mut self, jwks: Option<&Value>, may_move: bool) {
        const ATTEMPTS: usize = 3;
        const READY_WITHIN: Duration = Duration::from_secs(30);
        let mut failed = Vec::new();
        for _ in 0..ATTEMPTS {
            self.launch(jwks);
            match self.wait_ready(READY_WITHIN).await {
                Ok(true) => return,
                Ok(false) => {
                    failed.push(format!(
                        "attempt {} on port {}, hung ({}):\n{}",
                        self.starts,
                        self.port,
                        self.process_state(),
                        self.log()
                    ));
                    self.kill();
                }
                Err(status) if may_move && self.log().contains("EADDRINUSE") => {
                    failed.push(format!(
                        "attempt {} on port {}, port taken ({status}):\n{}",
                        self.starts,
                        self.port,
                        self.log()
                    ));
                    self.child = None;
                    self.port = free_port();
                }
                // A broken install or a port that was given: a retry would not help.
                Err(status) => panic!(
                    "oidc-provider exited ({status}) before it was ready:\n{}",
                    self.log()
                ),
            }
        }
        panic!(
            "oidc-provider not ready after {ATTEMPTS} starts (each given {} s):\n{}",
            READY_WITHIN.as_secs(),
            failed.join("\n")
        );
    }

    fn launch(&mut self, jwks: Option<&Value>) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new("node");
        cmd.arg(self.dir.join("server.mjs"))
            .current_dir(&self.dir)
            .env("PORT", self.port.to_string())
            .env_remove("JWKS_FILE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(jwks) = jwks {
            let path = self.tmp.path().join(format!("jwks-{}.json", self.starts));
            std::fs::write(&path, serde_json::to_vec(jwks).unwrap()).unwrap();
            cmd.env("JWKS_FILE", path);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run `node` (needed for the OIDC peer; install Node.js >= 18): {e}")
        });
        self.child = Some(child);
    }

    /// True once discovery answers 200, false when `within` passes first; the exit status
    /// when node exits. That is checked after an answer too: on a port taken by another
    /// provider, that one answers.
    async fn wait_ready(&mut self, within: Duration) -> Result<bool, ExitStatus> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + within;
        loop {
            let answered =
                matches!(client.get(&url).send().await, Ok(r) if r.status().is_success());
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(status);
            }
            if answered {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hung process's scheduler state and CPU time (from /proc), to tell a deadlock
    /// from a busy loop when a start has to be retried.
    fn process_state(&self) -> String {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return "not running".into();
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name: state is the 1st, utime/stime the
        // 12th and 13th (clock ticks).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        match (fields.first(), fields.get(11), fields.get(12)) {
            (Some(state), Some(utime), Some(stime)) => {
                format!("pid {pid}, state {state}, cpu ticks user {utime} system {stime}")
            }
            _ => format!("pid {pid}"),
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the provider and starts it again on the same port (new signing key unless a
    /// JWKS is given; no state survives).
    pub async fn restart(&mut self, jwks: Option<&Value>) {
        self.kill();
        self.spawn(jwks, false).await;
    }

    pub async fn client_credentials_token(&self) -> String {
        let r = http()
            .post(format!("{}/token", self.issuer()))
            .basic_auth(CONFIDENTIAL.0, Some(CONFIDENTIAL.1))
            .form(&[("grant_type", "client_credentials"), ("scope", "lakehouse")])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "client_credentials: {status} {body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// The auth-code + PKCE flow scripted independently of the module under test
    /// (authcode_curl.sh in Rust). `secret`: Some → client_secret_basic, None → public client.
    /// Returns the token endpoint's JSON (access_token, id_token, ...).
    pub async fn authcode_tokens(
        &self,
        client_id: &str,
        secret: Option<&str>,
        scope: &str,
        nonce: &str,
        login: &str,
    ) -> Value {
        let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
        let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut auth = url::Url::parse(&format!("{}/auth", self.issuer())).unwrap();
        auth.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", scope)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "st4te")
            .append_pair("nonce", nonce);
        let cb = Browser::new()
            .login(auth.as_str(), &redirect_uri, login)
            .await;
        let code = query_param(&cb, "code").expect("code in callback");
        assert_eq!(query_param(&cb, "state").as_deref(), Some("st4te"));
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut req = http().post(format!("{}/token", self.issuer()));
        match secret {
            Some(s) => req = req.basic_auth(client_id, Some(s)),
            None => form.push(("client_id", client_id.to_string())),
        }
        let r = req.form(&form).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "token: {status} {body}");
        body
    }
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rand_bytes() -> [u8; 32] {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

pub fn query_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A browser without a browser: one cookie jar, no automatic redirects.
pub struct Browser {
    client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            client: http(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
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
            let pair = sc.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            let expired = sc.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if v.is_empty() || expired {
                jar.remove(k);
            } else {
                jar.insert(k.to_string(), v.to_string());
            }
        }
        resp
    }

    /// Follows the provider's redirects from `auth_url`, logging in as `login` and granting
    /// consent on the devInteractions pages, until the provider redirects to `redirect_uri`.
    /// Returns that callback URL (with `code`, `state`, `iss`).
    pub async fn login(&self, auth_url: &str, redirect_uri: &str, login: &str) -> url::Url {
        let mut location = url::Url::parse(auth_url).unwrap();
        let mut trace = Vec::new();
        for _ in 0..12 {
            if location.as_str().starts_with(redirect_uri) {
                return location;
            }
            let resp = if location.path().starts_with("/interaction/") {
                let page = self.send(self.client.get(location.clone())).await;
                let html = page.text().await.unwrap();
                let action = attr(&html, "action=\"").expect("interaction form");
                let prompt = attr(&html, "name=\"prompt\" value=\"").expect("prompt field");
                let form: Vec<(&str, &str)> = if prompt == "login" {
                    vec![
                        ("prompt", "login"),
                        ("login", login),
                        ("password", "anything"),
                    ]
                } else {
                    vec![("prompt", prompt.as_str())]
                };
                trace.push(format!("POST {} [{prompt}]", location.path()));
                self.send(
                    self.client
                        .post(location.join(&action).unwrap())
                        .form(&form),
                )
                .await
            } else {
                trace.push(format!("GET {}", location.path()));
                self.send(self.client.get(location.clone())).await
            };
            let status = resp.status();
            let next = resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            match next {
                Some(l) if status.is_redirection() => location = location.join(&l).unwrap(),
                _ => panic!(
                    "login flow stopped at {location} with {status}: {}\ntrace: {trace:?}",
                    resp.text().await.unwrap_or_default()
                ),
            }
        }
        panic!("too many redirects; trace: {trace:?}");
    }
}

fn attr(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].replace("&amp;", "&"))
}

// ------------------------------------------------------------------------------------------
// Keys made by node (2048-bit RSA keygen in an unoptimised Rust build would be slow)
// ------------------------------------------------------------------------------------------

pub struct TestKey {
    pub kid: String,
    /// PKCS#8 PEM of the private key (for jsonwebtoken's EncodingKey).
    pub private_pem: String,
    /// SPKI PEM of the public key.
    pub public_pem: String,
    pub public_jwk: Value,
    pub private_jwk: Value,
}

/// Runs the key generation script and returns what it printed. A fresh node that generates
/// an RSA key before it has done anything else is exactly the start that now and then
/// deadlocks (see `OidcPeer::spawn`), so a run that has not finished within 30 s is killed
/// and run again, up to three times. The output (a few KB) fits the pipe, so it is read
/// after the exit.
fn node_keygen(script: &str, kind: &str) -> Vec<u8> {
    use std::io::Read;
    for attempt in 1..=3 {
        let mut child = Command::new("node")
            .args(["-e", script, kind])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match child.try_wait().expect("wait for node") {
                Some(status) => break Some(status),
                None if Instant::now() >= deadline => break None,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let Some(status) = status else {
            eprintln!("node keygen ({kind}) hung on try {attempt}; starting it again");
            let _ = child.kill();
            let _ = child.wait();
            continue;
        };
        let (mut out, mut err) = (Vec::new(), String::new());
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "node keygen: {err}");
        return out;
    }
    panic!("node keygen ({kind}) hung three times (30 s each)");
}

/// `kind`: "rsa", "ec" (P-256) or "ed25519".
pub fn node_key(kind: &str, kid: &str) -> TestKey {
    let script = r#"
const { generateKeyPairSync } = require('node:crypto');
const kind = process.argv[1];
const opts = kind === 'rsa' ? { modulusLength: 2048 } : kind === 'ec' ? { namedCurve: 'P-256' } : {};
const { privateKey, publicKey } = generateKeyPairSync(kind, opts);
process.stdout.write(JSON.stringify({
  private_pem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
  public_pem: publicKey.export({ type: 'spki', format: 'pem' }),
  public_jwk: publicKey.export({ format: 'jwk' }),
  private_jwk: privateKey.export({ format: 'jwk' }),
}));
"#;
    let v: Value = serde_json::from_slice(&node_keygen(script, kind)).unwrap();
    let alg = match kind {
        "rsa" => "RS256",
        "ec" => "ES256",
        _ => "EdDSA",
    };
    let with = |jwk: &Value| {
        let mut jwk = jwk.clone();
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg);
        jwk["use"] = json!("sig");
        jwk
    };
    TestKey {
        kid: kid.to_string(),
        private_pem: v["private_pem"].as_str().unwrap().to_string(),
        public_pem: v["public_pem"].as_str().unwrap().to_string(),
        public_jwk: with(&v["public_jwk"]),
        private_jwk: with(&v["private_jwk"]),
    }
}

/// Signs `claims` with `key` (jsonwebtoken), header `alg` / `kid` as given.
pub fn sign(
    key: &TestKey,
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    use jsonwebtoken::{Algorithm::*, EncodingKey, Header};
    let enc = match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
            EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap()
        }
        ES256 | ES384 => EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap(),
        EdDSA => EncodingKey::from_ed_pem(key.private_pem.as_bytes()).unwrap(),
        HS256 | HS384 | HS512 => EncodingKey::from_secret(key.public_pem.as_bytes()),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &enc).unwrap()
}

/// An unsigned token (`alg: none`), built by hand on purpose: it is the attack.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{c}.")
}

// ------------------------------------------------------------------------------------------
// A local issuer whose keys the test controls
// ------------------------------------------------------------------------------------------

pub struct FakeIssuerState {
    pub issuer: String,
    /// What discovery claims the issuer is (normally `issuer`).
    pub advertised_issuer: Mutex<String>,
    pub jwks: Mutex<Value>,
    /// Requests for /jwks, answered or not.
    pub jwks_hits: AtomicUsize,
    pub jwks_delay: Mutex<Duration>,
    /// When set, every request is answered 503 (an outage).
    pub down: std::sync::atomic::AtomicBool,
}

pub struct FakeIssuer {
    pub state: Arc<FakeIssuerState>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeIssuer {
    pub async fn start(public_jwks: Value) -> Self {
        use axum::extract::State;
        use axum::response::IntoResponse;
        use axum::routing::get;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(FakeIssuerState {
            advertised_issuer: Mutex::new(issuer.clone()),
            issuer,
            jwks: Mutex::new(public_jwks),
            jwks_hits: AtomicUsize::new(0),
            jwks_delay: Mutex::new(Duration::ZERO),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(s): State<Arc<FakeIssuerState>>| async move {
                    axum::Json(json!({
                        "issuer": *s.advertised_issuer.lock().unwrap(),
                        "authorization_endpoint": format!("{}/auth", s.issuer),
                        "token_endpoint": format!("{}/token", s.issuer),
                        "jwks_uri": format!("{}/jwks", s.issuer),
                    }))
                }),
            )
            .route(
                "/jwks",
                get(|State(s): State<Arc<FakeIssuerState>>| async move {
                    let delay = *s.jwks_delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    let body = s.jwks.lock().unwrap().clone();
                    axum::Json(body)
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                |State(s): State<Arc<FakeIssuerState>>,
                 req: axum::extract::Request,
                 next: axum::middleware::Next| async move {
                    if req.uri().path() == "/jwks" {
                        s.jwks_hits.fetch_add(1, Ordering::SeqCst);
                    }
                    if s.down.load(Ordering::SeqCst) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    next.run(req).await
                },
            ))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeIssuer { state, task }
    }

    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }
    pub fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }
    pub fn set_jwks_delay(&self, d: Duration) {
        *self.state.jwks_delay.lock().unwrap() = d;
    }
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
    pub fn set_advertised_issuer(&self, iss: &str) {
        *self.state.advertised_issuer.lock().unwrap() = iss.to_string();
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
