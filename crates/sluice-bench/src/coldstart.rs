//! Cold start as a user sees it: the whole-process time from spawning `sluice serve` to its
//! first `200` on `/health`, polled over raw TCP every millisecond, and the idle RSS
//! (`VmRSS` from /proc) one second later. Two cases, `--runs` times each, alternating:
//! a first start (empty data directory: key files, database, default warehouse are
//! created) and a restart (the data directory of an earlier run).

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The `sluice` binary (release build).
    #[arg(long)]
    pub bin: PathBuf,
    /// Runs of each case.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Where the data directories go (a fresh temporary directory is made inside).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub scratch: PathBuf,
    /// Give up on one start after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

fn free_addr() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())
}

/// One `GET /health` over a new connection; whether it answered 200.
fn health_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    let mut n = 0;
    while n < head.len() {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => return false,
            Ok(k) => n += k,
        }
    }
    &head == b"HTTP/1.1 200"
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn spawn(bin: &Path, data_dir: &Path, addr: SocketAddr) -> Result<Child, String> {
    Command::new(bin)
        .arg("serve")
        .args(["--listen", &addr.to_string(), "--s3-listen", ""])
        .arg("--data-dir")
        .arg(data_dir)
        .env("SLUICE_LOG_LEVEL", "warn")
        .env("SLUICE_BOOTSTRAP_ACCESS_KEY_ID", "AKIACOLDSTART0000000")
        .env(
            "SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY",
            "coldstartSecret0123456789abcdefghijklmno",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", bin.display()))
}

fn stop(mut child: Child) {
    // SIGTERM (graceful), then wait; SIGKILL if it does not go within 5 s.
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One start: (ms to the first 200, idle RSS in kB one second later).
fn one(a: &Args, data_dir: &Path) -> Result<(f64, u64), String> {
    let addr = free_addr()?;
    let start = Instant::now();
    let mut child = spawn(&a.bin, data_dir, addr)?;
    let deadline = start + Duration::from_secs(a.timeout);
    loop {
        if health_ok(addr) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("sluice serve exited before answering: {status}"));
        }
        if Instant::now() > deadline {
            stop(child);
            return Err(format!("no 200 on /health within {} s", a.timeout));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_kb(child.id()).unwrap_or(0);
    stop(child);
    Ok((ms, rss))
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "min": r(v[0]),
        "median": r(v[v.len() / 2]),
        "max": r(v[v.len() - 1]),
        "runs": v.iter().map(|x| r(*x)).collect::<Vec<_>>(),
    })
}

pub fn run(a: &Args) -> Result<(), String> {
    let runs = a.runs.max(1);
    let scratch = a
        .scratch
        .join(format!("sluice-coldstart-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let result = (|| {
        let restart_dir = scratch.join("restart");
        one(a, &restart_dir)?; // initializes the directory the restarts reuse
        let (mut first, mut restart, mut rss) = (vec![], vec![], vec![]);
        for i in 0..runs {
            let fresh = scratch.join(format!("fresh-{i}"));
            let order = if i % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_fresh in order {
                let (ms, kb) = one(a, if is_fresh { &fresh } else { &restart_dir })?;
                if is_fresh {
                    first.push(ms);
                } else {
                    restart.push(ms);
                    rss.push(kb as f64 / 1024.0);
                }
            }
            let _ = std::fs::remove_dir_all(&fresh);
        }
        Ok::<Value, String>(json!({
            "first_start_ms": summary(first),
            "restart_ms": summary(restart),
            "idle_rss_mb": summary(rss),
            "runs": runs,
            "how": "spawn `sluice serve` (SQLite default, gateway off, log level warn) → first 200 on GET /health, polled over TCP every 1 ms; RSS = VmRSS 1 s after that (restarts)",
        }))
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{}", result?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn min_median_max() {
        let s = summary(vec![3.0, 1.0, 2.0]);
        assert_eq!(s["min"], 1.0);
        assert_eq!(s["median"], 2.0);
        assert_eq!(s["max"], 3.0);
    }
}
