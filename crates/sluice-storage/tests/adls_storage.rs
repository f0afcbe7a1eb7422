//! ADLS storage against a real Azurite (Blob emulator, Shared Key and SAS enforced), and the
//! Entra ID / user-delegation path against a local stand-in.
//!
//! Azurite has no hierarchical namespace, so it cannot issue or check directory SAS tokens
//! (`sr=d`): here vending needs `allow-container-wide-sas`, and a SAS for table A can still
//! reach table B (that is the reason vending refuses such accounts by default). Directory
//! SAS strings are covered by the signature vectors in `src/adls/sas.rs`, and the choice of
//! `sr=d` on HNS accounts by `user_delegation_path_against_a_stand_in` below.

use crate::common;

use bytes::Bytes;
use common::azurite::{self, Azurite};
use common::entra::EntraStub;
use sluice_core::Secret;
use sluice_storage::adls::sas::{SasKey, SasRequest, SasScope};
use sluice_storage::adls::{AdlsProfile, AzCredential};
use sluice_storage::{
    AccessLevel, ProbeStep, Storage, StorageCredential, StorageError, StorageProfile,
    StorageSettings, ValidationContext,
};

const FS: &str = "warehouse";

fn profile(az: &Azurite, prefix: &str) -> AdlsProfile {
    let mut p = AdlsProfile::new(azurite::ACCOUNT, FS);
    p.key_prefix = Some(prefix.into());
    p.host = Some(az.host.clone());
    p
}

fn key(k: &str) -> StorageCredential {
    StorageCredential::Az(AzCredential::SharedAccessKey {
        key: Secret::new(k),
    })
}

#[tokio::test]
async fn probe_round_trip_and_purge() {
    let az = Azurite::start(&[FS]).await;
    let p = StorageProfile::Adls(profile(&az, "wh1"));
    let ctx = ValidationContext::default();
    p.validate(&ctx).unwrap();
    p.validate_credential(Some(&key(azurite::KEY)), &ctx)
        .unwrap();
    let st = Storage::open(&p, Some(&key(azurite::KEY))).unwrap();
    let base = format!("abfss://{FS}@{}.{}/wh1", azurite::ACCOUNT, az.host);
    assert_eq!(st.base_location(), base);
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
    assert!(matches!(
        st.write_new(&meta, Bytes::from_static(b"two")).await,
        Err(StorageError::AlreadyExists(_))
    ));
    assert_eq!(st.read(&meta).await.unwrap(), Bytes::from_static(b"one"));
    st.write(
        &format!("{base}/ns/t/data/a.parquet"),
        Bytes::from_static(b"x"),
    )
    .await
    .unwrap();
    st.write(
        &format!("{base}/ns/t10/data/b.parquet"),
        Bytes::from_static(b"x"),
    )
    .await
    .unwrap();
    assert_eq!(
        st.list_prefix(&format!("{base}/ns/t")).await.unwrap(),
        vec![format!("{base}/ns/t/data/a.parquet"), meta.clone()]
    );
    // Purge: everything under the table, nothing of its sibling.
    assert_eq!(st.delete_prefix(&format!("{base}/ns/t")).await.unwrap(), 2);
    assert!(st
        .list_prefix(&format!("{base}/ns/t"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        st.list_prefix(&format!("{base}/ns")).await.unwrap().len(),
        1
    );

    // Outside the warehouse, other schemes.
    assert!(matches!(
        st.read(&format!(
            "abfss://{FS}@{}.{}/wh2/x",
            azurite::ACCOUNT,
            az.host
        ))
        .await,
        Err(StorageError::NotInWarehouse(_))
    ));
    assert!(matches!(
        st.read("s3://warehouse/wh1/x").await,
        Err(StorageError::NotInWarehouse(_))
    ));
}

#[tokio::test]
async fn probe_names_the_failing_step() {
    let az = Azurite::start(&[FS]).await;
    let p = StorageProfile::Adls(profile(&az, "wh"));
    // A well-formed key that is not the account's.
    let wrong = key(
        "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    );
    let e = Storage::open(&p, Some(&wrong))
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::Probe { step: ProbeStep::Write, message, .. } if message.contains("403")),
        "{e}"
    );
    // A filesystem that does not exist.
    let mut missing = profile(&az, "wh");
    missing.filesystem = "nosuchfs".into();
    let e = Storage::open(&StorageProfile::Adls(missing), Some(&key(azurite::KEY)))
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            StorageError::Probe {
                step: ProbeStep::Write,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn system_identity_only_when_enabled() {
    let p = StorageProfile::Adls(AdlsProfile::new("acct1", "fs1"));
    let sys = StorageCredential::Az(AzCredential::AzureSystemIdentity {});
    let e = Storage::open(&p, Some(&sys)).unwrap_err();
    assert!(
        matches!(&e, StorageError::Invalid(m) if m.contains("enable_azure_system_credentials")),
        "{e}"
    );
    let on = StorageSettings {
        enable_azure_system_credentials: true,
        ..StorageSettings::default()
    };
    Storage::open_with(&p, Some(&sys), &on).unwrap();
    let ctx = ValidationContext::default();
    assert!(p.validate_credential(Some(&sys), &ctx).is_err());
    // Wrong cloud's credential, none at all.
    let s3 = StorageCredential::s3_access_key("AK", Secret::new("s"));
    assert!(
        matches!(p.validate_credential(Some(&s3), &ctx), Err(StorageError::Invalid(m)) if m.contains("az"))
    );
    assert!(p.validate_credential(None, &ctx).is_err());
}

/// A blob PUT / GET with a SAS query, as a SAS-holding client does it.
async fn put(url: &str, sas: &str) -> u16 {
    reqwest::Client::new()
        .put(format!("{url}?{sas}"))
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-version", "2021-08-06")
        .body("data")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
async fn get(url: &str, sas: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}?{sas}"))
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn vended_sas_against_azurite() {
    let az = Azurite::start(&[FS]).await;
    let table = format!("abfss://{FS}@{}.{}/wh/ns/t", azurite::ACCOUNT, az.host);
    let blob = format!("{}/{FS}/wh/ns/t/data/a.parquet", az.blob_endpoint);
    let sas_key = format!("adls.sas-token.{}.{}", azurite::ACCOUNT, az.host);

    // Azurite has no hierarchical namespace: without the opt-in, no container-wide SAS.
    let strict = Storage::open(
        &StorageProfile::Adls(profile(&az, "wh")),
        Some(&key(azurite::KEY)),
    )
    .unwrap();
    let e = strict
        .vend(&table, AccessLevel::ReadWrite, "s")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::Invalid(m) if m.contains("allow-container-wide-sas") && m.contains("hierarchical namespace")),
        "{e}"
    );

    let mut p = profile(&az, "wh");
    p.allow_container_wide_sas = true;
    p.sas_token_validity_seconds = 600;
    let st = Storage::open(&StorageProfile::Adls(p), Some(&key(azurite::KEY))).unwrap();
    let rw = st.vend(&table, AccessLevel::ReadWrite, "s").await.unwrap();
    let c = &rw.config;
    let sas = &c[&sas_key];
    assert_eq!(&c["adls.sas-token"], sas);
    assert_eq!(c["adls.account-name"], azurite::ACCOUNT);
    assert!(sas.contains("sr=c") && sas.contains("sp=racwdl"), "{sas}");
    assert!(!sas.contains(azurite::KEY) && !c.values().any(|v| v.contains(azurite::KEY)));
    let exp_ms: i64 = c[&format!(
        "adls.sas-token-expires-at-ms.{}.{}",
        azurite::ACCOUNT,
        az.host
    )]
        .parse()
        .unwrap();
    assert_eq!(exp_ms, rw.expiration.timestamp_millis());
    let left = rw.expiration - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(500) && left <= chrono::Duration::seconds(600));
    assert!(c["adls.connection-string"].contains(&format!("BlobEndpoint={}", az.blob_endpoint)));
    assert_eq!(put(&blob, sas).await, 201);
    assert_eq!(get(&blob, sas).await, 200);

    // Read-only: reads work, writes are refused by Azurite.
    let ro = st.vend(&table, AccessLevel::Read, "s").await.unwrap();
    let ro_sas = &ro.config[&sas_key];
    assert!(ro_sas.contains("sp=rl"), "{ro_sas}");
    assert_eq!(get(&blob, ro_sas).await, 200);
    assert_eq!(put(&blob, ro_sas).await, 403);

    // Expired: refused.
    let now = chrono::Utc::now();
    let expired = SasRequest {
        account: azurite::ACCOUNT,
        container: FS,
        scope: SasScope::Container,
        permissions: "rl",
        start: Some(now - chrono::Duration::hours(2)),
        expiry: now - chrono::Duration::minutes(1),
        protocol: None,
    }
    .sign(&SasKey::Account(azurite::KEY))
    .unwrap();
    assert_eq!(get(&blob, &expired).await, 403);
    // Tampered signature: refused.
    let tampered = sas.replacen("sig=", "sig=AAAA", 1);
    assert_eq!(get(&blob, &tampered).await, 403);

    // Locations outside the warehouse get nothing.
    assert!(matches!(
        st.vend(
            &format!("abfss://{FS}@{}.{}/other/t", azurite::ACCOUNT, az.host),
            AccessLevel::Read,
            "s"
        )
        .await,
        Err(StorageError::NotInWarehouse(_))
    ));
}

/// Entra ID client credentials → token → Get Account Information (HNS) → Get User
/// Delegation Key → directory SAS, against a local stand-in for Entra ID and the Blob
/// service that checks each request. (Azurite could issue user-delegation keys only over
/// HTTPS with `--oauth basic`, and never with a hierarchical namespace.)
#[tokio::test]
async fn user_delegation_path_against_a_stand_in() {
    let stub = EntraStub::start("tenant-1", "acct1", "fs1").await;
    let port = stub.port;
    let mut p = AdlsProfile::new("acct1", "fs1");
    p.host = Some(format!("127.0.0.1:{port}"));
    p.authority_host = Some(format!("http://127.0.0.1:{port}"));
    p.key_prefix = Some("wh".into());
    let cred = StorageCredential::Az(AzCredential::ClientCredentials {
        client_id: "app-1".into(),
        client_secret: Secret::new("app-secret"),
        tenant_id: "tenant-1".into(),
    });
    let st = Storage::open(&StorageProfile::Adls(p), Some(&cred)).unwrap();
    let table = format!("abfss://fs1@acct1.127.0.0.1:{port}/wh/ns/t");
    let ro = st.vend(&table, AccessLevel::Read, "s").await.unwrap();
    let sas = &ro.config["adls.sas-token"];
    for part in [
        "sr=d",
        "sdd=3",
        "sp=rl",
        "skoid=oid-1",
        "sktid=tid-1",
        "sks=b",
        "skv=2021-08-06",
        "sig=",
    ] {
        assert!(sas.contains(part), "{part} missing in {sas}");
    }
    assert!(
        !sas.contains("dWRr"),
        "the delegation key never leaves the server"
    );
    let rw = st.vend(&table, AccessLevel::ReadWrite, "s").await.unwrap();
    assert!(rw.config["adls.sas-token"].contains("sp=racwdl"));

    let seen = stub.seen.lock().unwrap();
    // One token for both vends (cached), one account-information call (cached).
    assert_eq!(seen.token_forms.len(), 1);
    let f = &seen.token_forms[0];
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_id"], "app-1");
    assert_eq!(f["client_secret"], "app-secret");
    assert_eq!(f["scope"], "https://storage.azure.com/.default");
    assert_eq!(seen.hns_calls, 1);
    assert_eq!(seen.udk_bodies.len(), 2);
    assert!(
        seen.udk_bodies[0].contains("<KeyInfo><Start>")
            && seen.udk_bodies[0].contains("</Expiry></KeyInfo>")
    );
}
