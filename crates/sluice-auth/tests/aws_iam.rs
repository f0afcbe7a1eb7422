//! AWS IAM login: identity tokens presigned for real with `aws-sigv4` (and checked against
//! botocore-made vectors), replayed to a local STS stand-in that verifies the presigned
//! signature with `aws-sigv4` over exactly the request it receives (tests/common/sts_stub.rs;
//! moto cannot verify presigned GetCallerIdentity, see PEERS.md).

use crate::sts_stub;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::Utc;
use sluice_auth::aws_iam::{
    build_identity_token, principal_arn, AwsIamConfig, AwsIamError, AwsIamVerifier, AwsPrincipal,
    IdentityToken,
};
use sts_stub::{alice, bob, data_role_session, Mode, StsStub, StubKey, ACCOUNT};

const SERVER_ID: &str = "sluice-test";
const GLOBAL: &str = "sts.amazonaws.com";
const FIFTEEN_MIN: Duration = Duration::from_secs(900);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn config(endpoint: &str) -> AwsIamConfig {
    let mut c = AwsIamConfig::new(SERVER_ID);
    c.sts_endpoint_override = Some(endpoint.to_string());
    c.validate().unwrap();
    c
}

fn verifier(stub: &StsStub) -> AwsIamVerifier {
    AwsIamVerifier::new(config(&stub.endpoint), http())
}

/// A token for `key` presigned now for the global endpoint and this server.
fn token(key: &StubKey) -> String {
    token_for(key, SERVER_ID, FIFTEEN_MIN, SystemTime::now())
}

fn token_for(key: &StubKey, server_id: &str, expires: Duration, at: SystemTime) -> String {
    build_identity_token(
        &key.credentials(),
        "us-east-1",
        GLOBAL,
        server_id,
        expires,
        at,
    )
    .unwrap()
}

/// Decode, change, re-encode.
fn edit(b64: &str, f: impl FnOnce(&mut IdentityToken)) -> String {
    let mut t = AwsIamVerifier::decode_token(b64).unwrap();
    f(&mut t);
    t.encode()
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

#[track_caller]
fn expect_invalid(r: Result<AwsPrincipal, AwsIamError>, needle: &str) {
    match r {
        Err(AwsIamError::Invalid(m)) => assert!(m.contains(needle), "'{m}' lacks '{needle}'"),
        other => panic!("expected Invalid({needle}), got {other:?}"),
    }
}

#[track_caller]
fn expect_unavailable(r: Result<AwsPrincipal, AwsIamError>) -> String {
    match r {
        Err(AwsIamError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---- accepted tokens ------------------------------------------------------------------------

#[tokio::test]
async fn user_token_maps_to_the_user() {
    let stub = StsStub::start().await;
    let p = verifier(&stub)
        .verify(&token(&alice()), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        p,
        AwsPrincipal {
            arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            principal_arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            account: ACCOUNT.into(),
            user_id: "AIDAEXAMPLEALICE0001".into(),
        }
    );
    // The replay went to the override endpoint with the signed Host and this server's id.
    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].host.as_deref(), Some(GLOBAL));
    assert_eq!(seen[0].server_id.as_deref(), Some(SERVER_ID));
    assert_eq!(seen[0].status, 200);
}

#[tokio::test]
async fn assumed_role_session_maps_to_the_role() {
    let stub = StsStub::start().await;
    let t = token(&data_role_session());
    let decoded = AwsIamVerifier::decode_token(&t).unwrap();
    assert!(decoded.access_key_id.starts_with("ASIA"));
    assert_eq!(decoded.security_token, data_role_session().session_token);

    let p = verifier(&stub).verify(&t, Utc::now()).await.unwrap();
    assert_eq!(
        p.arn,
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/DataRole/sess")
    );
    assert_eq!(
        p.principal_arn,
        format!("arn:aws:iam::{ACCOUNT}:role/DataRole")
    );
    assert_eq!(p.account, ACCOUNT);
    assert_eq!(p.user_id, "AROAEXAMPLEDATAROLE01:sess");
    assert_eq!(
        principal_arn(&p.arn).as_deref(),
        Some(p.principal_arn.as_str())
    );
}

#[tokio::test]
async fn regional_endpoint_matches_the_wildcard() {
    let stub = StsStub::start().await;
    let host = "sts.eu-west-1.amazonaws.com";
    let t = build_identity_token(
        &alice().credentials(),
        "eu-west-1",
        host,
        SERVER_ID,
        FIFTEEN_MIN,
        SystemTime::now(),
    )
    .unwrap();
    let p = verifier(&stub).verify(&t, Utc::now()).await.unwrap();
    assert_eq!(
        p.principal_arn,
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    assert_eq!(stub.seen()[0].host.as_deref(), Some(host));
}

#[tokio::test]
async fn a_token_can_be_checked_at_any_point_of_its_validity() {
    let stub = StsStub::start().await;
    // Presigned 10 minutes ago for 15 minutes: still valid for the server and for STS.
    let t = token_for(&alice(), SERVER_ID, FIFTEEN_MIN, ago(600));
    verifier(&stub).verify(&t, Utc::now()).await.unwrap();
}

// ---- refused before replay -------------------------------------------------------------

#[tokio::test]
async fn token_not_signing_the_server_id_header_is_refused_before_replay() {
    let stub = StsStub::start().await;
    // A genuine presigned URL that signs only `host`.
    let url = sts_stub::presign(
        &alice().credentials(),
        "us-east-1",
        GLOBAL,
        &[],
        FIFTEEN_MIN,
        SystemTime::now(),
    );
    let t = sts_stub::token_from_url(&url, "us-east-1");
    assert_eq!(t.signed_headers, vec!["host"]);

    expect_invalid(
        verifier(&stub).verify(&t.encode(), Utc::now()).await,
        "x-sluice-server-id",
    );
    assert_eq!(stub.hits(), 0);

    // STS itself would have accepted it: the server-side check is what binds tokens to a
    // server. (Replay it directly, as anyone holding the token could to real STS.)
    let rebuilt = AwsIamVerifier::presigned_url(&t).unwrap();
    let direct = rebuilt.replacen(&format!("https://{GLOBAL}"), &stub.endpoint, 1);
    let resp = http()
        .get(&direct)
        .header("host", GLOBAL)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("user/alice"));
}

#[tokio::test]
async fn token_signing_other_headers_is_refused_before_replay() {
    let stub = StsStub::start().await;
    let url = sts_stub::presign(
        &alice().credentials(),
        "us-east-1",
        GLOBAL,
        &[("x-sluice-server-id", SERVER_ID), ("x-extra", "1")],
        FIFTEEN_MIN,
        SystemTime::now(),
    );
    let t = sts_stub::token_from_url(&url, "us-east-1");
    expect_invalid(
        verifier(&stub).verify(&t.encode(), Utc::now()).await,
        "x-extra",
    );
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn disallowed_sts_host_is_refused_without_contacting_anything() {
    let stub = StsStub::start().await;
    let v = verifier(&stub);
    for host in [
        "evil.example.com",
        "sts.amazonaws.com.evil.example.com",
        "sts.a.b.amazonaws.com",
        "sts.amazonaws.com:8443",
    ] {
        let t = build_identity_token(
            &alice().credentials(),
            "us-east-1",
            host,
            SERVER_ID,
            FIFTEEN_MIN,
            SystemTime::now(),
        )
        .unwrap();
        expect_invalid(v.verify(&t, Utc::now()).await, "not allowed");
    }
    // A host that is not even a host name never gets near a URL.
    let t = edit(&token(&alice()), |t| {
        t.host = "sts.amazonaws.com/evil?".into()
    });
    expect_invalid(v.verify(&t, Utc::now()).await, "not allowed");
    let t = edit(&token(&alice()), |t| t.host = "evil.example.com/x".into());
    expect_invalid(v.verify(&t, Utc::now()).await, "not allowed");
    assert_eq!(stub.hits(), 0);

    // Allowed only when configured.
    let mut c = config(&stub.endpoint);
    c.allowed_sts_hosts = vec!["evil.example.com".into()];
    let t = build_identity_token(
        &alice().credentials(),
        "us-east-1",
        "evil.example.com",
        SERVER_ID,
        FIFTEEN_MIN,
        SystemTime::now(),
    )
    .unwrap();
    AwsIamVerifier::new(c, http())
        .verify(&t, Utc::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_token_is_refused() {
    let stub = StsStub::start().await;
    // Presigned 2 minutes ago for 1 minute (well inside the 15-minute maximum age).
    let t = token_for(&alice(), SERVER_ID, Duration::from_secs(60), ago(120));
    expect_invalid(verifier(&stub).verify(&t, Utc::now()).await, "expired");
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn too_old_token_is_refused() {
    let stub = StsStub::start().await;
    let t = token_for(&alice(), SERVER_ID, FIFTEEN_MIN, ago(1000));
    expect_invalid(verifier(&stub).verify(&t, Utc::now()).await, "too old");

    // A stricter maximum age refuses a token that is still within its own expiry.
    let mut c = config(&stub.endpoint);
    c.max_token_age_seconds = 60;
    let t = token_for(&alice(), SERVER_ID, Duration::from_secs(60), ago(90));
    expect_invalid(
        AwsIamVerifier::new(c, http()).verify(&t, Utc::now()).await,
        "too old",
    );
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn presign_longer_than_the_maximum_age_is_refused() {
    let stub = StsStub::start().await;
    let t = token_for(
        &alice(),
        SERVER_ID,
        Duration::from_secs(3600),
        SystemTime::now(),
    );
    expect_invalid(
        verifier(&stub).verify(&t, Utc::now()).await,
        "presigned for 3600s",
    );
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn future_dated_token_is_refused_beyond_the_skew() {
    let stub = StsStub::start().await;
    let v = verifier(&stub);
    let later = SystemTime::now() + Duration::from_secs(600);
    expect_invalid(
        v.verify(
            &token_for(&alice(), SERVER_ID, FIFTEEN_MIN, later),
            Utc::now(),
        )
        .await,
        "in the future",
    );
    assert_eq!(stub.hits(), 0);
    // A client clock a little ahead is tolerated (`now` is the server's clock).
    let t = token(&alice());
    v.verify(&t, Utc::now() - chrono::Duration::seconds(60))
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_method_action_version_or_algorithm_is_refused() {
    let stub = StsStub::start().await;
    let v = verifier(&stub);
    let good = token(&alice());
    type Change = Box<dyn Fn(&mut IdentityToken)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|t| t.method = "POST".into()), "GET"),
        (
            Box::new(|t| t.action = "AssumeRole".into()),
            "GetCallerIdentity",
        ),
        (Box::new(|t| t.version = "2011-06-16".into()), "2011-06-15"),
        (
            Box::new(|t| t.algorithm = "AWS4-HMAC-SHA512".into()),
            "AWS4-HMAC-SHA256",
        ),
        (
            Box::new(|t| t.expiration_duration = "0".into()),
            "expiration_duration",
        ),
        (
            Box::new(|t| t.expiration_duration = "15m".into()),
            "expiration_duration",
        ),
        (
            Box::new(|t| t.date = "2024-05-01T12:00:00Z".into()),
            "X-Amz-Date",
        ),
        (Box::new(|t| t.signature = "zz".into()), "signature"),
        (
            Box::new(|t| t.access_key_id = "AKIA/../x".into()),
            "access key",
        ),
        (Box::new(|t| t.region = "us east 1".into()), "region"),
    ];
    for (change, needle) in cases {
        let t = edit(&good, change);
        expect_invalid(v.verify(&t, Utc::now()).await, needle);
    }
    assert_eq!(stub.hits(), 0);
}

#[tokio::test]
async fn garbage_tokens_are_invalid() {
    let stub = StsStub::start().await;
    let v = verifier(&stub);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for (t, needle) in [
        (String::new(), "empty"),
        ("!!!not base64!!!".to_string(), "base64"),
        (b64("not json"), "JSON"),
        (b64("[1,2,3]"), "JSON"),
        (b64("{}"), "lacks field"),
        (b64(r#"{"method":"GET"}"#), "lacks field"),
        ("A".repeat(20_000), "longer than"),
    ] {
        expect_invalid(v.verify(&t, Utc::now()).await, needle);
    }
    // Wrong types inside the object.
    let mut j: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(token(&alice()))
            .unwrap(),
    )
    .unwrap();
    j["signed_headers"] = serde_json::json!("host;x-sluice-server-id");
    expect_invalid(v.verify(&b64(&j.to_string()), Utc::now()).await, "JSON");
    assert_eq!(stub.hits(), 0);
}

// ---- refused by STS ----------------------------------------------------------------------

#[tokio::test]
async fn token_signed_for_another_server_id_fails_at_sts() {
    let stub = StsStub::start().await;
    let t = token_for(
        &alice(),
        "some-other-server",
        FIFTEEN_MIN,
        SystemTime::now(),
    );
    // Locally it looks fine: it signs x-sluice-server-id ...
    let decoded = AwsIamVerifier::decode_token(&t).unwrap();
    assert!(decoded
        .signed_headers
        .contains(&"x-sluice-server-id".to_string()));
    // ... but the server sends its own id, so STS computes a different signature.
    expect_invalid(
        verifier(&stub).verify(&t, Utc::now()).await,
        "STS rejected the identity token: SignatureDoesNotMatch",
    );
    assert_eq!(stub.hits(), 1);
    assert_eq!(stub.seen()[0].server_id.as_deref(), Some(SERVER_ID));
    assert_eq!(stub.seen()[0].status, 403);

    // The same token is accepted by the server it was made for.
    let mut c = config(&stub.endpoint);
    c.server_id = "some-other-server".into();
    AwsIamVerifier::new(c, http())
        .verify(&t, Utc::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn tampered_tokens_fail_at_sts() {
    let stub = StsStub::start().await;
    let v = verifier(&stub);
    let good = token(&alice());

    // One hex digit of the signature flipped.
    let t = edit(&good, |t| {
        let last = t.signature.pop().unwrap();
        t.signature.push(if last == '0' { '1' } else { '0' });
    });
    expect_invalid(v.verify(&t, Utc::now()).await, "SignatureDoesNotMatch");

    // Another user's key id with alice's signature.
    let t = edit(&good, |t| t.access_key_id = bob().access_key_id);
    expect_invalid(v.verify(&t, Utc::now()).await, "SignatureDoesNotMatch");

    // The date moved by a second.
    let t = edit(&good, |t| {
        let d = chrono::NaiveDateTime::parse_from_str(&t.date, "%Y%m%dT%H%M%SZ").unwrap()
            - chrono::Duration::seconds(1);
        t.date = d.format("%Y%m%dT%H%M%SZ").to_string();
    });
    expect_invalid(v.verify(&t, Utc::now()).await, "SignatureDoesNotMatch");

    // Session token swapped or dropped.
    let role = token(&data_role_session());
    let t = edit(&role, |t| {
        t.security_token = Some("FwoGZXIvYXdzOTHER".into())
    });
    expect_invalid(v.verify(&t, Utc::now()).await, "InvalidClientTokenId");
    let t = edit(&role, |t| t.security_token = None);
    expect_invalid(v.verify(&t, Utc::now()).await, "InvalidClientTokenId");

    // Unknown key.
    let stranger = StubKey {
        access_key_id: "AKIAEXAMPLESTRANGER1".into(),
        ..alice()
    };
    expect_invalid(
        v.verify(&token(&stranger), Utc::now()).await,
        "InvalidClientTokenId",
    );
    assert_eq!(stub.hits(), 6);
}

// ---- STS unavailable ----------------------------------------------------------------------

#[tokio::test]
async fn sts_down_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let v = AwsIamVerifier::new(config(&endpoint), http());
    let t = token(&alice());
    let m = expect_unavailable(v.verify(&t, Utc::now()).await);
    assert!(m.contains(&endpoint), "{m}");
    // The error never carries the presigned URL (signature, session token).
    let sig = AwsIamVerifier::decode_token(&t).unwrap().signature;
    assert!(!m.contains(&sig) && !m.contains("X-Amz"), "{m}");
}

#[tokio::test]
async fn sts_errors_on_its_side_are_unavailable() {
    for (status, code) in [
        (500, "InternalFailure"),
        (503, "ServiceUnavailable"),
        (400, "Throttling"),
    ] {
        let stub = StsStub::start_with(Mode::Fail(status, code), vec![]).await;
        let m = expect_unavailable(verifier(&stub).verify(&token(&alice()), Utc::now()).await);
        assert!(m.contains(code), "{m}");
        assert_eq!(stub.hits(), 1);
    }
    // A 200 that is not a GetCallerIdentity answer.
    let stub = StsStub::start_with(Mode::Fail(200, "x"), vec![]).await;
    expect_unavailable(verifier(&stub).verify(&token(&alice()), Utc::now()).await);
}

#[tokio::test]
async fn sts_hanging_times_out_as_unavailable() {
    let stub = StsStub::start_with(Mode::Hang, vec![]).await;
    let mut c = config(&stub.endpoint);
    c.http_timeout_seconds = 1;
    let started = std::time::Instant::now();
    expect_unavailable(
        AwsIamVerifier::new(c, http())
            .verify(&token(&alice()), Utc::now())
            .await,
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stub.hits(), 1);
}

#[tokio::test]
async fn redirects_are_not_followed_to_an_identity() {
    // Where the redirect points: a verifying stub that would accept the token.
    let elsewhere = StsStub::start().await;
    let stub =
        StsStub::start_with(Mode::Redirect(format!("{}/", elsewhere.endpoint)), vec![]).await;
    let t = token(&alice());
    // A client that does not follow redirects sees a 302.
    let m = expect_unavailable(verifier(&stub).verify(&t, Utc::now()).await);
    assert!(m.contains("302"), "{m}");
    // One that follows them gets an answer from elsewhere, which does not count.
    let follows = AwsIamVerifier::new(config(&stub.endpoint), reqwest::Client::new());
    let m = expect_unavailable(follows.verify(&t, Utc::now()).await);
    assert!(m.contains("redirected"), "{m}");
}

// ---- the token format ---------------------------------------------------------------------

/// `presigned_url` rebuilds what the signer produced: the same parameters and values.
#[test]
fn presigned_url_rebuilds_the_signers_url() {
    for key in [alice(), data_role_session()] {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let signer_url = sts_stub::presign(
            &key.credentials(),
            "us-east-1",
            GLOBAL,
            &[("x-sluice-server-id", SERVER_ID)],
            FIFTEEN_MIN,
            at,
        );
        let t = AwsIamVerifier::decode_token(&token_for(&key, SERVER_ID, FIFTEEN_MIN, at)).unwrap();
        let rebuilt = AwsIamVerifier::presigned_url(&t).unwrap();
        let pairs = |u: &str| {
            let mut v: Vec<(String, String)> = url::Url::parse(u)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
            v.sort();
            v
        };
        assert_eq!(pairs(&rebuilt), pairs(&signer_url));
        assert!(rebuilt.starts_with("https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="));
        assert!(rebuilt.ends_with(&format!("&X-Amz-Signature={}", t.signature)));
    }
}

/// Vectors made with botocore 1.43 (`SigV4QueryAuth`, GET, header `X-Sluice-Server-ID`,
/// fixed clock 2024-05-01T12:00:00Z): `build_identity_token` (aws-sigv4) produces the same
/// signatures, and `presigned_url` rebuilds botocore's URL byte for byte.
#[test]
fn matches_botocore_presigned_urls() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    let cases = [
        (
            alice(),
            "us-east-1",
            "sts.amazonaws.com",
            "sluice-test",
            900,
            "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEALICE0001%2F20240501%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20240501T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host%3Bx-sluice-server-id&X-Amz-Signature=69dd4ee1fbbdc8ef63360eb8de167cc46dbfcdf6e611c8cff59d21c939490231",
        ),
        (
            data_role_session(),
            "eu-west-1",
            "sts.eu-west-1.amazonaws.com",
            "https://sluice.example.com",
            300,
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLEDATAROLE1%2F20240501%2Feu-west-1%2Fsts%2Faws4_request&X-Amz-Date=20240501T120000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host%3Bx-sluice-server-id&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE%2F%2Fsession%2Btoken%2Fwith%3Dchars%3D%3D&X-Amz-Signature=4caf6c9a48b5f28917a868c3986ca7001cc851ee0c85bf2c6e6d4b7d96164109",
        ),
    ];
    for (key, region, host, server_id, secs, boto_url) in cases {
        let ours = AwsIamVerifier::decode_token(
            &build_identity_token(
                &key.credentials(),
                region,
                host,
                server_id,
                Duration::from_secs(secs),
                at,
            )
            .unwrap(),
        )
        .unwrap();
        let theirs = sts_stub::token_from_url(boto_url, region);
        assert_eq!(ours, theirs);
        assert_eq!(AwsIamVerifier::presigned_url(&theirs).unwrap(), boto_url);
    }
}

/// The exact JSON layout (lakeFS's): field names, string `expiration_duration`, list
/// `signed_headers`, `security_token` null for long-term keys; standard base64.
#[test]
fn token_json_layout() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    let b64 = token_for(&alice(), SERVER_ID, FIFTEEN_MIN, at);
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "method": "GET",
            "host": "sts.amazonaws.com",
            "region": "us-east-1",
            "action": "GetCallerIdentity",
            "date": "20240501T120000Z",
            "expiration_duration": "900",
            "access_key_id": "AKIAEXAMPLEALICE0001",
            "signature": "69dd4ee1fbbdc8ef63360eb8de167cc46dbfcdf6e611c8cff59d21c939490231",
            "signed_headers": ["host", "x-sluice-server-id"],
            "version": "2011-06-15",
            "algorithm": "AWS4-HMAC-SHA256",
            "security_token": null
        })
    );

    // Accepted variants: a numeric expiration_duration, no security_token, URL-safe base64
    // without padding, surrounding whitespace.
    let mut j = json.clone();
    j["expiration_duration"] = serde_json::json!(900);
    j.as_object_mut().unwrap().remove("security_token");
    let alt = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j.to_string());
    let decoded = AwsIamVerifier::decode_token(&format!("  {alt}\n")).unwrap();
    assert_eq!(decoded, AwsIamVerifier::decode_token(&b64).unwrap());

    // Debug output hides the signature and the session token.
    let role =
        AwsIamVerifier::decode_token(&token_for(&data_role_session(), SERVER_ID, FIFTEEN_MIN, at))
            .unwrap();
    let dbg = format!("{role:?}");
    assert!(
        !dbg.contains(&role.signature) && !dbg.contains("FwoGZXIv"),
        "{dbg}"
    );
}

#[test]
fn build_identity_token_rejects_bad_inputs() {
    let c = alice().credentials();
    let now = SystemTime::now();
    let bad = |r: Result<String, AwsIamError>| assert!(matches!(r, Err(AwsIamError::Invalid(_))));
    bad(build_identity_token(
        &c,
        "us-east-1",
        "https://sts.amazonaws.com",
        SERVER_ID,
        FIFTEEN_MIN,
        now,
    ));
    bad(build_identity_token(
        &c,
        "US EAST",
        GLOBAL,
        SERVER_ID,
        FIFTEEN_MIN,
        now,
    ));
    bad(build_identity_token(
        &c,
        "us-east-1",
        GLOBAL,
        "has space",
        FIFTEEN_MIN,
        now,
    ));
    bad(build_identity_token(
        &c,
        "us-east-1",
        GLOBAL,
        "",
        FIFTEEN_MIN,
        now,
    ));
    bad(build_identity_token(
        &c,
        "us-east-1",
        GLOBAL,
        SERVER_ID,
        Duration::ZERO,
        now,
    ));
    bad(build_identity_token(
        &c,
        "us-east-1",
        GLOBAL,
        SERVER_ID,
        Duration::from_secs(604_801),
        now,
    ));
}
