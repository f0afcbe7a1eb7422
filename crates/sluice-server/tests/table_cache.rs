//! Load-table served from the in-memory table cache: `ETag`/`If-None-Match` (304 with no
//! body, a commit changes the tag), no load ever older than a commit acknowledged before it
//! started (while others commit), names freed by rename and drop at once, and decisions
//! still taken per request: a revoked key, a token of a deleted key, a removed membership
//! are refused on the very next load of a cached table.

use crate::server::{TestServer, KEY_ID, SECRET};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]})
}

async fn table(s: &TestServer, ns: &str, name: &str) -> String {
    let p = s.prefix().await;
    let (st, _) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": [ns]}))
        .await;
    assert!(st == 200 || st == 409, "{st}");
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/{ns}/tables"),
            json!({"name": name, "schema": schema()}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    format!("/v1/{p}/namespaces/{ns}/tables/{name}")
}

fn set_property(v: u64) -> Value {
    json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"v": v.to_string()}}]})
}

/// A raw GET with the admin key: status, `ETag`, body.
async fn load(
    s: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let mut rb = s.client.get(s.url(path)).basic_auth(KEY_ID, Some(SECRET));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let st = r.status();
    let etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (st, etag, r.text().await.unwrap())
}

#[tokio::test]
async fn etag_answers_304_until_a_commit_changes_it() {
    let s = TestServer::start().await;
    let path = table(&s, "e", "t").await;

    let (st, etag, body) = load(&s, &path, &[]).await;
    assert_eq!(st, 200);
    let etag = etag.expect("load-table sends an ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "a strong entity tag: {etag}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["metadata-location"].is_string() && v["metadata"]["table-uuid"].is_string());
    assert!(v["config"].is_object());

    // The client's copy is current: 304, no body, the same tag (weak comparison, lists, `*`).
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_string(),
    ] {
        let (st, again, body) = load(&s, &path, &[("if-none-match", &inm)]).await;
        assert_eq!(st, StatusCode::NOT_MODIFIED, "If-None-Match: {inm}");
        assert_eq!(again.as_deref(), Some(etag.as_str()));
        assert!(body.is_empty());
    }
    let (st, _, _) = load(&s, &path, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(st, 200);

    // Whatever changes the body changes the tag: the snapshots mode, the delegation answer.
    let (st, refs_tag, _) = load(&s, &format!("{path}?snapshots=refs"), &[]).await;
    assert_eq!(st, 200);
    assert_ne!(refs_tag.as_deref(), Some(etag.as_str()));
    let (st, _, _) = load(
        &s,
        &format!("{path}?snapshots=refs"),
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(
        st, 200,
        "the full copy's tag does not stand for the refs cut"
    );
    let (st, delegated_tag, _) = load(
        &s,
        &path,
        &[("x-iceberg-access-delegation", "vended-credentials")],
    )
    .await;
    assert_eq!(st, 200);
    assert_ne!(delegated_tag.as_deref(), Some(etag.as_str()));

    // A commit: the old tag no longer matches, the new copy comes with a new tag.
    let (st, v) = s.post(&path, set_property(1)).await;
    assert_eq!(st, 200, "{v}");
    let (st, new_tag, body) = load(&s, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(st, 200);
    let new_tag = new_tag.unwrap();
    assert_ne!(new_tag, etag);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["metadata"]["properties"]["v"], "1");
    let (st, _, _) = load(&s, &path, &[("if-none-match", &new_tag)]).await;
    assert_eq!(st, StatusCode::NOT_MODIFIED);

    // A hidden table stays a 404 whatever tag is sent.
    let (st, _, _) = load(
        &s,
        &path.replace("/tables/t", "/tables/nope"),
        &[("if-none-match", "*")],
    )
    .await;
    assert_eq!(st, 404);
    s.stop().await;
}

/// `snapshots=refs` keeps exactly the referenced snapshots and leaves the rest of the stored
/// metadata as it is; served from the cache it stays right after commits.
#[tokio::test]
async fn refs_mode_cuts_unreferenced_snapshots() {
    let s = TestServer::start().await;
    let path = table(&s, "r", "t").await;
    for id in 1..=3i64 {
        let at = chrono::Utc::now().timestamp_millis() + 1000 * id;
        let snap = json!({"snapshot-id": id, "sequence-number": id, "timestamp-ms": at,
            "manifest-list": format!("file:///tmp/snap-{id}.avro"),
            "summary": {"operation": "append"}, "schema-id": 0});
        let mut updates = vec![json!({"action": "add-snapshot", "snapshot": snap})];
        if id != 2 {
            updates.push(json!({"action": "set-snapshot-ref", "ref-name": if id == 1 { "tag1" } else { "main" },
                "type": if id == 1 { "tag" } else { "branch" }, "snapshot-id": id}));
        }
        let (st, v) = s
            .post(&path, json!({"requirements": [], "updates": updates}))
            .await;
        assert_eq!(st, 200, "{v}");
        // Warm the cache between commits: each commit must clear both cuts.
        let (_, all) = s.get(&path).await;
        assert_eq!(
            all["metadata"]["snapshots"].as_array().unwrap().len(),
            id as usize
        );
    }
    let (_, all) = s.get(&path).await;
    let (_, refs) = s.get(&format!("{path}?snapshots=refs")).await;
    let ids: Vec<i64> = refs["metadata"]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot-id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 3]);
    let mut without = all["metadata"].clone();
    without["snapshots"] = json!([
        all["metadata"]["snapshots"][0],
        all["metadata"]["snapshots"][2]
    ]);
    assert_eq!(refs["metadata"], without);
    s.stop().await;
}

/// One committer and several loaders on one server: a load never returns metadata older
/// than the last commit acknowledged before the load was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_load_is_older_than_an_acknowledged_commit() {
    let s = Arc::new(TestServer::start().await);
    let path = table(&s, "c", "t").await;
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut loaders = vec![];
    for i in 0..4 {
        let (s, path, acked, done) = (s.clone(), path.clone(), acked.clone(), done.clone());
        let path = if i % 2 == 0 {
            path
        } else {
            format!("{path}?snapshots=refs")
        };
        loaders.push(tokio::spawn(async move {
            let mut loads = 0u64;
            while !done.load(Ordering::Acquire) {
                let before = acked.load(Ordering::Acquire);
                let (st, v) = s.get(&path).await;
                assert_eq!(st, 200, "{v}");
                let seen: u64 = v["metadata"]["properties"]["v"]
                    .as_str()
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(0);
                assert!(
                    seen >= before,
                    "a load sent after commit {before} was acknowledged returned {seen}"
                );
                loads += 1;
            }
            loads
        }));
    }
    for v in 1..=60u64 {
        let (st, body) = s.post(&path, set_property(v)).await;
        assert_eq!(st, 200, "{body}");
        acked.store(v, Ordering::Release);
    }
    done.store(true, Ordering::Release);
    let mut loads = 0;
    for l in loaders {
        loads += l.await.unwrap();
    }
    assert!(loads > 60, "the loaders ran alongside ({loads} loads)");
    let (_, v) = s.get(&path).await;
    assert_eq!(v["metadata"]["properties"]["v"], "60");
    Arc::into_inner(s).unwrap().stop().await;
}

/// Rename and drop free the old name at once; a table created under it is the new one.
#[tokio::test]
async fn rename_and_drop_clear_the_cached_name() {
    let s = TestServer::start().await;
    let path = table(&s, "n", "t").await;
    let p = s.prefix().await;
    let (_, v) = s.get(&path).await;
    let uuid = v["metadata"]["table-uuid"].clone();
    let (st, _) = s
        .post(
            &format!("/v1/{p}/tables/rename"),
            json!({"source": {"namespace": ["n"], "name": "t"},
                   "destination": {"namespace": ["n"], "name": "u"}}),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(s.get(&path).await.0, 404);
    let moved = path.replace("/tables/t", "/tables/u");
    let (st, v) = s.get(&moved).await;
    assert_eq!(
        (st, v["metadata"]["table-uuid"].clone()),
        (StatusCode::OK, uuid.clone())
    );

    let (st, _) = s.delete(&moved).await;
    assert_eq!(st, 204);
    assert_eq!(s.get(&moved).await.0, 404);
    let again = table(&s, "n", "u").await;
    let (st, v) = s.get(&again).await;
    assert_eq!(st, 200);
    assert_ne!(v["metadata"]["table-uuid"], uuid);
    s.stop().await;
}

/// The cache holds bodies, never decisions: with the table's metadata cached, a deleted key,
/// a token minted from a deleted key and a removed membership are refused on the very next
/// load.
#[tokio::test]
async fn revocation_is_immediate_for_cached_tables() {
    let s = TestServer::start().await;
    let path = table(&s, "v", "t").await;
    let (st, _) = s
        .post("/management/v1/users", json!({"name": "rita"}))
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .call(
            Method::PUT,
            "/management/v1/groups/Viewers/members/rita",
            None,
        )
        .await;
    assert_eq!(st, 204);
    let mut keys = vec![];
    for _ in 0..2 {
        let (_, v) = s
            .post("/management/v1/users/rita/access-keys", json!({}))
            .await;
        keys.push((
            v["access-key-id"].as_str().unwrap().to_string(),
            v["secret-access-key"].as_str().unwrap().to_string(),
        ));
    }
    let token: Value = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", keys[1].0.as_str()),
            ("client_secret", keys[1].1.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let by_key = |k: &(String, String)| {
        s.client
            .get(s.url(&path))
            .basic_auth(&k.0, Some(&k.1))
            .send()
    };
    let by_token = || s.client.get(s.url(&path)).bearer_auth(&token).send();
    for _ in 0..3 {
        assert_eq!(by_key(&keys[0]).await.unwrap().status(), 200);
        assert_eq!(by_token().await.unwrap().status(), 200);
    }
    let (st, _) = s
        .delete(&format!(
            "/management/v1/users/rita/access-keys/{}",
            keys[0].0
        ))
        .await;
    assert_eq!(st, 204);
    assert_eq!(by_key(&keys[0]).await.unwrap().status(), 401);
    assert_eq!(by_token().await.unwrap().status(), 200);

    let (st, _) = s.delete("/management/v1/groups/Viewers/members/rita").await;
    assert_eq!(st, 204);
    assert_eq!(
        by_token().await.unwrap().status(),
        404,
        "not readable any more: the same 404 as a missing table"
    );
    let (st, _) = s
        .delete(&format!(
            "/management/v1/users/rita/access-keys/{}",
            keys[1].0
        ))
        .await;
    assert_eq!(st, 204);
    assert_eq!(by_token().await.unwrap().status(), 401);
    s.stop().await;
}
