//! The Iceberg view API over HTTP against an in-process server (SQLite + the default file
//! warehouse): lifecycle, metadata files, commit requirements and conflicts, the name space
//! shared with tables, rename, drop, config endpoints, and authorization (view actions,
//! hidden ⇒ 404, filtered listings).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::server;
use server::TestServer;

fn assert_error(st: StatusCode, v: &Value, kind: &str, code: u16) {
    assert_eq!(st.as_u16(), code, "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

fn schema(id: i32, extra: bool) -> Value {
    let mut fields = vec![json!({"id": 1, "name": "id", "required": false, "type": "long"})];
    if extra {
        fields.push(json!({"id": 2, "name": "name", "required": false, "type": "string"}));
    }
    json!({"type": "struct", "schema-id": id, "fields": fields})
}

fn version(id: i32, schema_id: i32, sql: &str) -> Value {
    json!({
        "version-id": id,
        "schema-id": schema_id,
        "timestamp-ms": chrono::Utc::now().timestamp_millis(),
        "summary": {"engine-name": "test"},
        "representations": [{"type": "sql", "sql": sql, "dialect": "spark"}],
        "default-namespace": ["db"]
    })
}

fn create_body(name: &str) -> Value {
    json!({"name": name, "schema": schema(0, false), "view-version": version(1, 0, "select id from db.t"), "properties": {"comment": "c"}})
}

fn file_of(location: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(location.trim_start_matches("file://"))
}

#[derive(Clone)]
struct Key {
    id: String,
    secret: String,
}

async fn call(
    s: &TestServer,
    key: &Key,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = s
        .client
        .request(method, s.url(path))
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
async fn user(s: &TestServer, name: &str, group: Option<&str>) -> Key {
    let (st, v) = s.post("/management/v1/users", json!({"name": name})).await;
    assert_eq!(st, 201, "{v}");
    if let Some(g) = group {
        let (st, v) = s
            .call(
                Method::PUT,
                &format!("/management/v1/groups/{g}/members/{name}"),
                None,
            )
            .await;
        assert_eq!(st, 204, "{v}");
    }
    let (st, v) = s
        .call(
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

#[tokio::test]
async fn config_lists_the_view_endpoints() {
    let s = TestServer::start().await;
    let (st, v) = s.get("/v1/config?warehouse=default").await;
    assert_eq!(st, 200);
    let endpoints: Vec<&str> = v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for e in [
        "GET /v1/{prefix}/namespaces/{namespace}/views",
        "POST /v1/{prefix}/namespaces/{namespace}/views",
        "GET /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "POST /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "POST /v1/{prefix}/namespaces/{namespace}/register-view",
        "POST /v1/{prefix}/views/rename",
    ] {
        assert!(endpoints.contains(&e), "{e} missing from {endpoints:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn views_create_load_replace_list_rename_drop() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    let ns = |rest: &str| format!("/v1/{p}/namespaces{rest}");
    s.post(&ns(""), json!({"namespace": ["db"]})).await;
    s.post(&ns(""), json!({"namespace": ["other"]})).await;

    let (st, v) = s.post(&ns("/db/views"), create_body("v1")).await;
    assert_eq!(st, 200, "{v}");
    let loc0 = v["metadata-location"].as_str().unwrap().to_string();
    assert!(
        loc0.contains("/metadata/00000-") && loc0.ends_with(".metadata.json"),
        "{loc0}"
    );
    let written: Value = serde_json::from_slice(&std::fs::read(file_of(&loc0)).unwrap()).unwrap();
    assert_eq!(
        written, v["metadata"],
        "the file holds what the response says"
    );
    assert_eq!(v["metadata"]["format-version"], 1);
    assert_eq!(v["metadata"]["current-version-id"], 1);
    assert_eq!(v["metadata"]["properties"]["comment"], "c");
    assert_eq!(
        v["metadata"]["versions"][0]["representations"][0]["sql"],
        "select id from db.t"
    );
    let uuid = v["metadata"]["view-uuid"].as_str().unwrap().to_string();
    assert!(v["metadata"]["location"]
        .as_str()
        .unwrap()
        .starts_with("file://"));

    // Load, exists.
    let (st, v) = s.get(&ns("/db/views/v1")).await;
    assert_eq!(st, 200);
    assert_eq!(v["metadata-location"], loc0.as_str());
    let (st, _) = s.call(Method::HEAD, &ns("/db/views/v1"), None).await;
    assert_eq!(st, 204);
    let (st, _) = s.call(Method::HEAD, &ns("/db/views/nope"), None).await;
    assert_eq!(st, 404);
    let (st, v) = s.get(&ns("/db/views/nope")).await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, v) = s.get(&ns("/missing/views/v1")).await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, v) = s.get(&ns("/missing/views")).await;
    assert_error(st, &v, "NoSuchNamespaceException", 404);
    let (st, v) = s.post(&ns("/missing/views"), create_body("v1")).await;
    assert_error(st, &v, "NoSuchNamespaceException", 404);

    // Duplicate.
    let (st, v) = s.post(&ns("/db/views"), create_body("v1")).await;
    assert_error(st, &v, "AlreadyExistsException", 409);

    // Replace: a new version with a new schema, guarded by the view's uuid.
    let replace = json!({
    "identifier": {"namespace": ["db"], "name": "v1"},
    "requirements": [{"type": "assert-view-uuid", "uuid": uuid}],
    "updates": [
        {"action": "add-schema", "schema": schema(1, true), "last-column-id": 2},
        {"action": "add-view-version", "view-version": version(2, -1, "select id, name from db.t")},
        {"action": "set-current-view-version", "view-version-id": -1},
        {"action": "set-properties", "updates": {"k": "v"}},
        {"action": "remove-properties", "removals": ["comment"]}
    ]});
    let (st, v) = s.post(&ns("/db/views/v1"), replace).await;
    assert_eq!(st, 200, "{v}");
    let loc1 = v["metadata-location"].as_str().unwrap().to_string();
    assert!(loc1.contains("/metadata/00001-"), "{loc1}");
    assert_eq!(v["metadata"]["current-version-id"], 2);
    assert_eq!(v["metadata"]["properties"], json!({"k": "v"}));
    let current = v["metadata"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["version-id"] == 2)
        .unwrap()
        .clone();
    assert_eq!(current["schema-id"], 1);
    assert_eq!(v["metadata"]["view-uuid"], uuid.as_str());
    assert!(file_of(&loc1).exists());
    assert!(file_of(&loc0).exists(), "older metadata files stay");

    // A wrong uuid fails the commit; nothing changes.
    let stale = json!({"requirements": [{"type": "assert-view-uuid", "uuid": "00000000-0000-0000-0000-000000000001"}],
                       "updates": [{"action": "set-properties", "updates": {"k": "w"}}]});
    let (st, v) = s.post(&ns("/db/views/v1"), stale).await;
    assert_error(st, &v, "CommitFailedException", 409);
    // Invalid updates are a 400, not a 500.
    let bad = json!({"requirements": [], "updates": [{"action": "set-current-view-version", "view-version-id": 42}]});
    let (st, v) = s.post(&ns("/db/views/v1"), bad).await;
    assert_error(st, &v, "BadRequestException", 400);
    let bad = json!({"requirements": [{"type": "assert-nonsense"}], "updates": []});
    let (st, _) = s.post(&ns("/db/views/v1"), bad).await;
    assert_eq!(st, 400);
    let (st, v) = s
        .post(
            &ns("/db/views/nope"),
            json!({"requirements": [], "updates": []}),
        )
        .await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (_, v) = s.get(&ns("/db/views/v1")).await;
    assert_eq!(v["metadata-location"], loc1.as_str());

    // Listing with paging.
    for name in ["a", "b"] {
        let (st, v) = s.post(&ns("/db/views"), create_body(name)).await;
        assert_eq!(st, 200, "{v}");
    }
    let (_, v) = s.get(&ns("/db/views")).await;
    assert_eq!(
        v["identifiers"],
        json!([{"namespace": ["db"], "name": "a"}, {"namespace": ["db"], "name": "b"}, {"namespace": ["db"], "name": "v1"}])
    );
    let (_, v) = s.get(&ns("/db/views?pageSize=2")).await;
    assert_eq!(v["identifiers"].as_array().unwrap().len(), 2);
    let token = v["next-page-token"].as_str().unwrap().to_string();
    let (_, v) = s
        .get(&ns(&format!("/db/views?pageSize=2&pageToken={token}")))
        .await;
    assert_eq!(
        v["identifiers"],
        json!([{"namespace": ["db"], "name": "v1"}])
    );
    // Views are not tables.
    let (_, v) = s.get(&ns("/db/tables")).await;
    assert_eq!(v["identifiers"], json!([]));

    // Rename across namespaces.
    let rename = |from: (&str, &str), to: (&str, &str)| json!({"source": {"namespace": [from.0], "name": from.1}, "destination": {"namespace": [to.0], "name": to.1}});
    let (st, v) = s
        .post(
            &format!("/v1/{p}/views/rename"),
            rename(("db", "v1"), ("other", "moved")),
        )
        .await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = s.get(&ns("/other/views/moved")).await;
    assert_eq!(st, 200);
    assert_eq!(v["metadata-location"], loc1.as_str());
    let (st, v) = s
        .post(
            &format!("/v1/{p}/views/rename"),
            rename(("db", "v1"), ("other", "x")),
        )
        .await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, v) = s
        .post(
            &format!("/v1/{p}/views/rename"),
            rename(("db", "a"), ("other", "moved")),
        )
        .await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    let (st, v) = s
        .post(
            &format!("/v1/{p}/views/rename"),
            rename(("db", "a"), ("missing", "x")),
        )
        .await;
    assert_error(st, &v, "NoSuchNamespaceException", 404);

    // A namespace with views is not empty.
    let (st, v) = s.delete(&ns("/other")).await;
    assert_error(st, &v, "NamespaceNotEmptyException", 409);

    // Drop; the metadata files stay and register-view brings the view back.
    let (st, _) = s.delete(&ns("/other/views/moved")).await;
    assert_eq!(st, 204);
    let (st, v) = s.delete(&ns("/other/views/moved")).await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, _) = s.delete(&ns("/other")).await;
    assert_eq!(st, 204);
    assert!(file_of(&loc1).exists());
    let (st, v) = s
        .post(
            &ns("/db/register-view"),
            json!({"name": "back", "metadata-location": loc1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["metadata"]["view-uuid"], uuid.as_str());
    assert_eq!(v["metadata-location"], loc1.as_str());
    let (st, v) = s
        .post(
            &ns("/db/register-view"),
            json!({"name": "again", "metadata-location": loc1}),
        )
        .await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    let (st, v) = s
        .post(
            &ns("/db/register-view"),
            json!({"name": "evil", "metadata-location": "file:///etc/passwd"}),
        )
        .await;
    assert_error(st, &v, "BadRequestException", 400);
    // The registered view commits on from where it was.
    let (st, v) = s.post(&ns("/db/views/back"), json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"z": "1"}}]})).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["metadata-location"]
        .as_str()
        .unwrap()
        .contains("/metadata/00002-"));
    s.stop().await;
}

#[tokio::test]
async fn views_and_tables_share_one_name_space() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    let ns = |rest: &str| format!("/v1/{p}/namespaces{rest}");
    s.post(&ns(""), json!({"namespace": ["db"]})).await;
    let (st, _) = s
        .post(
            &ns("/db/tables"),
            json!({"name": "t", "schema": schema(0, false)}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s.post(&ns("/db/views"), create_body("v")).await;
    assert_eq!(st, 200);

    let (st, v) = s.post(&ns("/db/views"), create_body("t")).await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    let (st, v) = s
        .post(
            &ns("/db/tables"),
            json!({"name": "v", "schema": schema(0, false)}),
        )
        .await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    // A create through a commit with assert-create is refused as well.
    let create_commit = json!({"identifier": {"namespace": ["db"], "name": "v"}, "requirements": [{"type": "assert-create"}],
        "updates": [{"action": "assign-uuid", "uuid": "2cc52516-5e73-41f2-b139-545d41a4e151"},
                    {"action": "upgrade-format-version", "format-version": 2},
                    {"action": "add-schema", "schema": schema(0, false)},
                    {"action": "set-current-schema", "schema-id": -1},
                    {"action": "add-spec", "spec": {"spec-id": 0, "fields": []}},
                    {"action": "set-default-spec", "spec-id": -1},
                    {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
                    {"action": "set-default-sort-order", "sort-order-id": -1}]});
    let (st, v) = s.post(&ns("/db/tables/v"), create_commit).await;
    assert_eq!(st, 409, "{v}");
    let rename = |kind: &str, from: &str, to: &str| {
        (
            format!("/v1/{p}/{kind}/rename"),
            json!({"source": {"namespace": ["db"], "name": from}, "destination": {"namespace": ["db"], "name": to}}),
        )
    };
    let (path, body) = rename("tables", "t", "v");
    let (st, v) = s.post(&path, body).await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    let (path, body) = rename("views", "v", "t");
    let (st, v) = s.post(&path, body).await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    // Loading the other kind under a name is a miss, not a mix-up.
    let (st, v) = s.get(&ns("/db/views/t")).await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, v) = s.get(&ns("/db/tables/v")).await;
    assert_error(st, &v, "NoSuchTableException", 404);
    // Once the view is gone, a table may take its name.
    let (st, _) = s.delete(&ns("/db/views/v")).await;
    assert_eq!(st, 204);
    let (st, v) = s
        .post(
            &ns("/db/tables"),
            json!({"name": "v", "schema": schema(0, false)}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn concurrent_replaces_one_wins_the_other_gets_commit_failed() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["db"]}))
        .await;
    let (st, _) = s
        .post(&format!("/v1/{p}/namespaces/db/views"), create_body("hot"))
        .await;
    assert_eq!(st, 200);
    let path = format!("/v1/{p}/namespaces/db/views/hot");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let body = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {format!("k{i}"): "v"}}]});
        let url = s.url(&path);
        let client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .basic_auth(server::KEY_ID, Some(server::SECRET))
                .json(&body)
                .send()
                .await
                .unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (st, v) = t.await.unwrap();
        match st.as_u16() {
            200 => ok += 1,
            409 => assert_eq!(v["error"]["type"], "CommitFailedException", "{v}"),
            other => panic!("{other}: {v}"),
        }
    }
    assert!(ok >= 1);
    // Every successful commit is in the final metadata, and nothing else.
    let (_, v) = s.get(&path).await;
    let props = v["metadata"]["properties"].as_object().unwrap();
    assert_eq!(props.keys().filter(|k| k.starts_with('k')).count(), ok);
    s.stop().await;
}

#[tokio::test]
async fn view_authorization_hidden_views_are_missing_and_listings_filtered() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    let ns = |rest: &str| format!("/v1/{p}/namespaces{rest}");
    s.post(&ns(""), json!({"namespace": ["db"]})).await;
    for name in ["open", "secret"] {
        let (st, _) = s.post(&ns("/db/views"), create_body(name)).await;
        assert_eq!(st, 200);
    }
    let (st, v) = s
        .post("/management/v1/policies", json!({
            "name": "NoSecretView",
            "statements": [{"effect": "deny", "action": ["catalog:*"], "resource": "sluice:catalog:::warehouse/default/namespace/db/view/secret"}]}))
        .await;
    assert_eq!(st, 201, "{v}");

    // Viewers read and list, but cannot create, replace, rename or drop.
    let viewer = user(&s, "vera", Some("Viewers")).await;
    let (st, v) = call(&s, &viewer, Method::GET, &ns("/db/views/open"), None).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &s,
        &viewer,
        Method::POST,
        &ns("/db/views"),
        Some(create_body("mine")),
    )
    .await;
    assert_error(st, &v, "ForbiddenException", 403);
    let replace = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"a": "b"}}]});
    let (st, v) = call(
        &s,
        &viewer,
        Method::POST,
        &ns("/db/views/open"),
        Some(replace.clone()),
    )
    .await;
    assert_error(st, &v, "ForbiddenException", 403);
    let (st, v) = call(&s, &viewer, Method::DELETE, &ns("/db/views/open"), None).await;
    assert_error(st, &v, "ForbiddenException", 403);
    let rename = json!({"source": {"namespace": ["db"], "name": "open"}, "destination": {"namespace": ["db"], "name": "x"}});
    let (st, v) = call(
        &s,
        &viewer,
        Method::POST,
        &format!("/v1/{p}/views/rename"),
        Some(rename.clone()),
    )
    .await;
    assert_error(st, &v, "ForbiddenException", 403);

    // A developer with a deny on one view: it is missing for every operation, and filtered
    // from listings; everything else works.
    let dev = user(&s, "dana", Some("Developers")).await;
    let (st, v) = s
        .call(
            Method::PUT,
            "/management/v1/users/dana/policies/NoSecretView",
            None,
        )
        .await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = call(&s, &dev, Method::GET, &ns("/db/views"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["identifiers"],
        json!([{"namespace": ["db"], "name": "open"}])
    );
    let (st, v) = call(&s, &dev, Method::GET, &ns("/db/views/secret"), None).await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, _) = call(&s, &dev, Method::HEAD, &ns("/db/views/secret"), None).await;
    assert_eq!(st, 404);
    let (st, v) = call(
        &s,
        &dev,
        Method::POST,
        &ns("/db/views/secret"),
        Some(replace.clone()),
    )
    .await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, v) = call(&s, &dev, Method::DELETE, &ns("/db/views/secret"), None).await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let hidden_rename = json!({"source": {"namespace": ["db"], "name": "secret"}, "destination": {"namespace": ["db"], "name": "y"}});
    let (st, v) = call(
        &s,
        &dev,
        Method::POST,
        &format!("/v1/{p}/views/rename"),
        Some(hidden_rename),
    )
    .await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (st, v) = call(&s, &dev, Method::POST, &ns("/db/views/open"), Some(replace)).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &s,
        &dev,
        Method::POST,
        &ns("/db/views"),
        Some(create_body("mine")),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &s,
        &dev,
        Method::POST,
        &format!("/v1/{p}/views/rename"),
        Some(rename),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let (st, _) = call(&s, &dev, Method::DELETE, &ns("/db/views/x"), None).await;
    assert_eq!(st, 204);
    // The admin still sees the hidden view.
    let (st, _) = s.get(&ns("/db/views/secret")).await;
    assert_eq!(st, 200);

    // A user in no group cannot even see the namespace.
    let nobody = user(&s, "nobody", None).await;
    let (st, v) = call(
        &s,
        &nobody,
        Method::POST,
        &ns("/db/views"),
        Some(create_body("z")),
    )
    .await;
    assert_error(st, &v, "NoSuchNamespaceException", 404);
    let (st, v) = call(&s, &nobody, Method::GET, &ns("/db/views"), None).await;
    assert_error(st, &v, "NoSuchNamespaceException", 404);
    s.stop().await;
}

/// A warehouse whose delete profile is soft, with namespace `ns`; returns its id (which is
/// also its catalog prefix).
async fn soft_warehouse(s: &TestServer, name: &str, expiration: u64) -> String {
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            json!({
                "warehouse-name": name,
                "storage-profile": {"type": "file", "root": s.data_dir.join(name)},
                "delete-profile": {"type": "soft", "expiration-seconds": expiration}}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["warehouse-id"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            &format!("/v1/{id}/namespaces"),
            json!({"namespace": ["ns"]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    id
}

#[tokio::test]
async fn soft_dropped_view_is_listed_and_can_be_undropped() {
    let s = TestServer::start().await;
    let wh = soft_warehouse(&s, "soft", 3600).await;
    let ns = |rest: &str| format!("/v1/{wh}/namespaces/ns{rest}");
    let deleted = format!("/management/v1/warehouse/{wh}/deleted-tables");
    let (st, v) = s.post(&ns("/views"), create_body("v")).await;
    assert_eq!(st, 200, "{v}");
    let loc0 = v["metadata-location"].as_str().unwrap().to_string();
    let uuid = v["metadata"]["view-uuid"].as_str().unwrap().to_string();

    let (st, v) = s.delete(&ns("/views/v")).await;
    assert_eq!(st, 204, "{v}");
    // Hidden at once, its metadata file kept.
    let (st, v) = s.get(&ns("/views/v")).await;
    assert_error(st, &v, "NoSuchViewException", 404);
    let (_, v) = s.get(&ns("/views")).await;
    assert_eq!(v["identifiers"], json!([]));
    assert!(file_of(&loc0).exists());
    // Listed as a deleted view.
    let (st, v) = s.get(&deleted).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["tables"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["tables"][0]["table-id"], uuid.as_str());
    assert_eq!(v["tables"][0]["kind"], "view");
    assert_eq!(v["tables"][0]["name"], "v");
    assert_eq!(v["tables"][0]["namespace"], json!(["ns"]));
    assert_eq!(v["tables"][0]["purge-requested"], false);
    assert_eq!(v["tables"][0]["deleted-by"], "admin");
    let undrop = format!("{deleted}/{uuid}/undrop");

    // The name is free again: a table takes it, and undrop under it is a conflict...
    let (st, v) = s
        .post(
            &ns("/tables"),
            json!({"name": "v", "schema": schema(0, false)}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.post(&undrop, json!({})).await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Table "),
        "{v}"
    );
    // ...as it is when a new view takes it.
    let (st, _) = s.delete(&ns("/tables/v")).await;
    assert_eq!(st, 204);
    let (st, v) = s.post(&ns("/views"), create_body("v")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.post(&undrop, json!({})).await;
    assert_error(st, &v, "AlreadyExistsException", 409);
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with("View "),
        "{v}"
    );

    // Under a new name it comes back as the same view.
    let (st, v) = s.post(&undrop, json!({"new-name": "v_restored"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"namespace": ["ns"], "name": "v_restored", "kind": "view"})
    );
    let (st, v) = s.get(&ns("/views/v_restored")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["metadata"]["view-uuid"], uuid.as_str());
    assert_eq!(v["metadata-location"], loc0.as_str());
    let (st, _) = s.get(&ns("/tables/v_restored")).await;
    assert_eq!(st, 404);
    let (_, v) = s.get(&deleted).await;
    let kinds: Vec<(&str, &str)> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["name"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("table", "v")], "{v}");
    let (st, _) = s.post(&undrop, json!({})).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn expired_deleted_views_are_purged_with_their_files_when_asked() {
    let s = TestServer::start_with(|c| c.purge_interval_seconds = 1).await;
    let wh = soft_warehouse(&s, "soft", 1).await;
    let ns = |rest: &str| format!("/v1/{wh}/namespaces/ns{rest}");
    let mut files = vec![];
    for name in ["purged", "kept"] {
        let (st, v) = s.post(&ns("/views"), create_body(name)).await;
        assert_eq!(st, 200, "{v}");
        files.push(file_of(v["metadata-location"].as_str().unwrap()));
    }
    let (st, v) = s.delete(&ns("/views/purged?purgeRequested=true")).await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = s.delete(&ns("/views/kept")).await;
    assert_eq!(st, 204, "{v}");
    let mut gone = false;
    for _ in 0..60 {
        let (_, v) = s
            .get(&format!("/management/v1/warehouse/{wh}/deleted-tables"))
            .await;
        if v["tables"] == json!([]) {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(gone, "expired deleted views were not removed");
    assert!(
        !files[0].exists(),
        "the metadata of a purge-requested drop must be deleted"
    );
    assert!(
        files[1].exists(),
        "the metadata of a drop without purge must stay"
    );
    // Purged for good: nothing to undrop, the names are free.
    let (st, v) = s.post(&ns("/views"), create_body("purged")).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.get("/management/v1/audit?limit=1000").await;
    assert_eq!(st, 200, "{v}");
    let purges = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "catalog:PurgeDeletedView")
        .count();
    assert_eq!(purges, 2, "{v}");
    s.stop().await;
}
