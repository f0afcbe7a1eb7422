//! `gcp-system-identity`: refused unless the server enables it (on create and on open), and
//! when enabled, the server's application-default credentials — a service-account key file
//! named by `GOOGLE_APPLICATION_CREDENTIALS`, or the metadata server — back both object
//! access (fake-gcs-server) and vending (the STS stand-in). One test only: it changes the
//! process environment.

use crate::common;

use bytes::Bytes;
use common::gcs_peers::{FakeGcs, GoogleStandIn, TestKey};
use serde_json::json;
use sluice_storage::{
    AccessLevel, GcsProfile, Storage, StorageCredential, StorageError, StorageProfile,
    StorageSettings, ValidationContext,
};

const BUCKET: &str = "sys-bucket";

#[tokio::test]
async fn system_identity_only_when_enabled() {
    let cred: StorageCredential =
        serde_json::from_value(json!({"type": "gcs", "credential-type": "gcp-system-identity"}))
            .unwrap();
    assert_eq!(cred.credential_type(), "gcp-system-identity");
    assert_eq!(
        serde_json::to_value(&cred).unwrap(),
        json!({"type": "gcs", "credential-type": "gcp-system-identity"})
    );
    let profile = StorageProfile::Gcs(GcsProfile::new(BUCKET, Some("wh")));

    // Off by default: refused on create and on open, naming the switch.
    let off = ValidationContext::default();
    let e = profile
        .validate_credential(Some(&cred), &off)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gcp-system-identity") && e.contains("enable_gcp_system_credentials"),
        "{e}"
    );
    let e = Storage::open_with(&profile, Some(&cred), &StorageSettings::default()).unwrap_err();
    assert!(
        matches!(&e, StorageError::Invalid(m) if m.contains("enable_gcp_system_credentials")),
        "{e}"
    );
    let e = profile
        .validate_credential(None, &off)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("service-account-key") && !e.contains("gcp-system-identity"),
        "{e}"
    );

    let on = ValidationContext {
        settings: StorageSettings {
            enable_gcp_system_credentials: true,
            ..StorageSettings::default()
        },
        ..ValidationContext::default()
    };
    profile.validate_credential(Some(&cred), &on).unwrap();

    let gcs = FakeGcs::start(&[BUCKET]);
    let key = TestKey::generate();
    let google = GoogleStandIn::start(&key).await;
    let settings = StorageSettings {
        enable_gcp_system_credentials: true,
        gcs_sts_endpoint: Some(google.sts_endpoint.clone()),
        gcs_endpoint: Some(gcs.endpoint.clone()),
        ..StorageSettings::default()
    };
    let tmp = tempfile::tempdir().unwrap();

    // 1. GOOGLE_APPLICATION_CREDENTIALS names a service-account key file.
    let key_file = tmp.path().join("adc.json");
    std::fs::write(
        &key_file,
        key.service_account_json(&google.token_uri).to_string(),
    )
    .unwrap();
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &key_file);
    let st = Storage::open_with(&profile, Some(&cred), &settings).unwrap();
    st.probe().await.unwrap();
    let loc = format!("gs://{BUCKET}/wh/ns/t/metadata/v1.json");
    st.write_new(&loc, Bytes::from_static(b"{}")).await.unwrap();
    let vended = st
        .vend("gs://sys-bucket/wh/ns/t", AccessLevel::Read, "alice")
        .await
        .unwrap();
    assert!(vended.config["gcs.oauth2.token"].starts_with("ya29.downscoped-"));
    // The project is not known for the system identity.
    assert!(!vended.config.contains_key("gcs.project-id"));
    {
        let seen = google.seen.lock().unwrap();
        assert!(seen.errors.is_empty(), "{:?}", seen.errors);
        assert_eq!(
            seen.assertions.len(),
            1,
            "the key file's assertion was verified"
        );
        assert_eq!(seen.subject_tokens, vec!["ya29.source-1"]);
    }

    // 2. No key file anywhere: the metadata server (GCE_METADATA_HOST) answers.
    std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
    std::env::set_var("HOME", tmp.path());
    std::env::set_var(
        "GCE_METADATA_HOST",
        google.base.trim_start_matches("http://"),
    );
    let st = Storage::open_with(&profile, Some(&cred), &settings).unwrap();
    assert_eq!(st.read(&loc).await.unwrap(), Bytes::from_static(b"{}"));
    st.vend("gs://sys-bucket/wh/ns/t", AccessLevel::ReadWrite, "bob")
        .await
        .unwrap();
    let seen = google.seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    assert_eq!(seen.metadata_requests, 1, "one metadata token, cached");
    assert_eq!(
        seen.subject_tokens.last().map(String::as_str),
        Some("ya29.source-metadata")
    );
}
