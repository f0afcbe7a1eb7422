//! The PostgreSQL backend against the embedded SQLite default, measured in the same run
//! with the same in-process server over loopback HTTP: load-table latency (100-commit
//! history) and commit throughput (one table sequentially; eight tables at once). The
//! report gives PostgreSQL as a ratio of SQLite.
//!
//! Starts its own throwaway PostgreSQL 15 (the store tests' cluster helper: local socket
//! dir, `fsync=off`, `synchronous_commit=off`); without the server binaries it skips with a
//! message and leaves a marker for the report. Besides criterion's figures, a paired check
//! (alternating rounds, so load that drifts during the run hits both backends alike) goes
//! to `<criterion dir>/backends_extra.json`. `scripts/bench.sh` writes BENCHMARKS.md.

mod common;
#[path = "../../sluice-store/tests/common/pg_cluster.rs"]
mod pg_cluster;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Backend {
    name: &'static str,
    base: String,
    client: reqwest::Client,
    prefix: String,
    counter: AtomicU64,
    /// Commits answered with an error and sent again (counted and reported, not hidden).
    failed_commits: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Backend {
    async fn start(name: &'static str, database_url: Option<String>) -> Backend {
        let common::BenchServer { base, client, dir } =
            common::start_server_with(database_url).await;
        let cfg: Value = client
            .get(format!("{base}/v1/config?warehouse=default"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let prefix = cfg["overrides"]["prefix"].as_str().unwrap().to_string();
        let b = Backend {
            name,
            base,
            client,
            prefix,
            counter: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            _dir: dir,
        };
        b.post(
            &format!("/v1/{}/namespaces", b.prefix),
            json!({"namespace": ["bench"]}),
        )
        .await;
        let schema = json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "ts", "required": false, "type": "timestamptz"},
            {"id": 3, "name": "data", "required": false, "type": "string"}]});
        for t in std::iter::once("t".to_string()).chain((0..8).map(|i| format!("c{i}"))) {
            b.post(
                &format!("/v1/{}/namespaces/bench/tables", b.prefix),
                json!({"name": t, "schema": schema}),
            )
            .await;
        }
        // A table with history: 100 commits make a metadata log of 100 entries.
        for _ in 0..100 {
            assert!(b.commit("t").await.is_success());
        }
        b
    }

    async fn post(&self, path: &str, body: Value) {
        let r = self
            .client
            .post(format!("{}{}", self.base, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "{} {path}: {}",
            self.name,
            r.status()
        );
    }

    fn table_url(&self, table: &str) -> String {
        format!(
            "{}/v1/{}/namespaces/bench/tables/{table}",
            self.base, self.prefix
        )
    }

    async fn load(&self) {
        let r = self.client.get(self.table_url("t")).send().await.unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
    }

    /// One commit; an error answer is logged, counted and retried (up to 5 times).
    async fn commit(&self, table: &str) -> reqwest::StatusCode {
        let mut st = reqwest::StatusCode::OK;
        for _ in 0..5 {
            let i = self.counter.fetch_add(1, Ordering::Relaxed);
            let body = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"i": i.to_string()}}]});
            let r = self
                .client
                .post(self.table_url(table))
                .json(&body)
                .send()
                .await
                .unwrap();
            st = r.status();
            if st.is_success() {
                return st;
            }
            let n = self.failed_commits.fetch_add(1, Ordering::Relaxed);
            if n < 5 {
                eprintln!(
                    "{}: commit to {table} answered {st}: {}",
                    self.name,
                    r.text().await.unwrap_or_default()
                );
            }
        }
        st
    }

    async fn commit_8(&self) {
        let futs = (0..8).map(|t| async move { self.commit(&format!("c{t}")).await });
        for st in futures::future::join_all(futs).await {
            assert!(st.is_success(), "{}: {st}", self.name);
        }
    }
}

fn criterion_dir() -> std::path::PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return std::path::PathBuf::from(h);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("criterion")
}

/// Median over `rounds` of (time of `n` PostgreSQL ops) / (time of `n` SQLite ops), the two
/// sides alternating round by round.
async fn paired<'a, F, Fut>(
    rounds: usize,
    n: usize,
    sqlite: &'a Backend,
    pg: &'a Backend,
    op: F,
) -> Value
where
    F: Fn(&'a Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ratios = Vec::with_capacity(rounds);
    let (mut a_sum, mut b_sum) = (0.0, 0.0);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..n {
            op(sqlite).await;
        }
        let a = start.elapsed().as_nanos() as f64 / n as f64;
        let start = Instant::now();
        for _ in 0..n {
            op(pg).await;
        }
        let b = start.elapsed().as_nanos() as f64 / n as f64;
        ratios.push(b / a);
        a_sum += a;
        b_sum += b;
    }
    ratios.sort_by(|x, y| x.partial_cmp(y).unwrap());
    json!({"rounds": rounds, "ops_per_round": n, "sqlite_ns": a_sum / rounds as f64,
           "postgres_ns": b_sum / rounds as f64, "ratio": ratios[rounds / 2]})
}

fn benches(c: &mut Criterion) {
    let dir = criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("backends_extra.json");
    if !pg_cluster::available() {
        eprintln!(
            "SKIPPED backends bench: PostgreSQL server binaries (initdb, pg_ctl, postgres) are not on PATH; \
             install postgresql-15 and put /usr/lib/postgresql/15/bin on PATH to compare backends"
        );
        std::fs::write(
            &marker,
            serde_json::to_vec_pretty(
                &json!({"skipped": "PostgreSQL server binaries not on PATH"}),
            )
            .unwrap(),
        )
        .unwrap();
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sqlite, pg) = rt.block_on(async {
        let url = pg_cluster::fresh_database().await;
        (
            Backend::start("sqlite", None).await,
            Backend::start("postgres", Some(url)).await,
        )
    });
    let backends = [&sqlite, &pg];

    let mut g = c.benchmark_group("backend_load_table");
    g.measurement_time(Duration::from_secs(5));
    for b in backends {
        g.bench_function(b.name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        b.load().await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("backend_commit_sequential");
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    for b in backends {
        g.bench_function(b.name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        assert!(b.commit("c0").await.is_success());
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("backend_commit_concurrent_8");
    g.measurement_time(Duration::from_secs(8));
    g.sample_size(20);
    g.throughput(Throughput::Elements(8));
    for b in backends {
        g.bench_function(b.name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        b.commit_8().await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();

    let (load, commit, commit8) = rt.block_on(async {
        (
            paired(21, 200, &sqlite, &pg, |b| b.load()).await,
            paired(21, 50, &sqlite, &pg, |b| async move {
                assert!(b.commit("c1").await.is_success())
            })
            .await,
            paired(21, 20, &sqlite, &pg, |b| b.commit_8()).await,
        )
    });
    println!("backends paired (postgres / sqlite): load {load}, commit {commit}, 8 concurrent commits {commit8}");
    let extra = json!({"load_paired": load, "commit_paired": commit, "commit_8_paired": commit8,
        "failed_commits": {"sqlite": sqlite.failed_commits.load(Ordering::Relaxed), "postgres": pg.failed_commits.load(Ordering::Relaxed)}});
    std::fs::write(&marker, serde_json::to_vec_pretty(&extra).unwrap()).unwrap();
}

criterion_group!(backends, benches);
criterion_main!(backends);
