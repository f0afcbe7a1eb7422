//! The in-process server both benches measure: embedded default in a temp dir, with a
//! client that sends a Sluice bearer token the way PyIceberg does.

use serde_json::Value;
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};

pub const KEY_ID: &str = "AKIABENCHADMIN000001";
pub const SECRET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123";

pub struct BenchServer {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

#[allow(dead_code)] // not every bench uses both entry points
pub async fn start_server() -> BenchServer {
    start_server_with(None).await
}

/// As [`start_server`], with the catalog in the given database (`None`: the embedded
/// SQLite default in the temp dir).
#[allow(dead_code)]
pub async fn start_server_with(database_url: Option<String>) -> BenchServer {
    start_server_configured(|c| c.database_url = database_url).await
}

/// As [`start_server`], with `configure` applied to the configuration first.
#[allow(dead_code)]
pub async fn start_server_configured(configure: impl FnOnce(&mut ServerConfig)) -> BenchServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        allowed_file_roots: vec![dir.path().to_path_buf()],
        log_level: "warn".into(),
        // The catalog's own cost with `file://` locations, comparable across runs; this
        // server starts no gateway listener to serve `s3://default/…` locations.
        default_warehouse_gateway: false,
        ..ServerConfig::default()
    };
    configure(&mut config);
    let server = Server::open(config, Some((KEY_ID.into(), Secret::new(SECRET))))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    let tok: Value = reqwest::Client::new()
        .post(format!("{base}/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", KEY_ID),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    BenchServer { base, client, dir }
}
