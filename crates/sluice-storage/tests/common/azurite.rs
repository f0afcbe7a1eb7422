//! Starts a real Azurite 3.35 Blob emulator for a test and stops it on drop. It enforces
//! Shared Key and service SAS signatures, permissions and expiry, but has no DFS endpoint and
//! no hierarchical namespace (so no directory SAS).
//!
//! Install once: `bash tests/peers/azurite.sh install` (npm, into `<repo>/.peers/azurite`;
//! `$SLUICE_AZURITE_DIR` overrides the folder).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};

pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (public, documented by Microsoft).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    pub port: u16,
    /// `127.0.0.1:<port>`, the profile's `host`.
    pub host: String,
    /// `http://127.0.0.1:<port>/devstoreaccount1`
    pub blob_endpoint: String,
    _tmp: tempfile::TempDir,
}

pub fn binary() -> PathBuf {
    let dir = std::env::var_os("SLUICE_AZURITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.peers/azurite"));
    let bin = dir.join("node_modules/.bin/azurite-blob");
    assert!(
        bin.exists(),
        "Azurite not found at {}; install it with `bash tests/peers/azurite.sh install`",
        bin.display()
    );
    bin
}

// Each peer helper includes it itself so it stays includable alone (hence several copies
// when a crate includes more than one helper).
#[path = "peer_process.rs"]
#[allow(clippy::duplicate_mod)]
mod peer_process;

impl Azurite {
    /// Starts Azurite and creates the given containers.
    pub async fn start(containers: &[&str]) -> Azurite {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (child, port) =
            peer_process::spawn_listening("azurite", tmp.path(), Duration::from_secs(20), |port| {
                let mut cmd = Command::new(binary());
                cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                    .arg("--location")
                    .arg(tmp.path())
                    .args(["--disableTelemetry", "--skipApiVersionCheck", "--silent"]);
                cmd
            });
        let az = Azurite {
            child,
            port,
            host: format!("127.0.0.1:{port}"),
            blob_endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            _tmp: tmp,
        };
        for c in containers {
            az.create_container(c).await;
        }
        az
    }

    /// Creates a container with an account SAS (`ss=b&srt=c&sp=c`), which needs no Shared
    /// Key request signing.
    pub async fn create_container(&self, name: &str) {
        let sas = account_sas("c", "c", chrono::Utc::now() + chrono::Duration::minutes(10));
        let resp = reqwest::Client::new()
            .put(format!(
                "{}/{name}?restype=container&{sas}",
                self.blob_endpoint
            ))
            .header("x-ms-version", "2021-08-06")
            .header("content-length", "0")
            .send()
            .await
            .expect("create container");
        assert!(
            resp.status().is_success(),
            "create container {name}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
}

/// An account SAS over the blob service, 2021-08-06 layout, for test setup.
pub fn account_sas(
    resource_types: &str,
    perms: &str,
    expiry: chrono::DateTime<chrono::Utc>,
) -> String {
    let se = expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let sts = format!("{ACCOUNT}\n{perms}\nb\n{resource_types}\n\n{se}\n\n\n2021-08-06\n\n");
    let key = base64::engine::general_purpose::STANDARD
        .decode(KEY)
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(sts.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "sv=2021-08-06&ss=b&srt={resource_types}&sp={perms}&se={}&sig={}",
        enc(&se),
        enc(&sig)
    )
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
