//! Starting a peer process for a test: a free loopback port, the process with its stderr in
//! a log file, and a wait until it accepts connections. Included with `#[path]` by each peer
//! helper beside it, so those stay includable one by one from other crates' tests.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago. Racy by nature; the window is tiny in practice.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Spawns `cmd` (stdin and stdout closed, stderr to `<log_dir>/stderr.log`) and waits until
/// it listens on 127.0.0.1:`port`. Panics with the peer's stderr if it exits first, and
/// kills it if it does not listen within `timeout`.
pub fn spawn_listening(
    name: &str,
    cmd: &mut Command,
    log_dir: &Path,
    port: u16,
    timeout: Duration,
) -> Child {
    let log = log_dir.join("stderr.log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_or(Stdio::null(), Stdio::from))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("{name} exited during startup: {status}\n{log}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} did not listen on {addr} within {}s",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
