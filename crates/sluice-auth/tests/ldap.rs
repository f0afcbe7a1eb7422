//! LDAP login against a REAL OpenLDAP slapd (no mocks). Each test starts its own slapd on an
//! ephemeral port (see tests/common/slapd.rs); missing slapd fails the tests with
//! instructions (`tests/peers/slapd.sh install`).

use crate::slapd;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use slapd::{Slapd, ALICE_DN, PEOPLE, SVC_DN, SVC_PASSWORD};
use sluice_auth::ldap::{LdapAuthenticator, LdapConfig, LdapError, LdapIdentity};

fn config_json(url: &str) -> serde_json::Value {
    json!({
        "server_endpoint": url,
        "bind_dn": SVC_DN,
        "bind_password": SVC_PASSWORD,
        "user_base_dn": PEOPLE,
        "user_filter": "(objectClass=inetOrgPerson)",
        "connection_timeout_seconds": 2,
        "request_timeout_seconds": 2,
    })
}

fn config(url: &str) -> LdapConfig {
    serde_json::from_value(config_json(url)).expect("config")
}

fn with(mut v: serde_json::Value, key: &str, value: serde_json::Value) -> LdapConfig {
    v[key] = value;
    serde_json::from_value(v).expect("config")
}

fn auth(cfg: LdapConfig) -> LdapAuthenticator {
    LdapAuthenticator::new(cfg).expect("authenticator")
}

fn alice() -> LdapIdentity {
    LdapIdentity {
        dn: ALICE_DN.into(),
        username: "alice".into(),
        email: Some("alice@example.org".into()),
        friendly_name: Some("Alice Example".into()),
    }
}

#[track_caller]
fn assert_invalid(r: Result<LdapIdentity, LdapError>) {
    match r {
        Err(LdapError::InvalidCredentials) => {}
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
}

#[track_caller]
fn assert_unavailable(r: Result<LdapIdentity, LdapError>) -> String {
    match r {
        Err(LdapError::Unavailable(detail)) => detail,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// A TCP listener that counts connections and never answers.
async fn silent_listener() -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(s); // keep open, never reply
        }
    });
    (port, count)
}

#[tokio::test]
async fn good_login() {
    let s = Slapd::start();
    let a = auth(config(&s.url()));
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
    let bob = a.authenticate("bob", "bobpass").await.unwrap();
    assert_eq!(bob.dn, slapd::BOB_DN);
    assert_eq!(bob.email.as_deref(), Some("bob@example.org"));
    assert_eq!(bob.friendly_name.as_deref(), Some("Bob Example"));
    // The service connection went back to the pool; the user binds did not.
    assert_eq!(a.idle_connections(), 1);
    // Still bound as the service account after user binds: a third login works.
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
}

#[tokio::test]
async fn username_is_canonicalized_from_the_directory() {
    let s = Slapd::start();
    let a = auth(config(&s.url()));
    // uid matching is case-insensitive in LDAP; the identity carries the directory value.
    assert_eq!(a.authenticate("ALICE", "alicepass").await.unwrap(), alice());
    assert_eq!(
        a.authenticate(" alice ", "alicepass").await.unwrap(),
        alice()
    );
}

#[tokio::test]
async fn custom_attributes() {
    let s = Slapd::start();
    let mut v = config_json(&s.url());
    v["username_attribute"] = json!("mail");
    v["email_attribute"] = json!("mail");
    v["friendly_name_attribute"] = json!("givenName");
    let a = auth(serde_json::from_value(v).unwrap());
    let id = a
        .authenticate("alice@example.org", "alicepass")
        .await
        .unwrap();
    assert_eq!(id.dn, ALICE_DN);
    assert_eq!(id.username, "alice@example.org");
    assert_eq!(id.email.as_deref(), Some("alice@example.org"));
    assert_eq!(id.friendly_name.as_deref(), Some("Alice"));
    // An attribute the entry lacks gives None.
    let mut v = config_json(&s.url());
    v["friendly_name_attribute"] = json!("displayName");
    let a = auth(serde_json::from_value(v).unwrap());
    assert_eq!(
        a.authenticate("alice", "alicepass")
            .await
            .unwrap()
            .friendly_name,
        None
    );
}

#[tokio::test]
async fn wrong_password() {
    let s = Slapd::start();
    let a = auth(config(&s.url()));
    assert_invalid(a.authenticate("alice", "wrong").await);
    assert_invalid(a.authenticate("alice", "bobpass").await);
    assert_invalid(a.authenticate("alice", "alicepass ").await);
    // The failed user bind did not poison the pool.
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
}

#[tokio::test]
async fn empty_password_and_bad_usernames_never_contact_the_server() {
    // A listener that would see any connection attempt.
    let (port, count) = silent_listener().await;
    let a = auth(config(&format!("ldap://127.0.0.1:{port}")));
    let t0 = Instant::now();
    assert_invalid(a.authenticate("alice", "").await);
    assert_invalid(a.authenticate("", "alicepass").await);
    assert_invalid(a.authenticate("   ", "alicepass").await);
    assert_invalid(a.authenticate("al\0ice", "alicepass").await);
    assert_invalid(a.authenticate("alice\n", "alicepass").await);
    assert_invalid(a.authenticate("ali\u{7f}ce", "alicepass").await);
    assert_invalid(a.authenticate("ali\u{85}ce", "alicepass").await);
    assert_invalid(a.authenticate(&"a".repeat(257), "alicepass").await);
    assert_invalid(a.authenticate("alice", &"p".repeat(4097)).await);
    // Well under the 2 s timeouts a contacted server would cost (the listener's count below
    // is what proves there was no contact).
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(count.load(Ordering::SeqCst), 0, "no connection may be made");

    // Closed port: still InvalidCredentials, instantly (a bind attempt would be Unavailable).
    let closed = slapd::free_port();
    let a = auth(config(&format!("ldap://127.0.0.1:{closed}")));
    let t0 = Instant::now();
    assert_invalid(a.authenticate("alice", "").await);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_unavailable(a.authenticate("alice", "x").await); // sanity: the port IS closed
}

#[tokio::test]
async fn empty_password_against_real_slapd() {
    // Against the real server too: the unauthenticated-bind trap never succeeds.
    let s = Slapd::start();
    let a = auth(config(&s.url()));
    assert_invalid(a.authenticate("alice", "").await);
    assert_eq!(
        a.idle_connections(),
        0,
        "no service connection was even opened"
    );
}

#[tokio::test]
async fn unknown_user() {
    let s = Slapd::start();
    let a = auth(config(&s.url()));
    assert_invalid(a.authenticate("carol", "alicepass").await);
    // The service account is not a user (outside user_base_dn and not inetOrgPerson).
    assert_invalid(a.authenticate("svc", SVC_PASSWORD).await);
}

#[tokio::test]
async fn user_binds_use_fresh_connections_and_the_pool_stays_service_bound() {
    let s = Slapd::start_logged();
    let a = auth(config(&s.url()));
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
    assert_invalid(a.authenticate("alice", "wrong").await);
    assert_eq!(
        a.authenticate("bob", "bobpass").await.unwrap().dn,
        slapd::BOB_DN
    );
    assert_invalid(a.authenticate("carol", "carolpass").await);
    assert_invalid(a.authenticate("alice", "").await);
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
    tokio::time::sleep(Duration::from_millis(200)).await; // let slapd flush its log

    let ops = s.ops();
    let binds: Vec<_> = ops.iter().filter(|o| o.kind == "BIND").collect();
    let svc_conns: std::collections::BTreeSet<u64> = binds
        .iter()
        .filter(|o| o.arg == SVC_DN)
        .map(|o| o.conn)
        .collect();
    // Sequential logins reuse the one pooled service connection, bound once.
    assert_eq!(svc_conns.len(), 1, "{ops:#?}");
    assert_eq!(
        binds.iter().filter(|o| o.arg == SVC_DN).count(),
        1,
        "{ops:#?}"
    );
    // Every search ran on the service connection.
    let searches: Vec<_> = ops.iter().filter(|o| o.kind == "SRCH").collect();
    assert_eq!(
        searches.len(),
        5,
        "one search per login that got past local checks: {ops:#?}"
    );
    assert!(
        searches.iter().all(|o| svc_conns.contains(&o.conn)),
        "{ops:#?}"
    );
    // User binds: alice ok, alice wrong, bob, alice ok — never the empty password, never
    // carol (not found), each alone on its own connection.
    let user_binds: Vec<_> = binds.iter().filter(|o| o.arg != SVC_DN).collect();
    let dns: Vec<&str> = user_binds.iter().map(|o| o.arg.as_str()).collect();
    assert_eq!(
        dns,
        [ALICE_DN, ALICE_DN, slapd::BOB_DN, ALICE_DN],
        "{ops:#?}"
    );
    for b in &user_binds {
        assert!(
            !svc_conns.contains(&b.conn),
            "user bind on the service connection: {ops:#?}"
        );
        assert_eq!(
            ops.iter().filter(|o| o.conn == b.conn).count(),
            1,
            "{ops:#?}"
        );
    }
}

#[tokio::test]
async fn filter_injection_is_escaped() {
    let s = Slapd::start_logged();
    let a = auth(config(&s.url()));
    for name in [
        "*)(uid=*",
        "*",
        "alice)(|(uid=*",
        "alice)(uid=*",
        "ali*",
        "*alice*",
        "alice)",
        "(uid=alice)",
        "alice\\",
        "alice\\2a",
        "alice)(objectClass=*))(|(uid=alice",
    ] {
        // The right password for alice: only escaping prevents a match.
        assert_invalid(a.authenticate(name, "alicepass").await);
        assert_invalid(a.authenticate(name, "bobpass").await);
    }
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());

    // What slapd received: every search is exactly the configured filter AND one equality
    // assertion on uid, with the metacharacters escaped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let filters: Vec<String> = s
        .ops()
        .into_iter()
        .filter(|o| o.kind == "SRCH")
        .map(|o| o.arg)
        .collect();
    assert_eq!(filters.len(), 23, "{filters:#?}");
    for f in &filters {
        let value = f
            .strip_prefix("(&(objectClass=inetOrgPerson)(uid=")
            .and_then(|v| v.strip_suffix("))"))
            .unwrap_or_else(|| panic!("unexpected filter {f}"));
        assert!(
            !value.contains(['(', ')', '*']),
            "unescaped metacharacter in {f}"
        );
    }
    assert!(
        filters
            .iter()
            .any(|f| f.contains(r"(uid=\2A\29\28uid=\2A)")),
        "{filters:#?}"
    );
}

#[tokio::test]
async fn user_outside_the_filter() {
    let s = Slapd::start();
    let a = auth(with(
        config_json(&s.url()),
        "user_filter",
        json!("(&(objectClass=inetOrgPerson)(!(uid=bob)))"),
    ));
    assert_invalid(a.authenticate("bob", "bobpass").await);
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());

    // A filter selecting by mail; unparenthesized single items are accepted.
    let a = auth(with(
        config_json(&s.url()),
        "user_filter",
        json!("mail=alice@example.org"),
    ));
    assert_invalid(a.authenticate("bob", "bobpass").await);
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
}

#[tokio::test]
async fn ambiguous_match_is_refused() {
    let s = Slapd::start();
    // Both alice and bob have sn=Example.
    let a = auth(with(
        config_json(&s.url()),
        "username_attribute",
        json!("sn"),
    ));
    assert_invalid(a.authenticate("Example", "alicepass").await);
    assert_invalid(a.authenticate("Example", "bobpass").await);
}

#[tokio::test]
async fn wrong_service_password_is_unavailable() {
    let s = Slapd::start();
    let a = auth(with(
        config_json(&s.url()),
        "bind_password",
        json!("not-svcpass"),
    ));
    let r = a.authenticate("alice", "alicepass").await;
    let err = r.as_ref().unwrap_err();
    // Fixed client-facing text; the detail (for the log) leaks neither password.
    assert_eq!(err.to_string(), "directory unavailable");
    let detail = assert_unavailable(r);
    assert!(detail.contains("service bind"), "{detail}");
    assert!(detail.contains("49"), "{detail}");
    assert!(
        !detail.contains("not-svcpass") && !detail.contains("alicepass"),
        "{detail}"
    );
    assert_eq!(a.idle_connections(), 0);
    assert_eq!(
        LdapError::InvalidCredentials.to_string(),
        "invalid credentials"
    );

    // Wrong service DN too.
    let a = auth(with(
        config_json(&s.url()),
        "bind_dn",
        json!("cn=nobody,dc=example,dc=org"),
    ));
    assert_unavailable(a.authenticate("alice", "alicepass").await);
}

#[tokio::test]
async fn bad_base_dn_is_unavailable() {
    let s = Slapd::start();
    let a = auth(with(
        config_json(&s.url()),
        "user_base_dn",
        json!("ou=nowhere,dc=example,dc=org"),
    ));
    let detail = assert_unavailable(a.authenticate("alice", "alicepass").await);
    assert!(detail.contains("rc=32"), "{detail}");
    // The connection itself was healthy and went back to the pool.
    assert_eq!(a.idle_connections(), 1);
}

#[tokio::test]
async fn server_down_is_unavailable_fast() {
    let port = slapd::free_port();
    let a = auth(config(&format!("ldap://127.0.0.1:{port}")));
    let t0 = Instant::now();
    let detail = assert_unavailable(a.authenticate("alice", "alicepass").await);
    // A refused connection, not the 2 s connection timeout.
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert!(detail.contains("connect"), "{detail}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let (port, count) = silent_listener().await;
    let mut v = config_json(&format!("ldap://127.0.0.1:{port}"));
    v["request_timeout_seconds"] = json!(1);
    let a = auth(serde_json::from_value(v).unwrap());
    let t0 = Instant::now();
    let detail = assert_unavailable(a.authenticate("alice", "alicepass").await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(detail.contains("timed out"), "{detail}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pool_recovers_after_slapd_restart() {
    let mut s = Slapd::start();
    let a = auth(config(&s.url()));
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
    assert_eq!(a.idle_connections(), 1);

    // Restart behind the pool's back: the pooled connection is now dead.
    s.stop();
    s.restart();
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
    assert_eq!(
        a.authenticate("bob", "bobpass").await.unwrap().dn,
        slapd::BOB_DN
    );

    // Down: Unavailable quickly; back up: logins work again.
    s.stop();
    let t0 = Instant::now();
    assert_unavailable(a.authenticate("alice", "alicepass").await);
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    s.restart();
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
    assert_invalid(a.authenticate("alice", "wrong").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins() {
    let s = Slapd::start();
    let a = Arc::new(auth(config(&s.url())));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                a.authenticate("alice", "alicepass").await.map(|id| id.dn)
            } else {
                a.authenticate("bob", "bobpass").await.map(|id| id.dn)
            }
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let dn = t
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("login {i}: {e:?}"));
        assert_eq!(dn, if i % 2 == 0 { ALICE_DN } else { slapd::BOB_DN });
    }
    let idle = a.idle_connections();
    assert!(
        (1..=4).contains(&idle),
        "pool holds {idle} connections (pool_size 4)"
    );

    // Mixed good and bad logins at once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let pw = if i % 3 == 0 { "wrong" } else { "alicepass" };
            (i, a.authenticate("alice", pw).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i % 3 == 0 {
            assert_invalid(r);
        } else {
            assert_eq!(r.unwrap(), alice());
        }
    }
}

#[tokio::test]
async fn pool_size_one_serializes() {
    let s = Slapd::start();
    let a = Arc::new(auth(with(config_json(&s.url()), "pool_size", json!(1))));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            a.authenticate("alice", "alicepass").await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), alice());
    }
    assert_eq!(a.idle_connections(), 1);
}

// ---- configuration ----

#[test]
fn config_defaults_and_unknown_fields() {
    let c: LdapConfig = serde_json::from_value(json!({
        "server_endpoint": "ldap://ldap.example.org",
        "bind_dn": SVC_DN,
        "bind_password": "x",
        "user_base_dn": PEOPLE,
    }))
    .unwrap();
    assert_eq!(c.username_attribute, "uid");
    assert_eq!(c.user_filter, "(objectClass=person)");
    assert_eq!(c.email_attribute, "mail");
    assert_eq!(c.friendly_name_attribute, "cn");
    assert_eq!(c.connection_timeout_seconds, 5);
    assert_eq!(c.request_timeout_seconds, 10);
    assert_eq!(c.pool_size, 4);
    assert!(!c.start_tls && !c.allow_basic_auth);
    assert!(c.ca_cert_file.is_none() && c.default_user_group.is_none());
    // The password never prints.
    assert!(!format!("{c:?}").contains("\"x\""));
    let a = LdapAuthenticator::new(c).unwrap();
    assert_eq!(a.config().bind_dn, SVC_DN);

    let mut v = config_json("ldap://h");
    v["bind_passwd"] = json!("typo");
    assert!(serde_json::from_value::<LdapConfig>(v).is_err());
}

#[test]
fn invalid_configs_are_rejected() {
    let base = config_json("ldap://127.0.0.1:389");
    let bad = |key: &str, value: serde_json::Value| {
        let cfg = with(base.clone(), key, value.clone());
        match LdapAuthenticator::new(cfg) {
            Err(LdapError::Unavailable(_)) => {}
            Err(e) => panic!("{key}={value}: unexpected {e:?}"),
            Ok(_) => panic!("{key}={value} accepted"),
        }
    };
    bad("server_endpoint", json!("http://127.0.0.1:389"));
    bad("server_endpoint", json!("not a url"));
    bad("server_endpoint", json!("ldap://"));
    bad("bind_dn", json!(""));
    bad("bind_password", json!(""));
    bad("user_base_dn", json!(" "));
    bad("user_filter", json!("(objectClass=person"));
    bad("user_filter", json!("(&(a=b)"));
    bad("username_attribute", json!("uid)(cn=*"));
    bad("email_attribute", json!(""));
    bad("friendly_name_attribute", json!("c n"));
    bad("pool_size", json!(0));
    bad("request_timeout_seconds", json!(0));
    bad("connection_timeout_seconds", json!(0));
    bad("ca_cert_file", json!("/nonexistent/ca.pem")); // and no TLS either
    let mut v = config_json("ldaps://127.0.0.1:636");
    v["start_tls"] = json!(true);
    assert!(LdapAuthenticator::new(serde_json::from_value(v).unwrap()).is_err());
    let mut v = config_json("ldaps://127.0.0.1:636");
    v["ca_cert_file"] = json!("/nonexistent/ca.pem");
    assert!(LdapAuthenticator::new(serde_json::from_value(v).unwrap()).is_err());
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let mut v = config_json("ldaps://127.0.0.1:636");
    v["ca_cert_file"] = json!(empty);
    assert!(LdapAuthenticator::new(serde_json::from_value(v).unwrap()).is_err());
}

#[test]
fn authenticator_is_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<LdapAuthenticator>();
    check::<LdapError>();
}

// ---- TLS (slapd with a CA and certificate generated by rcgen) ----

fn tls_config(url: &str, ca: &std::path::Path, start_tls: bool) -> LdapConfig {
    let mut v = config_json(url);
    v["ca_cert_file"] = json!(ca);
    v["start_tls"] = json!(start_tls);
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn tls_starttls_and_ldaps() {
    let s = Slapd::start_tls();
    let tls = s.tls.as_ref().unwrap();

    // StartTLS on the plain port, verified against the custom CA.
    let a = auth(tls_config(&s.url(), &tls.ca_pem, true));
    assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
    assert_invalid(a.authenticate("alice", "wrong").await);

    // ldaps:// by IP and by host name (certificate has both SANs).
    for host in ["127.0.0.1", "localhost"] {
        let a = auth(tls_config(&s.ldaps_url(host), &tls.ca_pem, false));
        assert_eq!(a.authenticate("alice", "alicepass").await.unwrap(), alice());
        assert_invalid(a.authenticate("bob", "alicepass").await);
    }

    // A CA that did not sign the server certificate: refused, for both modes.
    let a = auth(tls_config(&s.url(), &tls.other_ca_pem, true));
    let detail = assert_unavailable(a.authenticate("alice", "alicepass").await);
    assert!(detail.contains("connect"), "{detail}");
    let a = auth(tls_config(
        &s.ldaps_url("127.0.0.1"),
        &tls.other_ca_pem,
        false,
    ));
    assert_unavailable(a.authenticate("alice", "alicepass").await);

    // ldaps without ca_cert_file uses the system store, which does not know our CA.
    let mut v = config_json(&s.ldaps_url("127.0.0.1"));
    v["start_tls"] = json!(false);
    if let Ok(a) = LdapAuthenticator::new(serde_json::from_value(v).unwrap()) {
        assert_unavailable(a.authenticate("alice", "alicepass").await);
    }

    // Speaking plain LDAP to the ldaps port fails cleanly (timeout-bounded).
    let mut v = config_json(&format!("ldap://127.0.0.1:{}", tls.ldaps_port));
    v["request_timeout_seconds"] = json!(1);
    let a = auth(serde_json::from_value(v).unwrap());
    let t0 = Instant::now();
    assert_unavailable(a.authenticate("alice", "alicepass").await);
    assert!(t0.elapsed() < Duration::from_secs(3));
}
