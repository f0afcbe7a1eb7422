//! The client against a real in-process Sluice server: every typed management and catalog
//! call, error mapping, Basic and bearer credentials, the retry after a 401, the token cache.
//! Nothing here reads or changes the process environment (see tests/config_env.rs for that).

use crate::common;

use common::{BasicKey, ExchangeKey, TestServer, KEY_ID, SECRET};
use reqwest::Method;
use serde_json::json;
use sluice_client::{
    AuthMethod, Client, ClientConfig, ClientError, CreateWarehouseRequest, Effect, Statement,
    TableIdentifier,
};
use std::collections::HashMap;
use std::sync::Arc;

fn admin(s: &TestServer) -> Client {
    Client::new(s.config(), BasicKey::admin()).unwrap()
}

fn assert_api(e: &ClientError, status: u16, kind: &str) {
    match e {
        ClientError::Api {
            status: s,
            kind: k,
            message,
        } => {
            assert_eq!((*s, k.as_str()), (status, kind), "{e}");
            assert!(!message.trim().is_empty(), "{e}");
        }
        other => panic!("expected a {status} {kind} API error, got {other:?}"),
    }
}

#[tokio::test]
async fn metadata_health_and_whoami() {
    let s = TestServer::start().await;
    let c = admin(&s);
    c.health().await.unwrap();
    let md = c.server_metadata().await.unwrap();
    assert_eq!(md["token_endpoint"], format!("{}/v1/oauth/tokens", s.base));
    assert_eq!(
        c.server_version().await.unwrap().as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );

    let me = c.whoami().await.unwrap();
    assert_eq!(me.name, "admin");
    assert_eq!(me.access_key_id.as_deref(), Some(KEY_ID));

    // Clones share everything and work from other tasks.
    let c2 = c.clone();
    let name = tokio::spawn(async move { c2.whoami().await.unwrap().name })
        .await
        .unwrap();
    assert_eq!(name, "admin");
    s.stop().await;
}

#[tokio::test]
async fn unauthorized_is_an_error_with_the_servers_message() {
    let s = TestServer::start().await;
    let wrong = Arc::new(BasicKey {
        id: KEY_ID.into(),
        secret: "wrong-secret-wrong-secret-wrong-secret-xx".into(),
    });
    let c = Client::new(s.config(), wrong).unwrap();
    let e = c.whoami().await.unwrap_err();
    assert_api(&e, 401, "NotAuthorizedException");

    // A bearer token the server cannot verify, from an authenticator that cannot do better:
    // one retry, then the server's 401.
    let bad = Arc::new(ExchangeKey {
        bogus_first: usize::MAX,
        ..ExchangeKey::admin(0)
    });
    let c = Client::new(s.config(), bad.clone()).unwrap();
    let e = c.list_users().await.unwrap_err();
    assert_api(&e, 401, "NotAuthorizedException");
    assert_eq!(bad.logins(), 2, "one login, one renewal after the 401");

    // Other errors carry the server's type and message too.
    let e = admin(&s).get_user("nobody-by-that-name").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(e.to_string().contains("nobody-by-that-name"), "{e}");
    let e = admin(&s)
        .raw_json(Method::GET, "/no/such/route", None)
        .await
        .unwrap_err();
    assert_api(&e, 404, "NotFoundException");
    s.stop().await;
}

#[tokio::test]
async fn bearer_retry_after_401_and_token_cache() {
    let s = TestServer::start().await;
    // The first login yields a garbage token: the request gets a 401, the manager logs in
    // again, and the request is replayed with the good token.
    let auth = Arc::new(ExchangeKey::admin(1));
    let c = Client::new(s.config(), auth.clone()).unwrap();
    assert_eq!(c.whoami().await.unwrap().name, "admin");
    assert_eq!(auth.logins(), 2);

    // Many concurrent requests on a fresh client: one login between them.
    let auth2 = Arc::new(ExchangeKey {
        identity: Some("other".into()),
        ..ExchangeKey::admin(0)
    });
    let c2 = Client::new(s.config(), auth2.clone()).unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c2.clone();
            tokio::spawn(async move { c.whoami().await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(auth2.logins(), 1);

    // The token went to the file cache (0600); a new client with the same identity reuses
    // it without logging in.
    let file = s.dir.path().join("client/tokens.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(KEY_ID) && text.contains("expires_at"),
        "{text}"
    );
    let auth3 = Arc::new(ExchangeKey::admin(0));
    let c3 = Client::new(s.config(), auth3.clone()).unwrap();
    assert_eq!(c3.whoami().await.unwrap().name, "admin");
    assert_eq!(auth3.logins(), 0, "the cached token was used");
    assert!(c3
        .tokens()
        .current_token()
        .await
        .unwrap()
        .expires_at
        .is_some());

    // Logout removes it: the next client has to log in.
    c3.logout().await.unwrap();
    let auth4 = Arc::new(ExchangeKey::admin(0));
    let c4 = Client::new(s.config(), auth4.clone()).unwrap();
    c4.whoami().await.unwrap();
    assert_eq!(auth4.logins(), 1);

    // An explicit login always runs the flow.
    let t = c4.login().await.unwrap();
    assert!(t.expires_at.is_some());
    assert_eq!(auth4.logins(), 2);
    s.stop().await;
}

#[tokio::test]
async fn custom_auth_header() {
    // The server only reads `authorization`; a client told to use another header sends the
    // credential there instead, so the server sees an anonymous request.
    let s = TestServer::start().await;
    let cfg = ClientConfig {
        auth_header: Some("x-sluice-auth".into()),
        ..s.config()
    };
    let c = Client::new(cfg, BasicKey::admin()).unwrap();
    assert_api(
        &c.whoami().await.unwrap_err(),
        401,
        "NotAuthorizedException",
    );
    let cfg = ClientConfig {
        auth_header: Some("bad header".into()),
        ..s.config()
    };
    let e = Client::new(cfg, BasicKey::admin()).unwrap_err();
    assert!(e.to_string().contains("auth-header"), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn refuses_plain_http_to_remote_hosts() {
    let cfg = ClientConfig {
        endpoint: Some("http://sluice.example.com".into()),
        ..Default::default()
    };
    let e = Client::new(cfg.clone(), BasicKey::admin()).unwrap_err();
    assert!(matches!(e, ClientError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("insecure"), "{e}");
    assert!(Client::new(
        ClientConfig {
            insecure: true,
            ..cfg
        },
        BasicKey::admin()
    )
    .is_ok());
    let e = Client::new(ClientConfig::default(), BasicKey::admin()).unwrap_err();
    assert!(e.to_string().contains("endpoint"), "{e}");
}

#[tokio::test]
async fn access_key_from_config_via_flows() {
    // The CLI's path: resolved config → flows::from_config → Client.
    let s = TestServer::start().await;
    let cfg = ClientConfig {
        access_key_id: Some(KEY_ID.into()),
        secret_access_key: Some(sluice_core::Secret::new(SECRET)),
        ..s.config()
    };
    assert_eq!(cfg.effective_auth_method(), Some(AuthMethod::AccessKey));
    let c = Client::from_config(cfg).unwrap();
    assert_eq!(c.whoami().await.unwrap().name, "admin");
    s.stop().await;
}

#[tokio::test]
async fn warehouses() {
    let s = TestServer::start().await;
    let c = admin(&s);
    let all = c.list_warehouses().await.unwrap();
    assert_eq!(
        all.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["default"]
    );

    let root = s.root().join("second");
    let mut req = CreateWarehouseRequest::new("second", json!({"type": "file", "root": root}));
    req.delete_profile = Some(json!({"type": "soft", "expiration-seconds": 3600}));
    let w = c.create_warehouse(&req).await.unwrap();
    assert_eq!(w.name, "second");
    assert_eq!(w.status, "active");
    assert_eq!(w.delete_profile["type"], "soft");
    assert!(!w.has_storage_credential);
    assert_api(
        &c.create_warehouse(&req).await.unwrap_err(),
        409,
        "AlreadyExistsException",
    );

    assert_eq!(c.get_warehouse(w.id).await.unwrap().name, "second");
    assert_eq!(c.find_warehouse("second").await.unwrap().id, w.id);
    assert_eq!(
        c.find_warehouse(&w.id.to_string()).await.unwrap().name,
        "second"
    );
    assert!(c.find_warehouse("nope").await.unwrap_err().is_not_found());

    let w = c.rename_warehouse(w.id, "renamed").await.unwrap();
    assert_eq!(w.name, "renamed");
    assert_eq!(
        c.deactivate_warehouse(w.id).await.unwrap().status,
        "inactive"
    );
    assert_eq!(c.activate_warehouse(w.id).await.unwrap().status, "active");
    let w = c
        .update_warehouse_delete_profile(w.id, json!({"type": "hard"}))
        .await
        .unwrap();
    assert_eq!(w.delete_profile["type"], "hard");
    assert!(c.list_deleted_tables(w.id).await.unwrap().is_empty());
    assert_eq!(c.list_warehouses().await.unwrap().len(), 2);

    c.delete_warehouse(w.id).await.unwrap();
    assert!(c.get_warehouse(w.id).await.unwrap_err().is_not_found());
    s.stop().await;
}

#[tokio::test]
async fn users_keys_groups_policies() {
    let s = TestServer::start().await;
    let c = admin(&s);

    // Users.
    let u = c
        .create_user("alice", Some("alice@example.com"), Some("Alice"))
        .await
        .unwrap();
    assert_eq!(
        (
            u.name.as_str(),
            u.email.as_deref(),
            u.friendly_name.as_deref()
        ),
        ("alice", Some("alice@example.com"), Some("Alice"))
    );
    assert_api(
        &c.create_user("alice", None, None).await.unwrap_err(),
        409,
        "AlreadyExistsException",
    );
    assert!(c
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.name == "alice"));
    assert_eq!(c.get_user("alice").await.unwrap().id, u.id);
    let u2 = c.update_user("alice", Some(None), None).await.unwrap();
    assert_eq!(
        (u2.email, u2.friendly_name.as_deref()),
        (None, Some("Alice"))
    );

    // Access keys: the secret comes back once and works.
    let k = c.create_access_key("alice").await.unwrap();
    assert_eq!(k.user, "alice");
    assert!(
        !format!("{k:?}").contains(k.secret_access_key.expose()),
        "the secret must not print"
    );
    let keys = c.list_access_keys("alice").await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| k.access_key_id.as_str())
            .collect::<Vec<_>>(),
        [k.access_key_id.as_str()]
    );
    let alice = Client::new(
        s.config(),
        Arc::new(BasicKey {
            id: k.access_key_id.clone(),
            secret: k.secret_access_key.expose().to_string(),
        }),
    )
    .unwrap();
    let me = alice.whoami().await.unwrap();
    assert_eq!(
        (me.name.as_str(), me.access_key_id.as_deref()),
        ("alice", Some(k.access_key_id.as_str()))
    );
    // Alice has no policies: management calls are forbidden, with the server's reason.
    assert_api(
        &alice.list_users().await.unwrap_err(),
        403,
        "ForbiddenException",
    );

    // Groups and membership.
    let g = c.create_group("analysts", Some("read only")).await.unwrap();
    assert_eq!(g.description.as_deref(), Some("read only"));
    assert!(c
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == "analysts"));
    assert_eq!(c.get_group("analysts").await.unwrap().id, g.id);
    c.add_group_member("analysts", "alice").await.unwrap();
    assert_eq!(
        c.group_members("analysts")
            .await
            .unwrap()
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    assert_eq!(
        c.user_groups("alice")
            .await
            .unwrap()
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["analysts"]
    );

    // Policies: create, read, update, attach to user and group.
    let st = vec![Statement::allow(["auth:ListUsers"], "sluice:auth:::user/*")];
    let p = c
        .create_policy("list-users", Some("may list users"), &st)
        .await
        .unwrap();
    assert_eq!(p.statements, st);
    assert!(!p.builtin);
    assert!(c
        .list_policies()
        .await
        .unwrap()
        .iter()
        .any(|x| x.name == "list-users"));
    assert_eq!(c.get_policy("list-users").await.unwrap().id, p.id);
    let st2 = vec![
        Statement::allow(["auth:ListUsers", "auth:ReadUser"], "sluice:auth:::user/*"),
        Statement {
            effect: Effect::Deny,
            action: vec!["auth:ReadUser".into()],
            resource: "sluice:auth:::user/admin".into(),
        },
    ];
    let p = c.update_policy("list-users", None, &st2).await.unwrap();
    assert_eq!(p.statements, st2);
    assert_eq!(
        p.description.as_deref(),
        Some("may list users"),
        "None keeps the description"
    );
    let p = c
        .update_policy("list-users", Some("list and read"), &st2)
        .await
        .unwrap();
    assert_eq!(p.description.as_deref(), Some("list and read"));

    c.attach_group_policy("analysts", "list-users")
        .await
        .unwrap();
    assert_eq!(c.group_policies("analysts").await.unwrap().len(), 1);
    assert!(
        alice.list_users().await.is_ok(),
        "allowed through the group"
    );
    let why = c
        .check_permission("alice", "auth:ReadUser", "sluice:auth:::user/admin")
        .await
        .unwrap();
    assert!(!why.allowed(), "{why:?}");
    assert!(why.reason.contains("list-users"), "{why:?}");
    let me = alice.whoami().await.unwrap();
    assert_eq!(me.groups, ["analysts"]);
    assert_eq!(me.policies[0].via_group.as_deref(), Some("analysts"));
    c.detach_group_policy("analysts", "list-users")
        .await
        .unwrap();

    c.attach_user_policy("alice", "list-users").await.unwrap();
    assert_eq!(
        c.user_policies("alice")
            .await
            .unwrap()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["list-users"]
    );
    assert!(alice.list_users().await.is_ok(), "allowed directly");
    c.detach_user_policy("alice", "list-users").await.unwrap();
    assert!(c.user_policies("alice").await.unwrap().is_empty());
    assert_api(
        &alice.list_users().await.unwrap_err(),
        403,
        "ForbiddenException",
    );

    // The audit log saw it all.
    let audit = c.audit(None, Some(200)).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "auth:CreatePolicy" && e.actor == "admin"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e.action == "auth:AttachPolicy" && e.result == "success"),
        "{audit:?}"
    );

    // Tear down.
    c.remove_group_member("analysts", "alice").await.unwrap();
    assert!(c.group_members("analysts").await.unwrap().is_empty());
    c.delete_group("analysts").await.unwrap();
    assert!(c.get_group("analysts").await.unwrap_err().is_not_found());
    c.delete_policy("list-users").await.unwrap();
    assert!(c.get_policy("list-users").await.unwrap_err().is_not_found());
    c.delete_access_key("alice", &k.access_key_id)
        .await
        .unwrap();
    assert_api(
        &alice.whoami().await.unwrap_err(),
        401,
        "NotAuthorizedException",
    );
    c.delete_user("alice").await.unwrap();
    assert!(c.get_user("alice").await.unwrap_err().is_not_found());

    // Names with characters that need escaping in a URL path are one segment.
    let e = c.get_user("a/b c%").await.unwrap_err();
    assert!(e.status() == Some(404) || e.status() == Some(400), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn catalog() {
    let s = TestServer::start().await;
    let c = admin(&s);
    let cfg = c.catalog_config("default").await.unwrap();
    let prefix = c.warehouse_prefix("default").await.unwrap();
    assert_eq!(cfg.prefix(), Some(prefix.as_str()));
    assert!(!cfg.endpoints.is_empty());
    assert_api(
        &c.catalog_config("nope").await.unwrap_err(),
        404,
        "NoSuchWarehouseException",
    );

    // Namespaces, nested.
    let props = HashMap::from([("owner".to_string(), "data-team".to_string())]);
    let ns = c
        .create_namespace(&prefix, &["sales"], props)
        .await
        .unwrap();
    assert_eq!(ns.namespace, ["sales"]);
    c.create_namespace(&prefix, &["sales", "eu"], HashMap::new())
        .await
        .unwrap();
    c.create_namespace(&prefix, &["hr"], HashMap::new())
        .await
        .unwrap();
    let mut top = c.list_namespaces::<&str>(&prefix, None).await.unwrap();
    top.sort();
    assert_eq!(top, [vec!["hr".to_string()], vec!["sales".to_string()]]);
    let children = c.list_namespaces(&prefix, Some(&["sales"])).await.unwrap();
    assert_eq!(children, [vec!["sales".to_string(), "eu".to_string()]]);
    assert_eq!(
        c.load_namespace(&prefix, &["sales"])
            .await
            .unwrap()
            .properties["owner"],
        "data-team"
    );
    assert!(c.namespace_exists(&prefix, &["sales", "eu"]).await.unwrap());
    assert!(!c.namespace_exists(&prefix, &["nope"]).await.unwrap());
    let upd = c
        .update_namespace_properties(
            &prefix,
            &["sales"],
            &["owner".to_string()],
            HashMap::from([("tier".into(), "gold".into())]),
        )
        .await
        .unwrap();
    assert_eq!(
        (upd.updated, upd.removed),
        (vec!["tier".to_string()], vec!["owner".to_string()])
    );
    assert_api(
        &c.load_namespace(&prefix, &["nope"]).await.unwrap_err(),
        404,
        "NoSuchNamespaceException",
    );

    // Tables: created through raw access (the typed API has no create), then the typed calls.
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"}
    ]});
    for name in ["orders", "refunds"] {
        let v = c
            .raw_json(
                Method::POST,
                &format!("/v1/{prefix}/namespaces/sales%1Feu/tables"),
                Some(&json!({"name": name, "schema": schema})),
            )
            .await
            .unwrap();
        assert!(v["metadata-location"].is_string(), "{v}");
    }
    let mut tables = c.list_tables(&prefix, &["sales", "eu"]).await.unwrap();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        tables,
        [
            TableIdentifier::new(["sales", "eu"], "orders"),
            TableIdentifier::new(["sales", "eu"], "refunds")
        ]
    );
    let t = c
        .load_table(&prefix, &["sales", "eu"], "orders")
        .await
        .unwrap();
    assert!(t.metadata_location.is_some());
    assert_eq!(t.metadata["format-version"], 2);
    assert!(c
        .table_exists(&prefix, &["sales", "eu"], "orders")
        .await
        .unwrap());
    assert!(!c
        .table_exists(&prefix, &["sales", "eu"], "nope")
        .await
        .unwrap());

    c.rename_table(
        &prefix,
        &TableIdentifier::new(["sales", "eu"], "orders"),
        &TableIdentifier::new(["hr"], "orders2"),
    )
    .await
    .unwrap();
    assert_eq!(
        c.list_tables(&prefix, &["hr"]).await.unwrap(),
        [TableIdentifier::new(["hr"], "orders2")]
    );
    assert_api(
        &c.load_table(&prefix, &["sales", "eu"], "orders")
            .await
            .unwrap_err(),
        404,
        "NoSuchTableException",
    );

    c.drop_table(&prefix, &["hr"], "orders2", true)
        .await
        .unwrap();
    c.drop_table(&prefix, &["sales", "eu"], "refunds", false)
        .await
        .unwrap();
    assert!(c.list_tables(&prefix, &["hr"]).await.unwrap().is_empty());
    c.drop_namespace(&prefix, &["sales", "eu"]).await.unwrap();
    c.drop_namespace(&prefix, &["hr"]).await.unwrap();
    assert_eq!(
        c.list_namespaces::<&str>(&prefix, None).await.unwrap(),
        [vec!["sales".to_string()]]
    );

    // Raw access returns JSON for any path.
    let v = c
        .raw_json(Method::GET, "/management/v1/users", None)
        .await
        .unwrap();
    assert!(v["users"].as_array().is_some_and(|u| !u.is_empty()), "{v}");
    let r: serde_json::Value = c
        .request(Method::GET, "/v1/config?warehouse=default")
        .send_json()
        .await
        .unwrap();
    assert_eq!(r["overrides"]["prefix"], prefix);
    s.stop().await;
}
