//! Real `sluice serve` processes sharing one PostgreSQL database (a throwaway cluster), to
//! test what in-process replicas cannot: a replica killed with SIGKILL while commits are in
//! flight leaves the catalog consistent, and the background purge removes each expired
//! table exactly once across replicas, including tables whose lease a killed replica left.

use crate::pg_cluster;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const KEY: &str = "AKIAREPLICATEST00001";
const SECRET: &str = "replicatestsecretreplicatestsecret000001";

/// What every replica of one deployment shares: the database, the warehouse directory and
/// the key material.
struct Deployment {
    db_url: String,
    dir: tempfile::TempDir,
    master_key: String,
    jwt_key: String,
}

impl Deployment {
    async fn new() -> Deployment {
        Deployment {
            db_url: pg_cluster::fresh_database().await,
            dir: tempfile::tempdir().unwrap(),
            master_key: sluice_auth::KeyMaterial::random().to_base64(),
            jwt_key: sluice_auth::KeyMaterial::random().to_base64(),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts `sluice serve` with the given extra `SLUICE_*` settings; waits until healthy.
    fn replica(&self, name: &str, settings: &[(&str, &str)]) -> Replica {
        let log_path = self.dir.path().join(format!("{name}.log"));
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).unwrap();
            let mut cmd = Command::new(BIN);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("SLUICE_") {
                    cmd.env_remove(k);
                }
            }
            cmd.args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                // The S3 gateway on an ephemeral port, so parallel servers never collide.
                "--s3-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(self.data_dir())
            .args(["--database-url", &self.db_url])
            .env("HOME", self.dir.path())
            .env("SLUICE_MASTER_KEY", &self.master_key)
            .env("SLUICE_JWT_SIGNING_KEY", &self.jwt_key)
            .env("SLUICE_BOOTSTRAP_ACCESS_KEY_ID", KEY)
            .env("SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY", SECRET)
            .env("SLUICE_ALLOWED_FILE_ROOTS", self.dir.path())
            // The checks read metadata files by their file:// locations on disk.
            .env("SLUICE_DEFAULT_WAREHOUSE_GATEWAY", "false")
            .env("SLUICE_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
            for (k, v) in settings {
                cmd.env(format!("SLUICE_{}", k.to_ascii_uppercase()), v);
            }
            let mut child = cmd.spawn().expect("start sluice serve");
            if wait_healthy(&mut child, port) {
                return Replica {
                    child,
                    base: format!("http://127.0.0.1:{port}"),
                    log: log_path,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "replica {name} did not become healthy; its log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    async fn db(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.db_url)
            .await
            .unwrap()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_healthy(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s
                .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A `sluice serve` process; SIGKILLed on drop if still running.
struct Replica {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Replica {
    /// SIGKILL: no graceful shutdown, no chance to finish or roll back anything.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = client()
            .request(method, format!("{}{}", self.base, path))
            .basic_auth(KEY, Some(SECRET));
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
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]})
}

fn local_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").unwrap_or(url))
}

fn read_metadata(url: &str) -> Value {
    let path = local_path(url);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("metadata file {} missing: {e}", path.display()));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("metadata file {} does not parse: {e}", path.display()))
}

/// The writers' counters in a metadata file's properties (writer -> value).
fn counters(metadata: &Value) -> BTreeMap<String, u32> {
    metadata["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .filter(|(k, _)| k.starts_with('w'))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().parse().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls an SQL count until it is zero.
async fn until_zero(db: &mut sqlx::PgConnection, what: &str, sql: &str, deadline: Duration) {
    let start = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *db).await.unwrap();
        if n == 0 {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: still {n} after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const TABLES: usize = 3;
const WRITERS_PER_TABLE: usize = 4;
const COMMITS_PER_WRITER: u32 = 20;

/// What one writer saw: the last value acknowledged, and the value whose commit was in
/// flight when the connection broke (it may or may not have been applied).
struct WriterResult {
    table: usize,
    writer: String,
    acked: u32,
    in_flight: Option<u32>,
}

/// Increments its own property of one table, one commit at a time, until it has done
/// `COMMITS_PER_WRITER` or the replica stops answering. Lost CAS races (409) are retried
/// with the same value.
async fn writer(
    base: String,
    prefix: String,
    table: usize,
    writer: String,
    acked_total: Arc<AtomicU32>,
) -> WriterResult {
    let url = format!("{base}/v1/{prefix}/namespaces/k/tables/t{table}");
    let http = client();
    let mut acked = 0;
    for n in 1..=COMMITS_PER_WRITER {
        loop {
            let body = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {writer.clone(): n.to_string()}}]});
            match http
                .post(&url)
                .basic_auth(KEY, Some(SECRET))
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status() == StatusCode::OK => {
                    acked = n;
                    acked_total.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(r) if r.status() == StatusCode::CONFLICT => continue,
                Ok(r) => {
                    let st = r.status();
                    panic!(
                        "writer {writer} of t{table}: unexpected {st}: {}",
                        r.text().await.unwrap_or_default()
                    )
                }
                Err(_) => {
                    return WriterResult {
                        table,
                        writer,
                        acked,
                        in_flight: Some(n),
                    }
                }
            }
        }
    }
    WriterResult {
        table,
        writer,
        acked,
        in_flight: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_killed_mid_commit_leaves_the_catalog_consistent() {
    let d = Deployment::new().await;
    let mut doomed = d.replica("doomed", &[]);
    let survivor = d.replica("survivor", &[]);

    let (_, v) = survivor
        .call(reqwest::Method::GET, "/v1/config?warehouse=default", None)
        .await;
    let prefix = v["overrides"]["prefix"].as_str().unwrap().to_string();
    let (st, _) = survivor
        .call(
            reqwest::Method::POST,
            &format!("/v1/{prefix}/namespaces"),
            Some(json!({"namespace": ["k"]})),
        )
        .await;
    assert_eq!(st, 200);
    for t in 0..TABLES {
        let (st, v) = survivor
            .call(
                reqwest::Method::POST,
                &format!("/v1/{prefix}/namespaces/k/tables"),
                Some(json!({"name": format!("t{t}"), "schema": schema()})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }

    // Twelve writers commit through the doomed replica; it is killed a third of the way in,
    // with commits in flight.
    let acked_total = Arc::new(AtomicU32::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for t in 0..TABLES {
        for w in 0..WRITERS_PER_TABLE {
            writers.spawn(writer(
                doomed.base.clone(),
                prefix.clone(),
                t,
                format!("w{w}"),
                acked_total.clone(),
            ));
        }
    }
    let total = (TABLES * WRITERS_PER_TABLE) as u32 * COMMITS_PER_WRITER;
    let start = Instant::now();
    while acked_total.load(Ordering::SeqCst) < total / 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "commits through the doomed replica are too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.kill();
    let mut results = vec![];
    while let Some(r) = writers.join_next().await {
        results.push(r.unwrap());
    }
    let interrupted = results.iter().filter(|r| r.in_flight.is_some()).count();
    assert!(
        interrupted > 0,
        "no commit was in flight when the replica was killed"
    );
    eprintln!(
        "killed with {interrupted} commits in flight, {} acknowledged",
        acked_total.load(Ordering::SeqCst)
    );

    // Nothing the dead replica held (transactions, row or advisory locks) outlives it.
    let mut db = d.db().await;
    until_zero(
        &mut db,
        "sessions of the killed replica still in a transaction",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'sluice' AND xact_start IS NOT NULL AND pid <> pg_backend_pid() \
         AND state <> 'idle'",
        Duration::from_secs(15),
    )
    .await;
    until_zero(
        &mut db,
        "advisory locks still held",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        Duration::from_secs(15),
    )
    .await;

    for t in 0..TABLES {
        let path = format!("/v1/{prefix}/namespaces/k/tables/t{t}");
        let (st, loaded) = survivor.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(st, 200, "t{t} does not load from the survivor: {loaded}");
        let location = loaded["metadata-location"].as_str().unwrap();
        let current = read_metadata(location);
        assert_eq!(
            counters(&current),
            counters(&loaded["metadata"]),
            "t{t}: the file and the catalog disagree"
        );

        // No lost update: every acknowledged commit is there; at most the one in flight
        // was applied on top.
        let now = counters(&current);
        for r in results.iter().filter(|r| r.table == t) {
            let v = now.get(&r.writer).copied().unwrap_or(0);
            let max = r.in_flight.unwrap_or(r.acked);
            assert!(
                v >= r.acked && v <= max,
                "t{t} {}: value {v}, acknowledged {}, in flight {:?}",
                r.writer,
                r.acked,
                r.in_flight
            );
        }

        // No gap: walking the metadata log, every version exists, parses, and differs from
        // the previous one by exactly one writer's counter going up by one.
        let mut chain: Vec<String> = loaded["metadata"]["metadata-log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["metadata-file"].as_str().unwrap().to_string())
            .collect();
        chain.push(location.to_string());
        let commits: u32 = now.values().sum();
        assert_eq!(
            chain.len() as u32,
            commits + 1,
            "t{t}: {} versions for {commits} commits",
            chain.len()
        );
        let mut prev: BTreeMap<String, u32> = BTreeMap::new();
        for (i, file) in chain.iter().enumerate() {
            let c = counters(&read_metadata(file));
            if i > 0 {
                let changed: Vec<_> = c
                    .iter()
                    .filter(|(k, v)| prev.get(*k).copied().unwrap_or(0) != **v)
                    .collect();
                assert_eq!(changed.len(), 1, "t{t}: version {i} changed {changed:?}");
                let (k, v) = changed[0];
                assert_eq!(
                    prev.get(k).copied().unwrap_or(0) + 1,
                    *v,
                    "t{t}: version {i} skipped a value of {k}"
                );
            }
            prev = c;
        }

        // A new commit on the same table goes through at once.
        let body = json!({"requirements": [], "updates": [{"action": "set-properties", "updates": {"after": "kill"}}]});
        let (st, v) = survivor
            .call(reqwest::Method::POST, &path, Some(body))
            .await;
        assert_eq!(st, 200, "commit after the kill on t{t}: {v}");
    }
}

/// Files in a directory tree.
fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|e| e.unwrap())
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Creates the tables, fills each with `files_each` data files and drops it with purge
/// requested; returns table id -> location.
async fn create_dropped_tables(
    r: &Replica,
    prefix: &str,
    names: &[String],
    files_each: usize,
) -> HashMap<String, PathBuf> {
    let mut locations = HashMap::new();
    for name in names {
        let (st, v) = r
            .call(
                reqwest::Method::POST,
                &format!("/v1/{prefix}/namespaces/ns/tables"),
                Some(json!({"name": name, "schema": schema()})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let location = local_path(v["metadata"]["location"].as_str().unwrap());
        let id = v["metadata"]["table-uuid"].as_str().unwrap().to_string();
        // Data files, so a purge has real work to do.
        let data = location.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for i in 0..files_each {
            std::fs::write(
                data.join(format!("part-{i:05}.parquet")),
                b"not really parquet",
            )
            .unwrap();
        }
        let (st, v) = r
            .call(
                reqwest::Method::DELETE,
                &format!("/v1/{prefix}/namespaces/ns/tables/{name}?purgeRequested=true"),
                None,
            )
            .await;
        assert_eq!(st, 204, "{v}");
        locations.insert(id, location);
    }
    locations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn background_purge_runs_once_across_replicas_and_survives_a_killed_replica() {
    let d = Deployment::new().await;
    let lease = "4";
    // Setup through a replica that does not purge during the test.
    let setup = d.replica("setup", &[("purge_interval_seconds", "3600")]);
    let soft_root = d.dir.path().join("soft");
    let (st, v) = setup
        .call(
            reqwest::Method::POST,
            "/management/v1/warehouse",
            Some(json!({
            "warehouse-name": "soft",
            "storage-profile": {"type": "file", "root": soft_root},
            "delete-profile": {"type": "soft", "expiration-seconds": 1}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let prefix = v["warehouse-id"].as_str().unwrap().to_string();
    let (st, _) = setup
        .call(
            reqwest::Method::POST,
            &format!("/v1/{prefix}/namespaces"),
            Some(json!({"namespace": ["ns"]})),
        )
        .await;
    assert_eq!(st, 200);
    let first: Vec<String> = (0..30).map(|i| format!("a{i}")).collect();
    let mut expected = create_dropped_tables(&setup, &prefix, &first, 200).await;
    drop(setup);
    let mut db = d.db().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM deleted_tables")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 30);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // A replica claims every expired table (one batch) and is SIGKILLed as soon as it has:
    // the tables it had not finished keep its lease.
    let mut doomed = d.replica(
        "doomed",
        &[
            ("purge_interval_seconds", "1"),
            ("purge_lease_seconds", lease),
        ],
    );
    let start = Instant::now();
    loop {
        let leased: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deleted_tables WHERE lease_until IS NOT NULL")
                .fetch_one(&mut db)
                .await
                .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM deleted_tables")
            .fetch_one(&mut db)
            .await
            .unwrap();
        if leased > 0 || left < 30 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the replica never claimed the expired tables"
        );
    }
    doomed.kill();
    let orphaned: Vec<String> =
        sqlx::query_scalar("SELECT id FROM deleted_tables WHERE lease_until IS NOT NULL")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert!(
        !orphaned.is_empty(),
        "the killed replica finished every purge before it died; nothing left to take over (log:\n{})",
        std::fs::read_to_string(&doomed.log).unwrap_or_default()
    );

    eprintln!(
        "the killed replica left {} of 30 tables leased",
        orphaned.len()
    );
    // Two more replicas take over after the lease runs out; meanwhile more tables expire
    // and the two race for those.
    let a = d.replica(
        "a",
        &[
            ("purge_interval_seconds", "1"),
            ("purge_lease_seconds", lease),
        ],
    );
    let b = d.replica(
        "b",
        &[
            ("purge_interval_seconds", "1"),
            ("purge_lease_seconds", lease),
        ],
    );
    let second: Vec<String> = (0..6).map(|i| format!("b{i}")).collect();
    expected.extend(create_dropped_tables(&a, &prefix, &second, 50).await);
    assert_eq!(expected.len(), 36);

    let start = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM deleted_tables")
            .fetch_one(&mut db)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{left} deleted tables not purged after 60 s; replica logs:\n{}\n{}",
            std::fs::read_to_string(&a.log).unwrap_or_default(),
            std::fs::read_to_string(&b.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Exactly one purge per table: one audit entry each, whichever replica did it.
    let details: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'catalog:PurgeDeletedTable'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    for (id, location) in &expected {
        let n = details.iter().filter(|dt| dt.contains(id.as_str())).count();
        assert_eq!(n, 1, "table {id} was purged {n} times");
        assert_eq!(
            count_files(location),
            0,
            "files left under {}",
            location.display()
        );
    }
    assert_eq!(
        details.len(),
        36,
        "purge entries for tables that do not exist"
    );
    // The orphaned ones were finished by the survivors.
    for id in &orphaned {
        assert!(
            details.iter().any(|dt| dt.contains(id.as_str())),
            "orphaned table {id} never purged"
        );
    }
    drop((a, b));
}
