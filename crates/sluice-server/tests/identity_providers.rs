//! External identity providers end to end over HTTP, against REAL peers:
//! * OIDC: the node oidc-provider (bearer tokens on the API, browser SSO, web-identity login,
//!   auth metadata);
//! * LDAP: a real OpenLDAP slapd (JSON/form login, HTTP Basic on the API, directory outage);
//! * AWS IAM: presigned GetCallerIdentity tokens replayed to a local STS stand-in that
//!   verifies the signature with aws-sigv4.
//!
//! The peers come from the sluice-auth test helpers (tests/common/*.rs there). Missing peers
//! FAIL these tests with install instructions (`tests/peers/oidc.sh install`,
//! `tests/peers/slapd.sh install`).
//!
//! Browser SSO: the peer (tests/peers/oidc/server.mjs) registers Sluice's callback
//! `http://127.0.0.1/auth/oidc/callback` (any port, native clients) beside the CLI's `/callback`.

use crate::oidc_peer;
use crate::slapd;
use crate::sts_stub;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oidc_peer::{query_param, Browser, OidcPeer, API_AUDIENCE, CONFIDENTIAL};
use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice_auth::aws_iam::{build_identity_token, AwsIamConfig};
use sluice_auth::ldap::LdapConfig;
use sluice_auth::oidc::OidcConfig;
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};
use std::time::{Duration, Instant, SystemTime};

const ADMIN_ID: &str = "AKIATESTADMIN0000001";
const ADMIN_SECRET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123";

// ------------------------------------------------------------------------------------------
// In-process server
// ------------------------------------------------------------------------------------------

enum Auth<'a> {
    Admin,
    Anon,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    /// `Cookie: sluice_session=<token>` only.
    Session(&'a str),
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Resp {
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
    fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
    }
    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

struct Srv {
    base: String,
    client: Client,
    _dir: tempfile::TempDir,
}

impl Srv {
    async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            allowed_file_roots: vec![dir.path().to_path_buf()],
            ..ServerConfig::default()
        };
        configure(&mut config);
        let server = Server::open(config, Some((ADMIN_ID.into(), Secret::new(ADMIN_SECRET))))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server.serve(listener, std::future::pending()));
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Srv {
            base,
            client,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn call(&self, auth: &Auth<'_>, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        rb = match auth {
            Auth::Admin => rb.basic_auth(ADMIN_ID, Some(ADMIN_SECRET)),
            Auth::Anon => rb,
            Auth::Bearer(t) => rb.bearer_auth(t),
            Auth::Basic(u, p) => rb.basic_auth(u, Some(p)),
            Auth::Session(t) => rb.header("cookie", format!("sluice_session={t}")),
        };
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    async fn get(&self, auth: &Auth<'_>, path: &str) -> Resp {
        self.call(auth, Method::GET, path, None).await
    }

    async fn post(&self, auth: &Auth<'_>, path: &str, body: Value) -> Resp {
        self.call(auth, Method::POST, path, Some(body)).await
    }

    async fn whoami(&self, auth: &Auth<'_>) -> Value {
        let r = self.get(auth, "/management/v1/whoami").await;
        assert_eq!(r.status, 200, "whoami: {}", r.body);
        r.body
    }

    async fn prefix(&self) -> String {
        let r = self.get(&Auth::Admin, "/v1/config?warehouse=default").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["overrides"]["prefix"].as_str().unwrap().to_string()
    }

    async fn user(&self, name: &str) -> Value {
        let r = self
            .get(&Auth::Admin, &format!("/management/v1/users/{}", enc(name)))
            .await;
        assert_eq!(r.status, 200, "user {name}: {}", r.body);
        r.body
    }

    async fn user_names(&self) -> Vec<String> {
        let r = self.get(&Auth::Admin, "/management/v1/users").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// A group with one policy attached (admin).
    async fn group_with_policy(&self, group: &str, policy: &str) {
        let r = self
            .post(
                &Auth::Admin,
                "/management/v1/groups",
                json!({"name": group}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = self
            .call(
                &Auth::Admin,
                Method::PUT,
                &format!("/management/v1/groups/{group}/policies/{policy}"),
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }

    async fn create_user(&self, name: &str) {
        let r = self
            .post(&Auth::Admin, "/management/v1/users", json!({"name": name}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// 401 in the Iceberg error shape with a WWW-Authenticate challenge.
fn assert_401(r: &Resp, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    assert!(
        r.headers.get("www-authenticate").is_some(),
        "{what}: no WWW-Authenticate"
    );
    assert_eq!(
        r.body["error"]["type"], "NotAuthorizedException",
        "{what}: {}",
        r.body
    );
    assert_eq!(r.body["error"]["code"], 401, "{what}: {}", r.body);
}

fn sorted_groups(who: &Value) -> Vec<String> {
    let mut g: Vec<String> = who["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    g.sort();
    g
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

// ------------------------------------------------------------------------------------------
// OIDC helpers
// ------------------------------------------------------------------------------------------

/// lake-client (confidential) with the API audience, the groups claim and Viewers as the
/// default; `extra` overrides keys (null removes one).
fn oidc_config(issuer: &str, extra: Value) -> OidcConfig {
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
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    serde_json::from_value(v).expect("oidc config")
}

fn pkce() -> (String, String) {
    let mut b = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut b);
    let verifier = URL_SAFE_NO_PAD.encode(b);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The browser step of an auth-code + PKCE login run by the client itself (web identity):
/// returns (code, state, redirect_uri, verifier).
async fn browser_code(peer: &OidcPeer, login: &str) -> (String, String, String, String) {
    let redirect_uri = format!("http://127.0.0.1:{}/callback", oidc_peer::free_port());
    let (verifier, challenge) = pkce();
    let state = format!("st-{}", &verifier[..8]);
    let mut auth = url::Url::parse(&format!("{}/auth", peer.issuer())).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", CONFIDENTIAL.0)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid email profile groups")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state);
    let cb = Browser::new()
        .login(auth.as_str(), &redirect_uri, login)
        .await;
    assert_eq!(query_param(&cb, "state").as_deref(), Some(state.as_str()));
    (
        query_param(&cb, "code").expect("code"),
        state,
        redirect_uri,
        verifier,
    )
}

/// `GET /auth/oidc/login[?query]` → (provider URL, sealed login-state cookie value).
async fn sso_begin(s: &Srv, query: &str) -> (String, String) {
    let path = if query.is_empty() {
        "/auth/oidc/login".to_string()
    } else {
        format!("/auth/oidc/login?{query}")
    };
    let r = s.get(&Auth::Anon, &path).await;
    assert_eq!(r.status, 303, "{path}: {}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let location = r.location().expect("Location");
    let cookies = r.set_cookies();
    let c = cookies
        .iter()
        .find(|c| c.starts_with("sluice_oidc_login="))
        .unwrap_or_else(|| panic!("no login cookie: {cookies:?}"));
    assert!(c.contains("HttpOnly"), "{c}");
    assert!(c.contains("Path=/auth/oidc"), "{c}");
    let value = c
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    (location, value)
}

/// Runs the provider's login + consent pages for `login` and returns Sluice's callback URL.
async fn sso_provider_step(s: &Srv, provider_url: &str, login: &str) -> String {
    let callback = s.url("/auth/oidc/callback");
    let cb = Browser::new().login(provider_url, &callback, login).await;
    assert!(query_param(&cb, "code").is_some(), "{cb}");
    cb.to_string()
}

async fn sso_callback(s: &Srv, callback_url: &str, login_cookie: Option<&str>) -> Resp {
    let mut rb = s.client.get(callback_url);
    if let Some(c) = login_cookie {
        rb = rb.header("cookie", format!("sluice_oidc_login={c}"));
    }
    s.send(rb).await
}

fn session_cookie(r: &Resp) -> String {
    let cookies = r.set_cookies();
    let c = cookies
        .iter()
        .find(|c| c.starts_with("sluice_session="))
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert!(c.contains("HttpOnly"), "{c}");
    assert!(c.contains("Path=/"), "{c}");
    assert!(c.contains("SameSite=Lax"), "{c}");
    // The login-state cookie is cleared.
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("sluice_oidc_login=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    c.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

// ------------------------------------------------------------------------------------------
// OIDC: bearer tokens
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn oidc_bearer_tokens_provision_users_and_map_groups() {
    let peer = OidcPeer::start().await;
    let s = Srv::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;
    s.group_with_policy("analysts", "CatalogReadOnly").await;
    let prefix = s.prefix().await;

    // A machine token (client_credentials): no groups claim → default_initial_groups.
    let cc = peer.client_credentials_token().await;
    let who = s.whoami(&Auth::Bearer(&cc)).await;
    assert_eq!(who["source"], "oidc", "{who}");
    assert_eq!(
        who["name"], CONFIDENTIAL.0,
        "sub of a client_credentials token is the client id: {who}"
    );
    assert_eq!(sorted_groups(&who), vec!["Viewers"], "{who}");
    let r = s
        .get(&Auth::Bearer(&cc), "/v1/config?warehouse=default")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["overrides"]["prefix"], prefix.as_str());
    // Seen again: the same user, not a second one.
    let again = s
        .whoami(&Auth::Bearer(&peer.client_credentials_token().await))
        .await;
    assert_eq!(again["user-id"], who["user-id"]);

    // A user token from the scripted auth-code + PKCE flow: groups ["analysts"] → analysts.
    let tokens = peer
        .authcode_tokens(
            CONFIDENTIAL.0,
            Some(CONFIDENTIAL.1),
            "openid email profile groups",
            "n0nce-1",
            "carol",
        )
        .await;
    let at = tokens["access_token"].as_str().unwrap().to_string();
    let who = s.whoami(&Auth::Bearer(&at)).await;
    assert_eq!(who["source"], "oidc", "{who}");
    // The access token has no preferred_username: the name falls back to the email.
    assert_eq!(who["name"], "carol@example.org", "{who}");
    assert_eq!(who["email"], "carol@example.org", "{who}");
    assert_eq!(sorted_groups(&who), vec!["analysts"], "{who}");
    let user = s.user("carol@example.org").await;
    assert_eq!(user["source"], "oidc", "{user}");

    // analysts (CatalogReadOnly) can read the catalog but not write it.
    let r = s
        .get(&Auth::Bearer(&at), "/v1/config?warehouse=default")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            &Auth::Admin,
            &format!("/v1/{prefix}/namespaces"),
            json!({"namespace": ["shared"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .get(&Auth::Bearer(&at), &format!("/v1/{prefix}/namespaces"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["namespaces"], json!([["shared"]]));
    let r = s
        .get(
            &Auth::Bearer(&at),
            &format!("/v1/{prefix}/namespaces/shared"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            &Auth::Bearer(&at),
            &format!("/v1/{prefix}/namespaces"),
            json!({"namespace": ["mine"]}),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "read-only user created a namespace: {}",
        r.body
    );
    let r = s
        .call(
            &Auth::Bearer(&at),
            Method::DELETE,
            &format!("/v1/{prefix}/namespaces/shared"),
            None,
        )
        .await;
    assert_eq!(
        r.status, 403,
        "read-only user dropped a namespace: {}",
        r.body
    );

    // The ID token of the same login (aud = client_id) is the same user.
    let idt = tokens["id_token"].as_str().unwrap();
    let who_id = s.whoami(&Auth::Bearer(idt)).await;
    assert_eq!(who_id["user-id"], who["user-id"], "{who_id}");

    // A server without initial_groups_claim_name: the claim is ignored, defaults apply.
    let s2 = Srv::start(|c| {
        c.oidc = Some(oidc_config(
            &peer.issuer(),
            json!({"initial_groups_claim_name": null}),
        ))
    })
    .await;
    s2.group_with_policy("analysts", "CatalogReadOnly").await;
    let who2 = s2.whoami(&Auth::Bearer(&at)).await;
    assert_eq!(who2["source"], "oidc");
    assert_eq!(sorted_groups(&who2), vec!["Viewers"], "{who2}");

    // The claim is present but names no existing group: the user gets no groups (the
    // defaults apply only when the claim is absent or empty; unknown groups are skipped,
    // as in lakeFS). Without any grant the default warehouse is invisible (404).
    let s3 = Srv::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;
    let who3 = s3.whoami(&Auth::Bearer(&at)).await;
    assert_eq!(sorted_groups(&who3), Vec::<String>::new(), "{who3}");
    assert_eq!(
        s3.get(&Auth::Bearer(&at), "/v1/config?warehouse=default")
            .await
            .status,
        404
    );

    // Later requests keep the groups of the first login.
    let again = s.whoami(&Auth::Bearer(&at)).await;
    assert_eq!(sorted_groups(&again), vec!["analysts"]);
}

#[tokio::test]
async fn oidc_bearer_rejections() {
    // Provider A with a key the test also holds (to mint a genuinely expired token signed by
    // the provider's own key); provider B is another instance (other port = other issuer).
    let key = oidc_peer::node_key("rsa", "test-rs256");
    let a = OidcPeer::start_on(
        oidc_peer::free_port(),
        Some(&json!({"keys": [key.private_jwk.clone()]})),
    )
    .await;
    let b = OidcPeer::start().await;
    let a_token = a.client_credentials_token().await;

    // Configured without the API audience: the provider's access tokens are not for us.
    let no_aud =
        Srv::start(|c| c.oidc = Some(oidc_config(&a.issuer(), json!({"allowed_audiences": []}))))
            .await;
    for path in ["/management/v1/whoami", "/v1/config?warehouse=default"] {
        let r = no_aud.get(&Auth::Bearer(&a_token), path).await;
        assert_401(&r, &format!("wrong audience on {path}"));
    }
    assert_eq!(
        no_aud.user_names().await,
        vec!["admin"],
        "a rejected token provisioned a user"
    );

    let s = Srv::start(|c| c.oidc = Some(oidc_config(&a.issuer(), json!({})))).await;
    // Control: A's token is fine here.
    let r = s
        .get(&Auth::Bearer(&a_token), "/v1/config?warehouse=default")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Another provider instance.
    let b_token = b.client_credentials_token().await;
    assert_401(
        &s.get(&Auth::Bearer(&b_token), "/management/v1/whoami")
            .await,
        "token of another issuer",
    );
    assert_401(
        &s.get(&Auth::Bearer(&b_token), "/v1/config?warehouse=default")
            .await,
        "token of another issuer",
    );

    // Garbage and a tampered signature.
    assert_401(
        &s.get(&Auth::Bearer("garbage"), "/management/v1/whoami")
            .await,
        "garbage",
    );
    assert_401(
        &s.get(&Auth::Bearer("a.b.c"), "/v1/config?warehouse=default")
            .await,
        "garbage jwt",
    );
    let mut tampered = a_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_401(
        &s.get(&Auth::Bearer(&tampered), "/management/v1/whoami")
            .await,
        "tampered signature",
    );

    // Signed with A's own key: valid → accepted (control), expired → 401.
    let claims = |sub: &str, exp: i64| json!({"iss": a.issuer(), "sub": sub, "aud": API_AUDIENCE, "iat": now_secs() - 7200, "exp": exp});
    let good = oidc_peer::sign(
        &key,
        jsonwebtoken::Algorithm::RS256,
        Some("test-rs256"),
        &claims("minted", now_secs() + 600),
    );
    let who = s.whoami(&Auth::Bearer(&good)).await;
    assert_eq!(who["name"], "minted");
    let expired = oidc_peer::sign(
        &key,
        jsonwebtoken::Algorithm::RS256,
        Some("test-rs256"),
        &claims("expired-user", now_secs() - 3600),
    );
    assert_401(
        &s.get(&Auth::Bearer(&expired), "/management/v1/whoami")
            .await,
        "expired token",
    );
    assert_401(
        &s.get(&Auth::Bearer(&expired), "/v1/config?warehouse=default")
            .await,
        "expired token",
    );
    // alg none with A's issuer.
    let none = oidc_peer::unsigned("test-rs256", &claims("unsigned-user", now_secs() + 600));
    assert_401(
        &s.get(&Auth::Bearer(&none), "/management/v1/whoami").await,
        "alg none",
    );
    // Right issuer, foreign key.
    let other = oidc_peer::node_key("rsa", "test-rs256");
    let forged = oidc_peer::sign(
        &other,
        jsonwebtoken::Algorithm::RS256,
        Some("test-rs256"),
        &claims("forged-user", now_secs() + 600),
    );
    assert_401(
        &s.get(&Auth::Bearer(&forged), "/management/v1/whoami").await,
        "foreign key",
    );

    let mut users = s.user_names().await;
    users.sort();
    assert_eq!(
        users,
        vec!["admin", "lake-client", "minted"],
        "rejected tokens must not provision users"
    );
}

// ------------------------------------------------------------------------------------------
// OIDC: browser SSO
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn oidc_browser_sso() {
    let peer = OidcPeer::start().await;
    let s = Srv::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;
    s.group_with_policy("analysts", "CatalogReadOnly").await;
    let prefix = s.prefix().await;

    // Step 1: Sluice sends the browser to the provider with PKCE, state and nonce.
    let (provider_url, login_cookie) = sso_begin(&s, "").await;
    let u = url::Url::parse(&provider_url).unwrap();
    assert!(
        provider_url.starts_with(&format!("{}/auth?", peer.issuer())),
        "{provider_url}"
    );
    assert_eq!(
        query_param(&u, "client_id").as_deref(),
        Some(CONFIDENTIAL.0)
    );
    assert_eq!(query_param(&u, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(&u, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&u, "redirect_uri"),
        Some(s.url("/auth/oidc/callback"))
    );
    assert!(query_param(&u, "state").is_some() && query_param(&u, "nonce").is_some());

    // Step 2: the provider's login + consent; it redirects to Sluice's callback.
    let callback = sso_provider_step(&s, &provider_url, "erin").await;

    // Without the login cookie, or with a state that does not match it: 401, and the code
    // is not spent.
    let r = sso_callback(&s, &callback, None).await;
    assert_401(&r, "callback without the login cookie");
    let state = query_param(&url::Url::parse(&callback).unwrap(), "state").unwrap();
    let wrong_state = callback.replace(&format!("state={}", enc_q(&state)), "state=not-the-state");
    assert_ne!(wrong_state, callback);
    assert_401(
        &sso_callback(&s, &wrong_state, Some(&login_cookie)).await,
        "callback with a wrong state",
    );
    // A login cookie that is not ours (tampered) → 401.
    let mut bad_cookie = login_cookie.clone();
    bad_cookie.insert(
        5,
        if bad_cookie.as_bytes()[5] == b'x' {
            'y'
        } else {
            'x'
        },
    );
    assert_401(
        &sso_callback(&s, &callback, Some(&bad_cookie)).await,
        "callback with a tampered login cookie",
    );

    // Step 3: the real callback.
    let r = sso_callback(&s, &callback, Some(&login_cookie)).await;
    assert_eq!(r.status, 200, "callback: {}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["user"], "erin");
    let token = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(r.body["token"], token.as_str());
    assert!(r.body["expires_in"].as_i64().unwrap() > 0);
    let session = session_cookie(&r);
    assert_eq!(session, token);

    // The token authenticates; the user came from the ID token (preferred_username).
    let who = s.whoami(&Auth::Bearer(&token)).await;
    assert_eq!(who["name"], "erin");
    assert_eq!(who["source"], "oidc");
    assert_eq!(who["email"], "erin@example.org");
    assert_eq!(sorted_groups(&who), vec!["analysts"], "{who}");
    let r = s
        .get(&Auth::Bearer(&token), "/v1/config?warehouse=default")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // So does the cookie, on safe methods only.
    let who_cookie = s.whoami(&Auth::Session(&session)).await;
    assert_eq!(who_cookie["user-id"], who["user-id"]);
    let r = s
        .get(
            &Auth::Session(&session),
            &format!("/v1/{prefix}/namespaces"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            &Auth::Session(&session),
            &format!("/v1/{prefix}/namespaces"),
            json!({"namespace": ["x"]}),
        )
        .await;
    assert_401(&r, "cookie on a POST");

    // The code is single-use: replaying the callback fails.
    let r = sso_callback(&s, &callback, Some(&login_cookie)).await;
    assert_401(&r, "replayed callback");

    // The provider's error redirect.
    let r = sso_callback(
        &s,
        &s.url(&format!(
            "/auth/oidc/callback?error=access_denied&state={}",
            enc(&state)
        )),
        Some(&login_cookie),
    )
    .await;
    assert_401(&r, "provider error");

    // return_to: a local path → 303 there after the login, with the session cookie.
    let (provider_url, login_cookie) = sso_begin(&s, "return_to=%2Fmanagement%2Fv1%2Fwhoami").await;
    let callback = sso_provider_step(&s, &provider_url, "erin").await;
    let r = sso_callback(&s, &callback, Some(&login_cookie)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location().as_deref(), Some("/management/v1/whoami"));
    let session2 = session_cookie(&r);
    let r = s
        .get(&Auth::Session(&session2), "/management/v1/whoami")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["user-id"], who["user-id"],
        "the second SSO login is the same user"
    );

    // return_to elsewhere: refused before anything happens.
    for bad in [
        "https://evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "evil",
    ] {
        let r = s
            .get(
                &Auth::Anon,
                &format!("/auth/oidc/login?return_to={}", enc(bad)),
            )
            .await;
        assert_eq!(r.status, 400, "return_to={bad}: {}", r.body);
        assert!(r.set_cookies().is_empty(), "return_to={bad}");
        assert!(r.location().is_none(), "return_to={bad}");
    }
}

/// Query-string encoding as the provider writes it (form encoding).
fn enc_q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ------------------------------------------------------------------------------------------
// OIDC: web identity
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn oidc_web_identity_login() {
    let peer = OidcPeer::start().await;
    let s = Srv::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;
    s.group_with_policy("analysts", "CatalogReadOnly").await;

    let (code, state, redirect_uri, verifier) = browser_code(&peer, "frank").await;
    let login = json!({"code": code, "state": state, "redirect_uri": redirect_uri, "code_verifier": verifier, "ttl_seconds": 600});
    let r = s.post(&Auth::Anon, "/auth/sts/login", login.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let expires_in = r.body["expires_in"].as_i64().unwrap();
    assert!(expires_in > 0 && expires_in <= 600, "{}", r.body);
    let exp = r.body["token_expiration"].as_i64().unwrap();
    assert!((exp - (now_secs() + expires_in)).abs() <= 5, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(r.body["access_token"], token.as_str());

    let who = s.whoami(&Auth::Bearer(&token)).await;
    assert_eq!(who["name"], "frank", "{who}");
    assert_eq!(who["source"], "web-identity", "{who}");
    assert_eq!(sorted_groups(&who), vec!["analysts"], "{who}");
    assert_eq!(s.user("frank").await["source"], "web-identity");
    let r = s
        .get(&Auth::Bearer(&token), "/v1/config?warehouse=default")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The code is single-use.
    assert_401(
        &s.post(&Auth::Anon, "/auth/sts/login", login).await,
        "replayed code",
    );

    // A wrong PKCE verifier, or a different redirect_uri than the browser step used: 401.
    let (code, state, redirect_uri, _) = browser_code(&peer, "frank").await;
    let other_verifier = pkce().0;
    let r = s
        .post(&Auth::Anon, "/auth/sts/login", json!({"code": code, "state": state, "redirect_uri": redirect_uri, "code_verifier": other_verifier}))
        .await;
    assert_401(&r, "wrong code_verifier");
    let (code, state, _, verifier) = browser_code(&peer, "frank").await;
    let r = s
        .post(&Auth::Anon, "/auth/sts/login", json!({"code": code, "state": state, "redirect_uri": "http://127.0.0.1:1/callback", "code_verifier": verifier}))
        .await;
    assert_401(&r, "other redirect_uri");

    // Form body; no ttl → the server's token TTL; the same user as before.
    let (code, state, redirect_uri, verifier) = browser_code(&peer, "frank").await;
    let rb = s.client.post(s.url("/auth/sts/login")).form(&[
        ("code", code.as_str()),
        ("state", state.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
    ]);
    let r = s.send(rb).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["expires_in"], 3600);
    let who2 = s
        .whoami(&Auth::Bearer(r.body["token"].as_str().unwrap()))
        .await;
    assert_eq!(who2["user-id"], who["user-id"]);

    // A garbage code is the caller's fault: 401, not 5xx.
    let r = s
        .post(&Auth::Anon, "/auth/sts/login", json!({"code": "nope", "redirect_uri": "http://127.0.0.1:1/callback", "code_verifier": "x"}))
        .await;
    assert_401(&r, "garbage code");
}

// ------------------------------------------------------------------------------------------
// Metadata
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_metadata_lists_configured_providers() {
    let peer = OidcPeer::start().await;
    let s = Srv::start(|c| {
        c.oidc = Some(oidc_config(
            &peer.issuer(),
            json!({"public_client_id": "lake-cli"}),
        ))
    })
    .await;
    let r = s
        .get(&Auth::Anon, "/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body;
    assert_eq!(d["issuer"], s.base.as_str());
    assert_eq!(d["token_endpoint"], s.url("/v1/oauth/tokens"));
    let o = &d["oidc"];
    let disco: Value = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        peer.issuer()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(o["issuer"], peer.issuer());
    assert_eq!(
        o["authorization_endpoint"],
        format!("{}/auth", peer.issuer())
    );
    assert_eq!(o["token_endpoint"], format!("{}/token", peer.issuer()));
    assert_eq!(
        o["device_authorization_endpoint"],
        format!("{}/device/auth", peer.issuer())
    );
    for k in [
        "authorization_endpoint",
        "token_endpoint",
        "device_authorization_endpoint",
        "jwks_uri",
    ] {
        assert_eq!(o[k], disco[k], "{k}");
    }
    assert_eq!(o["client_id"], "lake-cli");
    assert_eq!(o["audience"], API_AUDIENCE);
    assert_eq!(o["sso_login_endpoint"], s.url("/auth/oidc/login"));
    assert_eq!(o["web_identity_login_endpoint"], s.url("/auth/sts/login"));
    assert!(d.get("ldap").is_none() && d.get("aws_iam").is_none(), "{d}");

    // Without a public client id the confidential one is advertised.
    let s2 = Srv::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;
    let r = s2
        .get(&Auth::Anon, "/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(r.body["oidc"]["client_id"], CONFIDENTIAL.0);

    // No providers: no sections, and the login endpoints answer 404.
    let bare = Srv::start(|_| {}).await;
    let r = bare
        .get(&Auth::Anon, "/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for k in ["oidc", "ldap", "aws_iam"] {
        assert!(r.body.get(k).is_none(), "{k} in {}", r.body);
    }
    assert_eq!(r.body["token_endpoint"], bare.url("/v1/oauth/tokens"));
    assert_eq!(bare.get(&Auth::Anon, "/auth/oidc/login").await.status, 404);
    assert_eq!(
        bare.get(&Auth::Anon, "/auth/oidc/callback?code=x&state=y")
            .await
            .status,
        404
    );
    assert_eq!(
        bare.post(
            &Auth::Anon,
            "/auth/sts/login",
            json!({"code": "x", "redirect_uri": "y"})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        bare.post(
            &Auth::Anon,
            "/auth/ldap/login",
            json!({"username": "alice", "password": "alicepass"})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        bare.post(
            &Auth::Anon,
            "/auth/external/principal/login",
            json!({"identity_token": "x"})
        )
        .await
        .status,
        404
    );

    // A provider that is down (never reached): the server starts and serves; what needs the
    // provider answers 503, not 500 or 401.
    let dead = format!("http://127.0.0.1:{}", oidc_peer::free_port());
    let s3 = Srv::start(|c| c.oidc = Some(oidc_config(&dead, json!({})))).await;
    assert_eq!(
        s3.get(&Auth::Admin, "/v1/config?warehouse=default")
            .await
            .status,
        200
    );
    assert_eq!(s3.get(&Auth::Anon, "/auth/oidc/login").await.status, 503);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": dead, "sub": "x", "aud": API_AUDIENCE, "exp": now_secs() + 600}).to_string(),
    );
    let unverifiable = format!("eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.{claims}.c2ln");
    let r = s3
        .get(&Auth::Bearer(&unverifiable), "/management/v1/whoami")
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["error"]["type"], "ServiceUnavailableException");
}

// ------------------------------------------------------------------------------------------
// LDAP
// ------------------------------------------------------------------------------------------

fn ldap_config(url: &str, extra: Value) -> LdapConfig {
    let mut v = json!({
        "server_endpoint": url,
        "bind_dn": slapd::SVC_DN,
        "bind_password": slapd::SVC_PASSWORD,
        "user_base_dn": slapd::PEOPLE,
        "user_filter": "(objectClass=inetOrgPerson)",
        "default_user_group": "Viewers",
        "connection_timeout_seconds": 2,
        "request_timeout_seconds": 2,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).expect("ldap config")
}

async fn ldap_login(s: &Srv, user: &str, password: &str) -> Resp {
    s.post(
        &Auth::Anon,
        "/auth/ldap/login",
        json!({"username": user, "password": password}),
    )
    .await
}

#[tokio::test]
async fn ldap_login_basic_auth_and_outage() {
    let mut dir = slapd::Slapd::start();
    let s =
        Srv::start(|c| c.ldap = Some(ldap_config(&dir.url(), json!({"allow_basic_auth": true}))))
            .await;
    let prefix = s.prefix().await;
    // A local user already holds the name bob: the LDAP bob gets another name.
    s.create_user("bob").await;

    // JSON login.
    let r = ldap_login(&s, "alice", "alicepass").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.body["user"], "alice");
    let token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(r.body["access_token"], token.as_str());
    assert!(r.body["token_expiration"].as_i64().unwrap() > now_secs());
    let who = s.whoami(&Auth::Bearer(&token)).await;
    assert_eq!(who["name"], "alice");
    assert_eq!(who["source"], "ldap");
    assert_eq!(who["email"], "alice@example.org");
    assert_eq!(sorted_groups(&who), vec!["Viewers"], "{who}");
    let user = s.user("alice").await;
    assert_eq!(user["source"], "ldap");
    assert_eq!(user["email"], "alice@example.org");
    // Viewers: read yes, write no.
    assert_eq!(
        s.get(&Auth::Bearer(&token), &format!("/v1/{prefix}/namespaces"))
            .await
            .status,
        200
    );
    let r = s
        .post(
            &Auth::Bearer(&token),
            &format!("/v1/{prefix}/namespaces"),
            json!({"namespace": ["n"]}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Form login; the second login of alice is the same user.
    let r = s
        .send(
            s.client
                .post(s.url("/auth/ldap/login"))
                .form(&[("username", "bob"), ("password", "bobpass")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["user"], "bob-ldap",
        "the local bob keeps his name: {}",
        r.body
    );
    assert_eq!(s.user("bob-ldap").await["source"], "ldap");
    assert_ne!(s.user("bob").await["source"], "ldap");
    let r = s
        .send(
            s.client
                .post(s.url("/auth/ldap/login"))
                .form(&[("username", "alice"), ("password", "alicepass")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let who2 = s
        .whoami(&Auth::Bearer(r.body["token"].as_str().unwrap()))
        .await;
    assert_eq!(who2["user-id"], who["user-id"]);

    // Every refusal reads the same.
    for (user, password) in [
        ("alice", "wrong"),
        ("alice", ""),
        ("mallory", "whatever"),
        ("*)(uid=*", "alicepass"),
        ("*)(uid=*", ""),
        ("*", "alicepass"),
        ("alice)(|(uid=*", "alicepass"),
        ("", "alicepass"),
    ] {
        let r = ldap_login(&s, user, password).await;
        assert_401(&r, &format!("ldap login {user:?}/{password:?}"));
        assert_eq!(r.message(), "invalid credentials", "{user:?}: {}", r.body);
    }
    let r = s
        .post(
            &Auth::Anon,
            "/auth/ldap/login",
            json!({"username": "alice"}),
        )
        .await;
    assert_eq!(r.status, 400, "missing password: {}", r.body);

    // HTTP Basic with LDAP credentials on the API.
    let r = s
        .get(
            &Auth::Basic("alice", "alicepass"),
            "/v1/config?warehouse=default",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.whoami(&Auth::Basic("alice", "alicepass")).await["user-id"],
        who["user-id"]
    );
    assert_401(
        &s.get(
            &Auth::Basic("alice", "wrong"),
            "/v1/config?warehouse=default",
        )
        .await,
        "basic wrong password",
    );
    assert_401(
        &s.get(&Auth::Basic("mallory", "x"), "/management/v1/whoami")
            .await,
        "basic unknown user",
    );
    // Access keys still work as Basic.
    assert_eq!(
        s.get(&Auth::Admin, "/management/v1/whoami").await.status,
        200
    );

    let md = s
        .get(&Auth::Anon, "/.well-known/oauth-authorization-server")
        .await
        .body;
    assert_eq!(md["ldap"]["login_endpoint"], s.url("/auth/ldap/login"));

    // The directory goes away: logins are refused (401, quickly), the server keeps serving.
    dir.stop();
    let t0 = Instant::now();
    let r = ldap_login(&s, "alice", "alicepass").await;
    assert_401(&r, "login with slapd down");
    assert_eq!(r.message(), "invalid credentials");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_401(
        &s.get(&Auth::Basic("bob", "bobpass"), "/management/v1/whoami")
            .await,
        "basic with slapd down",
    );
    assert_eq!(s.get(&Auth::Anon, "/health").await.status, 200);
    assert_eq!(
        s.get(&Auth::Admin, "/v1/config?warehouse=default")
            .await
            .status,
        200
    );
    assert_eq!(
        s.get(&Auth::Bearer(&token), "/management/v1/whoami")
            .await
            .status,
        200,
        "issued tokens stay valid"
    );

    // And it comes back.
    dir.restart();
    let r = ldap_login(&s, "alice", "alicepass").await;
    assert_eq!(r.status, 200, "after slapd restart: {}", r.body);

    // Basic auth is off unless allowed.
    let s2 = Srv::start(|c| c.ldap = Some(ldap_config(&dir.url(), json!({})))).await;
    assert_401(
        &s2.get(&Auth::Basic("alice", "alicepass"), "/management/v1/whoami")
            .await,
        "basic not allowed",
    );
    assert_eq!(ldap_login(&s2, "alice", "alicepass").await.status, 200);
}

// ------------------------------------------------------------------------------------------
// AWS IAM
// ------------------------------------------------------------------------------------------

const SERVER_ID: &str = "sluice-test";
const STS_HOST: &str = "sts.amazonaws.com";

fn aws_config(endpoint: &str, group: Option<&str>) -> AwsIamConfig {
    let mut c = AwsIamConfig::new(SERVER_ID);
    c.allowed_sts_hosts = vec![STS_HOST.into(), "sts.*.amazonaws.com".into()];
    c.sts_endpoint_override = Some(endpoint.to_string());
    c.auto_provision_group = group.map(str::to_string);
    c
}

fn aws_token(key: &sts_stub::StubKey, server_id: &str) -> String {
    build_identity_token(
        &key.credentials(),
        "us-east-1",
        STS_HOST,
        server_id,
        Duration::from_secs(900),
        SystemTime::now(),
    )
    .unwrap()
}

async fn aws_login(s: &Srv, token: &str) -> Resp {
    s.post(
        &Auth::Anon,
        "/auth/external/principal/login",
        json!({"identity_token": token}),
    )
    .await
}

#[tokio::test]
async fn aws_iam_principal_login() {
    let stub = sts_stub::StsStub::start().await;
    let s = Srv::start(|c| c.aws_iam = Some(aws_config(&stub.endpoint, None))).await;
    let alice = sts_stub::alice();
    let role = sts_stub::data_role_session();

    // Not attached to anyone yet.
    let r = aws_login(&s, &aws_token(&alice, SERVER_ID)).await;
    assert_401(&r, "unattached ARN");
    assert!(r.message().contains("not attached"), "{}", r.body);
    assert_eq!(
        stub.seen().last().unwrap().status,
        200,
        "the signature itself was fine"
    );

    // The admin attaches alice's ARN to a user.
    s.create_user("alice-aws").await;
    let r = s
        .call(
            &Auth::Admin,
            Method::PUT,
            "/management/v1/groups/Viewers/members/alice-aws",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let path = "/management/v1/users/alice-aws/external-principals";
    let r = s.post(&Auth::Admin, path, json!({"arn": alice.arn})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["id"], alice.arn.as_str());
    assert_eq!(r.body["source"], "aws-iam");
    let r = s.get(&Auth::Admin, path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<&str> = r.body["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![alice.arn.as_str()]);
    // Not twice, not a non-ARN.
    s.create_user("other").await;
    let r = s
        .post(
            &Auth::Admin,
            "/management/v1/users/other/external-principals",
            json!({"arn": alice.arn}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = s
        .post(
            &Auth::Admin,
            "/management/v1/users/other/external-principals",
            json!({"arn": "alice"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Now the login works and the token is alice-aws.
    let r = aws_login(&s, &aws_token(&alice, SERVER_ID)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let token = r.body["token"].as_str().expect("token").to_string();
    let exp = r.body["token_expiration"]
        .as_i64()
        .expect("token_expiration");
    assert!(
        exp > now_secs() && exp <= now_secs() + 3600 + 5,
        "{}",
        r.body
    );
    let who = s.whoami(&Auth::Bearer(&token)).await;
    assert_eq!(who["name"], "alice-aws");
    assert_eq!(
        s.get(&Auth::Bearer(&token), "/v1/config?warehouse=default")
            .await
            .status,
        200
    );
    let seen = stub.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.host.as_deref(), Some(STS_HOST));
    assert_eq!(last.server_id.as_deref(), Some(SERVER_ID));

    // The lakeFS client's request shape, with a TTL.
    let r = s
        .post(
            &Auth::Anon,
            "/auth/external/principal/login",
            json!({"identityRequest": {"identity_token": aws_token(&alice, SERVER_ID)}, "token_expiration_duration": 120}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["expires_in"], 120);
    // TTLs are capped (max_session_ttl_seconds 3600).
    let r = s
        .post(
            &Auth::Anon,
            "/auth/external/principal/login",
            json!({"identity_token": aws_token(&alice, SERVER_ID), "ttl_seconds": 100000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["expires_in"].as_i64().unwrap() <= 3600, "{}", r.body);

    // An assumed-role session logs in as the user the ROLE is attached to.
    s.create_user("data-svc").await;
    let role_arn = format!("arn:aws:iam::{}:role/DataRole", sts_stub::ACCOUNT);
    let r = s
        .post(
            &Auth::Admin,
            "/management/v1/users/data-svc/external-principals",
            json!({"arn": role_arn}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = aws_login(&s, &aws_token(&role, SERVER_ID)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.whoami(&Auth::Bearer(r.body["token"].as_str().unwrap()))
            .await["name"],
        "data-svc"
    );
    // Attaching the session ARN means the role: it is taken already.
    let r = s
        .post(
            &Auth::Admin,
            "/management/v1/users/other/external-principals",
            json!({"arn": role.arn}),
        )
        .await;
    assert_eq!(
        r.status, 409,
        "session ARN should normalize to the role ARN: {}",
        r.body
    );

    // A token for another server: STS refuses the replay (the signed server id differs).
    let r = aws_login(&s, &aws_token(&alice, "other-server")).await;
    assert_401(&r, "token for another server id");
    // A key STS does not know.
    let mut stranger = sts_stub::bob();
    stranger.access_key_id = "AKIAEXAMPLEUNKNOWN01".into();
    assert_401(
        &aws_login(&s, &aws_token(&stranger, SERVER_ID)).await,
        "unknown key",
    );
    // Garbage.
    assert_401(&aws_login(&s, "bm90IGEgdG9rZW4=").await, "garbage token");
    let r = s
        .post(&Auth::Anon, "/auth/external/principal/login", json!({}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Only admins attach principals.
    let r = s
        .call(
            &Auth::Admin,
            Method::POST,
            "/management/v1/users/other/access-keys",
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (kid, ksec) = (
        r.body["access-key-id"].as_str().unwrap().to_string(),
        r.body["secret-access-key"].as_str().unwrap().to_string(),
    );
    let r = s
        .post(
            &Auth::Basic(&kid, &ksec),
            "/management/v1/users/other/external-principals",
            json!({"arn": sts_stub::bob().arn}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Detach: login refused again, the list is empty, issued tokens unaffected.
    let r = s
        .call(
            &Auth::Admin,
            Method::DELETE,
            &format!("{path}/{}", enc(&alice.arn)),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = aws_login(&s, &aws_token(&alice, SERVER_ID)).await;
    assert_401(&r, "detached ARN");
    assert!(r.message().contains("not attached"), "{}", r.body);
    let r = s.get(&Auth::Admin, path).await;
    assert_eq!(r.body["principals"], json!([]));
    let r = s
        .call(
            &Auth::Admin,
            Method::DELETE,
            &format!("{path}/{}", enc(&alice.arn)),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    let md = s
        .get(&Auth::Anon, "/.well-known/oauth-authorization-server")
        .await
        .body;
    assert_eq!(md["aws_iam"]["server_id"], SERVER_ID);
    assert_eq!(
        md["aws_iam"]["login_endpoint"],
        s.url("/auth/external/principal/login")
    );
}

#[tokio::test]
async fn aws_iam_auto_provision_and_sts_outage() {
    let stub = sts_stub::StsStub::start().await;
    let s = Srv::start(|c| c.aws_iam = Some(aws_config(&stub.endpoint, Some("Developers")))).await;
    let bob = sts_stub::bob();
    let r = aws_login(&s, &aws_token(&bob, SERVER_ID)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let who = s
        .whoami(&Auth::Bearer(r.body["token"].as_str().unwrap()))
        .await;
    assert_eq!(who["name"], "bob");
    assert_eq!(who["source"], "aws-iam");
    assert_eq!(sorted_groups(&who), vec!["Developers"], "{who}");
    let r = s
        .get(&Auth::Admin, "/management/v1/users/bob/external-principals")
        .await;
    let ids: Vec<&str> = r.body["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![bob.arn.as_str()]);
    // Again: the same user.
    let r = aws_login(&s, &aws_token(&bob, SERVER_ID)).await;
    assert_eq!(
        s.whoami(&Auth::Bearer(r.body["token"].as_str().unwrap()))
            .await["user-id"],
        who["user-id"]
    );
    // Developers may write.
    let prefix = s.prefix().await;
    let r = s
        .post(
            &Auth::Bearer(r.body["token"].as_str().unwrap()),
            &format!("/v1/{prefix}/namespaces"),
            json!({"namespace": ["bobs"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // STS failing is not the caller's fault: 503, and the server keeps serving.
    let down =
        sts_stub::StsStub::start_with(sts_stub::Mode::Fail(500, "InternalFailure"), vec![]).await;
    let s2 = Srv::start(|c| c.aws_iam = Some(aws_config(&down.endpoint, Some("Developers")))).await;
    let r = aws_login(&s2, &aws_token(&bob, SERVER_ID)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(s2.get(&Auth::Anon, "/health").await.status, 200);
    assert_eq!(s2.user_names().await, vec!["admin"]);
}

/// `return_to` must stay on this server after browser normalisation. Browsers drop ASCII tab
/// and newline characters from URLs (WHATWG URL parser), so `/<TAB>/evil.example` becomes
/// `//evil.example` — another host. CR/LF cannot be sent in a Location header at all.
#[tokio::test]
async fn oidc_sso_return_to_with_control_characters_is_refused() {
    let peer = OidcPeer::start().await;
    let s = Srv::start(|c| c.oidc = Some(oidc_config(&peer.issuer(), json!({})))).await;
    for bad in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\u{0}x",
    ] {
        let r = s
            .get(
                &Auth::Anon,
                &format!("/auth/oidc/login?return_to={}", enc(bad)),
            )
            .await;
        assert_eq!(
            r.status,
            400,
            "return_to={bad:?}: {} {:?}",
            r.body,
            r.location()
        );
        assert!(r.set_cookies().is_empty(), "return_to={bad:?}");
    }
}
