//! The web console at the HTTP level (its pages in a browser: tests/console): the session
//! cookie's flags, CSRF on changes, security headers, the shared login throttle, and that
//! the API is unchanged by it.

use crate::server;
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use server::{TestServer, KEY_ID, SECRET};

fn no_redirects() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Logs in with the bootstrap key; returns the session cookie's value and its Set-Cookie.
async fn login(s: &TestServer, c: &Client, headers: &[(&str, &str)]) -> (String, String) {
    let mut req = c.post(s.url("/ui/login")).form(&[
        ("method", "key"),
        ("next", "/ui/me"),
        ("access_key_id", KEY_ID),
        ("secret_access_key", SECRET),
    ]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/me");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let value = set
        .strip_prefix("sluice_session=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    (value, set)
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    page[at..at + 64].to_string()
}

#[tokio::test]
async fn session_cookie_csrf_and_headers() {
    let s = TestServer::start_with(|c| c.console_session_ttl_seconds = 600).await;
    let c = no_redirects();
    let (token, set) = login(&s, &c, &[]).await;
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Max-Age=600"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    // Behind a TLS proxy the cookie is Secure.
    let (_, tls) = login(&s, &c, &[("x-forwarded-proto", "https")]).await;
    assert!(tls.contains("; Secure"), "{tls}");

    let cookie = format!("sluice_session={token}");
    let page = c
        .get(s.url("/ui/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csrf = csrf_of(&page.text().await.unwrap());

    // A change needs the session's CSRF token.
    let post = |form: Vec<(&'static str, String)>| {
        c.post(s.url("/ui/me/keys"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    assert_eq!(post(vec![]).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post(vec![("csrf", "f".repeat(64))]).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let made = post(vec![("csrf", csrf.clone())]).await.unwrap();
    assert_eq!(made.status(), StatusCode::OK);
    assert!(made.text().await.unwrap().contains("new-key-secret"));

    // The API never takes the cookie for a change, CSRF field or not; reads work as for SSO.
    let api = c
        .post(s.url("/management/v1/users"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let who = c
        .get(s.url("/management/v1/whoami"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), StatusCode::OK);

    // Unknown console paths are console 404 pages; API routes keep the error model.
    let missing = c.get(s.url("/ui/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let api_missing = c.get(s.url("/nope")).send().await.unwrap();
    assert_eq!(api_missing.status(), StatusCode::NOT_FOUND);
    let v: serde_json::Value = api_missing.json().await.unwrap();
    assert_eq!(v["error"]["code"], 404);
    // A login form posted from another site is refused.
    let cross = c
        .post(s.url("/ui/login"))
        .header("origin", "https://evil.example")
        .form(&[
            ("method", "key"),
            ("access_key_id", KEY_ID),
            ("secret_access_key", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn login_form_shares_the_api_throttle() {
    let s = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let c = no_redirects();
    let attempt = || {
        c.post(s.url("/ui/login"))
            .form(&[
                ("method", "key"),
                ("access_key_id", "AKIAGUESSEDKEY000001"),
                (
                    "secret_access_key",
                    "wrong-secret-wrong-secret-wrong-secret-x",
                ),
            ])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let r = attempt().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("too many failed logins"));
    // The same source is throttled on the API too: one budget for both doors.
    let api = c
        .get(s.url("/v1/config?warehouse=default"))
        .basic_auth(KEY_ID, Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    s.stop().await;
}

#[tokio::test]
async fn console_false_serves_no_console_routes_and_the_api_as_before() {
    let s = TestServer::start_with(|c| c.console = false).await;
    let c = no_redirects();
    for path in ["/", "/ui/", "/ui/login", "/ui/static/console.css"] {
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = c.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(s.url("/v1/config"))
        .basic_auth(KEY_ID, Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
