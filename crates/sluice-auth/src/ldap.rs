//! LDAP login: verify a username/password against a directory (OpenLDAP, Active Directory…)
//! with the classic "search, then bind as the user" flow. Option names follow lakeFS.
//!
//! Flow of [`LdapAuthenticator::authenticate`]:
//! 1. Local checks, no network: empty password (an LDAP simple bind with a DN and an empty
//!    password is an *unauthenticated* bind that servers answer with success), empty or
//!    over-long username, control characters in the username → `InvalidCredentials`.
//! 2. On a pooled *service* connection (bound as `bind_dn`): subtree search under
//!    `user_base_dn` with `(&<user_filter>(<username_attribute>=<escaped username>))`.
//!    Zero or several entries → `InvalidCredentials`.
//! 3. On a separate, fresh connection: simple bind as the entry's DN with the given
//!    password. Result 49 (and the other "this user may not log in" codes) →
//!    `InvalidCredentials`; success → [`LdapIdentity`]. Pooled connections therefore stay
//!    bound as the service account forever.
//!
//! Service connections are pooled (at most `pool_size` live at once). A connection that
//! fails at the transport level (or times out) is discarded; if it came from the pool the
//! search is retried once on a fresh connection, so a directory restart costs no login.
//!
//! Errors: [`LdapError::Unavailable`] carries a detail string meant for the server LOG only;
//! both variants display fixed messages, so echoing `err.to_string()` to a client is safe.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{
    ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use url::Url;

/// Longest username accepted (bytes); longer input is rejected without a lookup.
pub const MAX_USERNAME_BYTES: usize = 256;
/// Longest password accepted (bytes); longer input is rejected without a bind.
pub const MAX_PASSWORD_BYTES: usize = 4096;
/// Idle pooled connections older than this are closed instead of reused (servers such as
/// Active Directory drop idle connections silently after a while).
const MAX_IDLE: Duration = Duration::from_secs(300);

fn default_username_attribute() -> String {
    "uid".into()
}
fn default_user_filter() -> String {
    "(objectClass=person)".into()
}
fn default_email_attribute() -> String {
    "mail".into()
}
fn default_friendly_name_attribute() -> String {
    "cn".into()
}
fn default_connection_timeout_seconds() -> u64 {
    5
}
fn default_request_timeout_seconds() -> u64 {
    10
}
fn default_pool_size() -> usize {
    4
}

/// LDAP settings (lakeFS names). `bind_password` never prints itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port` (default ports 389 / 636).
    pub server_endpoint: String,
    /// Upgrade an `ldap://` connection with StartTLS (not allowed with `ldaps://`).
    #[serde(default)]
    pub start_tls: bool,
    /// PEM file with the CA certificate(s) that sign the directory's certificate, for
    /// ldaps/StartTLS. When set, ONLY these CAs are trusted; otherwise the system store.
    #[serde(default)]
    pub ca_cert_file: Option<PathBuf>,
    /// Service account used for the user search.
    pub bind_dn: String,
    pub bind_password: sluice_core::Secret,
    /// Attribute the login name is matched against (`uid`; `sAMAccountName` on AD).
    #[serde(default = "default_username_attribute")]
    pub username_attribute: String,
    /// Subtree searched for users.
    pub user_base_dn: String,
    /// Extra filter ANDed to the username match, e.g. `(objectClass=inetOrgPerson)` or
    /// `(memberOf=cn=lake,ou=groups,dc=example,dc=org)`. Default `(objectClass=person)`.
    /// Parentheses around a single item may be omitted.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Group a first-time LDAP user is put in (used by the caller, not here).
    #[serde(default)]
    pub default_user_group: Option<String>,
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    #[serde(default = "default_friendly_name_attribute")]
    pub friendly_name_attribute: String,
    /// TCP connect (+ StartTLS/TLS handshake) timeout.
    #[serde(default = "default_connection_timeout_seconds")]
    pub connection_timeout_seconds: u64,
    /// Timeout of each LDAP operation (bind, search), and of waiting for a pooled connection.
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Maximum number of live service connections.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Accept LDAP username/password as HTTP Basic credentials on the API (used by the caller).
    #[serde(default)]
    pub allow_basic_auth: bool,
}

/// Who logged in, as the directory describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct LdapIdentity {
    /// The entry's DN.
    pub dn: String,
    /// The directory's own value of `username_attribute` (so `ALICE` or ` alice` logs in
    /// as `alice` when the attribute matches case/space-insensitively, as `uid` does).
    pub username: String,
    pub email: Option<String>,
    pub friendly_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Wrong password, unknown/ambiguous/filtered-out user, or input rejected locally.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The directory could not answer (down, timeout, TLS failure, service bind refused,
    /// misconfiguration). The string is detail for the log; never send it to a client.
    /// Also returned by [`LdapAuthenticator::new`] for an invalid configuration.
    #[error("directory unavailable")]
    Unavailable(String),
}

fn unavailable(detail: impl Into<String>) -> LdapError {
    LdapError::Unavailable(detail.into())
}

/// Verifies LDAP logins. `Send + Sync`; share it via `Arc`.
pub struct LdapAuthenticator {
    config: LdapConfig,
    url: Url,
    /// TLS client config when the endpoint is ldaps:// or start_tls is on.
    tls: Option<Arc<ClientConfig>>,
    /// `user_filter`, normalized to a parenthesized filter.
    user_filter: String,
    /// Attributes requested in the user search.
    attrs: Vec<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    pool: Pool,
}

impl fmt::Debug for LdapAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapAuthenticator")
            .field("server_endpoint", &self.config.server_endpoint)
            .field("bind_dn", &self.config.bind_dn)
            .field("user_base_dn", &self.config.user_base_dn)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Outcome of one search attempt on a service connection.
enum SearchFailure {
    /// The connection is broken (I/O error, closed, timeout): discard it, maybe retry.
    Transport(String),
    /// The server answered with an error result; the connection is still fine.
    Result(String),
}

impl LdapAuthenticator {
    /// Validates the configuration and prepares TLS (reads `ca_cert_file` or the system
    /// store when TLS is used). Does not touch the network.
    pub fn new(config: LdapConfig) -> Result<Self, LdapError> {
        let url = Url::parse(config.server_endpoint.trim())
            .map_err(|e| unavailable(format!("ldap: invalid server_endpoint: {e}")))?;
        match url.scheme() {
            "ldap" | "ldaps" => {}
            s => {
                return Err(unavailable(format!(
                    "ldap: server_endpoint scheme must be ldap or ldaps, not {s:?}"
                )))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(unavailable("ldap: server_endpoint has no host"));
        }
        let ldaps = url.scheme() == "ldaps";
        if ldaps && config.start_tls {
            return Err(unavailable(
                "ldap: start_tls cannot be combined with an ldaps:// server_endpoint",
            ));
        }
        if config.bind_dn.trim().is_empty() {
            return Err(unavailable("ldap: bind_dn must be set"));
        }
        if config.bind_password.is_empty() {
            // An empty password would make the service bind an unauthenticated bind.
            return Err(unavailable("ldap: bind_password must be set"));
        }
        if config.user_base_dn.trim().is_empty() {
            return Err(unavailable("ldap: user_base_dn must be set"));
        }
        for (name, value) in [
            ("username_attribute", &config.username_attribute),
            ("email_attribute", &config.email_attribute),
            ("friendly_name_attribute", &config.friendly_name_attribute),
        ] {
            if !valid_attribute(value) {
                return Err(unavailable(format!("ldap: invalid {name} {value:?}")));
            }
        }
        let user_filter = normalize_filter(&config.user_filter);
        // The username part is always escaped, so checking with a sample value validates
        // the operator-supplied part.
        let sample = format!("(&{user_filter}({}=x))", config.username_attribute);
        if ldap3::parse_filter(&sample).is_err() {
            return Err(unavailable(format!(
                "ldap: invalid user_filter {:?}",
                config.user_filter
            )));
        }
        if config.connection_timeout_seconds == 0 || config.request_timeout_seconds == 0 {
            return Err(unavailable("ldap: timeouts must be at least 1 second"));
        }
        if config.pool_size == 0 {
            return Err(unavailable("ldap: pool_size must be at least 1"));
        }
        let tls = if ldaps || config.start_tls {
            Some(tls_config(config.ca_cert_file.as_ref())?)
        } else if config.ca_cert_file.is_some() {
            return Err(unavailable(
                "ldap: ca_cert_file is set but the connection uses no TLS (use ldaps:// or start_tls)",
            ));
        } else {
            None
        };
        let mut attrs: Vec<String> = Vec::new();
        for a in [
            &config.username_attribute,
            &config.email_attribute,
            &config.friendly_name_attribute,
        ] {
            if !attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                attrs.push(a.clone());
            }
        }
        Ok(LdapAuthenticator {
            url,
            tls,
            user_filter,
            attrs,
            connect_timeout: Duration::from_secs(config.connection_timeout_seconds),
            request_timeout: Duration::from_secs(config.request_timeout_seconds),
            pool: Pool::new(config.pool_size),
            config,
        })
    }

    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// Number of idle service connections currently pooled (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        self.pool
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Checks `username`/`password` against the directory. See the module docs for the flow.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LdapIdentity, LdapError> {
        // Never reaches the network: an empty password would be an unauthenticated bind.
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
            return Err(LdapError::InvalidCredentials);
        }
        if username.trim().is_empty()
            || username.len() > MAX_USERNAME_BYTES
            || username.chars().any(char::is_control)
        {
            return Err(LdapError::InvalidCredentials);
        }

        let entry = self.find_user(username).await?;
        if entry.dn.is_empty() {
            // Binding as "" would be anonymous; never treat that as a login.
            return Err(LdapError::InvalidCredentials);
        }
        self.bind_as_user(&entry.dn, password).await?;

        let username_value = {
            let values = attr_values(&entry, &self.config.username_attribute);
            let wanted = username.trim();
            values
                .iter()
                .find(|v| v.trim().eq_ignore_ascii_case(wanted))
                .or_else(|| values.first())
                .cloned()
                .unwrap_or_else(|| username.to_string())
        };
        Ok(LdapIdentity {
            username: username_value,
            email: first_value(&entry, &self.config.email_attribute),
            friendly_name: first_value(&entry, &self.config.friendly_name_attribute),
            dn: entry.dn,
        })
    }

    /// Service-side search for the user's entry (exactly one, else InvalidCredentials).
    async fn find_user(&self, username: &str) -> Result<SearchEntry, LdapError> {
        let filter = format!(
            "(&{}({}={}))",
            self.user_filter,
            self.config.username_attribute,
            ldap_escape(username)
        );
        let mut fresh = false;
        loop {
            let mut conn = self.service_conn(fresh).await?;
            match self.search(conn.ldap(), &filter).await {
                Ok(entries) => {
                    conn.release();
                    return match entries.len() {
                        1 => Ok(entries.into_iter().next().expect("one entry")),
                        0 => Err(LdapError::InvalidCredentials),
                        _ => {
                            tracing::warn!(
                                username_attribute = %self.config.username_attribute,
                                base = %self.config.user_base_dn,
                                "ldap: login name matches several entries; refusing login"
                            );
                            Err(LdapError::InvalidCredentials)
                        }
                    };
                }
                Err(SearchFailure::Result(detail)) => {
                    conn.release();
                    return Err(unavailable(detail));
                }
                Err(SearchFailure::Transport(detail)) => {
                    let reused = conn.reused;
                    drop(conn); // discarded, never returned to the pool
                    if reused && !fresh {
                        // A pooled connection went stale (directory restarted, idle
                        // timeout): the others are probably stale too.
                        tracing::debug!(%detail, "ldap: pooled connection failed; retrying on a fresh one");
                        self.pool.clear_idle();
                        fresh = true;
                        continue;
                    }
                    return Err(unavailable(detail));
                }
            }
        }
    }

    async fn search(
        &self,
        ldap: &mut Ldap,
        filter: &str,
    ) -> Result<Vec<SearchEntry>, SearchFailure> {
        // Two entries are enough to know the match is ambiguous.
        let time_limit = i32::try_from(self.config.request_timeout_seconds).unwrap_or(i32::MAX);
        ldap.with_search_options(SearchOptions::new().sizelimit(2).timelimit(time_limit));
        let attrs: Vec<&str> = self.attrs.iter().map(String::as_str).collect();
        let fut = ldap.search(&self.config.user_base_dn, Scope::Subtree, filter, attrs);
        let res = match tokio::time::timeout(self.request_timeout, fut).await {
            Err(_) => {
                return Err(SearchFailure::Transport(format!(
                    "ldap: user search timed out after {:?}",
                    self.request_timeout
                )))
            }
            Ok(Err(e)) => {
                return Err(SearchFailure::Transport(format!(
                    "ldap: user search failed: {e}"
                )))
            }
            Ok(Ok(res)) => res,
        };
        let (raw_entries, result) = (res.0, res.1);
        // 0 success; 4 sizeLimitExceeded = more than one match (we asked for at most 2).
        if result.rc != 0 && result.rc != 4 {
            return Err(SearchFailure::Result(format!(
                "ldap: user search under {:?} failed: rc={} {}",
                self.config.user_base_dn,
                result.rc,
                result.text.trim()
            )));
        }
        let mut entries = Vec::with_capacity(raw_entries.len());
        for raw in raw_entries {
            // construct() panics on malformed BER; a broken server must not take us down.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(raw)
            })) {
                Ok(e) => entries.push(e),
                Err(_) => {
                    return Err(SearchFailure::Transport(
                        "ldap: malformed search entry".into(),
                    ))
                }
            }
        }
        Ok(entries)
    }

    /// Binds as the user on a fresh connection that is closed afterwards.
    async fn bind_as_user(&self, dn: &str, password: &str) -> Result<(), LdapError> {
        let mut ldap = self.connect().await.map_err(unavailable)?;
        let res = tokio::time::timeout(self.request_timeout, ldap.simple_bind(dn, password)).await;
        let outcome = match res {
            Err(_) => Err(unavailable(format!(
                "ldap: user bind timed out after {:?}",
                self.request_timeout
            ))),
            Ok(Err(e)) => Err(unavailable(format!("ldap: user bind failed: {e}"))),
            Ok(Ok(r)) => match r.rc {
                0 => Ok(()),
                // invalidCredentials, inappropriateAuthentication, insufficientAccessRights,
                // unwillingToPerform, constraintViolation (e.g. password policy lockout):
                // all mean "this user cannot log in now".
                49 | 48 | 50 | 53 | 19 => {
                    if r.rc != 49 {
                        tracing::info!(rc = r.rc, text = %r.text.trim(), %dn, "ldap: user bind refused");
                    }
                    Err(LdapError::InvalidCredentials)
                }
                rc => Err(unavailable(format!(
                    "ldap: user bind as {dn:?} failed: rc={rc} {}",
                    r.text.trim()
                ))),
            },
        };
        // Best effort; the connection is dropped either way.
        let _ = tokio::time::timeout(Duration::from_secs(1), ldap.unbind()).await;
        outcome
    }

    /// Opens a connection (TCP, then StartTLS or TLS as configured) and starts its driver.
    async fn connect(&self) -> Result<Ldap, String> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.connect_timeout);
        if let Some(tls) = &self.tls {
            settings = settings
                .set_config(tls.clone())
                .set_starttls(self.config.start_tls);
        }
        // ldap3 applies conn_timeout to connect + TLS; the outer timeout is a backstop.
        let fut = LdapConnAsync::from_url_with_settings(settings, &self.url);
        let (conn, ldap) = match tokio::time::timeout(
            self.connect_timeout + Duration::from_millis(500),
            fut,
        )
        .await
        {
            Err(_) => {
                return Err(format!(
                    "ldap: connect to {} timed out after {:?}",
                    self.url, self.connect_timeout
                ))
            }
            Ok(Err(e)) => return Err(format!("ldap: connect to {} failed: {e}", self.url)),
            Ok(Ok(pair)) => pair,
        };
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "ldap: connection closed with error");
            }
        });
        Ok(ldap)
    }

    /// A new service connection, bound as `bind_dn`.
    async fn open_service_conn(&self) -> Result<Ldap, LdapError> {
        let mut ldap = self.connect().await.map_err(unavailable)?;
        let bind = ldap.simple_bind(&self.config.bind_dn, self.config.bind_password.expose());
        match tokio::time::timeout(self.request_timeout, bind).await {
            Err(_) => Err(unavailable(format!(
                "ldap: service bind timed out after {:?}",
                self.request_timeout
            ))),
            Ok(Err(e)) => Err(unavailable(format!("ldap: service bind failed: {e}"))),
            Ok(Ok(r)) if r.rc == 0 => Ok(ldap),
            Ok(Ok(r)) => Err(unavailable(format!(
                "ldap: service bind as {:?} refused: rc={} {}",
                self.config.bind_dn,
                r.rc,
                r.text.trim()
            ))),
        }
    }

    /// A service connection: a pooled idle one unless `fresh`, else a new one.
    async fn service_conn(&self, fresh: bool) -> Result<PooledConn<'_>, LdapError> {
        let permit =
            match tokio::time::timeout(self.request_timeout, self.pool.permits.acquire()).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(unavailable("ldap: connection pool closed")),
                Err(_) => {
                    return Err(unavailable(format!(
                        "ldap: no service connection free within {:?} (pool_size {})",
                        self.request_timeout, self.config.pool_size
                    )))
                }
            };
        if !fresh {
            if let Some(ldap) = self.pool.take_idle() {
                return Ok(PooledConn {
                    ldap: Some(ldap),
                    reused: true,
                    pool: &self.pool,
                    _permit: permit,
                });
            }
        }
        let ldap = self.open_service_conn().await?;
        Ok(PooledConn {
            ldap: Some(ldap),
            reused: false,
            pool: &self.pool,
            _permit: permit,
        })
    }
}

/// Idle service connections plus a semaphore bounding the live ones to `pool_size`.
struct Pool {
    idle: Mutex<Vec<(Ldap, Instant)>>,
    permits: Semaphore,
}

impl Pool {
    fn new(size: usize) -> Self {
        Pool {
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
        }
    }

    fn take_idle(&self) -> Option<Ldap> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((mut ldap, since)) = idle.pop() {
            if !ldap.is_closed() && since.elapsed() < MAX_IDLE {
                return Some(ldap);
            }
        }
        None
    }

    fn put_idle(&self, ldap: Ldap) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((ldap, Instant::now()));
    }

    fn clear_idle(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A checked-out service connection. Dropped without [`PooledConn::release`] it is closed,
/// not returned: only connections known to be healthy go back into the pool.
struct PooledConn<'a> {
    ldap: Option<Ldap>,
    reused: bool,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl PooledConn<'_> {
    fn ldap(&mut self) -> &mut Ldap {
        self.ldap
            .as_mut()
            .expect("connection present until release")
    }

    fn release(mut self) {
        if let Some(mut ldap) = self.ldap.take() {
            if !ldap.is_closed() {
                self.pool.put_idle(ldap);
            }
        }
    }
}

/// Builds the rustls client config (ring provider, no process-wide default needed).
fn tls_config(ca_cert_file: Option<&PathBuf>) -> Result<Arc<ClientConfig>, LdapError> {
    let mut roots = RootCertStore::empty();
    match ca_cert_file {
        Some(path) => {
            let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
                unavailable(format!(
                    "ldap: cannot read ca_cert_file {}: {e}",
                    path.display()
                ))
            })?;
            for cert in iter {
                let cert = cert.map_err(|e| {
                    unavailable(format!(
                        "ldap: bad PEM in ca_cert_file {}: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    unavailable(format!(
                        "ldap: bad certificate in ca_cert_file {}: {e}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(unavailable(format!(
                    "ldap: ca_cert_file {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(unavailable(
                    "ldap: no system CA certificates found; set ca_cert_file",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unavailable(format!("ldap: TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `objectClass=person` → `(objectClass=person)`; already parenthesized filters unchanged.
fn normalize_filter(filter: &str) -> String {
    let f = filter.trim();
    if f.starts_with('(') {
        f.to_string()
    } else {
        format!("({f})")
    }
}

/// Attribute description: a name (`uid`, `sAMAccountName`) or numeric OID, with optional
/// `;options`. Checked because it is put into the filter unescaped.
fn valid_attribute(a: &str) -> bool {
    let mut parts = a.split(';');
    let base = parts.next().unwrap_or("");
    let base_ok = match base.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => {
            base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        }
        Some(c) if c.is_ascii_digit() => base
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
        _ => false,
    };
    base_ok
        && parts.all(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// Values of an attribute, matching its name case-insensitively.
fn attr_values<'e>(entry: &'e SearchEntry, name: &str) -> &'e [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

fn first_value(entry: &SearchEntry, name: &str) -> Option<String> {
    attr_values(entry, name)
        .iter()
        .find(|v| !v.trim().is_empty())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes() {
        for ok in [
            "uid",
            "sAMAccountName",
            "mail",
            "cn;lang-en",
            "0.9.2342.19200300.100.1.1",
            "x-y",
        ] {
            assert!(valid_attribute(ok), "{ok}");
        }
        for bad in [
            "", "uid)", "u id", "(uid", "uid=*", "1.", "uid;", "-uid", "mail*",
        ] {
            assert!(!valid_attribute(bad), "{bad}");
        }
    }

    #[test]
    fn filters() {
        assert_eq!(
            normalize_filter("objectClass=person"),
            "(objectClass=person)"
        );
        assert_eq!(normalize_filter(" (uid=x) "), "(uid=x)");
    }
}
