//! Load-table latency and commit throughput on the embedded default (SQLite + file
//! warehouse), over real HTTP on loopback. Baselines measured in the same run:
//! - `baseline/health`: the cheapest authenticated-stack round trip (no auth, no store
//!   work) — the floor every request pays;
//! - `baseline/read_metadata_from_storage`: reading and parsing the table's metadata file
//!   from the warehouse — what a catalog that re-reads storage on every load would pay
//!   on top of its own request handling.
//!
//! `load_table_10k_snapshots/{all,refs}`: a registered table with 10,000 snapshots, whole
//! and cut to the referenced ones (issue #20: p50 < 20 ms and < 2 ms, release build).
//!
//! `scripts/bench.sh` turns the results into BENCHMARKS.md.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Env {
    base: String,
    client: reqwest::Client,
    prefix: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    start_configured(true).await
}

/// The bench server, with the web console on (the default) or off (config `console`).
async fn start_configured(console: bool) -> Env {
    let common::BenchServer { base, client, dir } =
        common::start_server_configured(|c| c.console = console).await;
    let cfg: Value = client
        .get(format!("{base}/v1/config?warehouse=default"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prefix = cfg["overrides"]["prefix"].as_str().unwrap().to_string();
    let env = Env {
        base,
        client,
        prefix,
        _dir: dir,
    };
    env.post(
        &format!("/v1/{}/namespaces", env.prefix),
        json!({"namespace": ["bench"]}),
    )
    .await;
    env
}

impl Env {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{}{}", self.base, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    async fn create_table(&self, name: &str) -> Value {
        let schema = json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "ts", "required": false, "type": "timestamptz"},
            {"id": 3, "name": "data", "required": false, "type": "string"}]});
        self.post(
            &format!("/v1/{}/namespaces/bench/tables", self.prefix),
            json!({"name": name, "schema": schema}),
        )
        .await
    }

    async fn commit_property(&self, table: &str, i: u64) -> reqwest::StatusCode {
        let body = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"i": i.to_string()}}]});
        self.client
            .post(format!(
                "{}/v1/{}/namespaces/bench/tables/{table}",
                self.base, self.prefix
            ))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = rt.block_on(start());
    let loaded = rt.block_on(async {
        env.create_table("t").await;
        // A table with history: 100 commits make a metadata log of 100 entries.
        for i in 0..100 {
            env.commit_property("t", i).await;
        }
        for i in 0..8 {
            env.create_table(&format!("c{i}")).await;
        }
        env.client
            .get(format!(
                "{}/v1/{}/namespaces/bench/tables/t",
                env.base, env.prefix
            ))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let metadata_location = loaded["metadata-location"].as_str().unwrap().to_string();
    let storage = sluice_storage::Storage::open(
        &sluice_storage::StorageProfile::File(sluice_storage::FileProfile {
            root: env
                ._dir
                .path()
                .join("warehouse")
                .to_string_lossy()
                .into_owned(),
            gateway: false,
        }),
        None,
    )
    .unwrap();

    let mut g = c.benchmark_group("baseline");
    g.measurement_time(Duration::from_secs(5));
    let health = format!("{}/health", env.base);
    g.bench_function("health", |b| {
        b.iter_custom(|iters| timed_gets(&rt, &env.client, &health, iters))
    });
    g.bench_function("read_metadata_from_storage", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let bytes = storage.read(&metadata_location).await.unwrap();
                    let v: iceberg::spec::TableMetadata = serde_json::from_slice(&bytes).unwrap();
                    std::hint::black_box(v);
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("load_table");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("100_commit_history", |b| {
        let url = format!("{}/v1/{}/namespaces/bench/tables/t", env.base, env.prefix);
        b.iter_custom(|iters| timed_gets(&rt, &env.client, &url, iters))
    });
    g.finish();

    // A table with 10,000 snapshots (registered over a table's own metadata file), loaded
    // whole and with `snapshots=refs`.
    let big_url = rt.block_on(async {
        let created = env.create_table("big").await;
        let mut md = created["metadata"].clone();
        let location = md["location"].as_str().unwrap().to_string();
        let snaps: Vec<Value> = (0..10_000i64)
            .map(|i| {
                let mut s = json!({"snapshot-id": 1000 + i, "sequence-number": i + 1,
                    "timestamp-ms": 1_700_000_000_000i64 + i * 1000,
                    "manifest-list": format!("{location}/metadata/snap-{}.avro", 1000 + i),
                    "summary": {"operation": "append", "added-data-files": "1", "added-records": "100",
                        "total-records": (100 * (i + 1)).to_string(), "total-data-files": (i + 1).to_string()},
                    "schema-id": 0});
                if i > 0 {
                    s["parent-snapshot-id"] = json!(1000 + i - 1);
                }
                s
            })
            .collect();
        let last = snaps.last().unwrap().clone();
        md["snapshot-log"] = Value::Array(
            snaps
                .iter()
                .map(|s| json!({"snapshot-id": s["snapshot-id"], "timestamp-ms": s["timestamp-ms"]}))
                .collect(),
        );
        md["snapshots"] = Value::Array(snaps);
        md["current-snapshot-id"] = last["snapshot-id"].clone();
        md["last-sequence-number"] = json!(10_000);
        md["last-updated-ms"] = last["timestamp-ms"].clone();
        md["refs"] = json!({"main": {"type": "branch", "snapshot-id": last["snapshot-id"]}});
        let file = format!("{location}/metadata/00001-big.metadata.json");
        let path = file.strip_prefix("file://").unwrap();
        std::fs::write(path, serde_json::to_vec(&md).unwrap()).unwrap();
        env.post(
            &format!("/v1/{}/namespaces/bench/register", env.prefix),
            json!({"name": "big", "metadata-location": file, "overwrite": true}),
        )
        .await;
        format!("{}/v1/{}/namespaces/bench/tables/big", env.base, env.prefix)
    });
    let mut g = c.benchmark_group("load_table_10k_snapshots");
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);
    for (name, query) in [("all", ""), ("refs", "?snapshots=refs")] {
        let url = format!("{big_url}{query}");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| timed_gets(&rt, &env.client, &url, iters))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("commit");
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let counter = std::sync::atomic::AtomicU64::new(1000);
    g.bench_function("sequential_one_table", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    assert!(env.commit_property("c0", i).await.is_success());
                }
                start.elapsed()
            })
        })
    });
    g.throughput(Throughput::Elements(8));
    g.bench_function("concurrent_8_tables", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let futs = (0..8).map(|t| {
                        let name = format!("c{t}");
                        let env = &env;
                        async move { env.commit_property(&name, i).await }
                    });
                    for st in futures_join_all(futs).await {
                        assert!(st.is_success());
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    // Issue #19: the console adds no per-request cost to the API. The same /health and
    // load-table requests against a second server with `console = false`, measured in the
    // same group as the server above (console on).
    let off = rt.block_on(async {
        let off = start_configured(false).await;
        off.create_table("t").await;
        for i in 0..100 {
            off.commit_property("t", i).await;
        }
        off
    });
    let mut g = c.benchmark_group("console");
    g.measurement_time(Duration::from_secs(5));
    for (name, server) in [("on", &env), ("off", &off)] {
        let health = format!("{}/health", server.base);
        let load = format!(
            "{}/v1/{}/namespaces/bench/tables/t",
            server.base, server.prefix
        );
        for (what, url) in [("health", health), ("load_table", load)] {
            g.bench_function(format!("{what}_console_{name}"), |b| {
                b.iter_custom(|iters| timed_gets(&rt, &server.client, &url, iters))
            });
        }
    }
    g.finish();
}

/// `iters` sequential GETs of `url`, each answered with a success and read to the end.
fn timed_gets(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let r = client.get(url).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
        start.elapsed()
    })
}

async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.collect();
    let mut out = Vec::with_capacity(handles.len());
    let joined = futures::future::join_all(handles).await;
    out.extend(joined);
    out
}

criterion_group!(catalog, benches);
criterion_main!(catalog);
