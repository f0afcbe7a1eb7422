//! Single flight against a REAL provider: 1000 tasks sharing one token manager (and one
//! `Client`) whose token has expired cause exactly ONE token request, counted by a proxy in
//! front of the node oidc-provider's `/token` (not on a fake authenticator).
//!
//! The proxy holds every token request for a moment before forwarding it, so all the tasks
//! pile up while the one renew is in flight.
//!
//! A missing oidc-provider FAILS with install instructions (`tests/peers/oidc.sh install`).

use crate::oidc_peer;
use crate::support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use oidc_peer::{OidcPeer, API_AUDIENCE, CONFIDENTIAL};
use serde_json::json;
use sluice_client::auth::{Authenticator, Token, TokenManager};
use sluice_client::flows::ClientCredentialsAuth;
use sluice_client::{Client, ClientConfig};
use sluice_core::Secret;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{claims, ctx, no_redirects, Sluice};

const TASKS: usize = 1000;

// ------------------------------------------------------------------------------------------
// A counting proxy in front of the provider's token endpoint
// ------------------------------------------------------------------------------------------

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    /// client_credentials grants seen at `/token`.
    token_requests: AtomicUsize,
}

struct CountingProxy {
    base: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream: &str) -> CountingProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            http: no_redirects(),
            token_requests: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        CountingProxy { base, state, task }
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    fn reset(&self) {
        self.state.token_requests.store(0, Ordering::SeqCst);
    }
}

impl Drop for CountingProxy {
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
    if uri.path() == "/token" {
        s.token_requests.fetch_add(1, Ordering::SeqCst);
        // Keep the renew in flight long enough for every task to arrive while it runs.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let url = format!(
        "{}{}",
        s.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut rb = s.http.request(method, &url).body(body.to_vec());
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = headers.get(name) {
            rb = rb.header(name, v.clone());
        }
    }
    let r = rb.send().await.unwrap();
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let ctype = r.headers().get("content-type").cloned();
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut resp = (status, bytes).into_response();
    if let Some(c) = ctype {
        resp.headers_mut().insert("content-type", c);
    }
    resp
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn lake_client(proxy: &CountingProxy) -> ClientCredentialsAuth {
    ClientCredentialsAuth::new(CONFIDENTIAL.0, Secret::new(CONFIDENTIAL.1))
        .token_url(proxy.token_url())
        .scopes(vec!["lakehouse".to_string()])
        .audience(API_AUDIENCE)
        .allow_insecure_http(true)
}

/// `t` with `expires_at` an hour in the past.
fn expired(t: &Token) -> Token {
    Token {
        access_token: t.access_token.clone(),
        refresh_token: t.refresh_token.clone(),
        expires_at: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
    }
}

fn bearer(t: &Token) -> String {
    format!("Bearer {}", t.access_token.expose())
}

/// The server's OIDC provider: confidential lake-client, the API audience.
fn oidc_config(issuer: &str) -> sluice_auth::oidc::OidcConfig {
    serde_json::from_value(json!({
        "url": issuer,
        "client_id": CONFIDENTIAL.0,
        "client_secret": CONFIDENTIAL.1,
        "allowed_audiences": [API_AUDIENCE],
        "initial_groups_claim_name": "groups",
        "default_initial_groups": ["Viewers"],
        "scopes": ["openid", "profile", "email", "groups"],
    }))
    .expect("oidc config")
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_manager_expired_token_one_request_for_1000_tasks() {
    let peer = OidcPeer::start().await;
    let proxy = CountingProxy::start(&peer.issuer()).await;
    // No Sluice server involved: the token URL is explicit.
    let m = Arc::new(TokenManager::new(
        Arc::new(lake_client(&proxy)),
        ctx("http://127.0.0.1:9"),
        None,
    ));

    // First token: one real request.
    let first = m.authorization().await.unwrap();
    assert_eq!(proxy.token_requests(), 1);
    assert_eq!(
        m.authorization().await.unwrap(),
        first,
        "a fresh token is reused"
    );
    assert_eq!(proxy.token_requests(), 1);

    // Expire it; then 1000 concurrent callers.
    let cur = m.current_token().await.unwrap();
    m.set_token(expired(&cur)).await;
    proxy.reset();

    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (m, start) = (m.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                m.authorization().await
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap().expect("authorization"));
    }

    assert_eq!(
        proxy.token_requests(),
        1,
        "{TASKS} tasks with an expired token must share ONE token request"
    );
    assert_eq!(
        seen.len(),
        1,
        "all tasks got the same token: {} distinct",
        seen.len()
    );
    let new = seen.into_iter().next().unwrap();
    assert_ne!(new, first, "the expired token was replaced");
    // It is a real token from the provider for lake-client.
    let cl = claims(new.trim_start_matches("Bearer "));
    assert_eq!(cl["client_id"], CONFIDENTIAL.0, "{cl}");
    assert_eq!(cl["iss"], peer.issuer(), "{cl}");
    let now = m.current_token().await.unwrap();
    assert_eq!(bearer(&now), new);
    assert!(!now.is_expired());

    // And it is kept: no further request afterwards.
    assert_eq!(m.authorization().await.unwrap(), new);
    assert_eq!(proxy.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_whoami_expired_token_one_request_for_1000_tasks() {
    let peer = OidcPeer::start().await;
    let proxy = CountingProxy::start(&peer.issuer()).await;
    let s = Sluice::start(|c| c.oidc = Some(oidc_config(&peer.issuer()))).await;
    let cache_dir = tempfile::tempdir().unwrap();
    let config = ClientConfig {
        endpoint: Some(s.base.clone()),
        no_keyring: true,
        token_cache_dir: Some(cache_dir.path().to_path_buf()),
        ..Default::default()
    };
    let auth: Arc<dyn Authenticator> = Arc::new(lake_client(&proxy));
    let client = Client::new(config, auth).unwrap();

    // First call: one real token request, accepted by the server.
    let me = client.whoami().await.unwrap();
    assert_eq!(me.name, CONFIDENTIAL.0);
    assert_eq!(proxy.token_requests(), 1);
    let first = client.tokens().current_token().await.unwrap();

    client.tokens().set_token(expired(&first)).await;
    proxy.reset();

    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (c, start) = (client.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                c.whoami().await
            })
        })
        .collect();
    for t in tasks {
        let me = t.await.unwrap().expect("whoami");
        assert_eq!(me.name, CONFIDENTIAL.0);
    }

    assert_eq!(
        proxy.token_requests(),
        1,
        "{TASKS} whoami calls with an expired token must share ONE token request"
    );
    let now = client.tokens().current_token().await.unwrap();
    assert_ne!(now.access_token.expose(), first.access_token.expose());
    assert!(!now.is_expired());
}
