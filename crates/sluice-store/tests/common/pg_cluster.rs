//! A throwaway PostgreSQL 15 cluster per test binary (one database per test). Shared by
//! the store suite and the server's replica tests (included with `#[path]`).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct Cluster {
    pub port: u16,
    #[allow(dead_code)]
    pub dir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `cmd` through the shell, as the `postgres` OS user when we are root (the server
/// refuses to run as root); on failure, returns what it printed.
fn try_run(cmd: &str, as_postgres: bool) -> Result<(), String> {
    let out = if as_postgres {
        Command::new("su").args(["postgres", "-c", cmd]).output()
    } else {
        Command::new("sh").args(["-c", cmd]).output()
    }
    .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn run(cmd: &str, as_postgres: bool) {
    if let Err(e) = try_run(cmd, as_postgres) {
        panic!("{e}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the PostgreSQL server binaries are on PATH (benches skip without them; tests
/// fail with instructions instead).
pub fn available() -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|b| have(b))
}

fn start() -> Cluster {
    for bin in ["initdb", "pg_ctl", "postgres"] {
        assert!(
            have(bin),
            "PostgreSQL server binary `{bin}` not found on PATH. The PostgreSQL store tests \
             start a real PostgreSQL 15 cluster; install it with \
             `apt-get install -y postgresql-15` and put its bin directory \
             (e.g. /usr/lib/postgresql/15/bin) on PATH."
        );
    }
    let as_postgres = is_root();
    let dir = std::env::temp_dir().join(format!("sluice-pg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    if as_postgres {
        run(&format!("chown postgres {}", dir.display()), false);
    }
    let d = dir.display();
    run(
        &format!("initdb -D {d}/data -U postgres --auth=trust --no-sync -E UTF8 >/dev/null"),
        as_postgres,
    );
    // The port is free when picked but not reserved: another process (a parallel test
    // binary's cluster, say) can take it before the server binds it, so a failed start is
    // tried again on a new port.
    const START_ATTEMPTS: usize = 3;
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let started = try_run(
            &format!(
                "pg_ctl -D {d}/data -l {d}/server.log -w -t 60 -o \"-c listen_addresses=127.0.0.1 \
                 -p {port} -k {d} -c max_connections=300 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off\" start >/dev/null"
            ),
            as_postgres,
        );
        match started {
            Ok(()) => {
                spawn_reaper(&dir, as_postgres);
                return Cluster { port, dir };
            }
            Err(e) => {
                // A start that timed out may leave a server behind, holding the data
                // directory against the next attempt.
                let _ = try_run(
                    &format!("pg_ctl -D {d}/data -m immediate -w stop >/dev/null 2>&1"),
                    as_postgres,
                );
                failures.push(format!("port {port}: {e}"));
            }
        }
    }
    let log = std::fs::read_to_string(dir.join("server.log"))
        .unwrap_or_else(|e| format!("(no server log: {e})"));
    panic!(
        "PostgreSQL did not start in {START_ATTEMPTS} attempts:\n{}\n\
         server log ({d}/server.log):\n{log}",
        failures.join("\n")
    );
}

/// Statics are never dropped, so a detached watchdog stops the cluster (`pg_ctl stop -m
/// fast`) and removes its directory once this test process has exited, however it ends.
#[allow(clippy::zombie_processes)] // outlives this process on purpose; never waited for
fn spawn_reaper(dir: &Path, as_postgres: bool) {
    let d = dir.display();
    let stop = format!("pg_ctl -D {d}/data -m fast -w stop >/dev/null 2>&1");
    let stop = if as_postgres {
        format!("su postgres -c '{stop}'")
    } else {
        stop
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop}; rm -rf {d}",
        pid = std::process::id()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .or_else(|_| {
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .expect("spawn the cluster reaper");
}

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

pub fn url(db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{db}", cluster().port)
}

/// A new empty database on the shared cluster; returns its URL.
pub async fn fresh_database() -> String {
    use sqlx::Connection;
    let db = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&url("postgres")).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    url(&db)
}
