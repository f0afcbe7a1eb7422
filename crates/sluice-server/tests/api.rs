//! HTTP-level tests of the catalog, token endpoint and management API against an
//! in-process server on an ephemeral port (SQLite + a file warehouse in a temp dir).

use serde_json::{json, Value};

use crate::server;
use server::{TestServer, KEY_ID, SECRET};

fn assert_error(v: &Value, kind: &str, code: u16) {
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "data", "required": false, "type": "string"}
    ]})
}

#[tokio::test]
async fn health_and_auth_errors() {
    let s = TestServer::start().await;
    let r = s.client.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let r = s
        .client
        .get(s.url("/v1/config?warehouse=default"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let v: Value = r.json().await.unwrap();
    assert_error(&v, "NotAuthorizedException", 401);

    let r = s
        .client
        .get(s.url("/v1/config?warehouse=default"))
        .basic_auth(KEY_ID, Some("wrong-secret-wrong-secret-wrong-secret-xx"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = s
        .client
        .get(s.url("/v1/config"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (st, v) = s.get("/no/such/route").await;
    assert_eq!(st, 404);
    assert_error(&v, "NotFoundException", 404);
    s.stop().await;
}

#[tokio::test]
async fn token_endpoint_body_basic_and_errors() {
    let s = TestServer::start().await;
    // Credentials in the body, any scope string.
    let r = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", KEY_ID),
            ("client_secret", SECRET),
            ("scope", "catalog PRINCIPAL_ROLE:ALL"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "bearer");
    assert!(v["expires_in"].as_i64().unwrap() > 0);
    let token = v["access_token"].as_str().unwrap().to_string();

    // The token works on the catalog and management APIs.
    let r = s
        .client
        .get(s.url("/v1/config?warehouse=default"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .get(s.url("/management/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "admin");
    assert_eq!(v["access-key-id"], KEY_ID);

    // Credentials in Basic.
    let r = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .basic_auth(KEY_ID, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Wrong secret: OAuth2 error shape, 401.
    let r = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", KEY_ID),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert!(v["error_description"].is_string());

    // Unsupported grant and missing grant.
    let r = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let r = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .form(&[("client_id", KEY_ID)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    s.stop().await;
}

#[tokio::test]
async fn namespaces_lifecycle_and_paging() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces"),
            json!({"namespace": ["a"], "properties": {"owner": "me"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["properties"]["owner"], "me");
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["a"]}))
        .await;
    assert_eq!(st, 409);
    assert_error(&v, "AlreadyExistsException", 409);
    // Nested: parent must exist.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces"),
            json!({"namespace": ["nope", "b"]}),
        )
        .await;
    assert_eq!(st, 404);
    assert_error(&v, "NoSuchNamespaceException", 404);
    for child in ["b", "c", "d"] {
        let (st, _) = s
            .post(
                &format!("/v1/{p}/namespaces"),
                json!({"namespace": ["a", child]}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (st, v) = s.get(&format!("/v1/{p}/namespaces?parent=a")).await;
    assert_eq!(st, 200);
    assert_eq!(v["namespaces"], json!([["a", "b"], ["a", "c"], ["a", "d"]]));
    // Paging.
    let (_, v) = s
        .get(&format!("/v1/{p}/namespaces?parent=a&pageSize=2"))
        .await;
    assert_eq!(v["namespaces"], json!([["a", "b"], ["a", "c"]]));
    let tok = v["next-page-token"].as_str().unwrap().to_string();
    let (_, v) = s
        .get(&format!(
            "/v1/{p}/namespaces?parent=a&pageSize=2&pageToken={tok}"
        ))
        .await;
    assert_eq!(v["namespaces"], json!([["a", "d"]]));
    assert!(v.get("next-page-token").is_none() || v["next-page-token"].is_null());
    // Load / exists.
    let (st, v) = s.get(&format!("/v1/{p}/namespaces/a%1Fb")).await;
    assert_eq!(st, 200);
    assert_eq!(v["namespace"], json!(["a", "b"]));
    let r = s
        .client
        .head(s.url(&format!("/v1/{p}/namespaces/zzz")))
        .basic_auth(KEY_ID, Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .client
        .head(s.url(&format!("/v1/{p}/namespaces/a")))
        .basic_auth(KEY_ID, Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Properties.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/a/properties"),
            json!({"removals": ["owner", "ghost"], "updates": {"k": "v"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["removed"], json!(["owner"]));
    assert_eq!(v["missing"], json!(["ghost"]));
    assert_eq!(v["updated"], json!(["k"]));
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/a/properties"),
            json!({"removals": ["k"], "updates": {"k": "v"}}),
        )
        .await;
    assert_eq!(st, 422);
    assert_error(&v, "UnprocessableEntityException", 422);
    // Drop: not empty, then empty.
    let (st, v) = s.delete(&format!("/v1/{p}/namespaces/a")).await;
    assert_eq!(st, 409);
    assert_error(&v, "NamespaceNotEmptyException", 409);
    for child in ["b", "c", "d"] {
        let (st, _) = s.delete(&format!("/v1/{p}/namespaces/a%1F{child}")).await;
        assert_eq!(st, 204);
    }
    let (st, _) = s.delete(&format!("/v1/{p}/namespaces/a")).await;
    assert_eq!(st, 204);
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_4xx() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    // Malformed JSON.
    let r = s
        .client
        .post(s.url(&format!("/v1/{p}/namespaces")))
        .basic_auth(KEY_ID, Some(SECRET))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_error(
        &r.json::<Value>().await.unwrap(),
        "BadRequestException",
        400,
    );
    // A valid value followed by more: refused, and nothing is created.
    let r = s
        .client
        .post(s.url(&format!("/v1/{p}/namespaces")))
        .basic_auth(KEY_ID, Some(SECRET))
        .header("content-type", "application/json")
        .body(r#"{"namespace": ["trailing"]} {"namespace": ["second"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v = r.json::<Value>().await.unwrap();
    assert_error(&v, "BadRequestException", 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trailing characters"),
        "{v}"
    );
    let (st, _) = s.get(&format!("/v1/{p}/namespaces/trailing")).await;
    assert_eq!(st, 404);
    // Wrong shape, named by its path.
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": "flat"}))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at 'namespace'"),
        "{v}"
    );
    // Empty / bad identifiers.
    let (st, _) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": []}))
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": [""]}))
        .await;
    assert_eq!(st, 400);
    // Unknown warehouse.
    let (st, v) = s.get("/v1/config?warehouse=nope").await;
    assert_eq!(st, 404);
    assert_error(&v, "NoSuchWarehouseException", 404);
    let (st, _) = s.get("/v1/nope/namespaces").await;
    assert_eq!(st, 404);
    // Bad query values.
    let (st, _) = s.get(&format!("/v1/{p}/namespaces?pageSize=abc")).await;
    assert_eq!(st, 400);
    let (st, _) = s.get(&format!("/v1/{p}/namespaces?pageToken=%21%21")).await;
    assert_eq!(st, 400);
    // Table in a missing namespace; bad schema.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/ghost/tables"),
            json!({"name": "t", "schema": schema()}),
        )
        .await;
    assert_eq!(st, 404);
    assert_error(&v, "NoSuchNamespaceException", 404);
    s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["n"]}))
        .await;
    let (st, _) = s
        .post(
            &format!("/v1/{p}/namespaces/n/tables"),
            json!({"name": "t", "schema": {"type": "struct"}}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .post(
            &format!("/v1/{p}/namespaces/n/tables"),
            json!({"name": "", "schema": schema()}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .get(&format!("/v1/{p}/namespaces/n/tables/t?snapshots=bogus"))
        .await;
    assert_eq!(st, 400);
    s.stop().await;
}

#[tokio::test]
async fn tables_create_load_commit_conflict_rename_drop() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["db"]}))
        .await;
    s.post(
        &format!("/v1/{p}/namespaces"),
        json!({"namespace": ["other"]}),
    )
    .await;
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/db/tables"), json!({"name": "t1", "schema": schema(), "properties": {"format-version": "2", "x": "y"}}))
        .await;
    assert_eq!(st, 200, "{v}");
    let loc = v["metadata-location"].as_str().unwrap().to_string();
    assert!(loc.starts_with("file://"), "{loc}");
    assert!(loc.contains("/metadata/00000-"), "{loc}");
    let file = loc.trim_start_matches("file://");
    assert!(std::path::Path::new(file).exists());
    assert!(file.starts_with(s.data_dir.to_str().unwrap()));
    assert_eq!(v["metadata"]["properties"]["x"], "y");
    assert!(v["metadata"]["properties"].get("format-version").is_none());
    let uuid = v["metadata"]["table-uuid"].as_str().unwrap().to_string();

    // Duplicate.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/db/tables"),
            json!({"name": "t1", "schema": schema()}),
        )
        .await;
    assert_eq!(st, 409);
    assert_error(&v, "AlreadyExistsException", 409);

    // Load.
    let (st, v) = s.get(&format!("/v1/{p}/namespaces/db/tables/t1")).await;
    assert_eq!(st, 200);
    assert_eq!(v["metadata-location"], loc.as_str());
    let (st, v) = s.get(&format!("/v1/{p}/namespaces/db/tables/nope")).await;
    assert_eq!(st, 404);
    assert_error(&v, "NoSuchTableException", 404);

    // Commit: set a property, with a requirement on the uuid.
    let commit = json!({"requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
                        "updates": [{"action": "set-properties", "updates": {"k": "1"}}]});
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/db/tables/t1"), commit)
        .await;
    assert_eq!(st, 200, "{v}");
    let loc2 = v["metadata-location"].as_str().unwrap().to_string();
    assert!(loc2.contains("/metadata/00001-"), "{loc2}");
    assert_eq!(
        v["metadata"]["metadata-log"][0]["metadata-file"],
        loc.as_str()
    );

    // A stale requirement fails with CommitFailedException.
    let commit = json!({"requirements": [{"type": "assert-current-schema-id", "current-schema-id": 7}],
                        "updates": [{"action": "set-properties", "updates": {"k": "2"}}]});
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/db/tables/t1"), commit)
        .await;
    assert_eq!(st, 409);
    assert_error(&v, "CommitFailedException", 409);

    // Schema evolution through add-schema + set-current-schema.
    let new_schema = json!({"type": "struct", "schema-id": 1, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "data", "required": false, "type": "string"},
        {"id": 3, "name": "extra", "required": false, "type": "int"}]});
    let commit = json!({"requirements": [{"type": "assert-current-schema-id", "current-schema-id": 0}],
        "updates": [{"action": "add-schema", "schema": new_schema, "last-column-id": 3},
                    {"action": "set-current-schema", "schema-id": -1}]});
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/db/tables/t1"), commit)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["metadata"]["current-schema-id"], 1);

    // List, rename across namespaces.
    let (_, v) = s.get(&format!("/v1/{p}/namespaces/db/tables")).await;
    assert_eq!(
        v["identifiers"],
        json!([{"namespace": ["db"], "name": "t1"}])
    );
    let (st, _) = s
        .post(&format!("/v1/{p}/tables/rename"), json!({"source": {"namespace": ["db"], "name": "t1"}, "destination": {"namespace": ["other"], "name": "t2"}}))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/v1/{p}/namespaces/other/tables/t2")).await;
    assert_eq!(st, 200);
    let (st, v) = s
        .post(&format!("/v1/{p}/tables/rename"), json!({"source": {"namespace": ["db"], "name": "t1"}, "destination": {"namespace": ["other"], "name": "t3"}}))
        .await;
    assert_eq!(st, 404);
    assert_error(&v, "NoSuchTableException", 404);

    // Metrics accepted.
    let (st, _) = s
        .post(
            &format!("/v1/{p}/namespaces/other/tables/t2/metrics"),
            json!({"report-type": "scan-report"}),
        )
        .await;
    assert_eq!(st, 204);

    // Drop without purge keeps files; register brings the table back.
    let (_, v) = s.get(&format!("/v1/{p}/namespaces/other/tables/t2")).await;
    let current = v["metadata-location"].as_str().unwrap().to_string();
    let (st, _) = s
        .delete(&format!("/v1/{p}/namespaces/other/tables/t2"))
        .await;
    assert_eq!(st, 204);
    assert!(std::path::Path::new(current.trim_start_matches("file://")).exists());
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/db/register"),
            json!({"name": "back", "metadata-location": current}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["metadata"]["current-schema-id"], 1);
    // Register of a file outside the warehouse is refused.
    let (st, _) = s
        .post(
            &format!("/v1/{p}/namespaces/db/register"),
            json!({"name": "evil", "metadata-location": "file:///etc/passwd"}),
        )
        .await;
    assert_eq!(st, 400);

    // Drop with purge removes the files.
    let table_dir = {
        let (_, v) = s.get(&format!("/v1/{p}/namespaces/db/tables/back")).await;
        v["metadata"]["location"]
            .as_str()
            .unwrap()
            .trim_start_matches("file://")
            .to_string()
    };
    assert!(std::path::Path::new(&table_dir).exists());
    let (st, _) = s
        .delete(&format!(
            "/v1/{p}/namespaces/db/tables/back?purgeRequested=true"
        ))
        .await;
    assert_eq!(st, 204);
    assert!(
        !std::path::Path::new(&table_dir).exists(),
        "{table_dir} still exists"
    );
    s.stop().await;
}

#[tokio::test]
async fn stage_create_then_assert_create_commit() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["st"]}))
        .await;
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/st/tables"),
            json!({"name": "staged", "schema": schema(), "stage-create": true}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v.get("metadata-location").is_none() || v["metadata-location"].is_null());
    // Not visible yet.
    let (st, _) = s.get(&format!("/v1/{p}/namespaces/st/tables/staged")).await;
    assert_eq!(st, 404);
    let md = &v["metadata"];
    let commit = json!({
    "identifier": {"namespace": ["st"], "name": "staged"},
    "requirements": [{"type": "assert-create"}],
    "updates": [
        {"action": "assign-uuid", "uuid": md["table-uuid"]},
        {"action": "upgrade-format-version", "format-version": 2},
        {"action": "add-schema", "schema": md["schemas"][0]},
        {"action": "set-current-schema", "schema-id": -1},
        {"action": "add-spec", "spec": md["partition-specs"][0]},
        {"action": "set-default-spec", "spec-id": -1},
        {"action": "add-sort-order", "sort-order": md["sort-orders"][0]},
        {"action": "set-default-sort-order", "sort-order-id": -1},
        {"action": "set-location", "location": md["location"]},
        {"action": "set-properties", "updates": {"created-by": "test"}}
    ]});
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/st/tables/staged"),
            commit.clone(),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["metadata"]["table-uuid"], md["table-uuid"]);
    assert_eq!(v["metadata"]["properties"]["created-by"], "test");
    let (st, _) = s.get(&format!("/v1/{p}/namespaces/st/tables/staged")).await;
    assert_eq!(st, 200);
    // A second assert-create on the same name loses.
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/st/tables/staged"), commit)
        .await;
    assert_eq!(st, 409);
    assert_error(&v, "CommitFailedException", 409);
    // A commit to a missing table without assert-create is a 404.
    let (st, _) = s
        .post(&format!("/v1/{p}/namespaces/st/tables/missing"), json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"a": "b"}}]}))
        .await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn multi_table_transaction_is_all_or_nothing() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["tx"]}))
        .await;
    for t in ["a", "b"] {
        let (st, _) = s
            .post(
                &format!("/v1/{p}/namespaces/tx/tables"),
                json!({"name": t, "schema": schema()}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let change = |t: &str, schema_id: i32, val: &str| {
        json!({"identifier": {"namespace": ["tx"], "name": t},
               "requirements": [{"type": "assert-current-schema-id", "current-schema-id": schema_id}],
               "updates": [{"action": "set-properties", "updates": {"v": val}}]})
    };
    // Second change's requirement fails: nothing applies.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/transactions/commit"),
            json!({"table-changes": [change("a", 0, "1"), change("b", 9, "1")]}),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    let (_, v) = s.get(&format!("/v1/{p}/namespaces/tx/tables/a")).await;
    assert!(v["metadata"]["properties"].get("v").is_none());
    let files = std::fs::read_dir(
        std::path::Path::new(
            v["metadata"]["location"]
                .as_str()
                .unwrap()
                .trim_start_matches("file://"),
        )
        .join("metadata"),
    )
    .unwrap()
    .count();
    assert_eq!(
        files, 1,
        "the failed transaction must not leave metadata files behind"
    );
    // Both succeed together.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/transactions/commit"),
            json!({"table-changes": [change("a", 0, "2"), change("b", 0, "2")]}),
        )
        .await;
    assert_eq!(st, 204, "{v}");
    for t in ["a", "b"] {
        let (_, v) = s.get(&format!("/v1/{p}/namespaces/tx/tables/{t}")).await;
        assert_eq!(v["metadata"]["properties"]["v"], "2");
    }
    s.stop().await;
}

#[tokio::test]
async fn concurrent_commits_exactly_one_wins_per_round() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["cc"]}))
        .await;
    s.post(
        &format!("/v1/{p}/namespaces/cc/tables"),
        json!({"name": "t", "schema": schema()}),
    )
    .await;
    let (_, v) = s.get(&format!("/v1/{p}/namespaces/cc/tables/t")).await;
    let base = v["metadata-location"].as_str().unwrap().to_string();
    // Every writer asserts the same "last-assigned-field-id" and adds a column: all but one
    // must lose, and the table must show exactly one new column.
    let mut handles = vec![];
    for i in 0..12 {
        let client = s.client.clone();
        let url = s.url(&format!("/v1/{p}/namespaces/cc/tables/t"));
        handles.push(tokio::spawn(async move {
            let schema = json!({"type": "struct", "schema-id": 1, "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long"},
                {"id": 2, "name": "data", "required": false, "type": "string"},
                {"id": 3, "name": format!("c{i}"), "required": false, "type": "int"}]});
            let body = json!({"requirements": [{"type": "assert-last-assigned-field-id", "last-assigned-field-id": 2}],
                "updates": [{"action": "add-schema", "schema": schema, "last-column-id": 3}, {"action": "set-current-schema", "schema-id": -1}]});
            client.post(url).basic_auth(KEY_ID, Some(SECRET)).json(&body).send().await.unwrap().status()
        }));
    }
    let mut ok = 0;
    for h in handles {
        let st = h.await.unwrap();
        match st.as_u16() {
            200 => ok += 1,
            409 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1);
    let (_, v) = s.get(&format!("/v1/{p}/namespaces/cc/tables/t")).await;
    assert_eq!(v["metadata"]["schemas"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["metadata"]["metadata-log"][0]["metadata-file"],
        base.as_str()
    );
    let dir = std::path::Path::new(
        v["metadata"]["location"]
            .as_str()
            .unwrap()
            .trim_start_matches("file://"),
    )
    .join("metadata");
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        2,
        "losers' metadata files must be cleaned up"
    );
    s.stop().await;
}

#[tokio::test]
async fn warehouse_management() {
    let s = TestServer::start().await;
    let (st, v) = s.get("/management/v1/warehouse").await;
    assert_eq!(st, 200);
    assert_eq!(v["warehouses"][0]["name"], "default");
    let default_id = v["warehouses"][0]["warehouse-id"]
        .as_str()
        .unwrap()
        .to_string();

    // Outside the allowed roots.
    let (st, v) = s
        .post(
            "/management/v1/warehouse",
            json!({"warehouse-name": "evil", "storage-profile": {"type": "file", "root": "/etc"}}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_error(&v, "BadRequestException", 400);
    // Overlapping the default warehouse.
    let inner = s.data_dir.join("warehouse").join("inner");
    let (st, _) = s
        .post(
            "/management/v1/warehouse",
            json!({"warehouse-name": "inner", "storage-profile": {"type": "file", "root": inner}}),
        )
        .await;
    assert_eq!(st, 400);
    // Unknown profile type, missing fields.
    let (st, _) = s
        .post(
            "/management/v1/warehouse",
            json!({"warehouse-name": "x", "storage-profile": {"type": "ftp"}}),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = s
        .post(
            "/management/v1/warehouse",
            json!({"storage-profile": {"type": "file", "root": "/tmp"}}),
        )
        .await;
    assert_eq!(st, 400);

    // A good second warehouse.
    let root = s.data_dir.join("second");
    let (st, v) = s
        .post("/management/v1/warehouse", json!({"warehouse-name": "second", "storage-profile": {"type": "file", "root": root}, "delete-profile": {"type": "hard"}}))
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["warehouse-id"].as_str().unwrap().to_string();
    assert!(v.get("storage-credential").is_none());
    let (st, _) = s
        .post("/management/v1/warehouse", json!({"warehouse-name": "second", "storage-profile": {"type": "file", "root": s.data_dir.join("third")}}))
        .await;
    assert_eq!(st, 409);

    // Rename, deactivate (catalog refuses), activate.
    let (st, v) = s
        .post(
            &format!("/management/v1/warehouse/{id}/rename"),
            json!({"new-name": "renamed"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["name"], "renamed");
    let (st, _) = s
        .post(
            &format!("/management/v1/warehouse/{id}/rename"),
            json!({"new-name": "default"}),
        )
        .await;
    assert_eq!(st, 409);
    let (st, _) = s
        .post(
            &format!("/management/v1/warehouse/{id}/deactivate"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s.get("/v1/config?warehouse=renamed").await;
    assert_eq!(st, 404);
    let (st, _) = s
        .post(
            &format!("/management/v1/warehouse/{id}/activate"),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s.get("/v1/config?warehouse=renamed").await;
    assert_eq!(st, 200);
    let p = v["overrides"]["prefix"].as_str().unwrap().to_string();

    // Delete refused while it holds a namespace.
    s.post(
        &format!("/v1/{p}/namespaces"),
        json!({"namespace": ["keep"]}),
    )
    .await;
    let (st, v) = s.delete(&format!("/management/v1/warehouse/{id}")).await;
    assert_eq!(st, 409, "{v}");
    s.delete(&format!("/v1/{p}/namespaces/keep")).await;
    let (st, _) = s.delete(&format!("/management/v1/warehouse/{id}")).await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/management/v1/warehouse/{id}")).await;
    assert_eq!(st, 404);
    let (st, _) = s
        .get(&format!("/management/v1/warehouse/{default_id}"))
        .await;
    assert_eq!(st, 200);
    let (st, _) = s.get("/management/v1/warehouse/not-a-uuid").await;
    assert_eq!(st, 400);

    // OpenAPI document.
    let (st, v) = s.get("/management/v1/openapi.json").await;
    assert_eq!(st, 200);
    assert!(v["paths"]["/management/v1/warehouse"].is_object());
    s.stop().await;
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_keys_are_private() {
    let s = TestServer::start().await;
    // WAL mode: fresh writes sit in sluice.db-wal, so every database file is searched.
    let needle = SECRET.as_bytes();
    let mut searched = 0;
    for entry in std::fs::read_dir(&s.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sluice.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "plaintext secret in {}",
                path.display()
            );
            searched += 1;
        }
    }
    assert!(
        searched >= 2,
        "expected the database and its WAL, found {searched} files"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["master.key", "jwt-signing.key"] {
            let mode = std::fs::metadata(s.data_dir.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    s.stop().await;
}
