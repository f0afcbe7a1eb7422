//! Regression tests for the attacks of the outside probe (issue 14): each test replays one
//! attack against the in-process server and checks it is refused the way the spec's error
//! model says. Peers: moto (a real S3 + STS) and, as the attacker's server, a TCP listener
//! on loopback that records what reaches it.

// moto.rs takes its free-port helper from the s3s-fs helper, as a sibling module.
use crate::moto;
use crate::server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use moto::Moto;
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::{TestServer, KEY_ID, SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUCKET: &str = "lake";
/// The warehouse's S3 secret: must never leave the server, in answers or the audit log.
const S3_SECRET: &str = "moto-secret-that-must-never-leak-0123456789";
/// What the attacker's server puts in its answers: must never reach the client.
const ORACLE: &str = "internal-oracle-marker";

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]})
}

fn assert_error(st: StatusCode, v: &Value, code: u16, kind: &str) -> String {
    assert_eq!(st.as_u16(), code, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

/// An S3 endpoint somebody else controls: answers every request with a 403 whose body is an
/// S3-style error carrying [`ORACLE`], and counts connections and the Authorization headers
/// it receives.
struct Attacker {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Attacker {
    async fn start() -> Attacker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    r.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    let body = format!(
                        "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>{ORACLE}</Message></Error>"
                    );
                    let resp = format!(
                        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Attacker {
            url,
            connections,
            requests,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// moto with the bucket; auth stays off, so any well-formed key works.
async fn moto_bucket() -> Moto {
    let moto = Moto::start();
    let r = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "create bucket: {}",
        r.text().await.unwrap_or_default()
    );
    moto
}

fn s3_profile(endpoint: &str, prefix: &str) -> Value {
    json!({"type": "s3", "bucket": BUCKET, "key-prefix": prefix, "region": "us-east-1",
           "endpoint": endpoint, "path-style-access": true, "flavor": "s3-compat"})
}

fn s3_cred() -> Value {
    json!({"type": "s3", "credential-type": "access-key",
           "aws-access-key-id": "AKIAHARDENING0000001", "aws-secret-access-key": S3_SECRET})
}

async fn create_s3_warehouse(s: &TestServer, name: &str, endpoint: &str, prefix: &str) -> String {
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            json!({"warehouse-name": name, "storage-profile": s3_profile(endpoint, prefix), "storage-credential": s3_cred()}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["warehouse-id"].as_str().unwrap().to_string()
}

/// Item 1: a warehouse updater points the stored S3 key at their own server without
/// sending the key. Refused before any request leaves; harmless changes still work.
#[tokio::test]
async fn storage_update_cannot_redirect_the_stored_credential() {
    let moto = moto_bucket().await;
    let attacker = Attacker::start().await;
    let s = TestServer::start().await;
    let id = create_s3_warehouse(&s, "s3wh", &moto.endpoint, "wh").await;
    let path = format!("/management/v1/warehouse/{id}/storage");

    let mut moved = s3_profile(&attacker.url, "wh");
    let (st, v) = s.post(&path, json!({"storage-profile": moved})).await;
    let m = assert_error(st, &v, 400, "BadRequestException");
    assert!(
        m.contains("endpoint") && m.contains("storage-credential"),
        "{m}"
    );

    // Only the STS endpoint, or the bucket, or the region: the same.
    moved = s3_profile(&moto.endpoint, "wh");
    moved["sts-endpoint"] = json!(attacker.url);
    let (st, v) = s.post(&path, json!({"storage-profile": moved})).await;
    assert!(assert_error(st, &v, 400, "BadRequestException").contains("sts-endpoint"));
    moved = s3_profile(&moto.endpoint, "wh");
    moved["bucket"] = json!("attackers-bucket");
    let (st, v) = s.post(&path, json!({"storage-profile": moved})).await;
    assert!(assert_error(st, &v, 400, "BadRequestException").contains("bucket"));
    moved = s3_profile(&moto.endpoint, "wh");
    moved["region"] = json!("eu-west-1");
    let (st, v) = s.post(&path, json!({"storage-profile": moved})).await;
    assert!(assert_error(st, &v, 400, "BadRequestException").contains("region"));
    // A credential of null is not a credential.
    let (st, v) = s
        .post(
            &path,
            json!({"storage-profile": s3_profile(&attacker.url, "wh"), "storage-credential": null}),
        )
        .await;
    assert_error(st, &v, 400, "BadRequestException");

    assert_eq!(
        attacker.hits(),
        0,
        "nothing was sent to the attacker's endpoint"
    );
    let (_, w) = s.get(&format!("/management/v1/warehouse/{id}")).await;
    assert_eq!(
        w["storage-profile"]["endpoint"],
        moto.endpoint.as_str(),
        "unchanged: {w}"
    );

    // A change that keeps the destination needs no credential (the empty warehouse moves).
    let (st, v) = s
        .post(
            &path,
            json!({"storage-profile": s3_profile(&moto.endpoint, "wh2")}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["storage-profile"]["key-prefix"], "wh2");

    // With the credential sent again the change is the caller's own: it goes ahead (and here
    // fails the probe against the attacker's 403), and the client is told the step and the
    // status but not what that server answered (item 4).
    let (st, v) = s.post(&path, json!({"storage-profile": s3_profile(&attacker.url, "wh2"), "storage-credential": s3_cred()})).await;
    let m = assert_error(st, &v, 400, "BadRequestException");
    assert!(attacker.hits() > 0);
    assert!(m.contains("write") && m.contains("403"), "{m}");
    assert!(
        !m.contains(ORACLE) && !m.contains("<Error>") && !m.contains("AccessDenied"),
        "{m}"
    );
    assert!(!v.to_string().contains(S3_SECRET));
    s.stop().await;
}

/// Item 4: a warehouse whose endpoint answers the probe with an error body naming
/// internals. The 400 says which step failed and the status, not what the server said.
#[tokio::test]
async fn probe_errors_do_not_echo_the_remote_answer() {
    let attacker = Attacker::start().await;
    let s = TestServer::start().await;
    // An S3 endpoint that answers 403 with a body naming internals.
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            json!({"warehouse-name": "probe", "storage-profile": s3_profile(&attacker.url, "wh"), "storage-credential": s3_cred()}),
        )
        .await;
    let m = assert_error(st, &v, 400, "BadRequestException");
    assert!(m.contains("step 'write'") && m.contains("HTTP 403"), "{m}");
    assert!(
        !m.contains(ORACLE) && !m.contains("<Error>") && !m.contains("<Code>"),
        "{m}"
    );
    assert!(
        attacker
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("PUT ")),
        "the probe did reach the endpoint"
    );
    s.stop().await;
}

/// Item 1, allowlist: with `allowed_storage_endpoints` set, an endpoint outside it (here the
/// loopback moto, standing in for an internal address) is refused before any request;
/// listed, it works.
#[tokio::test]
async fn storage_endpoint_allowlist() {
    let moto = moto_bucket().await;
    let attacker = Attacker::start().await;
    // Public clouds only.
    let s = TestServer::start_with(|c| c.storage.allowed_storage_endpoints = Some(vec![])).await;
    for (name, profile) in [
        ("internal", s3_profile(&attacker.url, "wh")),
        ("meta", s3_profile("http://169.254.169.254", "wh")),
        ("sts", {
            let mut p = s3_profile("https://s3.us-east-1.amazonaws.com", "wh");
            p["sts-endpoint"] = json!(attacker.url);
            p
        }),
    ] {
        let (st, v) = s
            .post("/management/v1/warehouse", json!({"warehouse-name": name, "storage-profile": profile, "storage-credential": s3_cred()}))
            .await;
        let m = assert_error(st, &v, 400, "BadRequestException");
        assert!(m.contains("allowed_storage_endpoints"), "{m}");
    }
    let adls = json!({"type": "adls", "account-name": "acct1", "filesystem": "fs1", "authority-host": attacker.url});
    let cred = json!({"type": "az", "credential-type": "client-credentials", "client-id": "c", "client-secret": "s", "tenant-id": "t"});
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            json!({"warehouse-name": "az", "storage-profile": adls, "storage-credential": cred}),
        )
        .await;
    assert!(
        assert_error(st, &v, 400, "BadRequestException").contains("authority-host"),
        "{v}"
    );
    assert_eq!(attacker.hits(), 0);
    s.stop().await;

    // The operator lists moto's host and port: allowed, and still only that port.
    let entry = moto.endpoint.trim_start_matches("http://").to_string();
    let s =
        TestServer::start_with(|c| c.storage.allowed_storage_endpoints = Some(vec![entry])).await;
    let id = create_s3_warehouse(&s, "listed", &moto.endpoint, "wh").await;
    let (st, v) = s
        .post(&format!("/management/v1/warehouse/{id}/storage"), json!({"storage-profile": s3_profile(&attacker.url, "wh"), "storage-credential": s3_cred()}))
        .await;
    assert!(assert_error(st, &v, 400, "BadRequestException").contains("allowed_storage_endpoints"));
    assert_eq!(attacker.hits(), 0);
    s.stop().await;
}

/// Item 2: every kind of warehouse write is in the audit log with actor, before and after;
/// the S3 secret never is.
#[tokio::test]
async fn warehouse_changes_are_audited_without_secrets() {
    let moto = moto_bucket().await;
    let s = TestServer::start().await;
    let id = create_s3_warehouse(&s, "audited", &moto.endpoint, "wh").await;
    let wh = format!("/management/v1/warehouse/{id}");
    let (st, v) = s
        .post(&format!("{wh}/rename"), json!({"new-name": "audited2"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            &format!("{wh}/storage-credential"),
            json!({"new-storage-credential": s3_cred()}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            &format!("{wh}/storage"),
            json!({"storage-profile": s3_profile(&moto.endpoint, "moved")}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            &format!("{wh}/delete-profile"),
            json!({"delete-profile": {"type": "soft", "expiration-seconds": 3600}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.post(&format!("{wh}/deactivate"), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.post(&format!("{wh}/activate"), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A refused change is recorded too.
    let (st, _) = s
        .post(
            &format!("{wh}/storage"),
            json!({"storage-profile": s3_profile("http://127.0.0.1:9", "moved")}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = s.delete(&wh).await;
    assert!(st.is_success(), "{st} {v}");

    let (st, audit) = s.get("/management/v1/audit?limit=100").await;
    assert_eq!(st, StatusCode::OK, "{audit}");
    let text = audit.to_string();
    assert!(
        !text.contains(S3_SECRET),
        "the secret is in the audit log: {text}"
    );
    let entries: Vec<&Value> = audit
        .as_array()
        .or_else(|| audit["entries"].as_array())
        .expect("a list of entries")
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("warehouse:"))
        })
        .filter(|e| e["target"].as_str().is_some_and(|t| t.contains("audited")))
        .collect();
    // The default warehouse created at bootstrap is there too, by the server itself.
    assert!(text.contains("sluice-bootstrap"), "{text}");
    let detail =
        |e: &Value| -> Value { serde_json::from_str(e["detail"].as_str().unwrap()).unwrap() };
    let ops: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                detail(e)["operation"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (op, result) in [
        ("create", "success"),
        ("rename", "success"),
        ("update-credential", "success"),
        ("update-storage", "success"),
        ("update-delete-profile", "success"),
        ("deactivate", "success"),
        ("activate", "success"),
        ("update-storage", "failure"),
        ("delete", "success"),
    ] {
        assert!(
            ops.contains(&(op.to_string(), result.to_string())),
            "{op}/{result} missing from {ops:?}"
        );
    }
    for e in &entries {
        assert_eq!(e["actor"], "admin", "{e}");
    }
    let find = |op: &str| {
        entries
            .iter()
            .find(|e| detail(e)["operation"] == op && e["result"] == "success")
            .map(|e| detail(e))
            .unwrap()
    };
    let rename = find("rename");
    assert_eq!(rename["before"]["name"], "audited");
    assert_eq!(rename["after"]["name"], "audited2");
    let storage = find("update-storage");
    assert_eq!(storage["before"]["storage-profile"]["key-prefix"], "wh");
    assert_eq!(storage["after"]["storage-profile"]["key-prefix"], "moved");
    assert_eq!(storage["credential-supplied"], false);
    let cred = find("update-credential");
    assert_eq!(
        cred["after"]["storage-credential"],
        json!({"type": "s3", "credential-type": "access-key"})
    );
    assert_eq!(find("deactivate")["after"]["status"], "inactive");
    assert_eq!(find("delete")["after"], Value::Null);
    assert_eq!(find("delete")["before"]["name"], "audited2");
    s.stop().await;
}

/// Items 7, 8, 9: table locations a client chooses.
#[tokio::test]
async fn table_location_attacks_are_refused() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    let (_, wh) = s.get("/management/v1/warehouse").await;
    let root = wh["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "default")
        .unwrap()["location"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces"),
            json!({"namespace": ["finance"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let create = |name: &str, location: Option<String>| {
        let mut body = json!({"name": name, "schema": schema()});
        if let Some(l) = location {
            body["location"] = json!(l);
        }
        body
    };

    // 7: a 5,000-byte component, and a location too long in total: 400, not 500.
    let long = "a".repeat(5000);
    for loc in [
        format!("{root}/{long}"),
        format!("{root}/{}", vec!["abcdefgh"; 200].join("/")),
    ] {
        let (st, v) = s
            .post(
                &format!("/v1/{p}/namespaces/finance/tables"),
                create("t7", Some(loc)),
            )
            .await;
        let m = assert_error(st, &v, 400, "BadRequestException");
        assert!(
            m.len() < 1000,
            "the message does not echo the input: {} bytes",
            m.len()
        );
    }
    // 8: components a URI parser would decode or split on.
    for rel in ["%2E%2E", "x/%2E%2E/y", "a?b", "t#x", "a%2Fb", "sp ace"] {
        let (st, v) = s
            .post(
                &format!("/v1/{p}/namespaces/finance/tables"),
                create("t8", Some(format!("{root}/{rel}"))),
            )
            .await;
        assert_error(st, &v, 400, "BadRequestException");
    }
    assert!(
        !std::path::Path::new(&root.replace("file://", ""))
            .join("%2E%2E")
            .exists(),
        "no such directory created"
    );

    // 9: the hidden table is not named in the overlap error.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/finance/tables"),
            create("secret", None),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let secret_loc = v["metadata"]["location"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces"),
            json!({"namespace": ["other"]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for loc in [secret_loc.clone(), format!("{secret_loc}/inner")] {
        let (st, v) = s
            .post(
                &format!("/v1/{p}/namespaces/other/tables"),
                create("mine", Some(loc)),
            )
            .await;
        let m = assert_error(st, &v, 400, "BadRequestException");
        assert!(m.contains("already in use"), "{m}");
        assert!(
            !m.contains("finance") && !m.contains("secret"),
            "names the other table: {m}"
        );
    }

    // 8 via set-location on an existing table and via register.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/other/tables"),
            create("t", None),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let uuid = v["metadata"]["table-uuid"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/other/tables/t"),
            json!({"requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
                   "updates": [{"action": "set-location", "location": format!("{root}/%2E%2E")}]}),
        )
        .await;
    assert_error(st, &v, 400, "BadRequestException");
    let metadata_location = v.get("metadata-location").cloned();
    assert!(metadata_location.is_none());
    // A metadata file whose location has a bad component, registered.
    let (_, loaded) = s.get(&format!("/v1/{p}/namespaces/other/tables/t")).await;
    let mut md = loaded["metadata"].clone();
    md["location"] = json!(format!("{root}/x/%2E%2E"));
    md["table-uuid"] = json!(uuid::Uuid::new_v4().to_string());
    let file = std::path::Path::new(&root.replace("file://", "")).join("evil.metadata.json");
    std::fs::write(&file, md.to_string()).unwrap();
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/other/register"),
            json!({"name": "reg", "metadata-location": format!("file://{}", file.display())}),
        )
        .await;
    assert_error(st, &v, 400, "BadRequestException");
    s.stop().await;
}

/// Item 12: the signer refuses repeated query parameters (the attack: a listing whose first
/// `prefix` is the caller's table and whose second is somebody else's).
#[tokio::test]
async fn signer_refuses_repeated_parameters() {
    let moto = moto_bucket().await;
    let s = TestServer::start().await;
    create_s3_warehouse(&s, "signed", &moto.endpoint, "wh").await;
    let p = s.prefix_of("signed").await;
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["db"]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/db/tables"),
            json!({"name": "t", "schema": schema()}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let location = v["metadata"]["location"].as_str().unwrap().to_string();
    let table_id = v["metadata"]["table-uuid"].as_str().unwrap().to_string();
    let own = location
        .trim_start_matches(&format!("s3://{BUCKET}/"))
        .to_string();
    let sign = |query: String| json!({"method": "GET", "region": "us-east-1", "uri": format!("{}/{BUCKET}?{query}", moto.endpoint), "headers": {}});
    let path = format!("/v1/{p}/tables/{table_id}/sign");
    let (st, v) = s
        .post(&path, sign(format!("list-type=2&prefix={own}/")))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for query in [
        format!("list-type=2&prefix={own}/&prefix=other-warehouse/"),
        format!("list-type=2&prefix={own}/&pre%66ix=other-warehouse/"),
        format!("list-type=2&list-type=1&prefix={own}/"),
    ] {
        let (st, v) = s.post(&path, sign(query.clone())).await;
        let m = assert_error(st, &v, 400, "BadRequestException");
        assert!(m.contains("repeated"), "{query}: {m}");
    }
    let (st, v) = s
        .post(
            "/v1/aws/s3/sign",
            sign(format!("list-type=2&prefix={own}/&prefix=x/")),
        )
        .await;
    assert!(st.is_client_error(), "{st} {v}");
    s.stop().await;
}

/// The unscoped signer keeps the warehouses' decoded profiles in memory: a warehouse created
/// after it last looked is found at once, and one deactivated is refused at once.
#[tokio::test]
async fn unscoped_signer_follows_warehouse_changes() {
    let moto = moto_bucket().await;
    let s = TestServer::start().await;
    let mut objects = vec![];
    for (name, prefix) in [("sign1", "wh1"), ("sign2", "wh2")] {
        let id = create_s3_warehouse(&s, name, &moto.endpoint, prefix).await;
        let p = s.prefix_of(name).await;
        let (st, v) = s
            .post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["db"]}))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let (st, v) = s
            .post(
                &format!("/v1/{p}/namespaces/db/tables"),
                json!({"name": "t", "schema": schema()}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let location = v["metadata"]["location"].as_str().unwrap().to_string();
        let key = location.trim_start_matches(&format!("s3://{BUCKET}/"));
        let object = format!("{}/{BUCKET}/{key}/data/f.parquet", moto.endpoint);
        let sign = json!({"method": "GET", "region": "us-east-1", "uri": object, "headers": {}});
        // Signed through the unscoped endpoint: the first warehouse warms the list, the
        // second was created after it.
        let (st, v) = s.post("/v1/aws/s3/sign", sign.clone()).await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        objects.push((id, sign));
    }
    let (first, _) = &objects[0];
    let (st, v) = s
        .post(
            &format!("/management/v1/warehouse/{first}/deactivate"),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s.post("/v1/aws/s3/sign", objects[0].1.clone()).await;
    assert_error(st, &v, 403, "ForbiddenException");
    let (st, v) = s.post("/v1/aws/s3/sign", objects[1].1.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Which table holds an object is remembered, but not past a change: after a rename the
    // object is still signed for, after a drop it is refused at once.
    let p = s.prefix_of("sign2").await;
    let (st, v) = s
        .post(
            &format!("/v1/{p}/tables/rename"),
            json!({"source": {"namespace": ["db"], "name": "t"},
                   "destination": {"namespace": ["db"], "name": "u"}}),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, v) = s.post("/v1/aws/s3/sign", objects[1].1.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s.delete(&format!("/v1/{p}/namespaces/db/tables/u")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.post("/v1/aws/s3/sign", objects[1].1.clone()).await;
    assert_error(st, &v, 403, "ForbiddenException");
    s.stop().await;
}

/// Item 12: two Authorization headers are refused, whatever each would do alone.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let s = TestServer::start().await;
    let token = s.oauth_token().await;
    let basic = format!("Basic {}", base64_encode(&format!("{KEY_ID}:{SECRET}")));
    for (a, b) in [
        (basic.clone(), format!("Bearer {token}")),
        (format!("Bearer {token}"), basic.clone()),
        (basic.clone(), basic.clone()),
        ("Bearer not-a-token".to_string(), format!("Bearer {token}")),
    ] {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append(reqwest::header::AUTHORIZATION, a.parse().unwrap());
        headers.append(reqwest::header::AUTHORIZATION, b.parse().unwrap());
        let r = s
            .client
            .get(s.url("/management/v1/whoami"))
            .headers(headers.clone())
            .send()
            .await
            .unwrap();
        let st = r.status();
        let v: Value = r.json().await.unwrap();
        let m = assert_error(st, &v, 401, "NotAuthorizedException");
        assert!(m.contains("Authorization"), "{m}");
        // The token endpoint, too (OAuth2 error shape there).
        let r = s
            .client
            .post(s.url("/v1/oauth/tokens"))
            .headers(headers)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client", "{v}");
    }
    // One header still works.
    let r = s
        .client
        .get(s.url("/management/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Items 7, 8, 9 for views: a view's location is a root like a table's (create with a
/// location, `set-location`, register-view), so it gets the same length and character rules,
/// and an overlap with a table does not name that table.
#[tokio::test]
async fn view_location_attacks_are_refused() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    let (_, wh) = s.get("/management/v1/warehouse").await;
    let root = wh["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "default")
        .unwrap()["location"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = std::path::PathBuf::from(root.trim_start_matches("file://"));
    for ns in ["finance", "other"] {
        let (st, v) = s
            .post(&format!("/v1/{p}/namespaces"), json!({"namespace": [ns]}))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let view = |name: &str, location: Option<String>| {
        let mut body = json!({
            "name": name,
            "schema": schema(),
            "view-version": {
                "version-id": 1, "schema-id": 0, "timestamp-ms": 1_700_000_000_000_i64,
                "summary": {"engine-name": "test"}, "default-namespace": ["other"],
                "representations": [{"type": "sql", "sql": "select 1", "dialect": "spark"}]
            }
        });
        if let Some(l) = location {
            body["location"] = json!(l);
        }
        body
    };
    let views = format!("/v1/{p}/namespaces/other/views");

    // 7: a 5,000-byte component, and a location too long in total: 400, not 500.
    for loc in [
        format!("{root}/{}", "a".repeat(5000)),
        format!("{root}/{}", vec!["abcdefgh"; 200].join("/")),
    ] {
        let (st, v) = s.post(&views, view("v7", Some(loc))).await;
        let m = assert_error(st, &v, 400, "BadRequestException");
        assert!(m.len() < 1000, "the message echoes the input: {m}");
    }
    // 8: components a URI parser would decode or split on.
    for rel in ["%2E%2E", "x/%2E%2E/y", "a?b", "t#x", "a%2Fb", "sp ace"] {
        let (st, v) = s
            .post(&views, view("v8", Some(format!("{root}/{rel}"))))
            .await;
        assert_error(st, &v, 400, "BadRequestException");
    }
    assert!(!dir.join("%2E%2E").exists(), "no such directory created");
    assert!(!dir.join("x").exists(), "no such directory created");

    // 9: a view over a table's location does not learn the table's name.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/finance/tables"),
            json!({"name": "secret", "schema": schema()}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let secret_loc = v["metadata"]["location"].as_str().unwrap().to_string();
    for loc in [secret_loc.clone(), format!("{secret_loc}/inner")] {
        let (st, v) = s.post(&views, view("mine", Some(loc))).await;
        let m = assert_error(st, &v, 400, "BadRequestException");
        assert!(m.contains("already in use"), "{m}");
        assert!(
            !m.contains("finance") && !m.contains("secret"),
            "names the other table: {m}"
        );
    }

    // 8 via set-location on an existing view, and via register-view.
    let (st, v) = s.post(&views, view("v", None)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let uuid = v["metadata"]["view-uuid"].as_str().unwrap().to_string();
    let mut md = v["metadata"].clone();
    let (st, v) = s
        .post(
            &format!("{views}/v"),
            json!({"requirements": [{"type": "assert-view-uuid", "uuid": uuid}],
                   "updates": [{"action": "set-location", "location": format!("{root}/%2E%2E")}]}),
        )
        .await;
    assert_error(st, &v, 400, "BadRequestException");
    assert!(!dir.join("%2E%2E").exists(), "no such directory created");
    md["location"] = json!(format!("{root}/x/%2E%2E"));
    md["view-uuid"] = json!(uuid::Uuid::new_v4().to_string());
    let file = dir.join("evil-view.metadata.json");
    std::fs::write(&file, md.to_string()).unwrap();
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/other/register-view"),
            json!({"name": "reg", "metadata-location": format!("file://{}", file.display())}),
        )
        .await;
    assert_error(st, &v, 400, "BadRequestException");
    // Nor may a registered view sit on a table's location.
    md["location"] = json!(secret_loc);
    std::fs::write(&file, md.to_string()).unwrap();
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/other/register-view"),
            json!({"name": "reg", "metadata-location": format!("file://{}", file.display())}),
        )
        .await;
    let m = assert_error(st, &v, 400, "BadRequestException");
    assert!(!m.contains("finance") && !m.contains("secret"), "{m}");
    s.stop().await;
}

/// Item 1 as reported: a `SuperUsers` member (who may update warehouses, but is no admin)
/// points an ADLS warehouse's stored account key at their own server — by `host`, by
/// `authority-host`, by account — without sending the key. Refused before any request
/// leaves, audited with the member as actor; a harmless change by the same member works.
#[tokio::test]
async fn superuser_cannot_redirect_a_stored_adls_credential() {
    let az = crate::azurite::Azurite::start(&["warehouse"]).await;
    let attacker = Attacker::start().await;
    let s = TestServer::start().await;
    let profile = |host: &str| {
        json!({"type": "adls", "account-name": crate::azurite::ACCOUNT, "filesystem": "warehouse",
               "key-prefix": "wh", "host": host, "allow-container-wide-sas": true})
    };
    let cred =
        json!({"type": "az", "credential-type": "shared-access-key", "key": crate::azurite::KEY});
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            json!({"warehouse-name": "azwh", "storage-profile": profile(&az.host), "storage-credential": cred}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["warehouse-id"].as_str().unwrap().to_string();

    // The member: in SuperUsers only.
    let (st, v) = s.post("/management/v1/users", json!({"name": "su"})).await;
    assert_eq!(st.as_u16(), 201, "{v}");
    let (st, v) = s
        .call(
            reqwest::Method::PUT,
            "/management/v1/groups/SuperUsers/members/su",
            None,
        )
        .await;
    assert_eq!(st.as_u16(), 204, "{v}");
    let (st, key) = s
        .call(
            reqwest::Method::POST,
            "/management/v1/users/su/access-keys",
            None,
        )
        .await;
    assert_eq!(st.as_u16(), 201, "{key}");
    let su = |body: Value| {
        let req = s
            .client
            .post(s.url(&format!("/management/v1/warehouse/{id}/storage")))
            .basic_auth(
                key["access-key-id"].as_str().unwrap(),
                key["secret-access-key"].as_str(),
            )
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let attacker_host = attacker.url.trim_start_matches("http://").to_string();
    let mut by_authority = profile(&az.host);
    by_authority["authority-host"] = json!(attacker.url);
    let mut by_account = profile(&attacker_host);
    by_account["account-name"] = json!("attacker");
    for (field, moved) in [
        ("host", profile(&attacker_host)),
        ("authority-host", by_authority),
        ("account-name", by_account),
    ] {
        let (st, v) = su(json!({"storage-profile": moved})).await;
        let m = assert_error(st, &v, 400, "BadRequestException");
        assert!(
            m.contains(field) && m.contains("storage-credential"),
            "{field}: {m}"
        );
    }
    assert_eq!(attacker.hits(), 0, "nothing reached the attacker's server");
    let (_, w) = s.get(&format!("/management/v1/warehouse/{id}")).await;
    assert_eq!(w["storage-profile"]["host"], az.host.as_str(), "{w}");

    // The same member may make a change that keeps the destination.
    let mut moved = profile(&az.host);
    moved["key-prefix"] = json!("wh2");
    let (st, v) = su(json!({"storage-profile": moved})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["storage-profile"]["key-prefix"], "wh2");

    // The refused attempts are audited, with the member as actor.
    let (st, audit) = s.get("/management/v1/audit?limit=100").await;
    assert_eq!(st, StatusCode::OK, "{audit}");
    assert!(!audit.to_string().contains(crate::azurite::KEY));
    let refused = audit
        .as_array()
        .or_else(|| audit["entries"].as_array())
        .expect("a list of entries")
        .iter()
        .filter(|e| e["actor"] == "su" && e["result"] == "failure")
        .count();
    assert_eq!(refused, 3, "{audit}");
    s.stop().await;
}
