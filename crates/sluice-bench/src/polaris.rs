//! Workloads modelled on Apache Polaris' benchmark suite (polaris-tools `benchmarks`):
//!
//! 1. **create tree dataset**: an N-ary tree of namespaces (`--depth` levels, `--fanout`
//!    children each) and `--tables` tables spread over the leaf namespaces, created level by
//!    level with `--concurrency` clients;
//! 2. **read tree dataset**: for `--seconds`, `--concurrency` clients pick uniformly among
//!    list namespaces (under a random parent), load namespace, list tables and load table;
//! 3. **read/update tree dataset**: for `--seconds`, each operation is a load-table of a
//!    random table, or with `--update-percent` probability a read-modify-write of one of the
//!    `--hot-tables` first tables: load it, then commit a new schema (one more column) with
//!    the requirements `assert-table-uuid` and `assert-current-schema-id` (the id it read).
//!    Two clients that read the same schema race: the first commit wins and the second is
//!    refused with `409 CommitFailedException`, counted as a conflict (not retried, not an
//!    error). Set-properties commits never conflict (no requirement covers properties), so
//!    they would hide the races.
//!
//! Prints one JSON document with each workload's requests/s, p50/p99, errors and conflicts.

use crate::api::{ns_path, Api};
use crate::setup::{run_tag, table_schema};
use crate::stats::Stats;
use crate::Target;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Levels of namespaces.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// Children of each namespace (the first level has this many roots).
    #[arg(long, default_value_t = 4)]
    pub fanout: usize,
    /// Tables in all, spread round-robin over the leaf namespaces.
    #[arg(long, default_value_t = 1000)]
    pub tables: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Duration of each timed workload (read; read/update).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Share of updates in the read/update mix.
    #[arg(long, default_value_t = 10)]
    pub update_percent: u32,
    /// Updates go to this many tables, so that concurrent updates meet.
    #[arg(long, default_value_t = 10)]
    pub hot_tables: usize,
}

/// The dataset: namespaces in creation order (parents first) and tables.
struct Tree {
    /// Per level, the namespaces of that level.
    levels: Vec<Vec<Vec<String>>>,
    /// (namespace path segment, table name)
    tables: Vec<(String, String)>,
}

impl Tree {
    fn new(a: &Args, tag: &str) -> Tree {
        let mut levels: Vec<Vec<Vec<String>>> = Vec::new();
        let mut prev: Vec<Vec<String>> = vec![vec![]];
        for depth in 0..a.depth.max(1) {
            let mut this = Vec::new();
            for parent in &prev {
                for i in 0..a.fanout.max(1) {
                    let mut ns = parent.clone();
                    ns.push(if depth == 0 {
                        format!("pt{tag}_{i}")
                    } else {
                        format!("n{i}")
                    });
                    this.push(ns);
                }
            }
            levels.push(this.clone());
            prev = this;
        }
        let leaves = &levels[levels.len() - 1];
        let tables = (0..a.tables)
            .map(|i| (ns_path(&leaves[i % leaves.len()]), format!("t{i}")))
            .collect();
        Tree { levels, tables }
    }

    fn namespaces(&self) -> impl Iterator<Item = &Vec<String>> {
        self.levels.iter().flatten()
    }

    fn leaves(&self) -> &[Vec<String>] {
        &self.levels[self.levels.len() - 1]
    }
}

/// A small xorshift generator per client (no dependency, reproducible per seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Runs `work(i)` for i in 0..n with `concurrency` clients; merged stats.
async fn for_each<F, Fut>(n: usize, concurrency: usize, work: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Stats> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let next = next.clone();
            let work = work.clone();
            tokio::spawn(async move {
                let mut s = Stats::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break s;
                    }
                    s.merge(work(i).await);
                }
            })
        })
        .collect();
    let mut all = Stats::default();
    for t in futures::future::join_all(tasks).await {
        all.merge(t.unwrap_or_default());
    }
    all
}

/// `op` timed into `s`: a 2xx is success, anything else an error.
async fn expect_ok(
    api: &Api,
    s: &mut Stats,
    op: &'static str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Option<axum::body::Bytes> {
    match api.send(method, path, body, &[]).await {
        Ok(a) => {
            s.record(op, a.took);
            if a.status.is_success() {
                Some(a.body)
            } else {
                s.error(format!(
                    "{op} {path}: {}: {}",
                    a.status,
                    String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
                ));
                None
            }
        }
        Err(e) => {
            s.error(e);
            None
        }
    }
}

async fn create_tree(api: &Arc<Api>, tree: &Arc<Tree>, a: &Args) -> Value {
    let start = Instant::now();
    let mut stats = Stats::default();
    for level in 0..tree.levels.len() {
        let (api, tree2) = (api.clone(), tree.clone());
        stats.merge(
            for_each(tree.levels[level].len(), a.concurrency, move |i| {
                let (api, tree) = (api.clone(), tree2.clone());
                async move {
                    let mut s = Stats::default();
                    let body = json!({"namespace": tree.levels[level][i]});
                    expect_ok(
                        &api,
                        &mut s,
                        "create-namespace",
                        Method::POST,
                        &api.catalog("/namespaces"),
                        Some(&body),
                    )
                    .await;
                    s
                }
            })
            .await,
        );
    }
    let (api2, tree2) = (api.clone(), tree.clone());
    stats.merge(
        for_each(tree.tables.len(), a.concurrency, move |i| {
            let (api, tree) = (api2.clone(), tree2.clone());
            async move {
                let mut s = Stats::default();
                let (ns, name) = &tree.tables[i];
                let body = json!({"name": name, "schema": table_schema()});
                expect_ok(
                    &api,
                    &mut s,
                    "create-table",
                    Method::POST,
                    &api.catalog(&format!("/namespaces/{ns}/tables")),
                    Some(&body),
                )
                .await;
                s
            }
        })
        .await,
    );
    stats.report(
        "create tree dataset",
        start.elapsed(),
        json!({"namespaces": tree.namespaces().count(), "tables": tree.tables.len(),
               "depth": a.depth, "fanout": a.fanout, "concurrency": a.concurrency}),
    )
}

/// `concurrency` clients, each calling `op(api, tree, rng, stats)` until the deadline.
async fn timed<F, Fut>(api: &Arc<Api>, tree: &Arc<Tree>, a: &Args, op: F) -> (Stats, Duration)
where
    F: Fn(Arc<Api>, Arc<Tree>, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Stats> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let op = Arc::new(op);
    let tasks: Vec<_> = (0..a.concurrency.max(1))
        .map(|c| {
            let (api, tree, op) = (api.clone(), tree.clone(), op.clone());
            tokio::spawn(async move {
                let mut s = Stats::default();
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ ((c as u64 + 1) * 0x1000_0001);
                while Instant::now() < deadline {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    s.merge(op(api.clone(), tree.clone(), seed | 1).await);
                }
                s
            })
        })
        .collect();
    let mut all = Stats::default();
    for t in futures::future::join_all(tasks).await {
        all.merge(t.unwrap_or_default());
    }
    (all, start.elapsed())
}

async fn read_tree(api: &Arc<Api>, tree: &Arc<Tree>, a: &Args) -> Value {
    let (mut stats, took) = timed(api, tree, a, |api, tree, seed| async move {
        let mut rng = Rng(seed);
        let mut s = Stats::default();
        match rng.below(4) {
            0 => {
                // Under a random non-leaf namespace, or at the top.
                let parents = tree.levels.len() - 1;
                let level = rng.below(parents + 1);
                let path = if level == 0 {
                    api.catalog("/namespaces")
                } else {
                    let l = &tree.levels[level - 1];
                    let p = ns_path(&l[rng.below(l.len())]);
                    api.catalog(&format!("/namespaces?parent={p}"))
                };
                expect_ok(&api, &mut s, "list-namespaces", Method::GET, &path, None).await;
            }
            1 => {
                let all: Vec<_> = tree.namespaces().collect();
                let ns = ns_path(all[rng.below(all.len())]);
                let path = api.catalog(&format!("/namespaces/{ns}"));
                expect_ok(&api, &mut s, "load-namespace", Method::GET, &path, None).await;
            }
            2 => {
                let leaves = tree.leaves();
                let ns = ns_path(&leaves[rng.below(leaves.len())]);
                let path = api.catalog(&format!("/namespaces/{ns}/tables"));
                expect_ok(&api, &mut s, "list-tables", Method::GET, &path, None).await;
            }
            _ => {
                let (ns, t) = &tree.tables[rng.below(tree.tables.len())];
                let path = api.catalog(&format!("/namespaces/{ns}/tables/{t}"));
                expect_ok(&api, &mut s, "load-table", Method::GET, &path, None).await;
            }
        }
        s
    })
    .await;
    stats.report(
        "read tree dataset",
        took,
        json!({"concurrency": a.concurrency, "seconds": a.seconds,
               "mix": "list-namespaces, load-namespace, list-tables, load-table: 25% each"}),
    )
}

/// The commit that adds one optional column to the schema `meta` describes, valid only if
/// the table still has that schema (`assert-current-schema-id`).
fn add_column_commit(meta: &Value) -> Option<Value> {
    let uuid = meta["table-uuid"].as_str()?;
    let current = meta["current-schema-id"].as_i64()?;
    let last = meta["last-column-id"].as_i64()?;
    let schema = meta["schemas"]
        .as_array()?
        .iter()
        .find(|s| s["schema-id"].as_i64() == Some(current))?;
    let mut fields = schema["fields"].as_array()?.clone();
    let id = last + 1;
    fields.push(json!({"id": id, "name": format!("c{id}"), "required": false, "type": "string"}));
    let mut new_schema = json!({"type": "struct", "fields": fields});
    if let Some(ids) = schema.get("identifier-field-ids") {
        new_schema["identifier-field-ids"] = ids.clone();
    }
    Some(json!({
        "requirements": [
            {"type": "assert-table-uuid", "uuid": uuid},
            {"type": "assert-current-schema-id", "current-schema-id": current},
        ],
        "updates": [
            {"action": "add-schema", "schema": new_schema, "last-column-id": id},
            {"action": "set-current-schema", "schema-id": -1},
        ],
    }))
}

async fn read_update(api: &Arc<Api>, tree: &Arc<Tree>, a: &Args) -> Value {
    let update_percent = a.update_percent.min(100) as usize;
    let hot = a.hot_tables.clamp(1, tree.tables.len().max(1));
    let (mut stats, took) = timed(api, tree, a, move |api, tree, seed| async move {
        let mut rng = Rng(seed);
        let mut s = Stats::default();
        if rng.below(100) >= update_percent {
            let (ns, t) = &tree.tables[rng.below(tree.tables.len())];
            let path = api.catalog(&format!("/namespaces/{ns}/tables/{t}"));
            expect_ok(&api, &mut s, "load-table", Method::GET, &path, None).await;
            return s;
        }
        let (ns, t) = &tree.tables[rng.below(hot)];
        let path = api.catalog(&format!("/namespaces/{ns}/tables/{t}"));
        let Some(body) = expect_ok(&api, &mut s, "update: load", Method::GET, &path, None).await
        else {
            return s;
        };
        let commit = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| add_column_commit(&v["metadata"]));
        let Some(commit) = commit else {
            s.error(format!("{path}: load answer without a usable schema"));
            return s;
        };
        match api.send(Method::POST, &path, Some(&commit), &[]).await {
            Ok(r) => {
                s.record("update: commit", r.took);
                if r.status.as_u16() == 409 {
                    s.conflicts += 1;
                } else if !r.status.is_success() {
                    s.error(format!(
                        "commit {path}: {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                    ));
                }
            }
            Err(e) => s.error(e),
        }
        s
    })
    .await;
    stats.report(
        "read/update tree dataset",
        took,
        json!({"concurrency": a.concurrency, "seconds": a.seconds,
               "update_percent": update_percent, "hot_tables": hot,
               "update": "load + commit add-schema/set-current-schema with assert-table-uuid and assert-current-schema-id; 409 = conflict"}),
    )
}

pub async fn run(a: &Args) -> Result<(), String> {
    let api = Arc::new(Api::connect(&a.target, a.concurrency).await?);
    let tree = Arc::new(Tree::new(a, &run_tag()));
    let create = create_tree(&api, &tree, a).await;
    if create["errors"].as_u64() != Some(0) {
        return Err(format!("creating the tree failed: {create}"));
    }
    let read = read_tree(&api, &tree, a).await;
    let mix = read_update(&api, &tree, a).await;
    println!("{}", json!({"workloads": [create, read, mix]}));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(depth: usize, fanout: usize, tables: usize) -> Args {
        Args {
            target: Target {
                base: String::new(),
                key: String::new(),
                secret: String::new(),
                warehouse: "default".into(),
            },
            depth,
            fanout,
            tables,
            concurrency: 1,
            seconds: 1,
            update_percent: 10,
            hot_tables: 10,
        }
    }

    #[test]
    fn tree_shape() {
        let t = Tree::new(&args(3, 4, 1000), "x");
        assert_eq!(t.namespaces().count(), 4 + 16 + 64);
        assert_eq!(t.leaves().len(), 64);
        assert!(t.leaves().iter().all(|l| l.len() == 3));
        assert_eq!(t.tables.len(), 1000);
        assert_eq!(t.tables[65].0, "ptx_0%1Fn0%1Fn1");
    }

    #[test]
    fn add_column_commit_asserts_the_schema_it_read() {
        let meta = json!({
            "table-uuid": "u", "current-schema-id": 2, "last-column-id": 3,
            "schemas": [{"schema-id": 2, "type": "struct", "fields": [{"id": 1, "name": "a", "required": true, "type": "long"}]}],
        });
        let c = add_column_commit(&meta).unwrap();
        assert_eq!(c["requirements"][1]["current-schema-id"], 2);
        assert_eq!(c["updates"][0]["schema"]["fields"][1]["id"], 4);
        assert_eq!(c["updates"][0]["schema"]["fields"][1]["name"], "c4");
    }
}
