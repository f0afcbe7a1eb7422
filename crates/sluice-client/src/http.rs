//! The one HTTP client every call goes through (API, token endpoints, IdP), so the CA
//! bundle, proxy, timeouts and `insecure` apply everywhere alike.

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use std::time::Duration;

/// Per-request timeout when none is configured. Long enough for a slow catalog call, short
/// enough that a dead server is reported rather than waited on forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl ClientConfig {
    /// Builds the HTTP client for these settings: the system's trusted roots plus the
    /// bundled webpki roots, plus `ca_bundle`; `proxy`; timeouts; and, only if `insecure`,
    /// no certificate verification.
    pub fn http_client(&self) -> Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("sluice-client/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout.unwrap_or(DEFAULT_TIMEOUT))
            .connect_timeout(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));

        // reqwest's rustls build trusts only the bundled webpki roots; corporate CAs live in
        // the system store, so add those too. Unreadable system certificates are not fatal
        // (the bundled roots and ca_bundle still apply).
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("skipping system certificates: {e}");
        }
        for cert in native.certs {
            if let Ok(c) = reqwest::Certificate::from_der(cert.as_ref()) {
                b = b.add_root_certificate(c);
            }
        }

        if let Some(path) = &self.ca_bundle {
            let src = self.source_of("ca-bundle");
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Config(format!(
                    "ca-bundle {} ({src}): cannot read: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientError::Config(format!(
                    "ca-bundle {} ({src}): not a PEM certificate bundle: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(ClientError::Config(format!(
                    "ca-bundle {} ({src}) contains no PEM certificates",
                    path.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }

        if let Some(proxy) = &self.proxy {
            let src = self.source_of("proxy");
            let p = reqwest::Proxy::all(proxy.as_str()).map_err(|e| {
                ClientError::Config(format!(
                    "proxy '{proxy}' ({src}) is not a valid proxy URL: {e}"
                ))
            })?;
            b = b.proxy(p);
        }

        if self.insecure {
            tracing::warn!("TLS certificate verification is disabled (insecure)");
            b = b.danger_accept_invalid_certs(true);
        }

        b.build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reports_bad_settings() {
        assert!(ClientConfig::default().http_client().is_ok());

        let dir = tempfile::tempdir().unwrap();
        let missing = ClientConfig {
            ca_bundle: Some(dir.path().join("nope.pem")),
            ..Default::default()
        };
        let e = missing.http_client().unwrap_err().to_string();
        assert!(e.contains("ca-bundle") && e.contains("nope.pem"), "{e}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = ClientConfig {
            ca_bundle: Some(junk),
            ..Default::default()
        }
        .http_client()
        .unwrap_err()
        .to_string();
        assert!(e.contains("junk.pem"), "{e}");

        let e = ClientConfig {
            proxy: Some("::::".into()),
            ..Default::default()
        }
        .http_client()
        .unwrap_err()
        .to_string();
        assert!(e.contains("proxy"), "{e}");
    }

    #[test]
    fn accepts_a_real_ca_bundle() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, ca.pem()).unwrap();
        assert!(ClientConfig {
            ca_bundle: Some(pem),
            ..Default::default()
        }
        .http_client()
        .is_ok());
    }
}
