//! Starts a real `s3s-fs` (an S3 server that verifies SigV4) for a test and stops it on
//! drop. Self-contained so other crates' tests can copy this file as is.
//!
//! Install once: `cargo install s3s-fs --version 0.14.1 --features binary --locked`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

// Each peer helper includes it itself so it stays includable alone (hence several copies
// when a crate includes more than one helper).
#[path = "peer_process.rs"]
#[allow(clippy::duplicate_mod)]
mod peer_process;
// For the storage tests' dead endpoints; not every crate that includes this file uses it.
#[allow(unused_imports)]
pub use peer_process::free_port;

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
        let (child, port) =
            peer_process::spawn_listening("s3s-fs", tmp.path(), Duration::from_secs(10), |port| {
                let mut cmd = Command::new(binary());
                cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                    .arg(&data_dir);
                cmd
            });
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
