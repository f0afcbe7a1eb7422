//! Starts a real moto server (S3 + IAM + STS emulation) for a test and stops it on drop,
//! plus a small SigV4-signed query-API client to set up IAM users and roles in it.
//!
//! Install once, from the workspace root:
//! `python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]'`,
//! or point `MOTO_SERVER_BIN` at a `moto_server` executable.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};

// Included here too, so this helper stays includable alone (see peer_process.rs).
#[path = "peer_process.rs"]
#[allow(clippy::duplicate_mod)]
mod peer_process;

/// moto's default account; every ARN it issues lives there.
pub const ACCOUNT: &str = "123456789012";

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
    _tmp: tempfile::TempDir,
}

/// `$MOTO_SERVER_BIN`, else `<workspace>/.venv-moto/bin/moto_server`; panics with install
/// instructions if neither exists, so a machine without moto fails instead of skipping.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MOTO_SERVER_BIN={} does not exist",
            p.display()
        );
        return p;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(".venv-moto/bin/moto_server");
    if p.is_file() {
        return p;
    }
    panic!(
        "moto_server not found at {} and MOTO_SERVER_BIN is unset; install it from the \
         workspace root with `python3 -m venv .venv-moto && .venv-moto/bin/pip install 'moto[server]'`",
        p.display()
    )
}

/// One plain HTTP/1.0 exchange; returns (status, body). Blocking on purpose: used for
/// readiness checks and moto's control API, outside any async runtime's hot path.
fn http_raw(addr: SocketAddr, request: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

impl Moto {
    /// Starts moto_server on a free port and waits until its API answers. Python imports for
    /// seconds before it binds, so the port can be taken meanwhile (moto then exits); that
    /// start is tried again on a new port (see `spawn_ready`).
    pub fn start() -> Moto {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (child, port) = peer_process::spawn_ready(
            "moto_server",
            tmp.path(),
            Duration::from_secs(30),
            |port| {
                let mut cmd = Command::new(binary());
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                cmd
            },
            |addr| {
                let get = format!("GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
                matches!(http_raw(addr, &get), Ok((200, _)))
            },
        );
        Moto {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            _tmp: tmp,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Turns moto's signature and IAM policy checks on for every following request (they
    /// are off by default, which is what lets the setup create the first user).
    pub fn enable_auth(&self) {
        let req = format!(
            "POST /moto-api/reset-auth HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: text/plain\r\nContent-Length: 1\r\n\r\n0",
            self.port
        );
        let (status, body) = http_raw(self.addr(), &req).expect("reset-auth");
        assert_eq!(status, 200, "reset-auth: {body}");
    }

    /// moto's internal state dump (`/moto-api/data.json`), for asserting on what a call
    /// stored.
    pub fn data(&self) -> serde_json::Value {
        let req = format!(
            "GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        );
        let (status, body) = http_raw(self.addr(), &req).expect("data.json");
        assert_eq!(status, 200, "data.json: {body}");
        serde_json::from_str(&body).expect("data.json is JSON")
    }

    /// A SigV4-signed AWS query-API call (IAM: service "iam"; STS: "sts"). Returns
    /// (status, XML body).
    pub async fn query(
        &self,
        service: &str,
        creds: (&str, &str, Option<&str>),
        params: &[(&str, &str)],
    ) -> (u16, String) {
        let version = if service == "iam" {
            "2010-05-08"
        } else {
            "2011-06-15"
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().copied())
            .append_pair("Version", version)
            .finish();
        let uri = format!("{}/", self.endpoint);
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let identity = aws_credential_types::Credentials::new(
            creds.0,
            creds.1,
            creds.2.map(str::to_string),
            None,
            "test",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing params")
            .into();
        let signable = SignableRequest::new(
            "POST",
            uri.as_str(),
            [("content-type", content_type)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable request");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut req = reqwest::Client::new()
            .post(&uri)
            .header("content-type", content_type)
            .body(body.clone());
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("moto query call");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// `query` for setup calls that must succeed.
    pub async fn query_ok(
        &self,
        service: &str,
        creds: (&str, &str, Option<&str>),
        params: &[(&str, &str)],
    ) -> String {
        let (status, body) = self.query(service, creds, params).await;
        assert_eq!(status, 200, "{params:?} -> {body}");
        body
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the first `<tag>…</tag>` in an XML answer.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_string())
}
