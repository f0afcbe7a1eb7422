//! A real Sluice server in-process (SQLite and a file warehouse in a temp dir) on an
//! ephemeral loopback port, bootstrapped with one admin access key, plus small
//! test-local authenticators so these tests do not depend on the login flows module.

#![allow(dead_code)]

use sluice_client::auth::{AuthContext, Authenticator, Token};
use sluice_client::{ClientConfig, ClientError, Result};
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const KEY_ID: &str = "AKIATESTADMIN0000001";
pub const SECRET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123";

pub struct TestServer {
    pub base: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("server"),
            allowed_file_roots: vec![dir.path().to_path_buf()],
            // Tests fail authentication on purpose from 127.0.0.1; keep the throttle from tripping.
            auth_failures_per_minute: 10_000,
            ..ServerConfig::default()
        };
        adjust(&mut config);
        std::fs::create_dir_all(&config.data_dir).unwrap();
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
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Settings for a client of this server: its endpoint, and a token cache in the temp dir
    /// (never the user's keyring or home).
    pub fn config(&self) -> ClientConfig {
        ClientConfig {
            endpoint: Some(self.base.clone()),
            no_keyring: true,
            token_cache_dir: Some(self.dir.path().join("client")),
            ..ClientConfig::default()
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
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

/// An access key sent as HTTP Basic on every request.
pub struct BasicKey {
    pub id: String,
    pub secret: String,
}

impl BasicKey {
    pub fn admin() -> std::sync::Arc<BasicKey> {
        std::sync::Arc::new(BasicKey {
            id: KEY_ID.into(),
            secret: SECRET.into(),
        })
    }
}

#[async_trait::async_trait]
impl Authenticator for BasicKey {
    fn name(&self) -> &'static str {
        "test-basic"
    }
    fn cache_identity(&self) -> Option<String> {
        None
    }
    async fn authenticate(&self, _ctx: &AuthContext) -> Result<Token> {
        Err(ClientError::Auth("Basic mode has no token".into()))
    }
    fn basic_credentials(&self) -> Option<(String, Secret)> {
        Some((self.id.clone(), Secret::new(self.secret.clone())))
    }
}

/// Trades the access key for a JWT at the token endpoint named in the server metadata;
/// the first `bogus_first` logins hand out a garbage token instead (to provoke a 401).
pub struct ExchangeKey {
    pub id: String,
    pub secret: String,
    pub logins: AtomicUsize,
    pub bogus_first: usize,
    pub identity: Option<String>,
}

impl ExchangeKey {
    pub fn admin(bogus_first: usize) -> ExchangeKey {
        ExchangeKey {
            id: KEY_ID.into(),
            secret: SECRET.into(),
            logins: AtomicUsize::new(0),
            bogus_first,
            identity: Some(KEY_ID.into()),
        }
    }
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Authenticator for ExchangeKey {
    fn name(&self) -> &'static str {
        "test-exchange"
    }
    fn cache_identity(&self) -> Option<String> {
        self.identity.clone()
    }
    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token> {
        let n = self.logins.fetch_add(1, Ordering::SeqCst);
        if n < self.bogus_first {
            return Ok(Token::new(format!("bogus-{n}")));
        }
        let md = ctx.server_metadata().await?;
        let url = md["token_endpoint"]
            .as_str()
            .expect("token_endpoint")
            .to_string();
        let resp = ctx
            .http
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.id.as_str()),
                ("client_secret", self.secret.as_str()),
                ("scope", "catalog"),
            ])
            .send()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        if !resp.status().is_success() {
            return Err(ClientError::from_response(resp).await);
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Token {
            access_token: Secret::new(v["access_token"].as_str().unwrap()),
            refresh_token: None,
            expires_at: v["expires_in"]
                .as_i64()
                .map(|s| chrono::Utc::now() + chrono::Duration::seconds(s)),
        })
    }
}
