//! `cloudflare-r2` credentials: storage access with the token's S3 key pair (against
//! s3s-fs, which verifies SigV4) and vending through a local stub of Cloudflare's
//! temp-access-credentials endpoint.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::s3s_fs::{self, S3sFs};
use serde_json::{json, Value};
use sluice_core::Secret;
use sluice_storage::s3::{vended_config, AccessLevel};
use sluice_storage::{
    S3Credential, S3Flavor, S3Profile, Storage, StorageCredential, StorageError, StorageProfile,
    StorageSettings, ValidationContext,
};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "cf-api-token-very-secret";
const BUCKET: &str = "warehouse";

/// What the stub saw: (account id from the path, Authorization header, JSON body).
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// Cloudflare's endpoint as documented: bearer token checked, credentials answered. Account
/// "broken" answers like a misbehaving proxy (HTML 502).
async fn temp_credentials(
    State(seen): State<Seen>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.lock()
        .unwrap()
        .push((account.clone(), auth.clone(), body.clone()));
    if account == "broken" {
        return (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>".into());
    }
    if auth != format!("Bearer {TOKEN}") {
        let err = json!({"success": false, "result": null, "messages": [],
            "errors": [{"code": 10000, "message": "Authentication error"}]});
        return (StatusCode::FORBIDDEN, err.to_string());
    }
    if body["bucket"] != BUCKET {
        // Cloudflare answers some failures with HTTP 200 and success: false.
        let err = json!({"success": false, "result": null,
            "errors": [{"code": 10006, "message": "The specified bucket does not exist."}]});
        return (StatusCode::OK, err.to_string());
    }
    let ok = json!({"success": true, "errors": [], "messages": [], "result": {
        "accessKeyId": format!("tmp-{}", body["permission"].as_str().unwrap_or("?")),
        "secretAccessKey": "tmp-secret-value",
        "sessionToken": "tmp-session-token"
    }});
    (StatusCode::OK, ok.to_string())
}

/// Starts the stub on an ephemeral port; returns its base URL and what it records.
async fn stub() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/client/v4/accounts/{account}/r2/temp-access-credentials",
            post(temp_credentials),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn r2_cred(account: &str, token: &str, key: &str, secret: &str) -> StorageCredential {
    StorageCredential::S3(S3Credential::CloudflareR2 {
        account_id: account.into(),
        token: Secret::new(token),
        access_key_id: key.into(),
        secret_access_key: Secret::new(secret),
    })
}

/// An R2-style profile: s3-compat, region `auto`, the store at `endpoint`.
fn r2_profile(endpoint: &str, bucket: &str) -> StorageProfile {
    let mut p = S3Profile::new(bucket, "auto");
    p.key_prefix = Some("wh".into());
    p.flavor = S3Flavor::S3Compat;
    p.endpoint = Some(endpoint.into());
    p.path_style_access = true;
    p.sts_enabled = true;
    p.sts_token_validity_seconds = 900;
    StorageProfile::S3(p)
}

fn open(p: &StorageProfile, cred: &StorageCredential, api_base: &str) -> Storage {
    p.validate(&ValidationContext::default()).unwrap();
    p.validate_credential(Some(cred), &ValidationContext::default())
        .unwrap();
    let settings = StorageSettings {
        cloudflare_api_base: Some(api_base.to_string()),
        ..StorageSettings::default()
    };
    Storage::open_with(p, Some(cred), &settings).unwrap()
}

#[tokio::test]
async fn vending_through_the_cloudflare_api() {
    let (api, seen) = stub().await;
    let p = r2_profile("http://127.0.0.1:9", BUCKET);
    let cred = r2_cred(ACCOUNT, TOKEN, "parent-key-id", "parent-secret");
    let st = open(&p, &cred, &api);

    let before = chrono::Utc::now();
    let ro = st
        .vend_credentials("s3://warehouse/wh/ns/t/", AccessLevel::Read, "alice")
        .await
        .unwrap();
    assert_eq!(ro.access_key_id, "tmp-object-read-only");
    assert_eq!(ro.secret_access_key.expose(), "tmp-secret-value");
    assert_eq!(ro.session_token.expose(), "tmp-session-token");
    let ahead = (ro.expiration - before).num_seconds();
    assert!((895..=900).contains(&ahead), "expires {ahead}s ahead");
    assert!(!format!("{ro:?}").contains("tmp-secret-value"));

    let rw = st
        .vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::ReadWrite, "alice")
        .await
        .unwrap();
    assert_eq!(rw.access_key_id, "tmp-object-read-write");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for ((account, auth, body), permission) in
        seen.iter().zip(["object-read-only", "object-read-write"])
    {
        assert_eq!(account, ACCOUNT);
        assert_eq!(auth, &format!("Bearer {TOKEN}"));
        assert_eq!(
            body,
            &json!({
                "bucket": BUCKET,
                "parentAccessKeyId": "parent-key-id",
                "permission": permission,
                "ttlSeconds": 900,
                "prefixes": ["wh/ns/t/"],
            })
        );
    }

    // The client config points at the R2 endpoint, region auto.
    let StorageProfile::S3(s3p) = &p else {
        unreachable!()
    };
    let cfg = vended_config(s3p, &ro);
    assert_eq!(cfg["s3.region"], "auto");
    assert_eq!(cfg["s3.endpoint"], "http://127.0.0.1:9");
    assert_eq!(cfg["s3.session-token"], "tmp-session-token");
}

#[tokio::test]
async fn cloudflare_errors() {
    let (api, _seen) = stub().await;
    let vend = |st: Storage| async move {
        st.vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::Read, "x")
            .await
            .unwrap_err()
    };
    let p = r2_profile("http://127.0.0.1:9", BUCKET);

    // A wrong token: Cloudflare's error, never the token.
    let wrong = "wrong-token-value";
    let e = vend(open(&p, &r2_cred(ACCOUNT, wrong, "k", "s"), &api)).await;
    assert!(
        matches!(&e, StorageError::Sts(m) if m.contains("HTTP 403")
            && m.contains("10000: Authentication error")
            && !m.contains(wrong)),
        "{e}"
    );

    // success: false with HTTP 200.
    let other = r2_profile("http://127.0.0.1:9", "other-bucket");
    let e = open(&other, &r2_cred(ACCOUNT, TOKEN, "k", "s"), &api)
        .vend_credentials("s3://other-bucket/wh/ns/t", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::Sts(m) if m.contains("The specified bucket does not exist")),
        "{e}"
    );

    // Not JSON at all.
    let e = vend(open(&p, &r2_cred("broken", TOKEN, "k", "s"), &api)).await;
    assert!(
        matches!(&e, StorageError::Sts(m) if m.contains("HTTP 502") && m.contains("JSON")),
        "{e}"
    );

    // Nobody listening.
    let dead = format!("http://127.0.0.1:{}", s3s_fs::free_port());
    let e = vend(open(&p, &r2_cred(ACCOUNT, TOKEN, "k", "s"), &dead)).await;
    assert!(
        matches!(&e, StorageError::Sts(m) if m.contains("Cloudflare API")),
        "{e}"
    );

    // STS disabled on the profile: nothing is asked.
    let StorageProfile::S3(mut s) = p.clone() else {
        unreachable!()
    };
    s.sts_enabled = false;
    let e = vend(open(
        &StorageProfile::S3(s),
        &r2_cred(ACCOUNT, TOKEN, "k", "s"),
        &api,
    ))
    .await;
    assert!(matches!(e, StorageError::Invalid(_)), "{e}");

    // The bucket root is never vended.
    let e = open(&p, &r2_cred(ACCOUNT, TOKEN, "k", "s"), &api)
        .vend_credentials("s3://warehouse", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::Invalid(_) | StorageError::NotInWarehouse(_)
        ),
        "{e}"
    );
}

/// Storage access and remote signing use the R2 token's S3 key pair, region `auto`.
#[tokio::test]
async fn storage_access_with_the_r2_key_pair() {
    let s3 = S3sFs::start(&[BUCKET]);
    let p = r2_profile(&s3.endpoint, BUCKET);
    let cred = r2_cred(ACCOUNT, TOKEN, s3s_fs::ACCESS_KEY, s3s_fs::SECRET_KEY);
    let st = open(&p, &cred, "http://127.0.0.1:9");
    st.probe().await.unwrap();

    let signed = st
        .sign(&sluice_storage::s3::SignRequest {
            method: "PUT".into(),
            region: "auto".into(),
            uri: format!("{}/{BUCKET}/wh/ns/t/x", s3.endpoint),
            headers: Default::default(),
            body: None,
        })
        .await
        .unwrap();
    assert!(!signed.headers.contains_key("x-amz-security-token"));
    assert!(signed.headers["authorization"][0].contains("/auto/s3/aws4_request"));
    let mut put = reqwest::Client::new().put(&signed.uri).body("x");
    for (k, v) in &signed.headers {
        put = put.header(k, &v[0]);
    }
    assert_eq!(put.send().await.unwrap().status().as_u16(), 200);
    assert!(s3.data_dir.join(BUCKET).join("wh/ns/t/x").is_file());

    // A wrong secret is the store's to refuse.
    let bad = r2_cred(ACCOUNT, TOKEN, s3s_fs::ACCESS_KEY, "not-the-secret");
    let e = open(&p, &bad, "http://127.0.0.1:9")
        .probe()
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::Probe { .. }), "{e}");
}
