//! Iceberg REST behaviour clients of the reference implementation (Java, PyIceberg) rely on,
//! over raw HTTP against the in-process server (issue 15): metadata lists in written order in
//! responses and files, float defaults, `namespace-separator`, commit-conflict messages worded
//! like Java's, and partition evolution Java accepts.

use crate::server;

use reqwest::StatusCode;
use serde_json::{json, Value};
use server::TestServer;

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": false, "type": "long"},
        {"id": 2, "name": "ts", "required": false, "type": "timestamp"},
        {"id": 3, "name": "data", "required": false, "type": "string"}
    ]})
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn setup(s: &TestServer, ns: &str) -> String {
    let p = s.prefix().await;
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": [ns]}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    p
}

async fn create(s: &TestServer, p: &str, ns: &str, body: Value) -> Value {
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/{ns}/tables"), body)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

async fn commit(
    s: &TestServer,
    p: &str,
    ns: &str,
    t: &str,
    requirements: Value,
    updates: Value,
) -> (StatusCode, Value) {
    s.post(
        &format!("/v1/{p}/namespaces/{ns}/tables/{t}"),
        json!({"requirements": requirements, "updates": updates}),
    )
    .await
}

fn ids(v: &Value, list: &str, key: &str) -> Vec<i64> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} missing in {v}"))
        .iter()
        .map(|i| i[key].as_i64().unwrap())
        .collect()
}

/// The metadata file a response points at (file warehouse), as text.
fn metadata_file(resp: &Value) -> String {
    let loc = resp["metadata-location"].as_str().unwrap();
    std::fs::read_to_string(loc.strip_prefix("file://").unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_come_back_in_written_order() {
    let s = TestServer::start().await;
    let p = setup(&s, "ord").await;
    create(&s, &p, "ord", json!({"name": "t", "schema": schema()})).await;

    // Snapshots whose ids are not in any sorted order, each on top of the previous one.
    let base = now_ms();
    let snapshot_ids: Vec<i64> = (1..=8).map(|i| (9 - i) * 1_000_003 + i * 7).collect();
    let mut parent: Option<i64> = None;
    for (i, id) in snapshot_ids.iter().enumerate() {
        let seq = i as i64 + 1;
        let mut snap = json!({"snapshot-id": id, "sequence-number": seq, "timestamp-ms": base + seq,
            "manifest-list": format!("file:///nowhere/m{seq}.avro"), "summary": {"operation": "append"}, "schema-id": 0});
        if let Some(parent) = parent {
            snap["parent-snapshot-id"] = json!(parent);
        }
        let (st, v) = commit(
            &s,
            &p,
            "ord",
            "t",
            json!([{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": parent}]),
            json!([{"action": "add-snapshot", "snapshot": snap},
                   {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": id}]),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        parent = Some(*id);
    }
    // Schemas, specs and sort orders added one by one.
    for i in 0..6 {
        let mut sch = schema();
        sch["schema-id"] = json!(i + 1);
        for j in 0..=i {
            sch["fields"].as_array_mut().unwrap().push(
                json!({"id": 4 + j, "name": format!("c{j}"), "required": false, "type": "int"}),
            );
        }
        let (st, v) = commit(&s, &p, "ord", "t", json!([]), json!([
            {"action": "add-schema", "schema": sch},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": {"fields": [{"source-id": 4 + i, "name": format!("p{i}"), "transform": "identity"}]}},
            {"action": "add-sort-order", "sort-order": {"order-id": i + 1, "fields": [{"source-id": 4 + i, "transform": "identity", "direction": "asc", "null-order": "nulls-first"}]}}
        ])).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }

    let (st, first) = s
        .request(
            reqwest::Method::GET,
            &format!("/v1/{p}/namespaces/ord/tables/t"),
            None,
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{first}");
    let (_, second) = s
        .request(
            reqwest::Method::GET,
            &format!("/v1/{p}/namespaces/ord/tables/t"),
            None,
            &[],
        )
        .await;
    assert_eq!(first, second, "two loads of the same version differ");
    let loaded: Value = serde_json::from_str(&first).unwrap();
    let file = metadata_file(&loaded);
    let written: Value = serde_json::from_str(&file).unwrap();
    for m in [&loaded["metadata"], &written] {
        assert_eq!(ids(m, "schemas", "schema-id"), (0..7).collect::<Vec<_>>());
        assert_eq!(
            ids(m, "partition-specs", "spec-id"),
            (0..7).collect::<Vec<_>>()
        );
        assert_eq!(
            ids(m, "sort-orders", "order-id"),
            (0..7).collect::<Vec<_>>()
        );
        assert_eq!(ids(m, "snapshots", "snapshot-id"), snapshot_ids);
        assert_eq!(
            ids(m, "snapshots", "sequence-number"),
            (1..=8).collect::<Vec<_>>()
        );
        assert_eq!(ids(m, "snapshot-log", "snapshot-id"), snapshot_ids);
        let times = ids(m, "metadata-log", "timestamp-ms");
        assert_eq!(times.len(), 14);
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
    // The response is the file, byte for byte.
    assert_eq!(
        serde_json::to_string(&loaded["metadata"]).unwrap(),
        serde_json::to_string(&written).unwrap()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_defaults_keep_their_f32_text() {
    let s = TestServer::start().await;
    let p = setup(&s, "flt").await;
    let sch = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "temp", "required": false, "type": "float", "initial-default": 22.27, "write-default": 22.27},
        {"id": 3, "name": "ratio", "required": false, "type": "double", "initial-default": 0.1}
    ]});
    let body = json!({"name": "t", "schema": sch, "properties": {"format-version": "3"}});
    let (st, text) = s
        .request(
            reqwest::Method::POST,
            &format!("/v1/{p}/namespaces/flt/tables"),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    for t in [
        text.clone(),
        metadata_file(&serde_json::from_str(&text).unwrap()),
    ] {
        assert!(t.contains(r#""initial-default":22.27,"#), "{t}");
        assert!(t.contains(r#""write-default":22.27"#), "{t}");
        assert!(!t.contains("22.270000457763672"), "{t}");
        assert!(t.contains(r#""initial-default":0.1"#), "{t}");
    }
    // A later commit writes them the same way.
    let (st, v) = commit(
        &s,
        &p,
        "flt",
        "t",
        json!([]),
        json!([{"action": "set-properties", "updates": {"a": "b"}}]),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let t = serde_json::to_string(&v).unwrap();
    assert!(
        t.contains(r#""initial-default":22.27,"#) && !t.contains("22.270000457763672"),
        "{t}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_separator_is_advertised_and_accepted() {
    let s = TestServer::start().await;
    let (st, v) = s.get("/v1/config?warehouse=default").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["overrides"]["namespace-separator"], "%1F", "{v}");
    let p = s.prefix().await;
    for ns in [json!(["a"]), json!(["a", "b"])] {
        let (st, v) = s
            .post(&format!("/v1/{p}/namespaces"), json!({"namespace": ns}))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    // The advertised separator, as clients put it in the path (upper and lower case hex).
    for path in ["a%1Fb", "a%1fb"] {
        let (st, v) = s.get(&format!("/v1/{p}/namespaces/{path}")).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["namespace"], json!(["a", "b"]));
        let (st, v) = s.get(&format!("/v1/{p}/namespaces/{path}/tables")).await;
        assert_eq!(st, StatusCode::OK, "{path}: {v}");
    }
    let (st, v) = s.get(&format!("/v1/{p}/namespaces?parent=a%1Fb")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_conflicts_name_the_failed_requirement() {
    let s = TestServer::start().await;
    let p = setup(&s, "req").await;
    let created = create(&s, &p, "req", json!({"name": "t", "schema": schema()})).await;
    let uuid = created["metadata"]["table-uuid"]
        .as_str()
        .unwrap()
        .to_string();

    let conflict = |v: &Value| -> String {
        assert_eq!(v["error"]["type"], "CommitFailedException", "{v}");
        assert_eq!(v["error"]["code"], 409, "{v}");
        v["error"]["message"].as_str().unwrap().to_string()
    };
    let props = json!([{"action": "set-properties", "updates": {"k": "v"}}]);

    let (st, v) = commit(
        &s,
        &p,
        "req",
        "t",
        json!([{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 1}]),
        props.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(
        conflict(&v),
        "Requirement failed: branch or tag main is missing, expected 1"
    );

    let snap = json!({"snapshot-id": 42, "sequence-number": 1, "timestamp-ms": now_ms(), "manifest-list": "file:///nowhere/m.avro", "summary": {"operation": "append"}, "schema-id": 0});
    let (st, v) = commit(
        &s,
        &p,
        "req",
        "t",
        json!([]),
        json!([
        {"action": "add-snapshot", "snapshot": snap},
        {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 42}]),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let cases = [
        (
            json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 1}),
            "Requirement failed: branch main has changed: expected id 1 != 42".to_string(),
        ),
        (
            json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null}),
            "Requirement failed: branch main was created concurrently".to_string(),
        ),
        (
            json!({"type": "assert-current-schema-id", "current-schema-id": 5}),
            "Requirement failed: current schema changed: expected id 5 != 0".to_string(),
        ),
        (
            json!({"type": "assert-last-assigned-field-id", "last-assigned-field-id": 9}),
            "Requirement failed: last assigned field id changed: expected id 9 != 3".to_string(),
        ),
        (
            json!({"type": "assert-default-spec-id", "default-spec-id": 2}),
            "Requirement failed: default partition spec changed: expected id 2 != 0".to_string(),
        ),
        (
            json!({"type": "assert-default-sort-order-id", "default-sort-order-id": 3}),
            "Requirement failed: default sort order changed: expected id 3 != 0".to_string(),
        ),
        (
            json!({"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 1005}),
            "Requirement failed: last assigned partition id changed: expected id 1005 != 999".to_string(),
        ),
        (
            json!({"type": "assert-create"}),
            "Requirement failed: table already exists".to_string(),
        ),
        (
            json!({"type": "assert-table-uuid", "uuid": "00000000-0000-0000-0000-000000000001"}),
            format!("Requirement failed: UUID does not match: expected {uuid} != 00000000-0000-0000-0000-000000000001"),
        ),
    ];
    for (req, want) in cases {
        let (st, v) = commit(&s, &p, "req", "t", json!([req]), props.clone()).await;
        assert_eq!(st, StatusCode::CONFLICT, "{req}: {v}");
        assert_eq!(conflict(&v), want, "{req}");
    }
    // A multi-table transaction reports the same way.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/transactions/commit"),
            json!({"table-changes": [{"identifier": {"namespace": ["req"], "name": "t"},
            "requirements": [{"type": "assert-current-schema-id", "current-schema-id": 5}], "updates": props}]}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(
        conflict(&v),
        "Requirement failed: current schema changed: expected id 5 != 0"
    );
    s.stop().await;
}

/// What PyIceberg's and Java's `UpdatePartitionSpec` send, accepted as Java's metadata builder
/// accepts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_evolution_the_reference_implementation_accepts() {
    let s = TestServer::start().await;
    let p = setup(&s, "pe").await;
    let evolve = |requirements: Value, fields: Value| {
        (
            requirements,
            json!([{"action": "add-spec", "spec": {"fields": fields}}, {"action": "set-default-spec", "spec-id": -1}]),
        )
    };
    let default_spec = |m: &Value| -> Value {
        let id = m["default-spec-id"].clone();
        m["partition-specs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["spec-id"] == id)
            .unwrap()["fields"]
            .clone()
    };

    // v1: removing an identity field turns it into `void`, keeping its name (which is the
    // schema column's name, and its own source).
    let identity = json!({"fields": [{"source-id": 1, "field-id": 1000, "name": "id", "transform": "identity"}]});
    create(
        &s,
        &p,
        "pe",
        json!({"name": "v1", "schema": schema(), "partition-spec": identity, "properties": {"format-version": "1"}}),
    )
    .await;
    let (reqs, updates) = evolve(
        json!([{"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 1000}, {"type": "assert-default-spec-id", "default-spec-id": 0}]),
        json!([{"source-id": 1, "field-id": 1000, "name": "id", "transform": "void"}]),
    );
    let (st, v) = commit(&s, &p, "pe", "v1", reqs, updates).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["format-version"], 1);
    assert_eq!(
        default_spec(&v["metadata"]),
        json!([{"source-id": 1, "field-id": 1000, "name": "id", "transform": "void"}])
    );
    // Renamed instead, also fine; and later commits keep working on top of it.
    let (reqs, updates) = evolve(
        json!([]),
        json!([{"source-id": 1, "field-id": 1000, "name": "id_removed", "transform": "void"}]),
    );
    let (st, v) = commit(&s, &p, "pe", "v1", reqs, updates).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (reqs, updates) = evolve(
        json!([]),
        json!([{"source-id": 1, "field-id": 1000, "name": "id", "transform": "void"}]),
    );
    let (st, v) = commit(&s, &p, "pe", "v1", reqs, updates).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["metadata"]["default-spec-id"], 1,
        "the equal spec is reused: {v}"
    );
    let (st, v) = commit(
        &s,
        &p,
        "pe",
        "v1",
        json!([]),
        json!([{"action": "set-properties", "updates": {"a": "b"}}]),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A `void` named like ANOTHER column is still refused, as in Java.
    let (reqs, updates) = evolve(
        json!([]),
        json!([{"source-id": 1, "field-id": 1000, "name": "data", "transform": "void"}]),
    );
    let (st, v) = commit(&s, &p, "pe", "v1", reqs, updates).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

    // v1 and v2: `hour` added on a column already partitioned by `day`.
    for fv in ["1", "2"] {
        let name = format!("days{fv}");
        let day = json!({"fields": [{"source-id": 2, "field-id": 1000, "name": "ts_day", "transform": "day"}]});
        create(
            &s,
            &p,
            "pe",
            json!({"name": name, "schema": schema(), "partition-spec": day, "properties": {"format-version": fv}}),
        )
        .await;
        let fields = json!([
            {"source-id": 2, "field-id": 1000, "name": "ts_day", "transform": "day"},
            {"source-id": 2, "field-id": 1001, "name": "ts_hour", "transform": "hour"}
        ]);
        let (reqs, updates) = evolve(
            json!([{"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 1000}, {"type": "assert-default-spec-id", "default-spec-id": 0}]),
            fields.clone(),
        );
        let (st, v) = commit(&s, &p, "pe", &name, reqs, updates).await;
        assert_eq!(st, StatusCode::OK, "v{fv}: {v}");
        assert_eq!(default_spec(&v["metadata"]), fields, "v{fv}");
        assert_eq!(v["metadata"]["last-partition-id"], 1001);
        // Every later commit re-binds the default spec: still fine, still `hour`.
        let (st, v) = commit(
            &s,
            &p,
            "pe",
            &name,
            json!([]),
            json!([{"action": "set-properties", "updates": {"a": "b"}}]),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "v{fv}: {v}");
        let (st, v) = s.get(&format!("/v1/{p}/namespaces/pe/tables/{name}")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(default_spec(&v["metadata"]), fields, "v{fv}");
        let file = metadata_file(&v);
        assert!(
            file.contains(r#""transform":"hour""#) && !file.contains("bucket["),
            "v{fv}: {file}"
        );
    }
    s.stop().await;
}
