//! A local stand-in for Entra ID's token endpoint and the Blob service calls that
//! user-delegation SAS vending makes (Get Account Information, Get User Delegation Key).
//! It records what it receives so tests can assert the requests' shape; it answers
//! `x-ms-is-hns-enabled: true`, so vending picks directory SAS tokens.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub const TOKEN: &str = "stand-in-token";

#[derive(Default)]
pub struct Seen {
    pub token_forms: Vec<HashMap<String, String>>,
    pub udk_bodies: Vec<String>,
    pub hns_calls: usize,
}

pub struct EntraStub {
    pub port: u16,
    pub seen: Arc<Mutex<Seen>>,
}

type S = Arc<Mutex<Seen>>;

fn bearer_ok(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn token(State(s): State<S>, Form(f): Form<HashMap<String, String>>) -> impl IntoResponse {
    s.lock().unwrap().token_forms.push(f);
    axum::Json(
        serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN}),
    )
}

async fn account_info(
    State(s): State<S>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !bearer_ok(&h) || q.get("comp").map(String::as_str) != Some("properties") {
        return StatusCode::FORBIDDEN.into_response();
    }
    s.lock().unwrap().hns_calls += 1;
    ([("x-ms-is-hns-enabled", "true")], "").into_response()
}

async fn udk(State(s): State<S>, h: HeaderMap, body: String) -> Response {
    if !bearer_ok(&h) {
        return StatusCode::FORBIDDEN.into_response();
    }
    s.lock().unwrap().udk_bodies.push(body);
    (
        [("content-type", "application/xml")],
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><UserDelegationKey><SignedOid>oid-1</SignedOid><SignedTid>tid-1</SignedTid><SignedStart>2026-01-01T00:00:00Z</SignedStart><SignedExpiry>2026-01-02T00:00:00Z</SignedExpiry><SignedService>b</SignedService><SignedVersion>2021-08-06</SignedVersion><Value>dWRrLXNlY3JldA==</Value></UserDelegationKey>",
    )
        .into_response()
}

impl EntraStub {
    /// Serves `/<tenant>/oauth2/v2.0/token` and the Blob calls for `<account>/<filesystem>`
    /// (path-style, as for an emulator host `127.0.0.1:<port>`).
    pub async fn start(tenant: &str, account: &str, filesystem: &str) -> EntraStub {
        let seen: S = Arc::default();
        let app = axum::Router::new()
            .route(&format!("/{tenant}/oauth2/v2.0/token"), post(token))
            .route(&format!("/{account}/{filesystem}"), get(account_info))
            .route(&format!("/{account}/"), post(udk))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        EntraStub { port, seen }
    }
}
