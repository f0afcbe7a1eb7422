//! Authorization end to end over HTTP: default groups, deny-wins, listing filters, key
//! revocation, escalation attempts, the explain endpoint and the audit log.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};

const ADMIN_ID: &str = "AKIATESTADMIN0000001";
const ADMIN_SECRET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123";

struct Env {
    base: String,
    client: Client,
    prefix: String,
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct Key {
    id: String,
    secret: String,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            allowed_file_roots: vec![dir.path().to_path_buf()],
            ..ServerConfig::default()
        };
        let server = Server::open(config, Some((ADMIN_ID.into(), Secret::new(ADMIN_SECRET))))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server.serve(listener, std::future::pending()));
        let mut env = Env {
            base,
            client: Client::new(),
            prefix: String::new(),
            _dir: dir,
        };
        let (_, v) = env
            .call(
                &env.admin(),
                Method::GET,
                "/v1/config?warehouse=default",
                None,
            )
            .await;
        env.prefix = v["overrides"]["prefix"].as_str().unwrap().to_string();
        env
    }

    fn admin(&self) -> Key {
        Key {
            id: ADMIN_ID.into(),
            secret: ADMIN_SECRET.into(),
        }
    }

    async fn call(
        &self,
        key: &Key,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .basic_auth(&key.id, Some(&key.secret));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let st = r.status();
        (
            st,
            serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    /// A user in `group` (if any) with one access key.
    async fn user(&self, name: &str, group: Option<&str>) -> Key {
        let a = self.admin();
        let (st, v) = self
            .call(
                &a,
                Method::POST,
                "/management/v1/users",
                Some(json!({"name": name, "email": format!("{name}@example.org")})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        if let Some(g) = group {
            let (st, v) = self
                .call(
                    &a,
                    Method::PUT,
                    &format!("/management/v1/groups/{g}/members/{name}"),
                    None,
                )
                .await;
            assert_eq!(st, 204, "{v}");
        }
        let (st, v) = self
            .call(
                &a,
                Method::POST,
                &format!("/management/v1/users/{name}/access-keys"),
                None,
            )
            .await;
        assert_eq!(st, 201, "{v}");
        Key {
            id: v["access-key-id"].as_str().unwrap().into(),
            secret: v["secret-access-key"].as_str().unwrap().into(),
        }
    }

    fn p(&self, rest: &str) -> String {
        format!("/v1/{}{}", self.prefix, rest)
    }
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]})
}

fn forbidden(st: StatusCode, v: &Value) {
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["error"]["type"], "ForbiddenException", "{v}");
    assert_eq!(v["error"]["code"], 403);
}

#[tokio::test]
async fn viewer_reads_but_cannot_write_developer_can_commit() {
    let e = Env::start().await;
    let a = e.admin();
    e.call(
        &a,
        Method::POST,
        &e.p("/namespaces"),
        Some(json!({"namespace": ["sales"]})),
    )
    .await;
    let (st, _) = e
        .call(
            &a,
            Method::POST,
            &e.p("/namespaces/sales/tables"),
            Some(json!({"name": "orders", "schema": schema()})),
        )
        .await;
    assert_eq!(st, 200);

    let viewer = e.user("vera", Some("Viewers")).await;
    let (st, v) = e
        .call(
            &viewer,
            Method::GET,
            &e.p("/namespaces/sales/tables/orders"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = e
        .call(&viewer, Method::GET, &e.p("/namespaces"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["namespaces"], json!([["sales"]]));
    let (st, v) = e
        .call(
            &viewer,
            Method::POST,
            &e.p("/namespaces/sales/tables"),
            Some(json!({"name": "x", "schema": schema()})),
        )
        .await;
    forbidden(st, &v);
    let (st, v) = e
        .call(
            &viewer,
            Method::DELETE,
            &e.p("/namespaces/sales/tables/orders"),
            None,
        )
        .await;
    forbidden(st, &v);
    let commit = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"a": "b"}}]});
    let (st, v) = e
        .call(
            &viewer,
            Method::POST,
            &e.p("/namespaces/sales/tables/orders"),
            Some(commit.clone()),
        )
        .await;
    forbidden(st, &v);
    let (st, v) = e
        .call(
            &viewer,
            Method::POST,
            "/management/v1/users",
            Some(json!({"name": "mallory"})),
        )
        .await;
    forbidden(st, &v);
    let (st, v) = e.call(&viewer, Method::POST, "/management/v1/warehouse", Some(json!({"warehouse-name": "w", "storage-profile": {"type": "file", "root": "/tmp/x"}}))).await;
    forbidden(st, &v);

    let dev = e.user("dana", Some("Developers")).await;
    let (st, v) = e
        .call(
            &dev,
            Method::POST,
            &e.p("/namespaces/sales/tables/orders"),
            Some(commit),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = e
        .call(
            &dev,
            Method::POST,
            &e.p("/namespaces/sales/tables"),
            Some(json!({"name": "y", "schema": schema()})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = e.call(&dev, Method::POST, "/management/v1/warehouse", Some(json!({"warehouse-name": "w", "storage-profile": {"type": "file", "root": "/tmp/x"}}))).await;
    forbidden(st, &v);

    // A user in no group can do nothing at all, but sees itself.
    let nobody = e.user("nobody", None).await;
    let (st, _) = e
        .call(&nobody, Method::GET, "/v1/config?warehouse=default", None)
        .await;
    assert_eq!(st, 404);
    let (st, v) = e
        .call(&nobody, Method::GET, "/management/v1/whoami", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["name"], "nobody");
}

#[tokio::test]
async fn deny_hides_namespace_and_its_tables() {
    let e = Env::start().await;
    let a = e.admin();
    for ns in ["public", "secret"] {
        e.call(
            &a,
            Method::POST,
            &e.p("/namespaces"),
            Some(json!({"namespace": [ns]})),
        )
        .await;
        e.call(
            &a,
            Method::POST,
            &e.p(&format!("/namespaces/{ns}/tables")),
            Some(json!({"name": "t", "schema": schema()})),
        )
        .await;
    }
    let (st, v) = e
        .call(&a, Method::POST, "/management/v1/policies", Some(json!({
            "name": "NoSecret",
            "statements": [{"effect": "deny", "action": ["catalog:*"], "resource": "sluice:catalog:::warehouse/default/namespace/secret"},
                           {"effect": "deny", "action": ["catalog:*"], "resource": "sluice:catalog:::warehouse/default/namespace/secret/*"}]})))
        .await;
    assert_eq!(st, 201, "{v}");
    let dev = e.user("devin", Some("Developers")).await;
    e.call(
        &a,
        Method::PUT,
        "/management/v1/users/devin/policies/NoSecret",
        None,
    )
    .await;

    let (_, v) = e.call(&dev, Method::GET, &e.p("/namespaces"), None).await;
    assert_eq!(v["namespaces"], json!([["public"]]));
    // Same answers as for things that do not exist.
    let (st_hidden, v_hidden) = e
        .call(&dev, Method::GET, &e.p("/namespaces/secret/tables/t"), None)
        .await;
    let (st_missing, _) = e
        .call(
            &dev,
            Method::GET,
            &e.p("/namespaces/public/tables/nope"),
            None,
        )
        .await;
    assert_eq!(st_hidden, 404);
    assert_eq!(st_missing, 404);
    assert_eq!(v_hidden["error"]["type"], "NoSuchTableException");
    let (st, v) = e
        .call(&dev, Method::GET, &e.p("/namespaces/secret"), None)
        .await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["type"], "NoSuchNamespaceException");
    let (st, _) = e
        .call(&dev, Method::GET, &e.p("/namespaces/secret/tables"), None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = e
        .call(
            &dev,
            Method::POST,
            &e.p("/namespaces/secret/tables"),
            Some(json!({"name": "u", "schema": schema()})),
        )
        .await;
    assert_eq!(st, 404);
    // Admin still sees both.
    let (_, v) = e.call(&a, Method::GET, &e.p("/namespaces"), None).await;
    assert_eq!(v["namespaces"], json!([["public"], ["secret"]]));

    // The explain endpoint names the deciding statement.
    let (st, v) = e
        .call(
            &a,
            Method::POST,
            "/management/v1/authz/check",
            Some(json!({"user": "devin", "action": "catalog:ReadTable",
            "resource": "sluice:catalog:::warehouse/default/namespace/secret/table/t"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["statement"]["policy"], "NoSecret");
    assert_eq!(v["statement"]["statement"], 1);
    let (_, v) = e
        .call(
            &a,
            Method::POST,
            "/management/v1/authz/check",
            Some(json!({"user": "devin", "action": "catalog:ReadTable",
            "resource": "sluice:catalog:::warehouse/default/namespace/public/table/t"})),
        )
        .await;
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["statement"]["policy"], "CatalogReadWrite");
    let (_, v) = e
        .call(&a, Method::POST, "/management/v1/authz/check", Some(json!({"user": "devin", "action": "auth:CreateUser", "resource": "sluice:auth:::user/x"})))
        .await;
    assert_eq!(v["decision"], "deny");
    assert!(v.get("statement").is_none() || v["statement"].is_null());
    let (st, _) = e
        .call(
            &a,
            Method::POST,
            "/management/v1/authz/check",
            Some(json!({"user": "devin", "action": "catalog:Fly", "resource": "*"})),
        )
        .await;
    assert_eq!(st, 400);
    // Only those allowed to explain may ask.
    let (st, v) = e
        .call(
            &dev,
            Method::POST,
            "/management/v1/authz/check",
            Some(json!({"user": "admin", "action": "catalog:ReadTable", "resource": "*"})),
        )
        .await;
    forbidden(st, &v);
}

#[tokio::test]
async fn deleted_key_is_refused_immediately_also_its_tokens() {
    let e = Env::start().await;
    let a = e.admin();
    let k = e.user("temp", Some("Viewers")).await;
    let tok: Value = e
        .client
        .post(format!("{}/v1/oauth/tokens", e.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", k.id.as_str()),
            ("client_secret", k.secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    let (st, _) = e
        .call(&k, Method::GET, "/v1/config?warehouse=default", None)
        .await;
    assert_eq!(st, 200);
    // Listing shows ids and no secrets.
    let (_, v) = e
        .call(
            &a,
            Method::GET,
            "/management/v1/users/temp/access-keys",
            None,
        )
        .await;
    assert_eq!(v["access-keys"][0]["access-key-id"], k.id.as_str());
    assert!(!v.to_string().contains(&k.secret));
    let (st, _) = e
        .call(
            &a,
            Method::DELETE,
            &format!("/management/v1/users/temp/access-keys/{}", k.id),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = e
        .call(&k, Method::GET, "/v1/config?warehouse=default", None)
        .await;
    assert_eq!(st, 401);
    let r = e
        .client
        .get(format!("{}/v1/config?warehouse=default", e.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn users_manage_own_keys_but_cannot_escalate() {
    let e = Env::start().await;
    let dev = e.user("eve", Some("Developers")).await;
    e.user("other", Some("Viewers")).await;
    // Own keys: yes.
    let (st, v) = e
        .call(
            &dev,
            Method::POST,
            "/management/v1/users/eve/access-keys",
            None,
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let second = v["access-key-id"].as_str().unwrap().to_string();
    let (st, v) = e
        .call(
            &dev,
            Method::GET,
            "/management/v1/users/eve/access-keys",
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["access-keys"].as_array().unwrap().len(), 2);
    let (st, _) = e
        .call(
            &dev,
            Method::DELETE,
            &format!("/management/v1/users/eve/access-keys/{second}"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    // Someone else's keys: no.
    let (st, v) = e
        .call(
            &dev,
            Method::POST,
            "/management/v1/users/other/access-keys",
            None,
        )
        .await;
    forbidden(st, &v);
    // Escalation attempts.
    let (st, v) = e
        .call(&dev, Method::POST, "/management/v1/policies", Some(json!({"name": "Mine", "statements": [{"effect": "allow", "action": ["*"], "resource": "*"}]})))
        .await;
    forbidden(st, &v);
    let (st, v) = e
        .call(
            &dev,
            Method::PUT,
            "/management/v1/users/eve/policies/FullAccess",
            None,
        )
        .await;
    forbidden(st, &v);
    let (st, v) = e
        .call(
            &dev,
            Method::PUT,
            "/management/v1/groups/Admins/members/eve",
            None,
        )
        .await;
    forbidden(st, &v);
    let (_, v) = e
        .call(&dev, Method::GET, "/management/v1/whoami", None)
        .await;
    assert_eq!(v["groups"], json!(["Developers"]));
    // The attempts are in the audit log, as denied.
    let (st, v) = e
        .call(
            &e.admin(),
            Method::GET,
            "/management/v1/audit?limit=50",
            None,
        )
        .await;
    assert_eq!(st, 200);
    let entries = v["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|x| x["action"] == "auth:CreatePolicy"
            && x["result"] == "denied"
            && x["actor"] == "eve"),
        "{v}"
    );
    assert!(entries.iter().any(|x| x["action"] == "auth:CreateUser"
        && x["result"] == "success"
        && x["actor"] == "admin"));
    let (st, v) = e
        .call(&dev, Method::GET, "/management/v1/audit", None)
        .await;
    forbidden(st, &v);
}

#[tokio::test]
async fn policy_changes_apply_at_once_and_bad_input_writes_nothing() {
    let e = Env::start().await;
    let a = e.admin();
    e.call(
        &a,
        Method::POST,
        &e.p("/namespaces"),
        Some(json!({"namespace": ["ns"]})),
    )
    .await;
    let u = e.user("pat", None).await;
    let (st, _) = e.call(&u, Method::GET, &e.p("/namespaces/ns"), None).await;
    assert_eq!(st, 404);
    let (st, v) = e
        .call(&a, Method::POST, "/management/v1/policies", Some(json!({"name": "ReadNs", "description": "read ns",
            "statements": [{"effect": "allow", "action": "catalog:ReadNamespace", "resource": "sluice:catalog:::warehouse/default/namespace/ns"}]})))
        .await;
    assert_eq!(st, 201, "{v}");
    e.call(
        &a,
        Method::PUT,
        "/management/v1/users/pat/policies/ReadNs",
        None,
    )
    .await;
    let (st, _) = e.call(&u, Method::GET, &e.p("/namespaces/ns"), None).await;
    assert_eq!(st, 200);
    let (st, _) = e
        .call(
            &a,
            Method::DELETE,
            "/management/v1/users/pat/policies/ReadNs",
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = e.call(&u, Method::GET, &e.p("/namespaces/ns"), None).await;
    assert_eq!(st, 404);

    // Bad input → 400 with a message, and nothing stored.
    let bad = [
        json!({"name": "P1", "statements": [{"effect": "allow", "action": ["catalog:Fly"], "resource": "*"}]}),
        json!({"name": "P2", "statements": [{"effect": "allow", "action": ["catalog:ReadTable"], "resource": "warehouse/x"}]}),
        json!({"name": "P3", "statements": [{"effect": "maybe", "action": ["catalog:ReadTable"], "resource": "*"}]}),
        json!({"name": "P4", "statements": []}),
        json!({"name": "bad name!", "statements": [{"effect": "allow", "action": ["*"], "resource": "*"}]}),
    ];
    for b in bad {
        let (st, v) = e
            .call(&a, Method::POST, "/management/v1/policies", Some(b.clone()))
            .await;
        assert_eq!(st, 400, "{b} → {v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
    let (_, v) = e
        .call(&a, Method::GET, "/management/v1/policies", None)
        .await;
    let names: Vec<&str> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in ["P1", "P2", "P3", "P4"] {
        assert!(!names.contains(&n));
    }
    // Duplicates are conflicts.
    let (st, v) = e
        .call(
            &a,
            Method::POST,
            "/management/v1/users",
            Some(json!({"name": "pat"})),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    let (st, _) = e
        .call(
            &a,
            Method::POST,
            "/management/v1/groups",
            Some(json!({"name": "Viewers"})),
        )
        .await;
    assert_eq!(st, 409);
    // Built-in policies are immutable.
    let (st, _) = e
        .call(
            &a,
            Method::DELETE,
            "/management/v1/policies/FullAccess",
            None,
        )
        .await;
    assert_eq!(st, 400);
    // Deleting a user removes them everywhere.
    let (st, _) = e
        .call(&a, Method::DELETE, "/management/v1/users/pat", None)
        .await;
    assert_eq!(st, 204);
    let (st, _) = e.call(&u, Method::GET, "/management/v1/whoami", None).await;
    assert_eq!(st, 401);
}
