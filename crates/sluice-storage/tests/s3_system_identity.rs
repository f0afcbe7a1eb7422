//! `aws-system-identity` against moto: the server's own credentials come from the process
//! environment (the AWS default chain), the profile's `assume-role-arn` is assumed with the
//! external id, and object access, remote signing and vending all run as that role.
//!
//! In its own test binary because it sets process-wide `AWS_*` environment variables
//! (`cargo test` runs the tests of one binary as threads of one process).

use crate::common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::moto::{self, xml_text, Moto};
use sluice_storage::s3::{AccessLevel, SignRequest};
use sluice_storage::{
    ProbeStep, S3Flavor, S3Profile, Storage, StorageCredential, StorageError, StorageProfile,
    StorageSettings, ValidationContext,
};

const ADMIN: (&str, &str, Option<&str>) = ("AKIAADMINADMINADMIN0", "admin-secret", None);
const BUCKET: &str = "warehouse";
const EXTERNAL_ID: &str = "tenant-42-ext";

struct Setup {
    moto: Moto,
    role_arn: String,
}

/// An IAM user (whose key becomes the server's environment credentials), a role that
/// trusts that user only with [`EXTERNAL_ID`] and may use S3, a bucket, and moto's auth
/// checks switched on.
async fn setup() -> Setup {
    let moto = Moto::start();
    // The bucket, created while moto still accepts unsigned requests.
    let resp = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );

    let user = moto
        .query_ok(
            "iam",
            ADMIN,
            &[("Action", "CreateUser"), ("UserName", "server")],
        )
        .await;
    let user_arn = xml_text(&user, "Arn").expect("user Arn");
    let allow_assume = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#;
    moto.query_ok(
        "iam",
        ADMIN,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "server"),
            ("PolicyName", "assume"),
            ("PolicyDocument", allow_assume),
        ],
    )
    .await;
    let key = moto
        .query_ok(
            "iam",
            ADMIN,
            &[("Action", "CreateAccessKey"), ("UserName", "server")],
        )
        .await;
    let access_key = xml_text(&key, "AccessKeyId").expect("AccessKeyId");
    let secret_key = xml_text(&key, "SecretAccessKey").expect("SecretAccessKey");

    let role_arn = format!("arn:aws:iam::{}:role/lake", moto::ACCOUNT);
    // Vending without sts-role-arn assumes the same role again from the role's own session
    // (role chaining). AWS matches that session against the role ARN; moto compares the
    // caller ARN literally, so the session ARN is listed too.
    let session_arn = format!(
        "arn:aws:sts::{}:assumed-role/lake/sluice-server",
        moto::ACCOUNT
    );
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":["{user_arn}","{role_arn}","{session_arn}"]}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:ExternalId":"{EXTERNAL_ID}"}}}}}}]}}"#
    );
    moto.query_ok(
        "iam",
        ADMIN,
        &[
            ("Action", "CreateRole"),
            ("RoleName", "lake"),
            ("AssumeRolePolicyDocument", &trust),
        ],
    )
    .await;
    let role_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","sts:AssumeRole"],"Resource":"*"}]}"#;
    moto.query_ok(
        "iam",
        ADMIN,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", "lake"),
            ("PolicyName", "lake"),
            ("PolicyDocument", role_policy),
        ],
    )
    .await;

    // The server's own identity, as the default chain finds it. Safe: this binary's only
    // test that reads the environment is the one calling this.
    std::env::set_var("AWS_ACCESS_KEY_ID", &access_key);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &secret_key);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::remove_var("AWS_SESSION_TOKEN");
    // Never fall through to instance metadata on a developer machine.
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");

    moto.enable_auth();
    Setup { moto, role_arn }
}

fn profile(endpoint: &str, role_arn: Option<&str>) -> S3Profile {
    let mut p = S3Profile::new(BUCKET, "us-east-1");
    p.key_prefix = Some("wh".into());
    p.flavor = S3Flavor::S3Compat;
    p.endpoint = Some(endpoint.to_string());
    p.path_style_access = true;
    p.sts_enabled = true;
    p.assume_role_arn = role_arn.map(str::to_string);
    p.sts_token_validity_seconds = 900;
    p.push_s3_delete_disabled = false;
    p
}

fn enabled() -> ValidationContext {
    ValidationContext {
        settings: settings(),
        ..ValidationContext::default()
    }
}

fn settings() -> StorageSettings {
    StorageSettings {
        enable_aws_system_credentials: true,
        ..StorageSettings::default()
    }
}

/// moto's assumed-role records (see `s3_delegation.rs`), searched without relying on the
/// exact nesting of `data.json`.
fn assumed_roles(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.contains_key("access_key_id") && m.contains_key("session_name") {
                out.push(v.clone());
            }
            m.values().for_each(|x| assumed_roles(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| assumed_roles(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn system_identity_against_moto() {
    let env = setup().await;
    let p = StorageProfile::S3(profile(&env.moto.endpoint, Some(&env.role_arn)));
    let cred = StorageCredential::aws_system_identity(Some(EXTERNAL_ID.into()));
    p.validate(&enabled()).unwrap();
    p.validate_credential(Some(&cred), &enabled()).unwrap();

    // Opening with default settings refuses the server's identity.
    let e = Storage::open(&p, Some(&cred)).unwrap_err();
    assert!(
        matches!(&e, StorageError::Invalid(m) if m.contains("disabled on this server")),
        "{e}"
    );

    let st = Storage::open_with(&p, Some(&cred), &settings()).unwrap();
    st.probe().await.unwrap();
    let loc = "s3://warehouse/wh/ns/t/metadata/v1.json";
    st.write(loc, Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(st.read(loc).await.unwrap(), Bytes::from_static(b"hello"));

    // The server assumed the role once (cached across the probe's and the writes' requests),
    // with the external id.
    let mut roles = Vec::new();
    assumed_roles(&env.moto.data(), &mut roles);
    let server_sessions: Vec<_> = roles
        .iter()
        .filter(|r| r["session_name"] == "sluice-server")
        .collect();
    assert_eq!(server_sessions.len(), 1, "{roles:?}");
    assert_eq!(server_sessions[0]["external_id"], EXTERNAL_ID);
    assert_eq!(server_sessions[0]["role_arn"], env.role_arn.as_str());

    // Remote signing with the role's session credentials: the token is signed along, and
    // moto (checking signatures, tokens and the role's policy) accepts the request.
    let uri = format!("{}/{BUCKET}/wh/ns/t/data/signed.parquet", env.moto.endpoint);
    let signed = st
        .sign(&SignRequest {
            method: "PUT".into(),
            region: "us-east-1".into(),
            uri: uri.clone(),
            headers: BTreeMap::new(),
            body: None,
        })
        .await
        .unwrap();
    let token = &signed.headers["x-amz-security-token"][0];
    assert_eq!(
        Some(token.as_str()),
        server_sessions[0]["session_token"].as_str()
    );
    assert!(signed.headers["authorization"][0].contains("x-amz-security-token"));
    let mut put = reqwest::Client::new().put(&signed.uri).body("signed-data");
    for (k, v) in &signed.headers {
        put = put.header(k, &v[0]);
    }
    let resp = put.send().await.unwrap();
    let status = resp.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        resp.text().await.unwrap()
    );
    assert_eq!(
        st.read("s3://warehouse/wh/ns/t/data/signed.parquet")
            .await
            .unwrap(),
        Bytes::from_static(b"signed-data")
    );

    // Vending: STS called with the role's session, the same role assumed again with the
    // table's session policy and the external id.
    let creds = st
        .vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::Read, "alice")
        .await
        .unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"), "{creds:?}");
    let (status, who) = env
        .moto
        .query(
            "sts",
            (
                &creds.access_key_id,
                creds.secret_access_key.expose(),
                Some(creds.session_token.expose()),
            ),
            &[("Action", "GetCallerIdentity")],
        )
        .await;
    assert_eq!(status, 200, "{who}");
    assert!(
        xml_text(&who, "Arn")
            .unwrap()
            .ends_with(":assumed-role/lake/alice"),
        "{who}"
    );
    let mut roles = Vec::new();
    assumed_roles(&env.moto.data(), &mut roles);
    let vended = roles
        .iter()
        .find(|r| r["access_key_id"] == creds.access_key_id.as_str())
        .expect("vended session recorded");
    assert_eq!(vended["external_id"], EXTERNAL_ID);
    assert!(vended["policy"].as_str().unwrap().contains("wh/ns/t/*"));

    // A wrong external id: the trust policy refuses, and the probe says why.
    let wrong = StorageCredential::aws_system_identity(Some("somebody-else".into()));
    let e = Storage::open_with(&p, Some(&wrong), &settings())
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    match &e {
        StorageError::Probe { step, message, .. } => {
            assert_eq!(*step, ProbeStep::Write);
            assert!(
                message.contains("assume-role-arn") && message.contains("AccessDenied"),
                "{message}"
            );
        }
        other => panic!("expected a probe error, got {other}"),
    }
}

/// The server-side switches, independent of any store.
#[test]
fn system_identity_validation() {
    let role = format!("arn:aws:iam::{}:role/lake", moto::ACCOUNT);
    let with_role = StorageProfile::S3(profile("http://127.0.0.1:1", Some(&role)));
    let no_role = StorageProfile::S3(profile("http://127.0.0.1:1", None));
    let ext = StorageCredential::aws_system_identity(Some(EXTERNAL_ID.into()));
    let no_ext = StorageCredential::aws_system_identity(None);
    let msg = |r: Result<(), StorageError>| match r {
        Err(StorageError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };

    // Disabled by default.
    let m = msg(with_role.validate_credential(Some(&ext), &ValidationContext::default()));
    assert!(
        m.contains("aws-system-identity credentials are disabled on this server; set enable_aws_system_credentials"),
        "{m}"
    );
    // Enabled, but the external id (and a role to use it with) is required by default.
    let m = msg(with_role.validate_credential(Some(&no_ext), &enabled()));
    assert!(m.contains("external-id"), "{m}");
    let m = msg(no_role.validate_credential(Some(&ext), &enabled()));
    assert!(m.contains("assume-role-arn"), "{m}");
    with_role
        .validate_credential(Some(&ext), &enabled())
        .unwrap();
    // Opening needs the switch as well (so turning it off stops existing warehouses), but
    // not the external id rule.
    assert!(Storage::open(&with_role, Some(&ext)).is_err());
    Storage::open_with(&no_role, Some(&no_ext), &settings()).unwrap();
}
