//! `azure-system-identity` through workload identity (the AKS environment variables) against
//! the Entra ID + Blob stand-in. In a file of its own because it sets process environment
//! variables, which must not leak into other tests.

use crate::common;

use common::entra::EntraStub;
use sluice_storage::adls::{AdlsProfile, AzCredential};
use sluice_storage::{AccessLevel, Storage, StorageCredential, StorageProfile, StorageSettings};

#[tokio::test]
async fn workload_identity_token_then_user_delegation_sas() {
    let stub = EntraStub::start("tenant-9", "acct1", "fs1").await;
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "federated-jwt-from-kubelet\n").unwrap();
    std::env::set_var("AZURE_FEDERATED_TOKEN_FILE", &token_file);
    std::env::set_var("AZURE_CLIENT_ID", "wi-client");
    std::env::set_var("AZURE_TENANT_ID", "tenant-9");
    std::env::set_var(
        "AZURE_AUTHORITY_HOST",
        format!("http://127.0.0.1:{}/", stub.port),
    );

    let mut p = AdlsProfile::new("acct1", "fs1");
    p.host = Some(format!("127.0.0.1:{}", stub.port));
    let profile = StorageProfile::Adls(p);
    let sys = StorageCredential::Az(AzCredential::AzureSystemIdentity {});
    let on = StorageSettings {
        enable_azure_system_credentials: true,
        ..StorageSettings::default()
    };
    let st = Storage::open_with(&profile, Some(&sys), &on).unwrap();
    let creds = st
        .vend(
            &format!("abfss://fs1@acct1.127.0.0.1:{}/ns/t", stub.port),
            AccessLevel::Read,
            "s",
        )
        .await
        .unwrap();
    let sas = &creds.config["adls.sas-token"];
    assert!(
        sas.contains("sr=d") && sas.contains("sdd=2") && sas.contains("skoid=oid-1"),
        "{sas}"
    );

    let seen = stub.seen.lock().unwrap();
    assert_eq!(seen.token_forms.len(), 1);
    let f = &seen.token_forms[0];
    assert_eq!(f["grant_type"], "client_credentials");
    assert_eq!(f["client_id"], "wi-client");
    assert_eq!(f["client_assertion"], "federated-jwt-from-kubelet");
    assert_eq!(
        f["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(f["scope"], "https://storage.azure.com/.default");
    assert!(!f.contains_key("client_secret"));
}
