//! The in-process server the API tests and the iceberg-rust client tests talk to: SQLite and
//! the default file warehouse in a temp dir, an ephemeral port, a bootstrap admin key.

#![allow(dead_code)]

use reqwest::{Client, StatusCode};
use serde_json::Value;
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};
use std::path::PathBuf;

pub const KEY_ID: &str = "AKIATESTADMIN0000001";
pub const SECRET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123";

pub struct TestServer {
    pub base: String,
    pub client: Client,
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Like `start`, with `configure` applied to the configuration first (peer endpoints,
    /// switches).
    pub async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            allowed_file_roots: vec![dir.path().to_path_buf()],
            // Tests fail authentication on purpose, all from 127.0.0.1: a limit this high
            // runs the throttle on every request without tripping it (tests of the throttle
            // set their own).
            auth_failures_per_minute: 10_000,
            // These tests exercise the `file` warehouse as such (file:// locations, no
            // delegation); `lakehouse.rs` serves it through the S3 gateway.
            default_warehouse_gateway: false,
            ..ServerConfig::default()
        };
        configure(&mut config);
        let server = Server::open(config, Some((KEY_ID.into(), Secret::new(SECRET))))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server
                .serve(listener, async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            base: format!("http://{addr}"),
            client: Client::new(),
            data_dir: dir.path().to_path_buf(),
            _dir: dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, p: &str) -> String {
        format!("{}{}", self.base, p)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .client
            .request(method, self.url(path))
            .basic_auth(KEY_ID, Some(SECRET));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A request with the admin key and extra `headers`; the raw body text.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut rb = self
            .client
            .request(method, self.url(path))
            .basic_auth(KEY_ID, Some(SECRET));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    pub async fn prefix(&self) -> String {
        self.prefix_of("default").await
    }

    /// The catalog prefix the config endpoint hands out for `warehouse`.
    pub async fn prefix_of(&self, warehouse: &str) -> String {
        let (s, v) = self.get(&format!("/v1/config?warehouse={warehouse}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["overrides"]["prefix"].as_str().unwrap().to_string()
    }

    /// A bearer token for the bootstrap key from the OAuth2 token endpoint (client credentials).
    pub async fn oauth_token(&self) -> String {
        let resp = self
            .client
            .post(self.url("/v1/oauth/tokens"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", KEY_ID),
                ("client_secret", SECRET),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let v: Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap();
        }
    }
}

/// A SigV4-signed request (signed payload) to an S3 endpoint at `base`; with a session token
/// (temporary credentials) the signer adds and signs `X-Amz-Security-Token`.
pub async fn signed_s3(
    base: &str,
    (key, secret, token): (&str, &str, Option<&str>),
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let uri = format!("{base}{path}");
    let identity = aws_credential_types::Credentials::new(
        key,
        secret,
        token.map(str::to_string),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        method,
        uri.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = Client::new()
        .request(method.parse().unwrap(), &uri)
        .body(body.to_vec());
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
