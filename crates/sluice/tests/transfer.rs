//! Moving an embedded SQLite install to PostgreSQL with `sluice export` / `sluice import`, end
//! to end with the real binary: a `sluice serve` on SQLite is populated over HTTP, stopped and
//! exported; the dump is imported into a real PostgreSQL 15 database and a `sluice serve` on
//! it (same master key and JWT signing key) must behave exactly as before: same keys, same
//! tables, same decisions, same deleted tables, same audit log, no second bootstrap.

use crate::pg_cluster;

use base64::Engine as _;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with no ambient SLUICE_* variable (the harness may export some).
fn command(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SLUICE_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home);
    c
}

fn random_key() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A `sluice serve` child; stopped with SIGTERM (graceful), killed on drop if still running.
struct Serve {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Serve {
    async fn start(
        home: &Path,
        data_dir: &Path,
        database_url: &str,
        keys: &(String, String),
        name: &str,
    ) -> Serve {
        let log = home.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let child = command(home)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                // The S3 gateway on an ephemeral port, so parallel servers never collide.
                "--s3-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(["--database-url", database_url])
            .env("SLUICE_MASTER_KEY", &keys.0)
            .env("SLUICE_JWT_SIGNING_KEY", &keys.1)
            .env("SLUICE_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start sluice serve");
        let mut s = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("sluice serve exited ({status}):\n{}", s.log_text());
            }
            if let Ok(r) = Client::new().get(format!("{}/health", s.base)).send().await {
                if r.status() == 200 {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sluice serve not healthy:\n{}",
                s.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
enum Auth {
    Basic(String, String),
    Bearer(String),
}

async fn call(
    base: &str,
    auth: &Auth,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = Client::new().request(method, format!("{base}{path}"));
    rb = match auth {
        Auth::Basic(id, secret) => rb.basic_auth(id, Some(secret)),
        Auth::Bearer(t) => rb.bearer_auth(t),
    };
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

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]})
}

/// Runs the binary to completion: (success, stdout, stderr).
fn run(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = command(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn row_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(r#""kind":"row""#))
        .map(str::to_string)
        .collect()
}

fn banner_value(log: &str, label: &str) -> String {
    log.lines()
        .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {label} in the log:\n{log}"))
}

/// What the first server showed, to compare the second one against.
struct Observed {
    tables: Vec<Value>,
    carol_statuses: Vec<StatusCode>,
    deleted: Value,
    audit: Vec<Value>,
}

const TABLE_PATHS: [&str; 2] = ["sales/tables/t1", "secret/tables/t"];

async fn observe(base: &str, admin: &Auth, carol: &Auth, p: &str, soft: &str) -> Observed {
    let mut tables = vec![];
    for t in TABLE_PATHS {
        let (st, v) = call(
            base,
            admin,
            Method::GET,
            &format!("/v1/{p}/namespaces/{t}"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        tables
            .push(json!({"metadata": v["metadata"], "metadata-location": v["metadata-location"]}));
    }
    let mut carol_statuses = vec![];
    for t in TABLE_PATHS {
        carol_statuses.push(
            call(
                base,
                carol,
                Method::GET,
                &format!("/v1/{p}/namespaces/{t}"),
                None,
            )
            .await
            .0,
        );
    }
    let (st, _) = call(
        base,
        carol,
        Method::POST,
        &format!("/v1/{p}/namespaces/sales/tables"),
        Some(json!({"name": "nope", "schema": schema()})),
    )
    .await;
    carol_statuses.push(st);
    let (st, deleted) = call(
        base,
        admin,
        Method::GET,
        &format!("/management/v1/warehouse/{soft}/deleted-tables"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{deleted}");
    let (st, v) = call(
        base,
        admin,
        Method::GET,
        "/management/v1/audit?limit=1000",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    Observed {
        tables,
        carol_statuses,
        deleted,
        audit: v["entries"].as_array().unwrap().clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_install_moves_to_postgres_without_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let data = home.join("data");
    let sqlite = format!("sqlite://{}", home.join("catalog.db").display());
    let keys = (random_key(), random_key());

    // ---- 1. the embedded install, populated over HTTP ----
    let mut a = Serve::start(home, &data, &sqlite, &keys, "sqlite").await;
    let log = a.log_text();
    assert!(log.contains("bootstrap admin credentials"), "{log}");
    let admin = Auth::Basic(
        banner_value(&log, "access_key_id:"),
        banner_value(&log, "secret_access_key:"),
    );
    let base = a.base.clone();

    let (_, v) = call(
        &base,
        &admin,
        Method::GET,
        "/v1/config?warehouse=default",
        None,
    )
    .await;
    let p = v["overrides"]["prefix"].as_str().unwrap().to_string();
    for ns in ["sales", "secret"] {
        let (st, v) = call(
            &base,
            &admin,
            Method::POST,
            &format!("/v1/{p}/namespaces"),
            Some(json!({"namespace": [ns]})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        &format!("/v1/{p}/namespaces/sales/tables"),
        Some(json!({"name": "t1", "schema": schema()})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let uuid = v["metadata"]["table-uuid"].as_str().unwrap().to_string();
    for i in 0..3 {
        let (st, v) = call(
            &base,
            &admin,
            Method::POST,
            &format!("/v1/{p}/namespaces/sales/tables/t1"),
            Some(json!({
            "requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
            "updates": [{"action": "set-properties", "updates": {"commit": i.to_string()}}]})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, _) = call(
        &base,
        &admin,
        Method::POST,
        &format!("/v1/{p}/namespaces/secret/tables"),
        Some(json!({"name": "t", "schema": schema()})),
    )
    .await;
    assert_eq!(st, 200);

    // carol: a Viewer (group membership) with a directly attached deny policy.
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        "/management/v1/users",
        Some(json!({"name": "carol", "email": "carol@example.org"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, _) = call(
        &base,
        &admin,
        Method::PUT,
        "/management/v1/groups/Viewers/members/carol",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        "/management/v1/groups",
        Some(json!({"name": "analysts", "description": "people who look at numbers"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, _) = call(
        &base,
        &admin,
        Method::PUT,
        "/management/v1/groups/analysts/members/carol",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, v) = call(&base, &admin, Method::POST, "/management/v1/policies", Some(json!({
        "name": "NoSecret",
        "statements": [{"effect": "deny", "action": ["catalog:*"], "resource": "sluice:catalog:::warehouse/default/namespace/secret"},
                       {"effect": "deny", "action": ["catalog:*"], "resource": "sluice:catalog:::warehouse/default/namespace/secret/*"}]}))).await;
    assert_eq!(st, 201, "{v}");
    let (st, _) = call(
        &base,
        &admin,
        Method::PUT,
        "/management/v1/users/carol/policies/NoSecret",
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        "/management/v1/users/carol/access-keys",
        None,
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let carol = Auth::Basic(
        v["access-key-id"].as_str().unwrap().into(),
        v["secret-access-key"].as_str().unwrap().into(),
    );
    let arn = "arn:aws:iam::123456789012:user/carol";
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        "/management/v1/users/carol/external-principals",
        Some(json!({"arn": arn})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    // A token minted by the first server, to present to the second.
    let Auth::Basic(carol_id, carol_secret) = &carol else {
        unreachable!()
    };
    let tok: Value = Client::new()
        .post(format!("{base}/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", carol_id.as_str()),
            ("client_secret", carol_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let carol_jwt = Auth::Bearer(tok["access_token"].as_str().unwrap().to_string());

    // A soft-delete warehouse with a dropped table.
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        "/management/v1/warehouse",
        Some(json!({
        "warehouse-name": "soft",
        "storage-profile": {"type": "file", "root": data.join("soft")},
        "delete-profile": {"type": "soft", "expiration-seconds": 3600}})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let soft = v["warehouse-id"].as_str().unwrap().to_string();
    call(
        &base,
        &admin,
        Method::POST,
        &format!("/v1/{soft}/namespaces"),
        Some(json!({"namespace": ["ns"]})),
    )
    .await;
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        &format!("/v1/{soft}/namespaces/ns/tables"),
        Some(json!({"name": "gone", "schema": schema()})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let gone_id = v["metadata"]["table-uuid"].as_str().unwrap().to_string();
    let (st, _) = call(
        &base,
        &admin,
        Method::DELETE,
        &format!("/v1/{soft}/namespaces/ns/tables/gone"),
        None,
    )
    .await;
    assert_eq!(st, 204);

    let before = observe(&base, &admin, &carol, &p, &soft).await;
    assert_eq!(
        before.carol_statuses,
        vec![StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::FORBIDDEN]
    );
    assert_eq!(before.deleted["tables"].as_array().unwrap().len(), 1);
    assert!(before.audit.len() > 5, "{:?}", before.audit);
    a.stop();

    // ---- 2. export (file and stdout agree), import into PostgreSQL ----
    let dump = home.join("catalog.jsonl");
    let (ok, _, err) = run(
        home,
        &[
            "export",
            "--database-url",
            &sqlite,
            "--out",
            dump.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("exported"), "{err}");
    let text = std::fs::read_to_string(&dump).unwrap();
    let (ok, stdout, err) = run(home, &["export", "--database-url", &sqlite]);
    assert!(ok, "{err}");
    assert_eq!(row_lines(&stdout), row_lines(&text));
    // Secrets stay ciphertext: carol's secret appears nowhere in the dump.
    let Auth::Basic(_, admin_secret) = &admin else {
        unreachable!()
    };
    assert!(!text.contains(carol_secret.as_str()) && !text.contains(admin_secret.as_str()));

    let pg = pg_cluster::fresh_database().await;
    let (ok, _, err) = run(
        home,
        &["import", "--database-url", &pg, dump.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(err.contains("every row count verified"), "{err}");

    // ---- 3. the same install on PostgreSQL ----
    let mut b = Serve::start(home, &data, &pg, &keys, "postgres").await;
    assert!(
        !b.log_text().contains("bootstrap admin credentials"),
        "bootstrap ran again:\n{}",
        b.log_text()
    );
    let base = b.base.clone();
    let (st, v) = call(&base, &admin, Method::GET, "/management/v1/whoami", None).await;
    assert_eq!(
        (st, v["name"].as_str()),
        (StatusCode::OK, Some("admin")),
        "{v}"
    );
    for auth in [&carol, &carol_jwt] {
        let (st, v) = call(&base, auth, Method::GET, "/management/v1/whoami", None).await;
        assert_eq!(
            (st, v["name"].as_str()),
            (StatusCode::OK, Some("carol")),
            "{v}"
        );
    }
    let after = observe(&base, &admin, &carol, &p, &soft).await;
    assert_eq!(after.tables, before.tables, "table metadata changed");
    assert_eq!(
        after.carol_statuses, before.carol_statuses,
        "policies decide differently"
    );
    assert_eq!(after.deleted, before.deleted);
    for entry in &before.audit {
        assert!(after.audit.contains(entry), "audit entry lost: {entry}");
    }
    let (st, v) = call(
        &base,
        &admin,
        Method::GET,
        "/management/v1/users/carol/external-principals",
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["principals"][0]["id"], arn);

    // The soft-dropped table comes back with its metadata.
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        &format!("/management/v1/warehouse/{soft}/deleted-tables/{gone_id}/undrop"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &base,
        &admin,
        Method::GET,
        &format!("/v1/{soft}/namespaces/ns/tables/gone"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["metadata"]["table-uuid"], gone_id.as_str());
    // Writes go on: a commit, and new audit entries after the imported ones (ids not reused).
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        &format!("/v1/{p}/namespaces/sales/tables/t1"),
        Some(json!({
        "requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
        "updates": [{"action": "set-properties", "updates": {"commit": "on-postgres"}}]})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &base,
        &admin,
        Method::POST,
        "/management/v1/users",
        Some(json!({"name": "dave"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (_, v) = call(
        &base,
        &admin,
        Method::GET,
        "/management/v1/audit?limit=1",
        None,
    )
    .await;
    let newest = v["entries"][0]["id"].as_i64().unwrap();
    let max_before = before
        .audit
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(newest > max_before, "{newest} <= {max_before}");
    b.stop();

    // ---- 4. refusals leave the target untouched ----
    let snapshot = |url: String| {
        let home = home.to_path_buf();
        move || {
            let (ok, out, err) = run(&home, &["export", "--database-url", &url]);
            assert!(ok, "{err}");
            row_lines(&out)
        }
    };
    let pg_rows = snapshot(pg.clone());
    let rows_before = pg_rows();
    let (ok, _, err) = run(
        home,
        &["import", "--database-url", &pg, dump.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        pg_rows(),
        rows_before,
        "a refused import changed the database"
    );

    let truncated = home.join("truncated.jsonl");
    std::fs::write(&truncated, &text[..text.len() * 2 / 3]).unwrap();
    let corrupt = home.join("corrupt.jsonl");
    std::fs::write(
        &corrupt,
        text.replacen("carol@example.org", "mallory@example.org", 1),
    )
    .unwrap();
    for bad in [&truncated, &corrupt] {
        let fresh = pg_cluster::fresh_database().await;
        let (ok, _, err) = run(
            home,
            &["import", "--database-url", &fresh, bad.to_str().unwrap()],
        );
        assert!(!ok);
        assert!(err.contains("invalid dump"), "{err}");
        assert!(
            sluice_store::transfer::database_tables(&fresh)
                .await
                .unwrap()
                .is_empty(),
            "schema written"
        );
        let target = home.join("never.db");
        let (ok, _, _) = run(
            home,
            &[
                "import",
                "--database-url",
                &format!("sqlite://{}", target.display()),
                bad.to_str().unwrap(),
            ],
        );
        assert!(!ok);
        assert!(!target.exists());
    }
}
