//! Every login flow of `sluice_client::flows` against REAL peers: the node oidc-provider
//! (client credentials, device code, PKCE, refresh), an in-process Sluice server (access-key
//! exchange, metadata-driven OIDC settings, web identity, LDAP with a real slapd, AWS IAM with
//! the STS stand-in that verifies SigV4), and real processes for external commands.
//!
//! The browser step is scripted over HTTP: the flow's opener hands the authorization URL to a
//! task that logs in on the provider's pages and then follows the provider's redirect to the
//! flow's own loopback listener. Device-flow answers the provider never gives (`slow_down`,
//! `expired_token`) come from a counting proxy in front of its `/token`.
//!
//! Missing peers FAIL with install instructions (`tests/peers/oidc.sh install`,
//! `tests/peers/slapd.sh install`).

use crate::oidc_peer;
use crate::slapd;
use crate::sts_stub;
use crate::support;

use oidc_peer::{query_param, Browser, OidcPeer, API_AUDIENCE, CONFIDENTIAL, PUBLIC_CLIENT};
use reqwest::Method;
use serde_json::{json, Value};
use sluice_auth::aws_iam::AwsIamConfig;
use sluice_client::auth::{Authenticator, Token};
use sluice_client::flows::*;
use sluice_client::{AuthMethod, ClientConfig, ClientError};
use sluice_core::Secret;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{claims, ctx, no_redirects, Jar, Sluice, TokenProxy, ADMIN_ID, ADMIN_SECRET};

const USER_SCOPES: [&str; 4] = ["openid", "offline_access", "email", "groups"];

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn secs_left(t: &Token) -> i64 {
    (t.expires_at.expect("expires_at") - chrono::Utc::now()).num_seconds()
}

/// The server's OIDC provider: confidential lake-client, the API audience, groups claim.
fn oidc_config(issuer: &str, extra: Value) -> sluice_auth::oidc::OidcConfig {
    let mut v = json!({
        "url": issuer,
        "client_id": CONFIDENTIAL.0,
        "client_secret": CONFIDENTIAL.1,
        "allowed_audiences": [API_AUDIENCE],
        "initial_groups_claim_name": "groups",
        "default_initial_groups": ["Viewers"],
        "scopes": ["openid", "profile", "email", "groups"],
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).expect("oidc config")
}

/// Explicit provider settings (no Sluice server involved).
fn provider_options(peer: &OidcPeer, client: &str, secret: Option<&str>) -> OidcOptions {
    OidcOptions {
        client_id: Some(client.to_string()),
        client_secret: secret.map(Secret::new),
        issuer: Some(peer.issuer()),
        authorization_endpoint: Some(format!("{}/auth", peer.issuer())),
        token_endpoint: Some(format!("{}/token", peer.issuer())),
        device_authorization_endpoint: Some(format!("{}/device/auth", peer.issuer())),
        scopes: scopes(&USER_SCOPES),
        ..Default::default()
    }
}

fn auth_err(r: sluice_client::error::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an authentication error"),
        Err(ClientError::Auth(m)) => m,
        Err(e) => panic!("expected ClientError::Auth, got {e:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// Scripted browser
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// Log in and consent, then follow the redirect to the flow's listener.
    Login,
    /// Log in, but change `state` in the redirect before following it.
    TamperState,
    /// Abort on the provider's page (the provider redirects with error=access_denied).
    Abort,
}

/// What the scripted browser saw: the authorization URL and the loopback's answer.
#[derive(Default)]
struct Seen {
    auth_url: Option<url::Url>,
    page: Option<(u16, String)>,
}

fn scripted_browser(
    issuer: String,
    login: &'static str,
    script: Script,
) -> (Arc<dyn BrowserOpener>, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let handle = tokio::runtime::Handle::current();
    let s = seen.clone();
    let opener = move |url: &str| -> Result<(), String> {
        let auth = url::Url::parse(url).unwrap();
        s.lock().unwrap().auth_url = Some(auth.clone());
        let (issuer, s) = (issuer.clone(), s.clone());
        handle.spawn(async move {
            let redirect_uri = query_param(&auth, "redirect_uri").expect("redirect_uri");
            let mut cb = match script {
                Script::Login | Script::TamperState => {
                    Browser::new()
                        .login(auth.as_str(), &redirect_uri, login)
                        .await
                }
                Script::Abort => {
                    url::Url::parse(&Jar::new().abort_login(&issuer, auth.as_str()).await).unwrap()
                }
            };
            assert!(cb.as_str().starts_with(&redirect_uri), "{cb}");
            if script == Script::TamperState {
                let pairs: Vec<(String, String)> = cb
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "state" {
                            "forged".to_string()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                cb.query_pairs_mut().clear().extend_pairs(pairs);
            }
            // The redirect lands on the flow's loopback listener.
            let r = no_redirects().get(cb).send().await.unwrap();
            let status = r.status().as_u16();
            s.lock().unwrap().page = Some((status, r.text().await.unwrap()));
        });
        Ok(())
    };
    (Arc::new(opener), seen)
}

/// The loopback's answer as the scripted browser saw it (it may land just after the flow
/// returned).
async fn page_of(seen: &Arc<Mutex<Seen>>) -> (u16, String) {
    for _ in 0..100 {
        if let Some(p) = seen.lock().unwrap().page.clone() {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the scripted browser never got the loopback's answer");
}

fn recording_sink() -> (Arc<dyn PromptSink>, Arc<Mutex<Vec<Prompt>>>) {
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let p = prompts.clone();
    (
        Arc::new(move |prompt: &Prompt| p.lock().unwrap().push(prompt.clone())),
        prompts,
    )
}

/// A device-flow sink that records the prompt and has the user approve (or deny) on the
/// provider's pages as `login`.
fn device_user(
    issuer: String,
    login: &'static str,
    approve: bool,
) -> (Arc<dyn PromptSink>, Arc<Mutex<Vec<Prompt>>>) {
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let p = prompts.clone();
    let handle = tokio::runtime::Handle::current();
    let sink = move |prompt: &Prompt| {
        p.lock().unwrap().push(prompt.clone());
        if let Prompt::DeviceCode { user_code, .. } = prompt {
            let (issuer, code) = (issuer.clone(), user_code.clone());
            handle.spawn(async move {
                let page = Jar::new().device(&issuer, &code, login, approve).await;
                if approve {
                    assert!(page.contains("Sign-in Success"), "{page}");
                }
            });
        }
    };
    (Arc::new(sink), prompts)
}

// ------------------------------------------------------------------------------------------
// Client credentials, access keys, static tokens, API keys
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_against_the_provider() {
    let peer = OidcPeer::start().await;
    let c = ctx("http://127.0.0.1:9"); // no Sluice server involved: token_url is explicit
    let auth = ClientCredentialsAuth::new(CONFIDENTIAL.0, Secret::new(CONFIDENTIAL.1))
        .token_url(format!("{}/token", peer.issuer()))
        .scopes(scopes(&["lakehouse"]))
        .audience(API_AUDIENCE);
    assert_eq!(
        auth.cache_identity().as_deref(),
        Some("client-credentials:lake-client")
    );
    let t = auth.authenticate(&c).await.unwrap();
    let cl = claims(t.access_token.expose());
    assert_eq!(cl["aud"], API_AUDIENCE, "{cl}");
    assert_eq!(cl["client_id"], CONFIDENTIAL.0, "{cl}");
    assert!(
        cl["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "lakehouse"),
        "{cl}"
    );
    assert!((3590..=3600).contains(&secs_left(&t)), "{:?}", t.expires_at);
    // Refresh repeats the grant.
    let t2 = auth.refresh(&c, &t).await.unwrap().expect("a new token");
    assert_ne!(t2.access_token.expose(), t.access_token.expose());

    // Wrong secret: the provider's invalid_client, as an authentication error.
    let bad = ClientCredentialsAuth::new(CONFIDENTIAL.0, Secret::new("wrong"))
        .token_url(format!("{}/token", peer.issuer()));
    let m = auth_err(bad.authenticate(&c).await);
    assert!(m.contains("invalid_client"), "{m}");

    // Plain http to a non-loopback host is refused before anything is sent.
    let far =
        ClientCredentialsAuth::new("x", Secret::new("y")).token_url("http://idp.example.com/token");
    assert!(
        matches!(far.authenticate(&c).await, Err(ClientError::Config(m)) if m.contains("plain http"))
    );
}

#[tokio::test]
async fn client_credentials_token_url_from_the_server() {
    let peer = OidcPeer::start().await;
    let s = Sluice::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;

    // An IdP client id (not an access key): the server metadata's oidc.token_endpoint.
    let config = ClientConfig {
        auth_method: Some(AuthMethod::ClientCredentials),
        client_id: Some(CONFIDENTIAL.0.into()),
        client_secret: Some(Secret::new(CONFIDENTIAL.1)),
        scopes: scopes(&["lakehouse"]),
        ..Default::default()
    };
    let auth = from_config(&config).unwrap();
    let t = auth.authenticate(&ctx(&s.base)).await.unwrap();
    assert_eq!(claims(t.access_token.expose())["iss"], peer.issuer());
    let (status, who) = s.whoami(t.access_token.expose()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["name"], CONFIDENTIAL.0);
    assert_eq!(who["source"], "oidc");

    // An access key id: Sluice's own /v1/oauth/tokens, even with an OIDC provider configured.
    let auth = ClientCredentialsAuth::new(ADMIN_ID, Secret::new(ADMIN_SECRET));
    assert_eq!(
        auth.resolve_token_url(&ctx(&s.base)).await.unwrap(),
        s.url("/v1/oauth/tokens")
    );
    let t = auth.authenticate(&ctx(&s.base)).await.unwrap();
    let (status, who) = s.whoami(t.access_token.expose()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["name"], "admin");
    assert!(secs_left(&t) > 60);
}

#[tokio::test]
async fn access_key_basic_and_exchange() {
    let s = Sluice::start(|_| {}).await;
    let c = ctx(&s.base);
    let mut config = ClientConfig {
        access_key_id: Some(ADMIN_ID.into()),
        secret_access_key: Some(Secret::new(ADMIN_SECRET)),
        ..Default::default()
    };
    // Default method with a key: access-key in Basic mode.
    let basic = from_config(&config).unwrap();
    assert_eq!(basic.name(), "access-key");
    let (id, secret) = basic.basic_credentials().expect("Basic credentials");
    assert_eq!((id.as_str(), secret.expose()), (ADMIN_ID, ADMIN_SECRET));
    assert!(matches!(
        basic.authenticate(&c).await,
        Err(ClientError::Config(_))
    ));
    assert!(basic
        .refresh(
            &c,
            &Token {
                access_token: Secret::new("x"),
                refresh_token: None,
                expires_at: None
            }
        )
        .await
        .unwrap()
        .is_none());

    // Exchanged for a JWT at /v1/oauth/tokens; refresh exchanges again.
    config.exchange_access_key = true;
    let ex = from_config(&config).unwrap();
    assert!(ex.basic_credentials().is_none());
    let t = ex.authenticate(&c).await.unwrap();
    assert_eq!(t.access_token.expose().split('.').count(), 3, "a JWT");
    assert_eq!(s.whoami(t.access_token.expose()).await.1["name"], "admin");
    let t2 = ex.refresh(&c, &t).await.unwrap().expect("exchanged again");
    assert_eq!(s.whoami(t2.access_token.expose()).await.0, 200);

    let wrong = AccessKeyAuth::new(
        ADMIN_ID,
        Secret::new("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ9999"),
        true,
    );
    let m = auth_err(wrong.authenticate(&c).await);
    assert!(m.contains("invalid_client"), "{m}");

    // A static token is handed back as is.
    let st = from_config(&ClientConfig {
        token: Some(Secret::new(t.access_token.expose())),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(st.name(), "static-token");
    assert_eq!(
        st.authenticate(&c).await.unwrap().access_token.expose(),
        t.access_token.expose()
    );
}

#[tokio::test]
async fn api_key_round_trip() {
    let s = Sluice::start(|_| {}).await;
    let key = ApiKey {
        endpoint: s.base.clone(),
        client_id: ADMIN_ID.into(),
        client_secret: Secret::new(ADMIN_SECRET),
        org: Some("acme".into()),
    };
    let encoded = encode_api_key(&key);
    assert!(encoded.starts_with(API_KEY_PREFIX));
    let decoded = decode_api_key(&encoded).unwrap();
    assert_eq!(decoded.endpoint, s.base);
    assert_eq!(decoded.org.as_deref(), Some("acme"));

    // The key's endpoint is used even when the client's endpoint is elsewhere (unreachable).
    let config = ClientConfig {
        api_key: Some(Secret::new(encoded.clone())),
        ..Default::default()
    };
    let auth = from_config(&config).unwrap();
    assert_eq!(auth.name(), "api-key");
    assert_eq!(
        auth.cache_identity().as_deref(),
        Some(format!("api-key:{ADMIN_ID}").as_str())
    );
    let t = auth.authenticate(&ctx("http://127.0.0.1:9")).await.unwrap();
    assert_eq!(s.whoami(t.access_token.expose()).await.1["name"], "admin");
    assert!(auth
        .refresh(&ctx("http://127.0.0.1:9"), &t)
        .await
        .unwrap()
        .is_some());

    // A key whose secret is wrong fails like client credentials do.
    let bad = encode_api_key(&ApiKey {
        client_secret: Secret::new("nope"),
        ..key
    });
    let m = auth_err(
        ApiKeyAuth::from_key_string(&bad)
            .unwrap()
            .authenticate(&ctx(&s.base))
            .await,
    );
    assert!(m.contains("invalid_client"), "{m}");
}

// ------------------------------------------------------------------------------------------
// External command
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn external_command_outputs_and_failures() {
    let c = ctx("http://127.0.0.1:9");
    let cfg = |cmd: &str| ClientConfig {
        auth_method: Some(AuthMethod::ExternalCommand),
        token_command: Some(cmd.into()),
        ..Default::default()
    };
    let t = from_config(&cfg("printf '  tok-123\\n\\n'"))
        .unwrap()
        .authenticate(&c)
        .await
        .unwrap();
    assert_eq!(t.access_token.expose(), "tok-123");
    assert!(t.expires_at.is_none());

    let a = from_config(&cfg(
        r#"echo '{"access_token": "jwt-abc", "expires_in": 120}'"#,
    ))
    .unwrap();
    let t = a.authenticate(&c).await.unwrap();
    assert_eq!(t.access_token.expose(), "jwt-abc");
    assert!((118..=120).contains(&secs_left(&t)));
    assert_eq!(
        a.refresh(&c, &t)
            .await
            .unwrap()
            .unwrap()
            .access_token
            .expose(),
        "jwt-abc"
    );

    let m = auth_err(
        from_config(&cfg("echo 'no credentials for you' >&2; exit 3"))
            .unwrap()
            .authenticate(&c)
            .await,
    );
    assert!(
        m.contains("status 3") && m.contains("no credentials for you"),
        "{m}"
    );
    let m = auth_err(from_config(&cfg("true")).unwrap().authenticate(&c).await);
    assert!(m.contains("no token"), "{m}");
    assert!(matches!(
        from_config(&cfg(r#"echo '{"expires_in": 5}'"#))
            .unwrap()
            .authenticate(&c)
            .await,
        Err(ClientError::Protocol(_))
    ));

    let started = Instant::now();
    let slow = ExternalCommandAuth::new("sleep 30; echo late").timeout(Duration::from_millis(500));
    let m = auth_err(slow.authenticate(&c).await);
    assert!(m.contains("did not finish"), "{m}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ------------------------------------------------------------------------------------------
// Device authorization grant
// ------------------------------------------------------------------------------------------

fn via_proxy(
    peer: &OidcPeer,
    proxy: &TokenProxy,
    client: &str,
    secret: Option<&str>,
) -> OidcOptions {
    OidcOptions {
        token_endpoint: Some(format!("{}/token", proxy.base)),
        device_authorization_endpoint: Some(format!("{}/device/auth", proxy.base)),
        ..provider_options(peer, client, secret)
    }
}

#[tokio::test]
async fn device_flow_with_slow_down_then_refresh_rotates() {
    let peer = OidcPeer::start().await;
    let proxy = TokenProxy::start(&peer.issuer()).await;
    // The provider sends no interval: our (test) default of 1 s applies. The first poll is
    // told to slow down, the second "pending" by the proxy, the third reaches the provider.
    proxy.answer(&["slow_down", "authorization_pending"]);
    let (sink, prompts) = device_user(peer.issuer(), "bob", true);
    let auth = DeviceAuth::new(via_proxy(&peer, &proxy, PUBLIC_CLIENT, None))
        .default_interval(Duration::from_secs(1))
        .prompt_sink(sink);
    let c = ctx("http://127.0.0.1:9");
    let started = Instant::now();
    let t = auth.authenticate(&c).await.unwrap();
    // First poll after the 1 s default, then two 6 s waits.
    let took = started.elapsed().as_secs_f64();
    assert!((12.9..15.5).contains(&took), "device login took {took} s");

    let cl = claims(t.access_token.expose());
    assert_eq!(cl["sub"], "bob", "{cl}");
    assert_eq!(cl["aud"], API_AUDIENCE, "{cl}");
    let polls = proxy.polls();
    let outcomes: Vec<&str> = polls.iter().map(|p| p.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "canned:slow_down",
            "canned:authorization_pending",
            "upstream:200:token"
        ]
    );
    // 1 s before slow_down, 1 + 5 = 6 s after it, and it stays at 6 s.
    let gaps = proxy.gaps();
    for g in &gaps {
        assert!((5.9..7.0).contains(g), "poll gaps {gaps:?}");
    }
    let prompts = prompts.lock().unwrap().clone();
    match prompts.as_slice() {
        [Prompt::DeviceCode {
            verification_uri,
            verification_uri_complete,
            user_code,
            expires_in,
        }] => {
            assert_eq!(verification_uri, &format!("{}/device", peer.issuer()));
            assert!(verification_uri_complete
                .as_deref()
                .unwrap()
                .contains("user_code="));
            assert!(!user_code.is_empty());
            assert_eq!(*expires_in, Duration::from_secs(600));
        }
        other => panic!("prompts: {other:?}"),
    }
    assert!(prompts[0].to_string().contains("enter the code"));

    // The public client gets a rotated refresh token.
    let rt = t
        .refresh_token
        .clone()
        .expect("offline_access gives a refresh token");
    let t2 = auth.refresh(&c, &t).await.unwrap().expect("refreshed");
    let rt2 = t2.refresh_token.clone().expect("rotated refresh token");
    assert_ne!(
        rt2.expose(),
        rt.expose(),
        "the public client's refresh token rotates"
    );
    assert_eq!(claims(t2.access_token.expose())["sub"], "bob");
    // The consumed one is refused: no token, a new login is needed.
    assert!(auth.refresh(&c, &t).await.unwrap().is_none());
}

#[tokio::test]
async fn device_flow_stops_on_access_denied_and_expired_token() {
    let peer = OidcPeer::start().await;
    let c = ctx("http://127.0.0.1:9");

    // The person aborts on the provider's confirm page: its own access_denied.
    let proxy = TokenProxy::start(&peer.issuer()).await;
    let (sink, _) = device_user(peer.issuer(), "bob", false);
    let auth = DeviceAuth::new(via_proxy(&peer, &proxy, PUBLIC_CLIENT, None))
        .default_interval(Duration::from_secs(1))
        .prompt_sink(sink);
    let m = auth_err(auth.authenticate(&c).await);
    assert!(m.contains("denied") && m.contains("access_denied"), "{m}");
    let n = proxy.polls().len();
    assert!(
        proxy
            .polls()
            .last()
            .unwrap()
            .outcome
            .ends_with(":access_denied"),
        "{:?}",
        proxy.polls()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        proxy.polls().len(),
        n,
        "polling went on after access_denied"
    );

    // expired_token (from the proxy; confidential client in Basic this time).
    let proxy = TokenProxy::start(&peer.issuer()).await;
    proxy.answer(&["authorization_pending", "expired_token"]);
    let (sink, _) = recording_sink();
    let auth = DeviceAuth::new(via_proxy(
        &peer,
        &proxy,
        CONFIDENTIAL.0,
        Some(CONFIDENTIAL.1),
    ))
    .default_interval(Duration::from_secs(1))
    .prompt_sink(sink);
    let m = auth_err(auth.authenticate(&c).await);
    assert!(m.contains("expired"), "{m}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(proxy.polls().len(), 2, "{:?}", proxy.polls());

    // The device code's expires_in bounds the wait (nobody approves).
    let proxy = TokenProxy::start(&peer.issuer()).await;
    proxy.set_device_expires_in(3);
    let (sink, _) = recording_sink();
    let auth = DeviceAuth::new(via_proxy(&peer, &proxy, PUBLIC_CLIENT, None))
        .default_interval(Duration::from_secs(1))
        .prompt_sink(sink);
    let started = Instant::now();
    let m = auth_err(auth.authenticate(&c).await);
    assert!(m.contains("not approved within 3 s"), "{m}");
    // The provider's own device code lives for minutes: stopping within seconds is the
    // client keeping to the expires_in it was given. How many 1 s polls fit before it
    // depends on how long each round trip took (fewer on a loaded machine), never more
    // than three.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        (1..=3).contains(&proxy.polls().len()),
        "{:?}",
        proxy.polls()
    );
    assert!(proxy
        .polls()
        .iter()
        .all(|p| p.outcome.ends_with(":authorization_pending")));
}

#[tokio::test]
async fn device_flow_with_settings_from_the_server() {
    let peer = OidcPeer::start().await;
    let s = Sluice::start(|c| {
        c.oidc = Some(oidc_config(
            &peer.issuer(),
            json!({"public_client_id": PUBLIC_CLIENT}),
        ))
    })
    .await;
    let (sink, prompts) = device_user(peer.issuer(), "dora", true);
    let config = ClientConfig {
        auth_method: Some(AuthMethod::Device),
        ..Default::default()
    };
    assert_eq!(from_config(&config).unwrap().name(), "device");
    let auth = DeviceAuth::new(OidcOptions::from_config(&config))
        .default_interval(Duration::from_secs(1))
        .prompt_sink(sink);
    let t = auth.authenticate(&ctx(&s.base)).await.unwrap();
    assert_eq!(prompts.lock().unwrap().len(), 1);
    let (status, who) = s.whoami(t.access_token.expose()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["email"], "dora@example.org", "{who}");
}

// ------------------------------------------------------------------------------------------
// Authorization code + PKCE
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn pkce_public_client_login_and_rotating_refresh() {
    let peer = OidcPeer::start().await;
    let (opener, seen) = scripted_browser(peer.issuer(), "alice", Script::Login);
    let (sink, prompts) = recording_sink();
    let auth = PkceAuth::new(provider_options(&peer, PUBLIC_CLIENT, None))
        .opener(opener)
        .prompt_sink(sink)
        .login_timeout(Duration::from_secs(60));
    let c = ctx("http://127.0.0.1:9");
    let t = auth.authenticate(&c).await.unwrap();
    let cl = claims(t.access_token.expose());
    assert_eq!(
        (cl["sub"].as_str(), cl["aud"].as_str()),
        (Some("alice"), Some(API_AUDIENCE)),
        "{cl}"
    );
    assert_eq!(cl["groups"], json!(["analysts"]));

    // The authorization request, as RFC 6749 §4.1.1 / RFC 7636 §4.3 spell it.
    let a = seen.lock().unwrap().auth_url.clone().unwrap();
    assert_eq!(
        a.as_str().split('?').next().unwrap(),
        format!("{}/auth", peer.issuer())
    );
    let q = |k: &str| query_param(&a, k);
    assert_eq!(q("response_type").as_deref(), Some("code"));
    assert_eq!(q("client_id").as_deref(), Some(PUBLIC_CLIENT));
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(q("code_challenge").unwrap().len(), 43);
    assert_eq!(q("state").unwrap().len(), 43);
    assert_eq!(
        q("scope").as_deref(),
        Some("openid offline_access email groups")
    );
    assert_eq!(
        q("prompt").as_deref(),
        Some("consent"),
        "offline_access needs prompt=consent"
    );
    let redirect = url::Url::parse(&q("redirect_uri").unwrap()).unwrap();
    assert_eq!(
        (redirect.host_str(), redirect.path()),
        (Some("127.0.0.1"), "/callback")
    );
    assert_ne!(redirect.port(), None);
    let (status, page) = page_of(&seen).await;
    assert_eq!(status, 200);
    assert!(page.contains("Login complete"), "{page}");
    // The URL was shown (stderr by default) whatever the opener did.
    assert_eq!(
        prompts.lock().unwrap().as_slice(),
        &[Prompt::OpenUrl { url: a.to_string() }]
    );

    // Public client: the refresh token rotates; the old one is then refused (Ok(None)).
    let t2 = auth.refresh(&c, &t).await.unwrap().expect("refreshed");
    assert_ne!(
        t2.refresh_token.as_ref().unwrap().expose(),
        t.refresh_token.as_ref().unwrap().expose()
    );
    assert_ne!(t2.access_token.expose(), t.access_token.expose());
    assert!(auth.refresh(&c, &t).await.unwrap().is_none());
    // Without a refresh token there is nothing to refresh.
    let bare = Token {
        refresh_token: None,
        ..t2.clone()
    };
    assert!(auth.refresh(&c, &bare).await.unwrap().is_none());
}

#[tokio::test]
async fn pkce_confidential_client_keeps_its_refresh_token() {
    let peer = OidcPeer::start().await;
    let (opener, _) = scripted_browser(peer.issuer(), "carol", Script::Login);
    let auth = PkceAuth::new(provider_options(
        &peer,
        CONFIDENTIAL.0,
        Some(CONFIDENTIAL.1),
    ))
    .opener(opener)
    .prompt_sink(recording_sink().0)
    .redirect_port(oidc_peer::free_port())
    .login_timeout(Duration::from_secs(60));
    let c = ctx("http://127.0.0.1:9");
    let t = auth.authenticate(&c).await.unwrap();
    let rt = t.refresh_token.clone().expect("refresh token");
    let t2 = auth.refresh(&c, &t).await.unwrap().expect("refreshed");
    assert_eq!(
        t2.refresh_token.as_ref().unwrap().expose(),
        rt.expose(),
        "confidential: same refresh token"
    );
    assert_ne!(t2.access_token.expose(), t.access_token.expose());
    // ...and it keeps working.
    let t3 = auth
        .refresh(&c, &t2)
        .await
        .unwrap()
        .expect("refreshed again");
    assert_eq!(claims(t3.access_token.expose())["sub"], "carol");
}

#[tokio::test]
async fn pkce_with_settings_from_the_server() {
    let peer = OidcPeer::start().await;
    let s = Sluice::start(|c| {
        c.oidc = Some(oidc_config(
            &peer.issuer(),
            json!({"public_client_id": PUBLIC_CLIENT}),
        ))
    })
    .await;
    let (opener, seen) = scripted_browser(peer.issuer(), "erin", Script::Login);
    let config = ClientConfig {
        auth_method: Some(AuthMethod::Pkce),
        ..Default::default()
    };
    let auth = PkceAuth::new(OidcOptions::from_config(&config))
        .opener(opener)
        .prompt_sink(recording_sink().0)
        .login_timeout(Duration::from_secs(60));
    let t = auth.authenticate(&ctx(&s.base)).await.unwrap();
    let a = seen.lock().unwrap().auth_url.clone().unwrap();
    assert_eq!(query_param(&a, "client_id").as_deref(), Some(PUBLIC_CLIENT));
    assert_eq!(
        query_param(&a, "scope").as_deref(),
        Some("openid profile email groups")
    );
    assert_eq!(query_param(&a, "audience").as_deref(), Some(API_AUDIENCE));
    assert_eq!(query_param(&a, "prompt"), None);
    let (status, who) = s.whoami(t.access_token.expose()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["email"], "erin@example.org");
}

#[tokio::test]
async fn pkce_refuses_a_tampered_state_and_reports_provider_errors() {
    let peer = OidcPeer::start().await;
    let c = ctx("http://127.0.0.1:9");

    let (opener, seen) = scripted_browser(peer.issuer(), "mallory", Script::TamperState);
    let auth = PkceAuth::new(provider_options(&peer, PUBLIC_CLIENT, None))
        .opener(opener)
        .prompt_sink(recording_sink().0)
        .login_timeout(Duration::from_secs(60));
    let m = auth_err(auth.authenticate(&c).await);
    assert!(m.contains("wrong state"), "{m}");
    let (status, page) = page_of(&seen).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("Login failed") && page.contains("wrong state"),
        "{page}"
    );

    // The person aborts on the provider's page: error=access_denied comes back.
    let (opener, seen) = scripted_browser(peer.issuer(), "x", Script::Abort);
    let auth = PkceAuth::new(provider_options(&peer, PUBLIC_CLIENT, None))
        .opener(opener)
        .prompt_sink(recording_sink().0)
        .login_timeout(Duration::from_secs(60));
    let m = auth_err(auth.authenticate(&c).await);
    assert!(
        m.contains("refused the login: access_denied (End-User aborted interaction)"),
        "{m}"
    );
    let (status, page) = page_of(&seen).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("access_denied") && page.contains("End-User aborted interaction"),
        "{page}"
    );
}

#[tokio::test]
async fn pkce_without_a_browser_prints_the_url_and_times_out() {
    let peer = OidcPeer::start().await;
    let (sink, prompts) = recording_sink();
    let no_browser = |_: &str| -> Result<(), String> { Err("no display".into()) };
    let auth = PkceAuth::new(provider_options(&peer, PUBLIC_CLIENT, None))
        .opener(Arc::new(no_browser))
        .prompt_sink(sink)
        .login_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let m = auth_err(auth.authenticate(&ctx("http://127.0.0.1:9")).await);
    assert!(m.contains("no browser login completed within 1 s"), "{m}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let prompts = prompts.lock().unwrap().clone();
    match prompts.as_slice() {
        [Prompt::OpenUrl { url }, Prompt::BrowserUnavailable { url: u2, reason }] => {
            assert!(url.starts_with(&format!("{}/auth?", peer.issuer())));
            assert_eq!(url, u2);
            assert_eq!(reason, "no display");
            assert!(prompts[1].to_string().contains(url.as_str()));
        }
        other => panic!("{other:?}"),
    }

    // A redirect port that is taken is a configuration error naming the setting.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let auth = PkceAuth::new(provider_options(&peer, PUBLIC_CLIENT, None)).redirect_port(port);
    match auth.authenticate(&ctx("http://127.0.0.1:9")).await {
        Err(ClientError::Config(m)) => assert!(m.contains("redirect-port"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

// ------------------------------------------------------------------------------------------
// Sluice login endpoints: web identity, LDAP, AWS IAM
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn web_identity_login() {
    let peer = OidcPeer::start().await;
    let s = Sluice::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;
    let c = ctx(&s.base);
    // The browser step for the server's own client (metadata), then /auth/sts/login.
    let (opener, seen) = scripted_browser(peer.issuer(), "frank", Script::Login);
    let config = ClientConfig {
        auth_method: Some(AuthMethod::WebIdentity),
        ..Default::default()
    };
    assert_eq!(from_config(&config).unwrap().name(), "web-identity");
    let auth = WebIdentityAuth::browser(OidcOptions::from_config(&config))
        .opener(opener)
        .prompt_sink(recording_sink().0)
        .login_timeout(Duration::from_secs(60));
    let t = auth.authenticate(&c).await.unwrap();
    assert_eq!(
        query_param(&seen.lock().unwrap().auth_url.clone().unwrap(), "client_id").as_deref(),
        Some(CONFIDENTIAL.0)
    );
    assert!(secs_left(&t) > 60);
    let (status, who) = s.whoami(t.access_token.expose()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        (who["name"].as_str(), who["source"].as_str()),
        (Some("frank"), Some("web-identity")),
        "{who}"
    );
    assert!(
        auth.refresh(&c, &t).await.unwrap().is_none(),
        "a code is single-use"
    );

    // A code the caller already has; a bogus one is refused by the provider via the server.
    let bogus = WebIdentityAuth::with_code(WebIdentityCode {
        code: "not-a-code".into(),
        state: None,
        redirect_uri: "http://127.0.0.1:1234/callback".into(),
        code_verifier: None,
    });
    let m = auth_err(bogus.authenticate(&c).await);
    assert!(m.contains("web identity login refused"), "{m}");

    // A server without OIDC: a configuration error.
    let bare = Sluice::start(|_| {}).await;
    let auth = WebIdentityAuth::browser(OidcOptions::default());
    assert!(
        matches!(auth.authenticate(&ctx(&bare.base)).await, Err(ClientError::Config(m)) if m.contains("no OIDC provider"))
    );
}

#[tokio::test]
async fn ldap_login() {
    let dir = slapd::Slapd::start();
    let v = json!({
        "server_endpoint": dir.url(),
        "bind_dn": slapd::SVC_DN,
        "bind_password": slapd::SVC_PASSWORD,
        "user_base_dn": slapd::PEOPLE,
        "user_filter": "(objectClass=inetOrgPerson)",
        "default_user_group": "Viewers",
        "connection_timeout_seconds": 2,
        "request_timeout_seconds": 2,
    });
    let s = Sluice::start(|c| c.ldap = Some(serde_json::from_value(v).unwrap())).await;
    let c = ctx(&s.base);
    let config = ClientConfig {
        auth_method: Some(AuthMethod::Ldap),
        username: Some("alice".into()),
        password: Some(Secret::new("alicepass")),
        ..Default::default()
    };
    let auth = from_config(&config).unwrap();
    assert_eq!(auth.cache_identity().as_deref(), Some("ldap:alice"));
    let t = auth.authenticate(&c).await.unwrap();
    assert!(secs_left(&t) > 60);
    let (status, who) = s.whoami(t.access_token.expose()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        (who["name"].as_str(), who["source"].as_str()),
        (Some("alice"), Some("ldap"))
    );
    let t2 = auth.refresh(&c, &t).await.unwrap().expect("logs in again");
    assert_eq!(s.whoami(t2.access_token.expose()).await.0, 200);

    let m = auth_err(
        LdapAuth::new("alice", Secret::new("wrong"))
            .authenticate(&c)
            .await,
    );
    assert!(m.starts_with("LDAP login refused"), "{m}");
    // No LDAP on this server: a configuration error.
    let bare = Sluice::start(|_| {}).await;
    assert!(
        matches!(auth.authenticate(&ctx(&bare.base)).await, Err(ClientError::Config(m)) if m.contains("not configured"))
    );
}

const SERVER_ID: &str = "sluice-flows-test";

async fn aws_server(stub: &sts_stub::StsStub) -> Sluice {
    let s = Sluice::start(|c| {
        let mut a = AwsIamConfig::new(SERVER_ID);
        a.allowed_sts_hosts = vec!["sts.amazonaws.com".into(), "sts.*.amazonaws.com".into()];
        a.sts_endpoint_override = Some(stub.endpoint.clone());
        c.aws_iam = Some(a);
    })
    .await;
    s.create_user("alice-aws").await;
    let (st, b) = s
        .admin(
            Method::PUT,
            "/management/v1/groups/Viewers/members/alice-aws",
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    let arn = sts_stub::alice().arn;
    let (st, b) = s
        .admin(
            Method::POST,
            "/management/v1/users/alice-aws/external-principals",
            Some(json!({"arn": arn})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    s
}

#[tokio::test]
async fn aws_role_login() {
    let stub = sts_stub::StsStub::start().await;
    let s = aws_server(&stub).await;
    let c = ctx(&s.base);

    // Global endpoint (us-east-1).
    let auth = AwsRoleAuth::new()
        .region("us-east-1")
        .credentials_provider(sts_stub::alice().credentials());
    let t = auth.authenticate(&c).await.unwrap();
    let (status, who) = s.whoami(t.access_token.expose()).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["name"], "alice-aws");
    let seen = stub.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.host.as_deref(), Some("sts.amazonaws.com"));
    assert_eq!(
        last.server_id.as_deref(),
        Some(SERVER_ID),
        "the server id came from the metadata"
    );
    assert_eq!(last.status, 200);
    assert!(secs_left(&t) > 60);

    // A regional STS host, a shorter session, and refresh = log in again.
    let auth = AwsRoleAuth::new()
        .region("eu-west-1")
        .session_ttl(Duration::from_secs(300))
        .credentials_provider(sts_stub::alice().credentials());
    let t = auth.authenticate(&c).await.unwrap();
    assert!((290..=300).contains(&secs_left(&t)), "{:?}", t.expires_at);
    assert_eq!(
        stub.seen().last().unwrap().host.as_deref(),
        Some("sts.eu-west-1.amazonaws.com")
    );
    let t2 = auth.refresh(&c, &t).await.unwrap().expect("logs in again");
    assert_eq!(
        s.whoami(t2.access_token.expose()).await.1["name"],
        "alice-aws"
    );

    // An AWS identity attached to nobody.
    let m = auth_err(
        AwsRoleAuth::new()
            .region("us-east-1")
            .credentials_provider(sts_stub::bob().credentials())
            .authenticate(&c)
            .await,
    );
    assert!(m.contains("not attached"), "{m}");

    // A server without AWS IAM login.
    let bare = Sluice::start(|_| {}).await;
    let auth = AwsRoleAuth::new().credentials_provider(sts_stub::alice().credentials());
    assert!(
        matches!(auth.authenticate(&ctx(&bare.base)).await, Err(ClientError::Config(m)) if m.contains("aws_iam"))
    );
}

/// The default AWS credential chain, from the environment of a child process (the parent's
/// environment is left alone: tests run in threads).
#[tokio::test]
async fn aws_role_login_with_the_default_credential_chain() {
    let stub = sts_stub::StsStub::start().await;
    let s = aws_server(&stub).await;
    let alice = sts_stub::alice();
    let exe = std::env::current_exe().unwrap();
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                "flows::aws_role_default_chain_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FLOWS_CHILD_ENDPOINT", base)
            .env("AWS_ACCESS_KEY_ID", &alice.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &alice.secret_access_key)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(stdout.contains("CHILD-LOGGED-IN-AS alice-aws"), "{stdout}");
    assert_eq!(stub.seen().last().unwrap().status, 200);
}

#[tokio::test]
#[ignore = "run by aws_role_login_with_the_default_credential_chain in a child process"]
async fn aws_role_default_chain_child() {
    let Ok(base) = std::env::var("FLOWS_CHILD_ENDPOINT") else {
        return;
    };
    let config = ClientConfig {
        auth_method: Some(AuthMethod::AwsRole),
        ..Default::default()
    };
    let auth = from_config(&config).unwrap();
    let t = auth.authenticate(&ctx(&base)).await.unwrap();
    let r = reqwest::Client::new()
        .get(format!("{base}/management/v1/whoami"))
        .bearer_auth(t.access_token.expose())
        .send()
        .await
        .unwrap();
    let who: Value = r.json().await.unwrap();
    println!("CHILD-LOGGED-IN-AS {}", who["name"].as_str().unwrap_or("?"));
}
