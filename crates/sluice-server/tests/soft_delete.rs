//! Soft delete end to end: a dropped table is hidden at once, listed as deleted, can be
//! undropped until it expires, and the background task purges it after expiry — also when
//! the expiry passes while the server is down.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};
use std::path::Path;
use std::time::Duration;

const KEY: &str = "AKIATESTADMIN0000001";
const SECRET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123";

struct Running {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

async fn start(dir: &Path) -> Running {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        allowed_file_roots: vec![dir.to_path_buf()],
        purge_interval_seconds: 1,
        // file:// locations are checked on disk (the lakehouse is in lakehouse.rs).
        default_warehouse_gateway: false,
        ..ServerConfig::default()
    };
    let server = Server::open(config, Some((KEY.into(), Secret::new(SECRET))))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server
            .serve(listener, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running { base, stop, handle }
}

impl Running {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut rb = Client::new()
            .request(method, format!("{}{}", self.base, path))
            .basic_auth(KEY, Some(SECRET));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let st = r.status();
        (
            st,
            serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap();
    }
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]})
}

async fn soft_warehouse(s: &Running, dir: &Path, expiration: u64) -> (String, String) {
    let (st, v) = s
        .call(
            Method::POST,
            "/management/v1/warehouse",
            Some(json!({
            "warehouse-name": "soft",
            "storage-profile": {"type": "file", "root": dir.join("soft")},
            "delete-profile": {"type": "soft", "expiration-seconds": expiration}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["warehouse-id"].as_str().unwrap().to_string();
    s.call(
        Method::POST,
        &format!("/v1/{id}/namespaces"),
        Some(json!({"namespace": ["ns"]})),
    )
    .await;
    (id.clone(), id)
}

#[tokio::test]
async fn soft_dropped_table_can_be_undropped_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (wh, p) = soft_warehouse(&s, dir.path(), 3600).await;
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/v1/{p}/namespaces/ns/tables"),
            Some(json!({"name": "t", "schema": schema()})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let location = v["metadata"]["location"]
        .as_str()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    let table_id = v["metadata"]["table-uuid"].as_str().unwrap().to_string();

    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/v1/{p}/namespaces/ns/tables/t?purgeRequested=true"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    // Hidden at once; files kept.
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/v1/{p}/namespaces/ns/tables/t"),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (_, v) = s
        .call(Method::GET, &format!("/v1/{p}/namespaces/ns/tables"), None)
        .await;
    assert_eq!(v["identifiers"], json!([]));
    assert!(Path::new(&location).exists());
    // Its location stays reserved.
    let (st, _) = s
        .call(Method::POST, &format!("/v1/{p}/namespaces/ns/tables"), Some(json!({"name": "other", "schema": schema(), "location": format!("file://{location}")})))
        .await;
    assert_eq!(st, 400);
    // Listed as deleted.
    let (st, v) = s
        .call(
            Method::GET,
            &format!("/management/v1/warehouse/{wh}/deleted-tables"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["tables"][0]["table-id"], table_id.as_str());
    assert_eq!(v["tables"][0]["name"], "t");
    assert_eq!(v["tables"][0]["purge-requested"], true);
    assert_eq!(v["tables"][0]["deleted-by"], "admin");

    // The name is free again: a new table takes it, so undrop under the old name conflicts.
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/v1/{p}/namespaces/ns/tables"),
            Some(json!({"name": "t", "schema": schema()})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/management/v1/warehouse/{wh}/deleted-tables/{table_id}/undrop"),
            None,
        )
        .await;
    assert_eq!(st, 409, "{v}");
    let (st, v) = s
        .call(
            Method::POST,
            &format!("/management/v1/warehouse/{wh}/deleted-tables/{table_id}/undrop"),
            Some(json!({"new-name": "t_restored"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "t_restored");
    let (st, v) = s
        .call(
            Method::GET,
            &format!("/v1/{p}/namespaces/ns/tables/t_restored"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["metadata"]["table-uuid"], table_id.as_str());
    let (_, v) = s
        .call(
            Method::GET,
            &format!("/management/v1/warehouse/{wh}/deleted-tables"),
            None,
        )
        .await;
    assert_eq!(v["tables"], json!([]));
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/management/v1/warehouse/{wh}/deleted-tables/{table_id}/undrop"),
            None,
        )
        .await;
    assert_eq!(st, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn expired_tables_are_purged_in_the_background_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (wh, p) = soft_warehouse(&s, dir.path(), 2).await;
    let mut locations = vec![];
    for t in ["purged", "kept"] {
        let (_, v) = s
            .call(
                Method::POST,
                &format!("/v1/{p}/namespaces/ns/tables"),
                Some(json!({"name": t, "schema": schema()})),
            )
            .await;
        locations.push(
            v["metadata"]["location"]
                .as_str()
                .unwrap()
                .trim_start_matches("file://")
                .to_string(),
        );
    }
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/v1/{p}/namespaces/ns/tables/purged?purgeRequested=true"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/v1/{p}/namespaces/ns/tables/kept"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    // Stop before expiry; the purge must happen after a restart.
    s.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = start(dir.path()).await;
    let mut gone = false;
    for _ in 0..50 {
        let (_, v) = s
            .call(
                Method::GET,
                &format!("/management/v1/warehouse/{wh}/deleted-tables"),
                None,
            )
            .await;
        if v["tables"] == json!([]) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "expired deleted tables were not removed");
    assert!(
        !Path::new(&locations[0]).exists(),
        "files of a purge-requested drop must be deleted"
    );
    assert!(
        Path::new(&locations[1]).exists(),
        "files of a drop without purge must stay"
    );
    s.shutdown().await;
}
