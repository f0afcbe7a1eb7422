//! Throw-away OpenLDAP slapd for tests, started with the repository's peer scripts
//! (`tests/peers/slapd/start.sh DATADIR PORT`, stopped with `stop.sh DATADIR` on drop).
//!
//! Directory contents: `tests/peers/slapd/seed.ldif` (suffix dc=example,dc=org; service
//! account cn=svc / svcpass; users alice / alicepass and bob / bobpass).
//!
//! Missing slapd is a test FAILURE (not a skip): install it with
//! `tests/peers/slapd.sh install`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const SVC_DN: &str = "cn=svc,dc=example,dc=org";
pub const SVC_PASSWORD: &str = "svcpass";
pub const ALICE_DN: &str = "uid=alice,ou=people,dc=example,dc=org";
pub const BOB_DN: &str = "uid=bob,ou=people,dc=example,dc=org";

/// PATH with the sbin directories, where Debian puts slapd and slaptest.
fn path_env() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/local/sbin:/usr/sbin:/sbin")
}

fn on_path(bin: &str) -> bool {
    path_env()
        .split(':')
        .any(|d| !d.is_empty() && Path::new(d).join(bin).is_file())
}

/// Panics with install instructions when slapd or the ldap-utils are missing.
pub fn require_slapd() {
    let missing: Vec<&str> = ["slapd", "slaptest", "ldapadd", "ldapsearch"]
        .into_iter()
        .filter(|b| !on_path(b))
        .collect();
    if !missing.is_empty() {
        panic!(
            "OpenLDAP is required for the LDAP tests but {missing:?} not found on PATH or in \
             /usr/sbin.\nInstall it with:  tests/peers/slapd.sh install\n(= apt-get update && \
             DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils)"
        );
    }
}

/// `tests/peers/slapd` of this repository (start.sh, stop.sh, seed.ldif).
pub fn peer_scripts_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR = <root>/crates/sluice-auth
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/slapd")
}

fn script(name: &str) -> PathBuf {
    let p = peer_scripts_dir().join(name);
    assert!(p.is_file(), "{} not found in the repository", p.display());
    p
}

/// A free port on 127.0.0.1 (bound then released; tiny race accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Files of the TLS set-up (see [`Slapd::start_tls`]).
pub struct TlsFiles {
    /// PEM of the CA that signed slapd's certificate.
    pub ca_pem: PathBuf,
    /// PEM of an unrelated CA (for "wrong CA" tests).
    pub other_ca_pem: PathBuf,
    /// ldaps:// port (the plain `port` accepts StartTLS).
    pub ldaps_port: u16,
}

pub struct Slapd {
    pub port: u16,
    dir: tempfile::TempDir,
    pub tls: Option<TlsFiles>,
    /// slapd we spawned ourselves (TLS variant), reaped on stop.
    child: Option<Child>,
    /// Runs with SLAPD_DEBUG=256 (every operation logged to <datadir>/slapd.log).
    logged: bool,
}

/// One BIND or SRCH request seen in slapd's stats log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedOp {
    /// slapd connection number.
    pub conn: u64,
    /// "BIND" or "SRCH".
    pub kind: &'static str,
    /// Bind DN, or the search filter as slapd logs it (escapes as `\2A`, upper case).
    pub arg: String,
}

impl Slapd {
    /// Starts a seeded slapd on an ephemeral port with a fresh data directory.
    pub fn start() -> Slapd {
        Self::start_inner(false)
    }

    /// Like [`start`](Self::start) with operation logging (`SLAPD_DEBUG=256`), so tests can
    /// inspect the binds and searches slapd received via [`ops`](Self::ops).
    pub fn start_logged() -> Slapd {
        Self::start_inner(true)
    }

    fn start_inner(logged: bool) -> Slapd {
        require_slapd();
        let dir = tempfile::Builder::new()
            .prefix("sluice-slapd-")
            .tempdir()
            .expect("tempdir");
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port();
            match run_start(dir.path(), port, logged) {
                Ok(()) => {
                    return Slapd {
                        port,
                        dir,
                        tls: None,
                        child: None,
                        logged,
                    }
                }
                Err(e) => {
                    last_err = e;
                    let _ = run_stop(dir.path());
                }
            }
        }
        panic!("could not start slapd: {last_err}");
    }

    /// Like [`start`](Self::start), then restarts slapd with TLS: a fresh CA and a server
    /// certificate for `127.0.0.1`/`localhost` (made with rcgen), StartTLS on `port`
    /// and ldaps:// on `tls.ldaps_port`.
    pub fn start_tls() -> Slapd {
        let mut s = Slapd::start();
        run_stop(s.dir.path()).expect("stop.sh");
        let d = s.dir.path().to_path_buf();

        let (ca_pem, cert_pem, key_pem) = make_certs();
        let (other_ca_pem, _, _) = make_certs();
        let ca = d.join("ca.pem");
        let other = d.join("other-ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        std::fs::write(&other, other_ca_pem).unwrap();
        std::fs::write(d.join("server.pem"), cert_pem).unwrap();
        std::fs::write(d.join("server.key"), key_pem).unwrap();

        // start.sh always rewrites slapd.conf, so the TLS variant runs slapd itself on the
        // seeded data directory, with the TLS directives added to the global section.
        let conf_path = d.join("slapd.conf");
        let conf = std::fs::read_to_string(&conf_path).expect("slapd.conf");
        let tls_lines = format!(
            "TLSCACertificateFile {0}/ca.pem\nTLSCertificateFile {0}/server.pem\n\
             TLSCertificateKeyFile {0}/server.key\n\n",
            d.display()
        );
        let at = conf.find("modulepath").expect("modulepath in slapd.conf");
        let conf = format!("{}{}{}", &conf[..at], tls_lines, &conf[at..]);
        std::fs::write(&conf_path, conf).unwrap();

        let mut last_err = String::new();
        for _ in 0..3 {
            let ldaps_port = free_port();
            let urls = format!(
                "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
                s.port, ldaps_port
            );
            let log = std::fs::File::create(d.join("slapd-tls.log")).unwrap();
            let child = Command::new("slapd")
                .env("PATH", path_env())
                .args(["-d", "0", "-f"])
                .arg(&conf_path)
                .args(["-h", &urls])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn slapd");
            std::fs::write(d.join("slapd.pid"), child.id().to_string()).unwrap();
            s.child = Some(child);
            s.tls = Some(TlsFiles {
                ca_pem: ca.clone(),
                other_ca_pem: other.clone(),
                ldaps_port,
            });
            match s.wait_tls_ready() {
                Ok(()) => return s,
                Err(e) => {
                    last_err = e;
                    s.stop();
                }
            }
        }
        panic!("could not start slapd with TLS: {last_err}");
    }

    fn wait_tls_ready(&mut self) -> Result<(), String> {
        let ca = self.tls.as_ref().unwrap().ca_pem.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = Command::new("ldapsearch")
                .env("LDAPTLS_CACERT", &ca)
                // Bounded, so a server that accepts and stays silent cannot hold the test.
                .args(["-o", "nettimeout=2"])
                .args([
                    "-x",
                    "-ZZ",
                    "-H",
                    &self.url(),
                    "-D",
                    SVC_DN,
                    "-w",
                    SVC_PASSWORD,
                ])
                .args(["-s", "base", "-b", SUFFIX, "dn"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            // Checked after an answer too: on a taken port, another slapd answers.
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    let log = std::fs::read_to_string(self.dir.path().join("slapd-tls.log"))
                        .unwrap_or_default();
                    return Err(format!("slapd exited ({st}):\n{log}"));
                }
            }
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("slapd-tls.log"))
                    .unwrap_or_default();
                return Err(format!("slapd with TLS not ready after 10s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ldap://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://<host>:<ldaps_port>` (TLS variant only).
    pub fn ldaps_url(&self, host: &str) -> String {
        format!(
            "ldaps://{host}:{}",
            self.tls.as_ref().expect("TLS slapd").ldaps_port
        )
    }

    /// BIND and SRCH requests logged so far (needs [`start_logged`](Self::start_logged)),
    /// excluding the admin connections of start.sh and the root-DSE readiness probes.
    /// Note: start.sh truncates the log, so a restart forgets earlier operations.
    pub fn ops(&self) -> Vec<LoggedOp> {
        assert!(self.logged, "ops() needs Slapd::start_logged()");
        let log = std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default();
        let mut out = Vec::new();
        for line in log.lines() {
            let Some(at) = line.find(" conn=") else {
                continue;
            };
            let rest = &line[at + 6..];
            let Some((conn, rest)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(conn) = conn.parse::<u64>() else {
                continue;
            };
            // rest: `op=N BIND dn="…" method=128` | `op=N SRCH base="…" scope=2 deref=0 filter="…"`
            let Some((_op, rest)) = rest.split_once(' ') else {
                continue;
            };
            if let Some(r) = rest.strip_prefix("BIND dn=\"") {
                if !r.contains("\" method=") {
                    continue; // the second, "mech=SIMPLE" line of the same bind
                }
                let dn = r.split("\" method=").next().unwrap_or("").to_string();
                if dn.eq_ignore_ascii_case("cn=admin,dc=example,dc=org") {
                    continue;
                }
                out.push(LoggedOp {
                    conn,
                    kind: "BIND",
                    arg: dn,
                });
            } else if let Some(r) = rest.strip_prefix("SRCH base=\"") {
                if r.starts_with('"') {
                    continue; // root DSE probe
                }
                if let Some(f) = r.split(" filter=\"").nth(1) {
                    let f = f.strip_suffix('"').unwrap_or(f).to_string();
                    out.push(LoggedOp {
                        conn,
                        kind: "SRCH",
                        arg: f,
                    });
                }
            }
        }
        // Admin connections: drop every op on a connection that bound as admin.
        let admin_conns: std::collections::HashSet<u64> = log
            .lines()
            .filter(|l| l.contains("BIND dn=\"cn=admin,dc=example,dc=org\""))
            .filter_map(|l| l.split(" conn=").nth(1)?.split(' ').next()?.parse().ok())
            .collect();
        out.retain(|o| !admin_conns.contains(&o.conn));
        out
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops slapd (stop.sh); the data directory stays.
    pub fn stop(&mut self) {
        let _ = run_stop(self.dir.path());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts slapd again on the same port and data directory (plain variant).
    pub fn restart(&mut self) {
        assert!(self.tls.is_none(), "restart() is for the plain variant");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match run_start(self.dir.path(), self.port, self.logged) {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("slapd restart failed: {e}"),
                Err(_) => {
                    let _ = run_stop(self.dir.path());
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_start(dir: &Path, port: u16, logged: bool) -> Result<(), String> {
    let out = Command::new("bash")
        .arg(script("start.sh"))
        .arg(dir)
        .arg(port.to_string())
        .env("PATH", path_env())
        .env("SLAPD_DEBUG", if logged { "256" } else { "0" })
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running start.sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "start.sh {} {port} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn run_stop(dir: &Path) -> Result<(), String> {
    let out = Command::new("bash")
        .arg(script("stop.sh"))
        .arg(dir)
        .env("PATH", path_env())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running stop.sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "stop.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// (CA PEM, server certificate PEM for 127.0.0.1 + localhost, server key PEM).
fn make_certs() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sluice test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
