//! GCS warehouses against a real fake-gcs-server (object access, conditional create,
//! purge, the validation probe) and a local stand-in for Google's token endpoint and STS
//! (the service account's JWT-bearer grant and the downscoping token exchange, whose
//! Credential Access Boundary is asserted here). fake-gcs-server does not check tokens.

use crate::common;

use bytes::Bytes;
use common::gcs_peers::{FakeGcs, GoogleStandIn, TestKey, SA_EMAIL};
use serde_json::{json, Value};
use sluice_storage::{
    AccessLevel, GcsProfile, Storage, StorageCredential, StorageError, StorageProfile,
    StorageSettings, ValidationContext,
};

const BUCKET: &str = "lake-bucket";

fn credential(key: &TestKey, token_uri: &str) -> StorageCredential {
    serde_json::from_value(json!({
        "type": "gcs", "credential-type": "service-account-key",
        "key": key.service_account_json(token_uri)
    }))
    .unwrap()
}

fn settings(gcs: &FakeGcs, google: &GoogleStandIn) -> StorageSettings {
    StorageSettings {
        gcs_sts_endpoint: Some(google.sts_endpoint.clone()),
        gcs_endpoint: Some(gcs.endpoint.clone()),
        ..StorageSettings::default()
    }
}

fn profile(prefix: Option<&str>) -> StorageProfile {
    StorageProfile::Gcs(GcsProfile::new(BUCKET, prefix))
}

#[tokio::test]
async fn round_trip_probe_and_purge() {
    let gcs = FakeGcs::start(&[BUCKET]);
    let key = TestKey::generate();
    let google = GoogleStandIn::start(&key).await;
    let cred = credential(&key, &google.token_uri);
    let p = profile(Some("wh"));
    p.validate(&ValidationContext::default()).unwrap();
    p.validate_credential(Some(&cred), &ValidationContext::default())
        .unwrap();
    let st = Storage::open_with(&p, Some(&cred), &settings(&gcs, &google)).unwrap();
    let base = st.base_location().to_string();
    assert_eq!(base, format!("gs://{BUCKET}/wh"));

    st.probe().await.unwrap();

    let meta = format!("{base}/ns/t/metadata/00001.metadata.json");
    assert!(!st.exists(&meta).await.unwrap());
    assert!(matches!(
        st.read(&meta).await,
        Err(StorageError::NotFound(_))
    ));
    st.write_new(&meta, Bytes::from_static(b"one"))
        .await
        .unwrap();
    // The commit path: a second create of the same object must fail (ifGenerationMatch=0).
    let e = st
        .write_new(&meta, Bytes::from_static(b"two"))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::AlreadyExists(_)), "{e}");
    assert_eq!(st.read(&meta).await.unwrap(), Bytes::from_static(b"one"));
    st.write(&meta, Bytes::from_static(b"three")).await.unwrap();
    assert_eq!(st.read(&meta).await.unwrap(), Bytes::from_static(b"three"));
    st.write(
        &format!("{base}/ns/t/data/a.parquet"),
        Bytes::from_static(b"x"),
    )
    .await
    .unwrap();
    st.write(
        &format!("{base}/ns/t10/data/b.parquet"),
        Bytes::from_static(b"y"),
    )
    .await
    .unwrap();

    assert_eq!(
        st.list_prefix(&format!("{base}/ns/t")).await.unwrap(),
        vec![format!("{base}/ns/t/data/a.parquet"), meta.clone()]
    );
    assert_eq!(st.delete_prefix(&format!("{base}/ns/t")).await.unwrap(), 2);
    assert!(!st.exists(&meta).await.unwrap());
    assert!(
        st.exists(&format!("{base}/ns/t10/data/b.parquet"))
            .await
            .unwrap(),
        "t10 is not under t"
    );
    st.delete(&format!("{base}/ns/t10/data/b.parquet"))
        .await
        .unwrap();
    st.delete(&format!("{base}/ns/t10/data/b.parquet"))
        .await
        .unwrap();

    // Outside the warehouse, whatever the scheme.
    for outside in [
        format!("gs://{BUCKET}/wh2/x"),
        "gs://other-bucket/wh/x".to_string(),
        format!("s3://{BUCKET}/wh/x"),
    ] {
        assert!(
            matches!(
                st.read(&outside).await,
                Err(StorageError::NotInWarehouse(_))
            ),
            "{outside}"
        );
    }

    // One JWT-bearer grant served every request above: the token is cached.
    let seen = google.seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    assert_eq!(seen.assertions.len(), 1);
    let a = &seen.assertions[0];
    assert_eq!(a["iss"], SA_EMAIL);
    assert_eq!(a["aud"], google.token_uri.as_str());
    assert_eq!(a["scope"], "https://www.googleapis.com/auth/cloud-platform");
}

fn rule(boundary: &Value) -> &Value {
    let rules = boundary["accessBoundary"]["accessBoundaryRules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 1, "{boundary}");
    &rules[0]
}

#[tokio::test]
async fn vending_sends_a_table_scoped_boundary() {
    let gcs = FakeGcs::start(&[BUCKET]);
    let key = TestKey::generate();
    let google = GoogleStandIn::start(&key).await;
    let cred = credential(&key, &google.token_uri);
    let p = profile(Some("wh"));
    assert!(p.vends_credentials());
    assert!(p
        .remote_signing_config(sluice_storage::SignerEndpoint {
            uri: "http://h",
            endpoint: "x"
        })
        .is_none());
    let st = Storage::open_with(&p, Some(&cred), &settings(&gcs, &google)).unwrap();
    let table = format!("gs://{BUCKET}/wh/ns/orders");

    let before = chrono::Utc::now();
    let read = st.vend(&table, AccessLevel::Read, "alice").await.unwrap();
    let write = st
        .vend(&format!("{table}/"), AccessLevel::ReadWrite, "bob")
        .await
        .unwrap();

    assert_eq!(read.config["gcs.oauth2.token"], "ya29.downscoped-1");
    assert_eq!(write.config["gcs.oauth2.token"], "ya29.downscoped-2");
    for c in [&read, &write] {
        let ms: i64 = c.config["gcs.oauth2.token-expires-at"].parse().unwrap();
        assert_eq!(ms, c.expiration.timestamp_millis());
        // The stand-in answers expires_in 1800 (less than the source token's hour).
        let secs = (c.expiration - before).num_seconds();
        assert!((1790..=1810).contains(&secs), "{secs}");
        assert_eq!(c.config["gcs.project-id"], "sluice-test");
        assert_eq!(c.config["gcs.service.host"], gcs.endpoint);
        assert!(!format!("{c:?}").contains("ya29"), "Debug hides the token");
    }

    {
        let seen = google.seen.lock().unwrap();
        assert!(seen.errors.is_empty(), "{:?}", seen.errors);
        assert_eq!(seen.boundaries.len(), 2);
        // Both exchanges used the one cached source token.
        assert_eq!(seen.subject_tokens, vec!["ya29.source-1", "ya29.source-1"]);
        let expected_expr = format!(
            "resource.name.startsWith('projects/_/buckets/{BUCKET}/objects/wh/ns/orders/') || \
             api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('wh/ns/orders/')"
        );
        for (boundary, role) in seen.boundaries.iter().zip([
            "inRole:roles/storage.objectViewer",
            "inRole:roles/storage.objectAdmin",
        ]) {
            let r = rule(boundary);
            assert_eq!(
                r["availableResource"],
                format!("//storage.googleapis.com/projects/_/buckets/{BUCKET}")
            );
            assert_eq!(r["availablePermissions"], json!([role]));
            assert_eq!(
                r["availabilityCondition"]["expression"],
                expected_expr.as_str()
            );
        }
    }

    // Nothing is asked of STS for a location that is not a table in this bucket.
    for bad in [
        format!("gs://{BUCKET}"),
        "gs://other-bucket/wh/t".into(),
        format!("s3://{BUCKET}/wh/t"),
    ] {
        let e = st.vend(&bad, AccessLevel::Read, "x").await.unwrap_err();
        assert!(matches!(e, StorageError::Invalid(_)), "{bad}: {e}");
    }
    assert_eq!(google.seen.lock().unwrap().boundaries.len(), 2);
}

#[tokio::test]
async fn token_and_sts_failures_are_reported() {
    let gcs = FakeGcs::start(&[BUCKET]);
    let key = TestKey::generate();
    let google = GoogleStandIn::start(&key).await;
    // A key the token endpoint does not know: its assertion fails verification.
    let other = TestKey::generate();
    let cred = credential(&other, &google.token_uri);
    let st = Storage::open_with(&profile(None), Some(&cred), &settings(&gcs, &google)).unwrap();
    let e = st
        .vend(&format!("gs://{BUCKET}/t"), AccessLevel::Read, "x")
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(
        matches!(e, StorageError::Sts(_)) && m.contains("invalid_grant"),
        "{m}"
    );
    assert!(!m.contains("PRIVATE KEY"), "{m}");
    // The validation probe fails at its first step with the token error.
    let e = st.probe().await.unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::Probe {
                step: sluice_storage::ProbeStep::Write,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("invalid_grant"), "{e}");

    // An STS endpoint that is not there.
    let cred = credential(&key, &google.token_uri);
    let mut s = settings(&gcs, &google);
    s.gcs_sts_endpoint = Some(format!("{}/nowhere", google.base));
    let st = Storage::open_with(&profile(None), Some(&cred), &s).unwrap();
    let e = st
        .vend(&format!("gs://{BUCKET}/t"), AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(e, StorageError::Sts(ref m) if m.contains("404")),
        "{e}"
    );
}

#[test]
fn credential_validation_names_the_field() {
    let key = TestKey::generate();
    let good = key.service_account_json("https://oauth2.googleapis.com/token");
    let check = |f: &dyn Fn(&mut Value)| -> String {
        let mut k = good.clone();
        f(&mut k);
        let v = json!({"type": "gcs", "credential-type": "service-account-key", "key": k});
        match serde_json::from_value::<StorageCredential>(v) {
            Err(e) => e.to_string(),
            Ok(c) => {
                match profile(None).validate_credential(Some(&c), &ValidationContext::default()) {
                    Ok(()) => String::new(),
                    Err(e) => e.to_string(),
                }
            }
        }
    };
    assert_eq!(check(&|_| {}), "");
    assert!(check(&|k| k["type"] = json!("authorized_user")).contains("key.type"));
    assert!(check(&|k| k["client_email"] = json!("")).contains("key.client_email"));
    assert!(check(&|k| k["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
    .contains("key.private_key"));
    assert!(check(&|k| k["private_key"] = json!("not a key")).contains("key.private_key"));
    assert!(
        check(&|k| k["token_uri"] = json!("http://evil.example.com/token"))
            .contains("key.token_uri")
    );
    assert_eq!(
        check(&|k| k["token_uri"] = json!("http://127.0.0.1:1/token")),
        ""
    );
    assert!(check(&|k| {
        k.as_object_mut().unwrap().remove("private_key");
    })
    .contains("private_key"));

    // The private key never shows in Debug; the at-rest serialization keeps it.
    let c: StorageCredential = serde_json::from_value(
        json!({"type": "gcs", "credential-type": "service-account-key", "key": good}),
    )
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("PRIVATE KEY") && dbg.contains(SA_EMAIL),
        "{dbg}"
    );
    let back = serde_json::to_value(&c).unwrap();
    assert_eq!(back["key"]["private_key"], key.private_pem.as_str());
    assert_eq!(c.credential_type(), "service-account-key");
}
