//! Access delegation against real peers: requests signed by `Storage::sign` executed
//! against s3s-fs (which verifies SigV4), and STS credential vending against moto.

use crate::common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::moto::{self, xml_text, Moto};
use common::s3s_fs::{self, S3sFs};
use sluice_core::Secret;
use sluice_storage::s3::{self as s3d, AccessLevel, S3Operation, SignRequest, SignedRequest};
use sluice_storage::{
    RemoteSigningUrlStyle, S3Credential, S3Flavor, S3Profile, Storage, StorageCredential,
    StorageError, StorageProfile, ValidationContext,
};

const BUCKET: &str = "warehouse";

fn s3s_storage(s3: &S3sFs) -> Storage {
    let mut p = S3Profile::new(BUCKET, "us-east-1");
    p.key_prefix = Some("wh".into());
    p.endpoint = Some(s3.endpoint.clone());
    p.path_style_access = true;
    p.flavor = S3Flavor::S3Compat;
    p.remote_signing_url_style = RemoteSigningUrlStyle::Auto;
    p.push_s3_delete_disabled = false;
    let p = StorageProfile::S3(p);
    p.validate(&ValidationContext::default()).unwrap();
    let cred =
        StorageCredential::s3_access_key(s3s_fs::ACCESS_KEY, Secret::new(s3s_fs::SECRET_KEY));
    Storage::open(&p, Some(&cred)).unwrap()
}

fn s3p(st: &Storage) -> &S3Profile {
    match st.profile() {
        StorageProfile::S3(p) => p,
        _ => unreachable!("s3 storage"),
    }
}

fn sign_req(method: &str, uri: &str, headers: &[(&str, &str)], body: Option<&str>) -> SignRequest {
    let mut h: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        h.entry(k.to_string()).or_default().push(v.to_string());
    }
    SignRequest {
        method: method.into(),
        // PyIceberg sends whatever region it was configured with; the signer ignores it.
        region: "eu-west-1".into(),
        uri: uri.into(),
        headers: h,
        body: body.map(str::to_string),
    }
}

/// Sends a signed request exactly as a client would: the returned URI, the returned headers
/// and nothing else that matters for the signature.
async fn execute(method: &str, signed: &SignedRequest, body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = reqwest::Client::new().request(method, &signed.uri);
    for (k, values) in &signed.headers {
        for v in values {
            req = req.header(k, v);
        }
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap_or_default().to_vec())
}

fn crc32_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes())
}

#[tokio::test]
async fn signed_requests_are_accepted_by_a_verifying_s3() {
    let s3 = S3sFs::start(&[BUCKET]);
    let st = s3s_storage(&s3);
    let ep = &s3.endpoint;
    let obj_uri = format!("{ep}/{BUCKET}/wh/ns/t/data/part%200.parquet");
    let data = b"PAR1 some parquet bytes PAR1".to_vec();

    // PUT, with the headers PyIceberg sends (checksum, no body, no host, no content hash).
    let crc = crc32_b64(&data);
    let len = data.len().to_string();
    let put = sign_req(
        "PUT",
        &obj_uri,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", &len),
            ("x-amz-checksum-crc32", &crc),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("User-Agent", "pyiceberg-test"),
        ],
        None,
    );
    let target = s3p(&st).resolve_sign_target(&put).unwrap();
    assert_eq!(target.operation, S3Operation::Write);
    assert_eq!(
        target.locations,
        vec![format!("s3://{BUCKET}/wh/ns/t/data/part 0.parquet")]
    );
    let signed = st.sign(&put).await.unwrap();
    assert_eq!(signed.uri, obj_uri);
    assert_eq!(
        signed.headers["x-amz-content-sha256"],
        vec!["UNSIGNED-PAYLOAD"]
    );
    assert!(
        signed.headers.contains_key("authorization") && signed.headers.contains_key("x-amz-date")
    );
    assert!(!signed.headers.contains_key("host"));
    let (status, body) = execute("PUT", &signed, Some(data.clone())).await;
    assert!(
        (200..300).contains(&status),
        "PUT {status}: {}",
        String::from_utf8_lossy(&body)
    );
    let on_disk = s3.data_dir.join(BUCKET).join("wh/ns/t/data/part 0.parquet");
    assert_eq!(std::fs::read(&on_disk).unwrap(), data);

    // A checksum that does not match the body is caught by the store, not hidden by us.
    let bad_crc = sign_req(
        "PUT",
        &obj_uri,
        &[("x-amz-checksum-crc32", &crc32_b64(b"other"))],
        None,
    );
    let (status, _) = execute("PUT", &st.sign(&bad_crc).await.unwrap(), Some(data.clone())).await;
    assert_eq!(status, 400, "checksum mismatch");

    // GET, whole and ranged.
    let get = st
        .sign(&sign_req("GET", &obj_uri, &[], None))
        .await
        .unwrap();
    let (status, body) = execute("GET", &get, None).await;
    assert_eq!((status, body), (200, data.clone()));
    let ranged = st
        .sign(&sign_req("GET", &obj_uri, &[("Range", "bytes=0-3")], None))
        .await
        .unwrap();
    let (status, body) = execute("GET", &ranged, None).await;
    assert_eq!((status, body.as_slice()), (206, &b"PAR1"[..]));
    let head = st
        .sign(&sign_req("HEAD", &obj_uri, &[], None))
        .await
        .unwrap();
    assert_eq!(execute("HEAD", &head, None).await.0, 200);

    // Listing a prefix.
    let list_uri = format!("{ep}/{BUCKET}?list-type=2&prefix=wh%2Fns%2Ft%2F");
    let list = sign_req("GET", &list_uri, &[], None);
    assert_eq!(
        s3p(&st).resolve_sign_target(&list).unwrap().locations,
        vec![format!("s3://{BUCKET}/wh/ns/t/")]
    );
    let (status, body) = execute("GET", &st.sign(&list).await.unwrap(), None).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<Key>wh/ns/t/data/part 0.parquet</Key>"),
        "{body}"
    );

    // Tampering with anything signed is rejected by the store.
    let mut tampered = ranged.clone();
    tampered
        .headers
        .insert("range".into(), vec!["bytes=0-10".into()]);
    assert_eq!(
        execute("GET", &tampered, None).await.0,
        403,
        "changed signed header"
    );
    let mut other_key = get.clone();
    other_key.uri = format!("{ep}/{BUCKET}/wh/ns/other/secret");
    assert_eq!(execute("GET", &other_key, None).await.0, 403, "changed URI");
    assert_eq!(execute("DELETE", &get, None).await.0, 403, "changed method");
    let mut no_date = get.clone();
    no_date.headers.remove("x-amz-date");
    let status = execute("GET", &no_date, None).await.0;
    assert!(
        status == 400 || status == 403,
        "dropped x-amz-date: {status}"
    );

    // DELETE of one object.
    let del = sign_req("DELETE", &obj_uri, &[], None);
    assert_eq!(
        s3p(&st).resolve_sign_target(&del).unwrap().operation,
        S3Operation::Delete
    );
    let (status, _) = execute("DELETE", &st.sign(&del).await.unwrap(), None).await;
    assert!((200..300).contains(&status), "DELETE {status}");
    assert!(!on_disk.exists());

    // DeleteObjects: the body is signed by hash, so only the checked keys can be deleted.
    for k in ["a", "b"] {
        let u = format!("{ep}/{BUCKET}/wh/ns/t/data/{k}");
        let (status, _) = execute(
            "PUT",
            &st.sign(&sign_req("PUT", &u, &[], None)).await.unwrap(),
            Some(b"x".to_vec()),
        )
        .await;
        assert_eq!(status, 200);
    }
    let xml = "<Delete><Object><Key>wh/ns/t/data/a</Key></Object><Object><Key>wh/ns/t/data/b</Key></Object></Delete>";
    let bulk = sign_req(
        "POST",
        &format!("{ep}/{BUCKET}?delete"),
        &[
            ("Content-Type", "application/xml"),
            ("x-amz-checksum-crc32", &crc32_b64(xml.as_bytes())),
        ],
        Some(xml),
    );
    let target = s3p(&st).resolve_sign_target(&bulk).unwrap();
    assert_eq!(target.operation, S3Operation::Delete);
    assert_eq!(
        target.locations,
        vec![
            format!("s3://{BUCKET}/wh/ns/t/data/a"),
            format!("s3://{BUCKET}/wh/ns/t/data/b")
        ]
    );
    let signed_bulk = st.sign(&bulk).await.unwrap();
    let other = xml.replace("data/b", "data/c");
    let (status, _) = execute("POST", &signed_bulk, Some(other.into_bytes())).await;
    assert!(
        status >= 400,
        "a different body than the one checked must fail, got {status}"
    );
    let (status, body) = execute("POST", &signed_bulk, Some(xml.as_bytes().to_vec())).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(!s3.data_dir.join(BUCKET).join("wh/ns/t/data/a").exists());
    assert!(!s3.data_dir.join(BUCKET).join("wh/ns/t/data/b").exists());
}

#[tokio::test]
async fn signed_multipart_upload() {
    let s3 = S3sFs::start(&[BUCKET]);
    let st = s3s_storage(&s3);
    let uri = format!("{}/{BUCKET}/wh/ns/t/data/big.parquet", s3.endpoint);
    let (status, body) = execute(
        "POST",
        &st.sign(&sign_req("POST", &format!("{uri}?uploads"), &[], None))
            .await
            .unwrap(),
        None,
    )
    .await;
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "{body}");
    let upload_id = xml_text(&body, "UploadId").expect("UploadId");
    let enc_id: String = url::form_urlencoded::byte_serialize(upload_id.as_bytes()).collect();

    let part = vec![7u8; 1024];
    let part_uri = format!("{uri}?partNumber=1&uploadId={enc_id}");
    let put = sign_req("PUT", &part_uri, &[], None);
    assert_eq!(
        s3p(&st).resolve_sign_target(&put).unwrap().operation,
        S3Operation::Write
    );
    let resp = {
        let signed = st.sign(&put).await.unwrap();
        let mut req = reqwest::Client::new().put(&signed.uri);
        for (k, v) in &signed.headers {
            req = req.header(k, &v[0]);
        }
        req.body(part.clone()).send().await.unwrap()
    };
    assert_eq!(resp.status().as_u16(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();

    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let done = sign_req("POST", &format!("{uri}?uploadId={enc_id}"), &[], None);
    let (status, body) = execute(
        "POST",
        &st.sign(&done).await.unwrap(),
        Some(complete.into_bytes()),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        std::fs::read(s3.data_dir.join(BUCKET).join("wh/ns/t/data/big.parquet")).unwrap(),
        part
    );
}

#[tokio::test]
async fn signing_with_a_wrong_secret_is_rejected_by_the_store() {
    let s3 = S3sFs::start(&[BUCKET]);
    let good = s3s_storage(&s3);
    let cred = StorageCredential::s3_access_key(s3s_fs::ACCESS_KEY, Secret::new("not-the-secret"));
    let bad = Storage::open(good.profile(), Some(&cred)).unwrap();
    let uri = format!("{}/{BUCKET}/wh/x", s3.endpoint);
    let (status, _) = execute(
        "PUT",
        &bad.sign(&sign_req("PUT", &uri, &[], None)).await.unwrap(),
        Some(b"x".to_vec()),
    )
    .await;
    assert_eq!(status, 403);
}

// ---------------------------------------------------------------------------------------
// STS vending against moto.

const ADMIN: (&str, &str, Option<&str>) = ("AKIAADMINADMINADMIN0", "admin-secret", None);

struct StsSetup {
    moto: Moto,
    access_key: String,
    secret_key: String,
    role_arn: String,
}

/// An IAM user allowed to call sts:AssumeRole, a role that trusts exactly that user, and
/// moto's auth checks switched on afterwards (so AssumeRole really verifies the caller).
async fn sts_setup() -> StsSetup {
    let moto = Moto::start();
    let user = moto
        .query_ok(
            "iam",
            ADMIN,
            &[("Action", "CreateUser"), ("UserName", "sluice")],
        )
        .await;
    let user_arn = xml_text(&user, "Arn").expect("user Arn");
    assert_eq!(
        user_arn,
        format!("arn:aws:iam::{}:user/sluice", moto::ACCOUNT)
    );
    let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#;
    moto.query_ok(
        "iam",
        ADMIN,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "sluice"),
            ("PolicyName", "assume"),
            ("PolicyDocument", allow),
        ],
    )
    .await;
    let key = moto
        .query_ok(
            "iam",
            ADMIN,
            &[("Action", "CreateAccessKey"), ("UserName", "sluice")],
        )
        .await;
    let access_key = xml_text(&key, "AccessKeyId").expect("AccessKeyId");
    let secret_key = xml_text(&key, "SecretAccessKey").expect("SecretAccessKey");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{user_arn}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = moto
        .query_ok(
            "iam",
            ADMIN,
            &[
                ("Action", "CreateRole"),
                ("RoleName", "lake"),
                ("AssumeRolePolicyDocument", &trust),
            ],
        )
        .await;
    let role_arn = xml_text(&role, "Arn").expect("role Arn");
    // A role that trusts somebody else.
    let other_trust = trust.replace("user/sluice", "user/somebody-else");
    moto.query_ok(
        "iam",
        ADMIN,
        &[
            ("Action", "CreateRole"),
            ("RoleName", "foreign"),
            ("AssumeRolePolicyDocument", &other_trust),
        ],
    )
    .await;
    moto.enable_auth();
    StsSetup {
        moto,
        access_key,
        secret_key,
        role_arn,
    }
}

impl StsSetup {
    fn profile(&self) -> S3Profile {
        let mut p = S3Profile::new(BUCKET, "us-east-1");
        p.key_prefix = Some("wh".into());
        p.flavor = S3Flavor::S3Compat;
        p.endpoint = Some(self.moto.endpoint.clone());
        p.path_style_access = true;
        p.sts_enabled = true;
        p.sts_role_arn = Some(self.role_arn.clone());
        p.sts_token_validity_seconds = 900;
        p
    }

    fn storage(&self, p: S3Profile, external_id: Option<&str>) -> Storage {
        let p = StorageProfile::S3(p);
        p.validate(&ValidationContext::default()).unwrap();
        let cred = StorageCredential::S3(S3Credential::AccessKey {
            aws_access_key_id: self.access_key.clone(),
            aws_secret_access_key: Secret::new(self.secret_key.clone()),
            external_id: external_id.map(str::to_string),
        });
        Storage::open(&p, Some(&cred)).unwrap()
    }
}

#[tokio::test]
async fn vend_credentials_from_moto() {
    let env = sts_setup().await;
    let profile = env.profile();
    let st = env.storage(profile.clone(), Some("ext-123"));
    let before = chrono::Utc::now();
    let creds = st
        .vend_credentials(
            "s3://warehouse/wh/ns/t",
            AccessLevel::ReadWrite,
            "sluice-alice@example.org",
        )
        .await
        .unwrap();
    assert!(
        creds.access_key_id.starts_with("ASIA"),
        "{}",
        creds.access_key_id
    );
    assert!(
        !creds.secret_access_key.expose().is_empty() && !creds.session_token.expose().is_empty()
    );
    let ahead = (creds.expiration - before).num_seconds();
    assert!(
        (880..=920).contains(&ahead),
        "expires {ahead}s ahead, want ~900"
    );
    assert!(!format!("{creds:?}").contains(creds.secret_access_key.expose()));

    // The credentials work: the caller is the assumed role with our session name.
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
    let arn = xml_text(&who, "Arn").unwrap();
    assert!(
        arn.ends_with(":assumed-role/lake/sluice-alice@example.org"),
        "{arn}"
    );

    // What moto recorded for the AssumeRole call: our policy, duration and external id.
    let data = env.moto.data();
    let assumed = find_assumed_role(&data, &creds.access_key_id).unwrap_or_else(|| {
        panic!(
            "assumed role for {} not in moto's state",
            creds.access_key_id
        )
    });
    let want = s3d::session_policy(&profile, "s3://warehouse/wh/ns/t", AccessLevel::ReadWrite);
    let policy = assumed
        .get("policy")
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("policy stored: {assumed}"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(policy).unwrap(),
        want
    );
    assert_eq!(
        assumed.get("external_id").and_then(|v| v.as_str()),
        Some("ext-123")
    );
    assert_eq!(
        assumed.get("role_arn").and_then(|v| v.as_str()),
        Some(env.role_arn.as_str())
    );

    // The config handed to the client.
    let cfg = s3d::vended_config(&profile, &creds);
    assert_eq!(cfg["s3.access-key-id"], creds.access_key_id);
    assert_eq!(cfg["s3.endpoint"], env.moto.endpoint);
    assert_eq!(
        cfg["s3.session-token-expires-at-ms"],
        creds.expiration.timestamp_millis().to_string()
    );

    // Read access gets a read-only policy.
    let ro = st
        .vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::Read, "bob")
        .await
        .unwrap();
    let data = env.moto.data();
    let assumed = find_assumed_role(&data, &ro.access_key_id).expect("read-only session recorded");
    let policy: serde_json::Value =
        serde_json::from_str(assumed["policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        policy,
        s3d::session_policy(&profile, "s3://warehouse/wh/ns/t", AccessLevel::Read)
    );
    assert!(!policy.to_string().contains("PutObject"));
}

fn m_contains(e: &StorageError, s: &str) -> bool {
    matches!(e, StorageError::Sts(m) if m.contains(s))
}

/// moto's data.json lists backends → region/account → model → instances; the assumed roles
/// are searched for by access key without relying on the exact nesting.
fn find_assumed_role<'a>(
    v: &'a serde_json::Value,
    access_key: &str,
) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("access_key_id").and_then(|a| a.as_str()) == Some(access_key)
                && m.contains_key("session_name")
            {
                return Some(v);
            }
            m.values().find_map(|x| find_assumed_role(x, access_key))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_assumed_role(x, access_key)),
        _ => None,
    }
}

#[tokio::test]
async fn vend_credentials_errors() {
    let env = sts_setup().await;

    // A role that does not trust the warehouse user.
    let mut p = env.profile();
    p.sts_role_arn = Some(format!("arn:aws:iam::{}:role/foreign", moto::ACCOUNT));
    let e = env
        .storage(p, None)
        .vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::Sts(m) if m.contains("AccessDenied")),
        "{e}"
    );

    assert!(
        m_contains(&e, "is not authorized to perform: sts:AssumeRole"),
        "{e}"
    );

    // A wrong secret for the warehouse user.
    let p = StorageProfile::S3(env.profile());
    let cred =
        StorageCredential::s3_access_key(env.access_key.clone(), Secret::new("wrong-secret"));
    let e = Storage::open(&p, Some(&cred))
        .unwrap()
        .vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::Sts(m) if m.starts_with("SignatureDoesNotMatch") && !m.contains("wrong-secret")),
        "{e}"
    );

    // STS disabled on the profile.
    let mut p = env.profile();
    p.sts_enabled = false;
    let e = env
        .storage(p, None)
        .vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StorageError::Invalid(m) if m.contains("sts-enabled is false")),
        "{e}"
    );

    // Locations outside the warehouse, or its whole bucket, are never vended.
    let st = env.storage(env.profile(), None);
    let e = st
        .vend_credentials("s3://other/wh/ns/t", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::NotInWarehouse(_)), "{e}");
    let e = st
        .vend_credentials("s3://warehouse/elsewhere", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::NotInWarehouse(_)), "{e}");

    // An unreachable STS endpoint fails within the timeouts, as an Sts error.
    let mut p = env.profile();
    p.sts_endpoint = Some(format!("http://127.0.0.1:{}", s3s_fs::free_port()));
    let started = std::time::Instant::now();
    let e = env
        .storage(p, None)
        .vend_credentials("s3://warehouse/wh/ns/t", AccessLevel::Read, "x")
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::Sts(_)), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(35));
}
