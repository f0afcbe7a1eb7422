//! Starts a real `s3s-fs` (an S3 server that verifies SigV4) for a test and stops it on
//! drop. Self-contained so other crates' tests can copy this file as is.
//!
//! Install once: `cargo install s3s-fs --version 0.14.1 --features binary --locked`.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "sluice-test-access-key";
pub const SECRET_KEY: &str = "sluice-test-secret-key-0123456789";

/// A running s3s-fs; killed (and its data directory removed) on drop.
pub struct S3sFs {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    /// Bucket `b` is the directory `data_dir/b`.
    pub data_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// The s3s-fs binary from PATH or `~/.cargo/bin`; panics with install instructions if absent,
/// so a machine without it fails the tests instead of silently skipping them.
pub fn binary() -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"))
        .find(|p| p.is_file());
    let from_cargo = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs"))
        .filter(|p| p.is_file());
    from_path.or(from_cargo).unwrap_or_else(|| {
        panic!(
            "s3s-fs not found on PATH or in ~/.cargo/bin; install it with \
             `cargo install s3s-fs --version 0.14.1 --features binary --locked`"
        )
    })
}

/// A port that was free a moment ago. Racy by nature; the window is tiny in practice.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

impl S3sFs {
    /// Starts s3s-fs with [`ACCESS_KEY`]/[`SECRET_KEY`] and the given buckets created.
    pub fn start(buckets: &[&str]) -> S3sFs {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        // s3s-fs refuses to start without its root directory, even with no buckets.
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        for b in buckets {
            std::fs::create_dir_all(data_dir.join(b)).expect("create bucket dir");
        }
        let port = free_port();
        let mut child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(tmp.path().join("stderr.log"))
                    .map_or(Stdio::null(), Stdio::from),
            )
            .spawn()
            .expect("spawn s3s-fs");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(tmp.path().join("stderr.log")).unwrap_or_default();
                panic!("s3s-fs exited during startup: {status}\n{log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("s3s-fs did not listen on {addr} within 10s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        S3sFs {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            data_dir,
            _tmp: tmp,
        }
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
