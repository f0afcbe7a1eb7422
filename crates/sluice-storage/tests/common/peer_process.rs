//! Starting a peer process for a test: a free loopback port, the process with its stderr in
//! a log file, and a wait until it accepts connections. Included with `#[path]` by each peer
//! helper beside it, so those stay includable one by one from other crates' tests.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago. Racy by nature: `spawn_listening` retries on a new one.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Starts the peer that `command(port)` describes on a free loopback port (stdin and stdout
/// closed, stderr to `<log_dir>/stderr.log`) and waits until it listens there; returns it
/// with its port. See [`spawn_ready`] for the retries.
pub fn spawn_listening(
    name: &str,
    log_dir: &Path,
    timeout: Duration,
    command: impl Fn(u16) -> Command,
) -> (Child, u16) {
    spawn_ready(name, log_dir, timeout, command, |addr| {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
}

/// Like [`spawn_listening`], with the peer ready once `ready(addr)` holds (e.g. its API
/// answers, not just its socket).
///
/// A start that fails is tried again on a new port, up to three times: the port picked can be
/// taken by another process before the peer binds it (the peer then exits), and a node peer
/// now and then hangs before it listens (it is killed after `timeout`). When every try
/// failed, the panic shows each one's stderr.
pub fn spawn_ready(
    name: &str,
    log_dir: &Path,
    timeout: Duration,
    command: impl Fn(u16) -> Command,
    ready: impl Fn(SocketAddr) -> bool,
) -> (Child, u16) {
    let log = log_dir.join("stderr.log");
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        let port = free_port();
        let mut child = command(port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).map_or(Stdio::null(), Stdio::from))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + timeout;
        let failure = loop {
            let answered = ready(addr);
            // Checked after an answer too: what answered may be whoever took the port.
            if let Ok(Some(status)) = child.try_wait() {
                break format!("exited during startup: {status}");
            }
            if answered {
                return (child, port);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break format!("not ready on {addr} within {}s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        eprintln!("{name}: try {attempt} {failure}; starting it again on a new port");
        failures.push(format!("try {attempt}: {failure}\n{stderr}"));
    }
    panic!("{name} did not start:\n{}", failures.join("\n"));
}
