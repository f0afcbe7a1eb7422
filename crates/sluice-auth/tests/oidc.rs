//! OIDC relying party against the REAL node oidc-provider (tests/peers/oidc), plus a local
//! issuer with test-held keys for tokens no honest provider would issue.
//!
//! Needs the provider installed: `tests/peers/oidc.sh install` (→ `.peers/oidc`), or
//! `SLUICE_OIDC_PEER_DIR`. Without it these tests fail with that instruction.

use crate::oidc_peer;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use oidc_peer::*;
use serde_json::{json, Value};
use sluice_auth::oidc::{
    pkce_pair, random_token, OidcConfig, OidcError, OidcIdentity, OidcProvider,
};

fn config(issuer: &str, extra: Value) -> OidcConfig {
    let mut v = json!({
        "url": issuer,
        "client_id": CONFIDENTIAL.0,
        "client_secret": CONFIDENTIAL.1,
        "allowed_audiences": [API_AUDIENCE],
        "initial_groups_claim_name": "groups",
        "scopes": ["openid", "profile", "email", "groups"],
    });
    for (k, x) in extra.as_object().unwrap() {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    serde_json::from_value(v).unwrap()
}

fn provider(issuer: &str, extra: Value) -> OidcProvider {
    OidcProvider::new(config(issuer, extra), reqwest::Client::new()).unwrap()
}

#[track_caller]
fn assert_invalid(r: Result<OidcIdentity, OidcError>, needle: &str) {
    match r {
        Err(OidcError::InvalidToken(m)) => {
            assert!(
                m.contains(needle),
                "InvalidToken({m:?}) should mention {needle:?}"
            )
        }
        other => panic!("expected InvalidToken({needle}), got {other:?}"),
    }
}

// -------------------------------------------------------------------------------------------
// Real provider: tokens it issues
// -------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_access_token_is_accepted() {
    let peer = OidcPeer::start().await;
    let p = provider(&peer.issuer(), json!({}));
    let token = peer.client_credentials_token().await;
    assert!(p.is_candidate(&token));
    let id = p.verify_bearer(&token).await.unwrap();
    assert_eq!(
        id,
        OidcIdentity {
            issuer: peer.issuer(),
            subject: "lake-client".into(),
            username: "lake-client".into(), // no preferred_username, no email → sub
            email: None,
            friendly_name: None,
            groups: vec![],
        }
    );
    // The same token again is served from the caches.
    assert_eq!(p.verify_bearer(&token).await.unwrap(), id);
}

#[tokio::test]
async fn authcode_pkce_user_tokens_are_accepted() {
    let peer = OidcPeer::start().await;
    let t = peer
        .authcode_tokens(
            PUBLIC_CLIENT,
            None,
            "openid profile email groups",
            "n-1",
            "alice",
        )
        .await;
    let access = t["access_token"].as_str().unwrap();
    let id_token = t["id_token"].as_str().unwrap();

    let p = provider(
        &peer.issuer(),
        json!({"client_id": PUBLIC_CLIENT, "client_secret": null}),
    );
    let id = p.verify_bearer(access).await.unwrap();
    assert_eq!(id.issuer, peer.issuer());
    assert_eq!(id.subject, "alice");
    assert_eq!(id.email.as_deref(), Some("alice@example.org"));
    assert_eq!(id.groups, vec!["analysts"]);
    // the access token has no preferred_username: the email is the user name
    assert_eq!(id.username, "alice@example.org");
    assert_eq!(p.initial_groups(&id), vec!["analysts"]);

    // The ID token (aud = the client id) is a valid bearer too, with profile claims.
    let id2 = p.verify_bearer(id_token).await.unwrap();
    assert_eq!(id2.subject, "alice");
    assert_eq!(id2.username, "alice");
    assert_eq!(id2.friendly_name.as_deref(), Some("alice"));
    assert_eq!(id2.groups, vec!["analysts"]);

    // username_claim / friendly_name_claim_name / no groups claim configured
    let p2 = provider(
        &peer.issuer(),
        json!({"client_id": PUBLIC_CLIENT, "username_claim": "email",
               "friendly_name_claim_name": "preferred_username",
               "initial_groups_claim_name": null, "default_initial_groups": ["Viewers"]}),
    );
    let id3 = p2.verify_bearer(id_token).await.unwrap();
    assert_eq!(id3.username, "alice@example.org");
    assert_eq!(id3.friendly_name.as_deref(), Some("alice"));
    assert!(id3.groups.is_empty());
    assert_eq!(p2.initial_groups(&id3), vec!["Viewers"]);
}

#[tokio::test]
async fn access_token_for_unlisted_audience_is_rejected() {
    let peer = OidcPeer::start().await;
    let token = peer.client_credentials_token().await;
    let p = provider(&peer.issuer(), json!({"allowed_audiences": []}));
    assert_invalid(p.verify_bearer(&token).await, "audience");
    let p = provider(&peer.issuer(), json!({"allowed_audiences": ["urn:other"]}));
    assert_invalid(p.verify_bearer(&token).await, "audience");
}

#[tokio::test]
async fn token_of_another_issuer_is_rejected() {
    let a = OidcPeer::start().await;
    let b = OidcPeer::start().await;
    let p = provider(&a.issuer(), json!({}));
    let foreign = b.client_credentials_token().await;
    assert!(!p.is_candidate(&foreign));
    assert_invalid(p.verify_bearer(&foreign).await, "issuer");
    // the configured URL may carry a trailing slash
    let p = provider(&format!("{}/", a.issuer()), json!({}));
    let own = a.client_credentials_token().await;
    assert!(p.is_candidate(&own));
    assert_eq!(p.verify_bearer(&own).await.unwrap().issuer, a.issuer());
}

#[tokio::test]
async fn provider_metadata_is_discovered() {
    let peer = OidcPeer::start().await;
    let p = provider(&peer.issuer(), json!({}));
    let m = p.metadata().await.unwrap();
    let i = peer.issuer();
    assert_eq!(m.issuer, i);
    assert_eq!(m.authorization_endpoint, format!("{i}/auth"));
    assert_eq!(m.token_endpoint, format!("{i}/token"));
    assert_eq!(m.jwks_uri, format!("{i}/jwks"));
    assert_eq!(
        m.device_authorization_endpoint,
        Some(format!("{i}/device/auth"))
    );
    assert_eq!(m.end_session_endpoint, Some(format!("{i}/session/end")));
    assert!(m.scopes_supported.iter().any(|s| s == "groups"));
    let js = serde_json::to_value(&m).unwrap();
    assert_eq!(js["token_endpoint"], json!(format!("{i}/token")));
}

#[tokio::test]
async fn unreachable_issuer_is_unavailable_and_failures_are_not_cached() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let p = provider(&issuer, json!({"http_timeout_seconds": 2}));
    assert!(matches!(p.metadata().await, Err(OidcError::Unavailable(_))));
    let key = node_key("rsa", "k");
    let token = sign(
        &key,
        Algorithm::RS256,
        Some("k"),
        &json!({"iss": issuer, "sub": "s", "aud": CONFIDENTIAL.0, "exp": now() + 300}),
    );
    assert!(p.is_candidate(&token), "routing needs no network");
    match p.verify_bearer(&token).await {
        Err(OidcError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let url = p
        .authorization_url("http://127.0.0.1/callback", "s", "n", "c")
        .await;
    assert!(matches!(url, Err(OidcError::Unavailable(_))));

    // The provider comes up: the next call retries discovery and succeeds.
    let peer = OidcPeer::start_on(port, None).await;
    assert_eq!(p.metadata().await.unwrap().issuer, issuer);
    let token = peer.client_credentials_token().await;
    assert_eq!(
        p.verify_bearer(&token).await.unwrap().subject,
        "lake-client"
    );
}

/// An issuer that accepts connections and never answers: concurrent callers share the one
/// failing discovery attempt instead of queueing one timeout each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_issuer_costs_concurrent_callers_one_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c); // keep it open, say nothing
        }
    });
    let p = Arc::new(provider(&issuer, json!({"http_timeout_seconds": 1})));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.metadata().await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(OidcError::Unavailable(_))));
    }
    let took = started.elapsed();
    // One shared 1 s timeout, not four in a row (4 s).
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // a later call tries again (and times out again)
    let started = std::time::Instant::now();
    assert!(matches!(p.metadata().await, Err(OidcError::Unavailable(_))));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

// -------------------------------------------------------------------------------------------
// Key rotation at the real provider
// -------------------------------------------------------------------------------------------

/// server.mjs makes a fresh key on every start but always calls it `test-rs256`: the cached key
/// of that kid no longer verifies, which triggers one JWKS refetch.
#[tokio::test]
async fn key_rotation_with_reused_kid_refetches_jwks() {
    let mut peer = OidcPeer::start().await;
    let p = provider(&peer.issuer(), json!({}));
    let old = peer.client_credentials_token().await;
    p.verify_bearer(&old).await.unwrap();

    peer.restart(None).await;
    let new = peer.client_credentials_token().await;
    assert_eq!(p.verify_bearer(&new).await.unwrap().subject, "lake-client");
    // the old key is gone
    assert_invalid(p.verify_bearer(&old).await, "signature");
    // and the new one stays cached
    p.verify_bearer(&new).await.unwrap();
}

/// A proper rotation: the provider's new key has a new kid (JWKS_FILE with test-made keys).
#[tokio::test]
async fn key_rotation_with_new_kid_refetches_jwks() {
    let k1 = node_key("rsa", "rot-1");
    let k2 = node_key("rsa", "rot-2");
    let mut peer = OidcPeer::start_on(free_port(), Some(&json!({"keys": [k1.private_jwk]}))).await;
    let p = provider(&peer.issuer(), json!({}));
    let old = peer.client_credentials_token().await;
    assert_eq!(
        jsonwebtoken::decode_header(&old).unwrap().kid.as_deref(),
        Some("rot-1")
    );
    p.verify_bearer(&old).await.unwrap();

    peer.restart(Some(&json!({"keys": [k2.private_jwk]}))).await;
    let new = peer.client_credentials_token().await;
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some("rot-2")
    );
    assert_eq!(p.verify_bearer(&new).await.unwrap().subject, "lake-client");
    assert_invalid(p.verify_bearer(&old).await, "rot-1");
}

// -------------------------------------------------------------------------------------------
// Authorization code flow through the module
// -------------------------------------------------------------------------------------------

struct Login {
    code: String,
    redirect_uri: String,
    verifier: String,
    nonce: String,
}

async fn browser_login(p: &OidcProvider, login: &str) -> Login {
    let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
    let (verifier, challenge) = pkce_pair();
    let state = random_token();
    let nonce = random_token();
    let url = p
        .authorization_url(&redirect_uri, &state, &nonce, &challenge)
        .await
        .unwrap();
    let cb = Browser::new().login(&url, &redirect_uri, login).await;
    assert_eq!(query_param(&cb, "state"), Some(state));
    Login {
        code: query_param(&cb, "code").unwrap(),
        redirect_uri,
        verifier,
        nonce,
    }
}

#[tokio::test]
async fn authorization_url_has_all_parameters() {
    let peer = OidcPeer::start().await;
    let p = provider(&peer.issuer(), json!({"scopes": ["profile", "email"]}));
    let (_, challenge) = pkce_pair();
    let s = p
        .authorization_url(
            "http://127.0.0.1:8181/auth/oidc/callback",
            "the-state",
            "the-nonce",
            &challenge,
        )
        .await
        .unwrap();
    let u = url::Url::parse(&s).unwrap();
    assert_eq!(
        format!("{}{}", &u[..url::Position::BeforePath], u.path()),
        format!("{}/auth", peer.issuer())
    );
    let q = |k: &str| query_param(&u, k);
    assert_eq!(q("response_type").as_deref(), Some("code"));
    assert_eq!(q("client_id").as_deref(), Some(CONFIDENTIAL.0));
    assert_eq!(
        q("redirect_uri").as_deref(),
        Some("http://127.0.0.1:8181/auth/oidc/callback")
    );
    assert_eq!(q("state").as_deref(), Some("the-state"));
    assert_eq!(q("nonce").as_deref(), Some("the-nonce"));
    assert_eq!(q("code_challenge"), Some(challenge));
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(
        q("scope").as_deref(),
        Some("openid profile email"),
        "openid is always requested"
    );
}

#[tokio::test]
async fn exchange_code_with_pkce_and_nonce() {
    let peer = OidcPeer::start().await;
    // confidential client: client_secret_basic
    let p = provider(&peer.issuer(), json!({}));
    let l = browser_login(&p, "alice").await;
    let id = p
        .exchange_code(&l.code, &l.redirect_uri, Some(&l.verifier), Some(&l.nonce))
        .await
        .unwrap();
    assert_eq!(
        id,
        OidcIdentity {
            issuer: peer.issuer(),
            subject: "alice".into(),
            username: "alice".into(),
            email: Some("alice@example.org".into()),
            friendly_name: Some("alice".into()),
            groups: vec!["analysts".into()],
        }
    );
    // a code is good once
    assert_invalid(
        p.exchange_code(&l.code, &l.redirect_uri, Some(&l.verifier), Some(&l.nonce))
            .await,
        "invalid_grant",
    );

    // nonce mismatch
    let l = browser_login(&p, "bob").await;
    assert_invalid(
        p.exchange_code(
            &l.code,
            &l.redirect_uri,
            Some(&l.verifier),
            Some("another-nonce"),
        )
        .await,
        "nonce",
    );

    // wrong PKCE verifier
    let l = browser_login(&p, "bob").await;
    let (other_verifier, _) = pkce_pair();
    assert_invalid(
        p.exchange_code(
            &l.code,
            &l.redirect_uri,
            Some(&other_verifier),
            Some(&l.nonce),
        )
        .await,
        "invalid_grant",
    );
}

#[tokio::test]
async fn exchange_code_as_public_client() {
    let peer = OidcPeer::start().await;
    let p = provider(
        &peer.issuer(),
        json!({"client_id": PUBLIC_CLIENT, "client_secret": null}),
    );
    let l = browser_login(&p, "carol").await;
    let id = p
        .exchange_code(&l.code, &l.redirect_uri, Some(&l.verifier), Some(&l.nonce))
        .await
        .unwrap();
    assert_eq!(id.subject, "carol");
    assert_eq!(id.email.as_deref(), Some("carol@example.org"));
    assert_eq!(id.groups, vec!["analysts"]);
}

#[tokio::test]
async fn exchange_code_with_wrong_client_secret_is_a_config_error() {
    let peer = OidcPeer::start().await;
    let p = provider(&peer.issuer(), json!({"client_secret": "not-the-secret"}));
    let l = browser_login(&p, "alice").await;
    match p
        .exchange_code(&l.code, &l.redirect_uri, Some(&l.verifier), Some(&l.nonce))
        .await
    {
        Err(OidcError::Config(m)) => assert!(m.contains("invalid_client"), "{m}"),
        other => panic!("expected Config, got {other:?}"),
    }
}

// -------------------------------------------------------------------------------------------
// Forged tokens (local issuer with test-held keys)
// -------------------------------------------------------------------------------------------

fn claims(issuer: &str, extra: Value) -> Value {
    let mut c = json!({
        "iss": issuer, "sub": "u-1", "aud": CONFIDENTIAL.0,
        "iat": now(), "exp": now() + 300, "email": "u1@example.org",
    });
    for (k, x) in extra.as_object().unwrap() {
        if x.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = x.clone();
        }
    }
    c
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_rejected() {
    let k1 = node_key("rsa", "k1");
    let attacker = node_key("rsa", "k1"); // same kid, other key
    let fake = FakeIssuer::start(json!({"keys": [k1.public_jwk]})).await;
    let iss = fake.issuer();
    let p = provider(&iss, json!({"leeway_seconds": 0}));
    let good = |extra: Value| sign(&k1, Algorithm::RS256, Some("k1"), &claims(&iss, extra));

    // sanity: a proper token passes
    let id = p.verify_bearer(&good(json!({}))).await.unwrap();
    assert_eq!(
        (id.subject.as_str(), id.username.as_str()),
        ("u-1", "u1@example.org")
    );
    // aud as an array with one accepted value
    p.verify_bearer(&good(json!({"aud": ["x", API_AUDIENCE]})))
        .await
        .unwrap();

    assert_invalid(
        p.verify_bearer(&good(json!({"exp": now() - 5}))).await,
        "expired",
    );
    assert_invalid(
        p.verify_bearer(&good(json!({"nbf": now() + 300}))).await,
        "nbf",
    );
    assert_invalid(p.verify_bearer(&good(json!({"exp": null}))).await, "exp");
    assert_invalid(p.verify_bearer(&good(json!({"sub": null}))).await, "sub");
    assert_invalid(p.verify_bearer(&good(json!({"sub": ""}))).await, "sub");
    assert_invalid(p.verify_bearer(&good(json!({"aud": null}))).await, "aud");
    assert_invalid(
        p.verify_bearer(&good(json!({"aud": "someone-else"}))).await,
        "audience",
    );
    assert_invalid(
        p.verify_bearer(&good(json!({"iss": "http://evil.example"})))
            .await,
        "issuer",
    );
    assert_invalid(
        p.verify_bearer(&good(json!({"iss": [iss.clone()]}))).await,
        "issuer",
    );

    // alg none
    assert_invalid(
        p.verify_bearer(&unsigned("k1", &claims(&iss, json!({}))))
            .await,
        "",
    );
    // HS256 keyed with the provider's public key (classic key-confusion attack)
    let hs = sign(&k1, Algorithm::HS256, Some("k1"), &claims(&iss, json!({})));
    assert_invalid(p.verify_bearer(&hs).await, "HS256");
    // signed by another key under the provider's kid
    let forged = sign(
        &attacker,
        Algorithm::RS256,
        Some("k1"),
        &claims(&iss, json!({})),
    );
    assert_invalid(p.verify_bearer(&forged).await, "signature");
    // the JWK says RS256: a PS256 signature by the right key is still refused
    let ps = sign(&k1, Algorithm::PS256, Some("k1"), &claims(&iss, json!({})));
    assert_invalid(p.verify_bearer(&ps).await, "alg");
    // unknown kid
    let unknown = sign(
        &k1,
        Algorithm::RS256,
        Some("nope"),
        &claims(&iss, json!({})),
    );
    assert_invalid(p.verify_bearer(&unknown).await, "nope");
    // garbage
    assert_invalid(p.verify_bearer("not.a.jwt").await, "");
    assert_invalid(p.verify_bearer("").await, "");

    // leeway: 5 s past exp is fine with the default 60 s leeway, 120 s past is not
    let lenient = provider(&iss, json!({}));
    lenient
        .verify_bearer(&good(json!({"exp": now() - 5})))
        .await
        .unwrap();
    lenient
        .verify_bearer(&good(json!({"nbf": now() + 5})))
        .await
        .unwrap();
    assert_invalid(
        lenient
            .verify_bearer(&good(json!({"exp": now() - 120})))
            .await,
        "expired",
    );
}

#[tokio::test]
async fn claims_are_mapped_to_the_identity() {
    let k = node_key("rsa", "k");
    let fake = FakeIssuer::start(json!({"keys": [k.public_jwk]})).await;
    let iss = fake.issuer();
    let tok = |extra: Value| sign(&k, Algorithm::RS256, Some("k"), &claims(&iss, extra));
    let p = provider(
        &iss,
        json!({"initial_groups_claim_name": "roles", "friendly_name_claim_name": "display"}),
    );
    let id = p
        .verify_bearer(&tok(json!({"preferred_username": "uu", "roles": "admins", "display": "U. U.", "name": "ignored"})))
        .await
        .unwrap();
    assert_eq!(id.username, "uu");
    assert_eq!(id.groups, vec!["admins"]);
    assert_eq!(id.friendly_name.as_deref(), Some("U. U."));
    let id = p
        .verify_bearer(&tok(json!({"roles": ["a", 7, "b"], "email": null})))
        .await
        .unwrap();
    assert_eq!(id.username, "u-1", "no preferred_username, no email → sub");
    assert_eq!(id.email, None);
    assert_eq!(id.groups, vec!["a", "b"]);
    assert_eq!(id.friendly_name, None);
}

#[tokio::test]
async fn ec_and_eddsa_keys_are_supported() {
    let ec = node_key("ec", "ec-1");
    let ed = node_key("ed25519", "ed-1");
    let rsa = node_key("rsa", "rsa-1");
    let fake =
        FakeIssuer::start(json!({"keys": [ec.public_jwk, ed.public_jwk, rsa.public_jwk]})).await;
    let iss = fake.issuer();
    let p = provider(&iss, json!({}));
    let c = claims(&iss, json!({}));
    p.verify_bearer(&sign(&ec, Algorithm::ES256, Some("ec-1"), &c))
        .await
        .unwrap();
    p.verify_bearer(&sign(&ed, Algorithm::EdDSA, Some("ed-1"), &c))
        .await
        .unwrap();
    // a token without kid is matched against the keys that fit its alg
    p.verify_bearer(&sign(&ec, Algorithm::ES256, None, &c))
        .await
        .unwrap();
    // alg / key type confusion is refused
    assert_invalid(
        p.verify_bearer(&sign(&rsa, Algorithm::RS256, Some("ec-1"), &c))
            .await,
        "alg",
    );
}

#[tokio::test]
async fn jwks_with_unusable_keys_still_yields_the_usable_ones() {
    let k = node_key("rsa", "good");
    let fake = FakeIssuer::start(json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": k.public_jwk["n"], "e": "AQAB"},
        {"kty": "weird", "kid": "w"},
        k.public_jwk,
    ]}))
    .await;
    let iss = fake.issuer();
    let p = provider(&iss, json!({}));
    p.verify_bearer(&sign(
        &k,
        Algorithm::RS256,
        Some("good"),
        &claims(&iss, json!({})),
    ))
    .await
    .unwrap();
    // the encryption-only key is not a verification key
    assert_invalid(
        p.verify_bearer(&sign(
            &k,
            Algorithm::RS256,
            Some("enc"),
            &claims(&iss, json!({})),
        ))
        .await,
        "enc",
    );
}

#[tokio::test]
async fn provider_outage_keeps_cached_keys_and_token_errors() {
    let k = node_key("rsa", "k");
    let attacker = node_key("rsa", "k");
    let fake = FakeIssuer::start(json!({"keys": [k.public_jwk]})).await;
    let iss = fake.issuer();
    let p = provider(&iss, json!({}));
    let good = sign(&k, Algorithm::RS256, Some("k"), &claims(&iss, json!({})));
    p.verify_bearer(&good).await.unwrap();
    let hits = fake.jwks_hits();

    fake.set_down(true);
    // cached discovery + keys keep working
    p.verify_bearer(&good).await.unwrap();
    // a forged token stays a 401 even though its refetch fails
    let forged = sign(
        &attacker,
        Algorithm::RS256,
        Some("k"),
        &claims(&iss, json!({})),
    );
    assert_invalid(p.verify_bearer(&forged).await, "signature");
    assert_eq!(fake.jwks_hits(), hits + 1, "the refetch was tried");

    // a fresh provider (nothing cached) reports the outage
    let cold = provider(&iss, json!({}));
    match cold.verify_bearer(&good).await {
        Err(OidcError::Unavailable(m)) => assert!(m.contains("503"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    fake.set_down(false);
    cold.verify_bearer(&good).await.unwrap();
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_a_config_error() {
    let k = node_key("rsa", "k");
    let fake = FakeIssuer::start(json!({"keys": [k.public_jwk]})).await;
    fake.set_advertised_issuer("http://somewhere.else");
    let p = provider(&fake.issuer(), json!({}));
    assert!(matches!(p.metadata().await, Err(OidcError::Config(_))));
    // not cached: once discovery is right, it works
    fake.set_advertised_issuer(&fake.issuer());
    assert_eq!(p.metadata().await.unwrap().issuer, fake.issuer());
}

/// Verifies 8 tokens with unknown kids concurrently; all must be refused. The tokens are
/// signed first and the verifications released together, so that none of them starts after
/// the refetch the others share has already finished (that would be a second miss, not a
/// failure of the single flight).
async fn concurrent_misses(p: &Arc<OidcProvider>, key: &TestKey, c: &Value) {
    let tokens: Vec<String> = (0..8)
        .map(|i| sign(key, Algorithm::RS256, Some(&format!("ghost-{i}")), c))
        .collect();
    let start = Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let (p, start) = (p.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                p.verify_bearer(&t).await
            })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(OidcError::InvalidToken(_))));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetch_is_single_flight_and_rate_limited() {
    let k1 = node_key("rsa", "k1");
    let k2 = node_key("rsa", "k2");
    let fake = FakeIssuer::start(json!({"keys": [k1.public_jwk]})).await;
    let iss = fake.issuer();
    let c = claims(&iss, json!({}));
    let t1 = sign(&k1, Algorithm::RS256, Some("k1"), &c);
    let t2 = sign(&k2, Algorithm::RS256, Some("k2"), &c);

    // Single-flight, even without a cooldown: concurrent misses share one refetch.
    let eager = Arc::new(provider(&iss, json!({})).with_jwks_refetch_cooldown(Duration::ZERO));
    eager.verify_bearer(&t1).await.unwrap();
    assert_eq!(fake.jwks_hits(), 1);
    fake.set_jwks_delay(Duration::from_secs(2)); // keep the refetch in flight
    concurrent_misses(&eager, &k1, &c).await;
    assert_eq!(fake.jwks_hits(), 2, "one refetch for all of them");
    fake.set_jwks_delay(Duration::ZERO);

    // Cooldown: after one token-triggered refetch, no other within the cooldown.
    let cooldown = Duration::from_millis(1500);
    let p = Arc::new(provider(&iss, json!({})).with_jwks_refetch_cooldown(cooldown));
    p.verify_bearer(&t1).await.unwrap();
    assert_eq!(fake.jwks_hits(), 3);
    concurrent_misses(&p, &k1, &c).await;
    assert_eq!(fake.jwks_hits(), 4, "one refetch for all of them");
    // the provider rotates to k2; within the cooldown no refetch happens
    fake.set_jwks(json!({"keys": [k1.public_jwk, k2.public_jwk]}));
    assert_invalid(p.verify_bearer(&t2).await, "k2");
    assert_eq!(fake.jwks_hits(), 4);
    // after the cooldown the unknown kid refetches and the token passes
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    p.verify_bearer(&t2).await.unwrap();
    assert_eq!(fake.jwks_hits(), 5);
    // known kids need no fetch
    p.verify_bearer(&t1).await.unwrap();
    p.verify_bearer(&t2).await.unwrap();
    assert_eq!(fake.jwks_hits(), 5);
    // tokens of foreign issuers never reach the network
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let foreign = sign(
        &k1,
        Algorithm::RS256,
        Some("zzz"),
        &claims("http://evil.example", json!({})),
    );
    assert_invalid(p.verify_bearer(&foreign).await, "issuer");
    assert_eq!(fake.jwks_hits(), 5);
}
