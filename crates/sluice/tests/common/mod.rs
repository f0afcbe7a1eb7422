//! The harness of the CLI tests (tests/cli.rs, tests/login.rs): a real `sluice serve`
//! process and the built binary run with a clean environment and a temporary HOME.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");
pub const ADMIN_KEY: &str = "AKIACLITEST000000001";
pub const ADMIN_SECRET: &str = "clitestsecretclitestsecretclitestsecret0";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A command with every SLUICE_* variable of this process removed and HOME moved away.
pub fn clean_command(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SLUICE_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home).env_remove("XDG_CONFIG_HOME");
    c
}

/// A `sluice serve` child process; killed on drop.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with extra environment (e.g. `SLUICE_CONFIG` naming a TOML file with
    /// identity providers, `SLUICE_TOKEN_TTL_SECONDS`).
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        // The port may be taken between probing and binding: then try another one.
        for _ in 0..3 {
            let port = free_port();
            let mut child = clean_command(dir.path())
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    // The S3 gateway on an ephemeral port, so parallel servers never collide.
                    "--s3-listen",
                    "127.0.0.1:0",
                    "--data-dir",
                ])
                .arg(&data_dir)
                .env("SLUICE_BOOTSTRAP_ACCESS_KEY_ID", ADMIN_KEY)
                .env("SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY", ADMIN_SECRET)
                .env("SLUICE_LOG_LEVEL", "warn")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .expect("start sluice serve");
            if wait_healthy(&mut child, port) {
                return Server {
                    child,
                    endpoint: format!("http://127.0.0.1:{port}"),
                    data_dir,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("sluice serve did not become healthy; its log:\n{log}");
    }
}

/// Polls GET /health until it answers 200 (false if the process exits or 30 s pass).
pub fn wait_healthy(child: &mut Child, port: u16) -> bool {
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
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one CLI run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success:\n{self:#?}");
        self
    }
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit code {code}:\n{self:#?}");
        self
    }
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self:#?}"))
    }
    /// The error output is one `error:` line, maybe with a `hint:` line.
    #[track_caller]
    pub fn one_line_error(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(!lines.is_empty() && lines.len() <= 2, "{self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        if lines.len() == 2 {
            assert!(lines[1].starts_with("hint: "), "{self:#?}");
        }
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        lines[0]
    }
}

/// The CLI's environment: a temp HOME, profile file and token cache dir.
pub struct Cli {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Cli {
    /// Configured by environment as the bootstrap admin against `server`.
    pub fn admin(server: &Server) -> Cli {
        let mut c = Cli::bare();
        c.set("SLUICE_ENDPOINT", &server.endpoint);
        c.set("SLUICE_ACCESS_KEY_ID", ADMIN_KEY);
        c.set("SLUICE_SECRET_ACCESS_KEY", ADMIN_SECRET);
        c
    }

    /// Only the profile file, the token cache and no keyring.
    pub fn bare() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cli {
            env: Vec::new(),
            dir,
        };
        let config = c.config_file();
        let cache = c.dir.path().join("tokens");
        c.set("SLUICE_CONFIG_FILE", config.to_str().unwrap());
        c.set("SLUICE_NO_KEYRING", "1");
        c.set("SLUICE_TOKEN_CACHE_DIR", cache.to_str().unwrap());
        c
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("tokens").join("tokens.json")
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], None)
    }

    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut c = clean_command(self.dir.path());
        c.args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        run_command(c, stdin)
    }

    /// `--output json` run that must succeed; its JSON.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        self.run(&a).ok().json()
    }
}

/// Runs a prepared `sluice` command to completion, feeding `stdin` when given.
pub fn run_command(mut c: Command, stdin: Option<&str>) -> Run {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("run sluice");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
