//! GCS warehouses over HTTP: create (with the real write/read/list/delete probe against
//! fake-gcs-server), credential secrecy, vended downscoped tokens on load-table (the
//! boundary asserted at a local STS stand-in), purge, and bad input answered with 400 and
//! a message naming the field. fake-gcs-server does not check tokens.

use crate::gcs_peers;

use gcs_peers::{FakeGcs, GoogleStandIn, TestKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

const BUCKET: &str = "lake-gcs";

use crate::server;

use server::TestServer;

/// Every call asks for vended credentials, as an engine on this warehouse would.
const VENDED: &[(&str, &str)] = &[("X-Iceberg-Access-Delegation", "vended-credentials")];

async fn start(gcs: &FakeGcs, google: &GoogleStandIn) -> TestServer {
    let (sts, endpoint) = (google.sts_endpoint.clone(), gcs.endpoint.clone());
    TestServer::start_with(|c| {
        c.storage.gcs_sts_endpoint = Some(sts);
        c.storage.gcs_endpoint = Some(endpoint);
    })
    .await
}

async fn post(s: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    let (st, t) = s
        .request(reqwest::Method::POST, path, Some(body), VENDED)
        .await;
    (st, serde_json::from_str(&t).unwrap_or(Value::Null))
}

async fn get(s: &TestServer, path: &str) -> (StatusCode, Value) {
    let (st, t) = s.request(reqwest::Method::GET, path, None, VENDED).await;
    (st, serde_json::from_str(&t).unwrap_or(Value::Null))
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"}
    ]})
}

fn warehouse(name: &str, profile: Value, cred: Value) -> Value {
    json!({"warehouse-name": name, "storage-profile": profile, "storage-credential": cred,
           "delete-profile": {"type": "hard"}})
}

/// A 400 in the Iceberg error shape whose message contains every one of `words`.
fn assert_400(st: StatusCode, v: &Value, words: &[&str]) {
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], 400, "{v}");
    let m = v["error"]["message"].as_str().unwrap_or_default();
    for w in words {
        assert!(m.contains(w), "message lacks '{w}': {m}");
    }
}

async fn objects(gcs: &FakeGcs, prefix: &str) -> Vec<String> {
    let v: Value = reqwest::get(format!(
        "{}/storage/v1/b/{BUCKET}/o?prefix={prefix}",
        gcs.endpoint
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn gcs_warehouse_create_vend_purge_and_bad_input() {
    let gcs = FakeGcs::start(&[BUCKET]);
    let key = TestKey::generate();
    let google = GoogleStandIn::start(&key).await;
    let s = start(&gcs, &google).await;
    let sa = key.service_account_json(&google.token_uri);
    let cred = json!({"type": "gcs", "credential-type": "service-account-key", "key": sa});
    let profile = json!({"type": "gcs", "bucket": BUCKET, "key-prefix": "/wh/"});

    let (st, v) = post(
        &s,
        "/management/v1/warehouse",
        warehouse("g1", profile.clone(), cred.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["warehouse-id"].as_str().unwrap().to_string();
    assert_eq!(
        v["storage-profile"],
        json!({"type": "gcs", "bucket": BUCKET, "key-prefix": "wh"})
    );
    // The key is never returned, and never stored in clear text.
    let pem_body: String = key.private_pem.lines().nth(1).unwrap().to_string();
    let (_, text) = s
        .request(
            reqwest::Method::GET,
            &format!("/management/v1/warehouse/{id}"),
            None,
            VENDED,
        )
        .await;
    assert!(
        !text.contains(&pem_body) && !text.contains("private_key"),
        "{text}"
    );
    for entry in std::fs::read_dir(&s.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sluice.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(pem_body.len())
                    .any(|w| w == pem_body.as_bytes()),
                "{}",
                path.display()
            );
        }
    }
    // The probe left nothing behind.
    assert!(objects(&gcs, "wh/").await.is_empty());

    // A table: its files land in the bucket, and load-table vends a downscoped token.
    let (st, v) = get(&s, "/v1/config?warehouse=g1").await;
    assert_eq!(st, 200, "{v}");
    let p = v["overrides"]["prefix"].as_str().unwrap().to_string();
    let (st, v) = post(
        &s,
        &format!("/v1/{p}/namespaces"),
        json!({"namespace": ["ns"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &s,
        &format!("/v1/{p}/namespaces/ns/tables"),
        json!({"name": "t", "schema": schema()}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let loc = v["metadata"]["location"].as_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("gs://{BUCKET}/wh/")), "{loc}");
    assert!(
        v["metadata-location"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{loc}/metadata/")),
        "{v}"
    );
    assert_eq!(
        v["config"]["gcs.oauth2.token"]
            .as_str()
            .map(|t| t.starts_with("ya29.downscoped-")),
        Some(true),
        "{v}"
    );
    let creds = &v["storage-credentials"][0];
    assert_eq!(creds["prefix"], loc.as_str(), "{v}");
    assert_eq!(
        creds["config"]["gcs.oauth2.token"],
        v["config"]["gcs.oauth2.token"]
    );
    assert!(creds["config"]["gcs.oauth2.token-expires-at"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .is_ok());
    assert_eq!(creds["config"]["gcs.service.host"], gcs.endpoint.as_str());
    let key_prefix = loc
        .trim_start_matches(&format!("gs://{BUCKET}/"))
        .to_string();
    assert_eq!(
        objects(&gcs, &key_prefix).await.len(),
        1,
        "the first metadata file"
    );

    let (st, v) = get(&s, &format!("/v1/{p}/namespaces/ns/tables/t")).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["config"]["gcs.oauth2.token"].is_string(), "{v}");
    {
        let seen = google.seen.lock().unwrap();
        assert!(seen.errors.is_empty(), "{:?}", seen.errors);
        let last = seen.boundaries.last().expect("a token exchange");
        let rule = &last["accessBoundary"]["accessBoundaryRules"][0];
        assert_eq!(
            rule["availableResource"],
            format!("//storage.googleapis.com/projects/_/buckets/{BUCKET}")
        );
        // The admin may write: objectAdmin, limited to the table's prefix.
        assert_eq!(
            rule["availablePermissions"],
            json!(["inRole:roles/storage.objectAdmin"])
        );
        let expr = rule["availabilityCondition"]["expression"]
            .as_str()
            .unwrap();
        assert!(
            expr.starts_with(&format!(
                "resource.name.startsWith('projects/_/buckets/{BUCKET}/objects/{key_prefix}/')"
            )),
            "{expr}"
        );
    }

    // Table locations must be gs:// inside the warehouse.
    for (loc, words) in [
        (format!("s3://{BUCKET}/wh/ns/x"), vec!["s3://"]),
        (format!("gs://{BUCKET}/elsewhere/x"), vec!["gs://"]),
        (
            "gs://other-bucket/wh/ns/x".to_string(),
            vec!["gs://other-bucket"],
        ),
    ] {
        let (st, v) = s
            .post(
                &format!("/v1/{p}/namespaces/ns/tables"),
                json!({"name": "x", "schema": schema(), "location": loc}),
            )
            .await;
        assert_400(st, &v, &words);
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("location"), "names the field: {m}");
    }

    // Purge: dropping with purgeRequested deletes the table's objects from the bucket.
    let (st, _) = s
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/{p}/namespaces/ns/tables/t?purgeRequested=true"),
            None,
            VENDED,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !objects(&gcs, &key_prefix).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "purge left {:?}",
            objects(&gcs, &key_prefix).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Bad input, each answered 400 with the offending field named.
    let wh = |cred: Value| {
        warehouse(
            "bad",
            json!({"type": "gcs", "bucket": BUCKET, "key-prefix": "bad"}),
            cred,
        )
    };
    let (st, v) = post(
        &s,
        "/management/v1/warehouse",
        wh(json!({"type": "gcs", "credential-type": "hmac-key"})),
    )
    .await;
    assert_400(st, &v, &["hmac-key"]);
    let (st, v) = post(
        &s,
        "/management/v1/warehouse",
        wh(json!({"type": "gcs", "credential-type": "gcp-system-identity"})),
    )
    .await;
    assert_400(
        st,
        &v,
        &["gcp-system-identity", "enable_gcp_system_credentials"],
    );
    let mut bad = sa.clone();
    bad["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n");
    let (st, v) = post(
        &s,
        "/management/v1/warehouse",
        wh(json!({"type": "gcs", "credential-type": "service-account-key", "key": bad})),
    )
    .await;
    assert_400(st, &v, &["key.private_key"]);
    let mut bad = sa.clone();
    bad["type"] = json!("authorized_user");
    let (st, v) = post(
        &s,
        "/management/v1/warehouse",
        wh(json!({"type": "gcs", "credential-type": "service-account-key", "key": bad})),
    )
    .await;
    assert_400(st, &v, &["key.type"]);
    let mut bad = sa.clone();
    bad.as_object_mut().unwrap().remove("client_email");
    let (st, v) = post(
        &s,
        "/management/v1/warehouse",
        wh(json!({"type": "gcs", "credential-type": "service-account-key", "key": bad})),
    )
    .await;
    assert_400(st, &v, &["client_email"]);
    let (st, v) = post(
        &s,
        "/management/v1/warehouse",
        wh(json!({"type": "gcs", "credential-type": "service-account-key", "key": "{not json"})),
    )
    .await;
    assert_400(st, &v, &["key"]);
    // An S3 credential on a GCS profile.
    let (st, v) = s
        .post("/management/v1/warehouse", wh(json!({"type": "s3", "credential-type": "access-key", "aws-access-key-id": "A", "aws-secret-access-key": "S"})))
        .await;
    assert_400(st, &v, &["gcs", "s3"]);
    // Profile fields.
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            warehouse(
                "bad",
                json!({"type": "gcs", "bucket": "Not_A_Bucket"}),
                cred.clone(),
            ),
        )
        .await;
    assert_400(st, &v, &["bucket"]);
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            warehouse(
                "bad",
                json!({"type": "gcs", "bucket": BUCKET, "region": "x"}),
                cred.clone(),
            ),
        )
        .await;
    assert_400(st, &v, &["region"]);
    // Overlapping the first warehouse.
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            warehouse(
                "bad",
                json!({"type": "gcs", "bucket": BUCKET, "key-prefix": "wh/inner"}),
                cred.clone(),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    // A bucket that does not exist fails the probe.
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            warehouse(
                "bad",
                json!({"type": "gcs", "bucket": "no-such-bucket"}),
                cred.clone(),
            ),
        )
        .await;
    assert!(st.is_client_error(), "{st} {v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("write"),
        "{v}"
    );
}
