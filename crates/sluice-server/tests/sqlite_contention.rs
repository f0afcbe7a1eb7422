//! Commits under contention on the SQLite store: many writers on one table and on separate
//! tables, mixed with loads, lists, token and key authentication and identity writes (which
//! write audit rows and key last-used stamps outside the commit path). Every commit must
//! answer 200 or 409, never 5xx, and no successful commit may be lost.

use crate::server;

use reqwest::Method;
use serde_json::{json, Value};
use server::{TestServer, KEY_ID, SECRET};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const SHARED_WRITERS: usize = 12;
const OWN_TABLE_WRITERS: usize = 12;
const ROUNDS: usize = 15;

/// `SLUICE_CONTENTION_ROUNDS` lengthens the run for soak testing by hand.
fn rounds() -> usize {
    std::env::var("SLUICE_CONTENTION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS)
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"}]})
}

/// Debug logs of the server, so a failing run shows the error behind a 5xx.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sluice=debug,sluice_server=debug,sluice_service=debug,sluice_store=debug,sqlx=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

enum Auth {
    Basic(String, String),
    Bearer(String),
}

async fn call(
    s: &TestServer,
    auth: &Auth,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = s.client.request(method, s.url(path));
    rb = match auth {
        Auth::Basic(id, secret) => rb.basic_auth(id, Some(secret)),
        Auth::Bearer(t) => rb.bearer_auth(t),
    };
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_never_answer_5xx_and_lose_nothing() {
    init_logs();
    let s = Arc::new(TestServer::start().await);
    let p = s.prefix().await;
    let admin = Auth::Basic(KEY_ID.into(), SECRET.into());
    let (st, v) = call(
        &s,
        &admin,
        Method::POST,
        &format!("/v1/{p}/namespaces"),
        Some(json!({"namespace": ["hot"]})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let tables: Vec<String> = std::iter::once("shared".to_string())
        .chain((0..OWN_TABLE_WRITERS).map(|i| format!("own{i}")))
        .collect();
    for t in &tables {
        let (st, v) = call(
            &s,
            &admin,
            Method::POST,
            &format!("/v1/{p}/namespaces/hot/tables"),
            Some(json!({"name": t, "schema": schema()})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let token = s.oauth_token().await;
    let stop = Arc::new(AtomicBool::new(false));

    // Writers: each success sets a property only it sets, so the final table must show
    // every acknowledged commit (a lost update would drop one).
    let mut writers = Vec::new();
    for w in 0..SHARED_WRITERS + OWN_TABLE_WRITERS {
        let s = s.clone();
        let p = p.clone();
        let auth = if w % 2 == 0 {
            Auth::Bearer(token.clone())
        } else {
            Auth::Basic(KEY_ID.into(), SECRET.into())
        };
        writers.push(tokio::spawn(async move {
            let table = if w < SHARED_WRITERS { "shared".to_string() } else { format!("own{}", w - SHARED_WRITERS) };
            let mut won = Vec::new();
            for r in 0..rounds() {
                let key = format!("w{w}r{r}");
                let body = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {key.clone(): "1"}}]});
                let (st, v) = call(&s, &auth, Method::POST, &format!("/v1/{p}/namespaces/hot/tables/{table}"), Some(body)).await;
                match st {
                    200 => won.push(key),
                    409 => assert_eq!(v["error"]["type"], "CommitFailedException", "{v}"),
                    other => panic!("commit to {table} answered {other}: {v}"),
                }
            }
            (table, won)
        }));
    }

    // Readers and identity writers run until the writers are done.
    let mut others = Vec::new();
    for r in 0..4 {
        let s = s.clone();
        let p = p.clone();
        let stop = stop.clone();
        let auth = if r % 2 == 0 {
            Auth::Bearer(token.clone())
        } else {
            Auth::Basic(KEY_ID.into(), SECRET.into())
        };
        others.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let path = match i % 3 {
                    0 => format!("/v1/{p}/namespaces/hot/tables/shared"),
                    1 => format!("/v1/{p}/namespaces/hot/tables"),
                    _ => format!("/v1/{p}/namespaces"),
                };
                let (st, v) = call(&s, &auth, Method::GET, &path, None).await;
                assert_eq!(st, 200, "GET {path}: {v}");
                i += 1;
            }
        }));
    }
    {
        let s = s.clone();
        let stop = stop.clone();
        others.push(tokio::spawn(async move {
            let admin = Auth::Basic(KEY_ID.into(), SECRET.into());
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // A new user and key: writes the user, the key and two audit rows; the key's
                // first use then stamps its last-used time.
                let name = format!("u{i}");
                let (st, v) = call(
                    &s,
                    &admin,
                    Method::POST,
                    "/management/v1/users",
                    Some(json!({"name": name})),
                )
                .await;
                assert_eq!(st, 201, "create user: {v}");
                let (st, v) = call(
                    &s,
                    &admin,
                    Method::POST,
                    &format!("/management/v1/users/{name}/access-keys"),
                    None,
                )
                .await;
                assert_eq!(st, 201, "create key: {v}");
                let key = Auth::Basic(
                    v["access-key-id"].as_str().unwrap().into(),
                    v["secret-access-key"].as_str().unwrap().into(),
                );
                let (st, v) = call(&s, &key, Method::GET, "/management/v1/whoami", None).await;
                assert_eq!(st, 200, "whoami: {v}");
                i += 1;
            }
        }));
    }

    let mut expected: std::collections::HashMap<String, BTreeSet<String>> = Default::default();
    let mut shared_wins = 0;
    for h in writers {
        let (table, won) = h.await.unwrap();
        if table == "shared" {
            shared_wins += won.len();
        } else {
            assert_eq!(
                won.len(),
                rounds(),
                "the only writer of {table} must never conflict"
            );
        }
        expected.entry(table).or_default().extend(won);
    }
    stop.store(true, Ordering::Relaxed);
    for h in others {
        h.await.unwrap();
    }
    assert!(shared_wins > 0);

    for (table, keys) in expected {
        let (st, v) = call(
            &s,
            &admin,
            Method::GET,
            &format!("/v1/{p}/namespaces/hot/tables/{table}"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let props = v["metadata"]["properties"].as_object().unwrap();
        let present: BTreeSet<String> = props
            .keys()
            .filter(|k| k.starts_with('w'))
            .cloned()
            .collect();
        assert_eq!(
            present, keys,
            "{table}: acknowledged commits missing or unacknowledged ones present"
        );
    }
    Arc::try_unwrap(s).ok().unwrap().stop().await;
}
