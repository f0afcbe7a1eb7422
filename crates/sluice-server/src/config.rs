//! Server configuration: one typed struct, loaded from defaults → config file (TOML) →
//! environment (`SLUICE_*`) → command-line flags, validated before anything starts.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address of the S3 gateway's own listener; `""` turns the gateway off.
    pub s3_listen: String,
    /// With a domain, `<bucket>.<s3_domain>` requests are virtual-host style (path style
    /// always works).
    pub s3_domain: Option<String>,
    /// The region S3 clients sign for.
    pub s3_region: String,
    /// The S3 gateway's URL as clients reach it (e.g. `https://s3.example.com`), handed out
    /// with temporary gateway credentials; defaults to the address the gateway listens on.
    pub s3_public_endpoint: Option<String>,
    /// Lifetime of temporary S3 gateway credentials (vended for gateway-served warehouses).
    pub gateway_credentials_ttl_seconds: u64,
    /// Serve the `default` warehouse created on first start through the S3 gateway
    /// (`s3://default/…` locations, gateway credentials): the embedded lakehouse.
    pub default_warehouse_gateway: bool,
    /// Where the embedded default keeps its database, key files and default warehouse.
    pub data_dir: PathBuf,
    /// `sqlite://…`; defaults to `<data_dir>/sluice.db`.
    pub database_url: Option<String>,
    /// PostgreSQL pool size per replica.
    pub database_max_connections: u32,
    /// PostgreSQL `statement_timeout` in seconds (0 = the server's default).
    pub database_statement_timeout_seconds: u64,
    /// PostgreSQL: how many times a write transaction is tried when the database aborts it
    /// with a serialization failure or deadlock (1 = never retried).
    pub database_retry_attempts: u32,
    /// How long a user's resolved policies are cached (0 = not cached). Changes clear the
    /// cache at once on every replica (PostgreSQL LISTEN/NOTIFY); the TTL bounds staleness
    /// should a notification be lost.
    pub policy_cache_ttl_seconds: u64,
    /// Bytes of current table metadata load-table serves from memory (least recently used
    /// evicted first; 0 = off). Changes clear entries at once on every replica (LISTEN/NOTIFY);
    /// while the feed is down the cache is not used.
    pub table_cache_max_bytes: u64,
    /// tracing filter, e.g. `info` or `sluice=debug,info`.
    pub log_level: String,
    /// Base64 of 32 bytes: encrypts stored secrets. Defaults to `<data_dir>/master.key`.
    pub master_key: Option<String>,
    /// Base64 of 32 bytes: signs Sluice JWTs. Defaults to `<data_dir>/jwt-signing.key`.
    pub jwt_signing_key: Option<String>,
    /// Lifetime of tokens from `/v1/oauth/tokens`.
    pub token_ttl_seconds: i64,
    /// Serve the web console under `/ui` (off: those paths answer 404).
    pub console: bool,
    /// Lifetime of a web console session (its cookie and token); capped by
    /// `token_ttl_seconds`.
    pub console_session_ttl_seconds: i64,
    /// Directories `file` warehouses may use; defaults to the data directory.
    pub allowed_file_roots: Vec<PathBuf>,
    /// Create the `default` file warehouse on first start.
    pub create_default_warehouse: bool,
    /// The URL clients reach this server at (e.g. behind a proxy); used for the remote
    /// signer endpoint. Derived from each request's Host header when unset.
    pub public_url: Option<String>,
    /// How often expired soft-deleted tables are purged.
    pub purge_interval_seconds: u64,
    /// How long a replica holds a claimed expired table while purging it; if the replica
    /// dies, another takes the table over after this long.
    pub purge_lease_seconds: u64,
    /// Storage switches and endpoints (`enable_*_system_credentials`,
    /// `require_external_id_for_system_credentials`, `cloudflare_api_base`,
    /// `gcs_sts_endpoint`, `gcs_endpoint`, `allowed_storage_endpoints`): top-level keys,
    /// handed to the storage layer as they are.
    #[serde(flatten)]
    pub storage: sluice_storage::StorageSettings,
    /// Largest request body accepted (bytes); larger ones answer 413.
    pub max_request_body_bytes: usize,
    /// A request (reading its body included) that takes longer answers 504.
    pub request_timeout_seconds: u64,
    /// A connection that takes longer to send a request head, from its first byte, is closed.
    pub header_read_timeout_seconds: u64,
    /// A connection with no request in flight and no traffic for this long is closed
    /// (idle keep-alive connections, clients that stop reading).
    pub idle_timeout_seconds: u64,
    /// Concurrent connections; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Failed authentications allowed per minute per source address and per access key
    /// (or user name) before further attempts answer 429 (0 = no throttling).
    pub auth_failures_per_minute: u32,
    /// OpenID Connect: bearer tokens, browser SSO and web-identity login (off when unset).
    #[serde(default, skip_serializing)]
    pub oidc: Option<sluice_auth::oidc::OidcConfig>,
    /// LDAP login (off when unset).
    #[serde(default, skip_serializing)]
    pub ldap: Option<sluice_auth::ldap::LdapConfig>,
    /// AWS IAM principal login (off when unset).
    #[serde(default, skip_serializing)]
    pub aws_iam: Option<sluice_auth::aws_iam::AwsIamConfig>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("s3_listen", &self.s3_listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url)
            .field("log_level", &self.log_level)
            .field("master_key", &self.master_key.as_ref().map(|_| "***"))
            .field(
                "jwt_signing_key",
                &self.jwt_signing_key.as_ref().map(|_| "***"),
            )
            .field("token_ttl_seconds", &self.token_ttl_seconds)
            .field("allowed_file_roots", &self.allowed_file_roots)
            .field("oidc", &self.oidc.as_ref().map(|o| o.url.clone()))
            .field(
                "ldap",
                &self.ldap.as_ref().map(|l| l.server_endpoint.clone()),
            )
            .field(
                "aws_iam",
                &self.aws_iam.as_ref().map(|a| a.server_id.clone()),
            )
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8181)),
            s3_listen: "127.0.0.1:8182".into(),
            s3_domain: None,
            s3_region: "us-east-1".into(),
            s3_public_endpoint: None,
            gateway_credentials_ttl_seconds: 3600,
            default_warehouse_gateway: true,
            data_dir: PathBuf::from("sluice-data"),
            database_url: None,
            database_max_connections: 10,
            database_statement_timeout_seconds: 0,
            database_retry_attempts: 5,
            policy_cache_ttl_seconds: 5,
            table_cache_max_bytes: sluice_service::table_cache::DEFAULT_MAX_BYTES,
            log_level: "info".into(),
            master_key: None,
            jwt_signing_key: None,
            token_ttl_seconds: 3600,
            console: true,
            console_session_ttl_seconds: 3600,
            allowed_file_roots: vec![],
            create_default_warehouse: true,
            public_url: None,
            purge_interval_seconds: 60,
            purge_lease_seconds: 600,
            storage: sluice_storage::StorageSettings::default(),
            max_request_body_bytes: 64 * 1024 * 1024,
            request_timeout_seconds: 120,
            header_read_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            max_connections: 1024,
            auth_failures_per_minute: 30,
            oidc: None,
            ldap: None,
            aws_iam: None,
        }
    }
}

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Default, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

/// Config sections settable from the environment with `__` as the nesting separator.
const ENV_SECTIONS: &[&str] = &["oidc", "ldap", "aws_iam"];

/// The `SLUICE_*` variables that map onto config keys. Only these are read, so client-side
/// variables (`SLUICE_ENDPOINT`, `SLUICE_PROFILE`, ...) and unrelated ones such as a test
/// harness's `SLUICE_BIN` never stop the server; lists and bootstrap secrets are read
/// separately.
const ENV_KEYS: &[&str] = &[
    "listen",
    "s3_listen",
    "s3_domain",
    "s3_region",
    "s3_public_endpoint",
    "gateway_credentials_ttl_seconds",
    "default_warehouse_gateway",
    "data_dir",
    "database_url",
    "log_level",
    "database_max_connections",
    "database_statement_timeout_seconds",
    "database_retry_attempts",
    "policy_cache_ttl_seconds",
    "table_cache_max_bytes",
    "purge_lease_seconds",
    "master_key",
    "jwt_signing_key",
    "token_ttl_seconds",
    "console",
    "console_session_ttl_seconds",
    "create_default_warehouse",
    "public_url",
    "purge_interval_seconds",
    "enable_aws_system_credentials",
    "require_external_id_for_system_credentials",
    "cloudflare_api_base",
    "enable_gcp_system_credentials",
    "gcs_sts_endpoint",
    "gcs_endpoint",
    "enable_azure_system_credentials",
    "max_request_body_bytes",
    "request_timeout_seconds",
    "header_read_timeout_seconds",
    "idle_timeout_seconds",
    "max_connections",
    "auth_failures_per_minute",
];

impl ServerConfig {
    /// The S3 gateway's address, or None when `s3_listen` is empty (gateway off).
    pub fn s3_listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        let v = self.s3_listen.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse()
            .map(Some)
            .map_err(|e| format!("s3_listen '{v}' is not an address such as 127.0.0.1:8182: {e}"))
    }

    pub fn load(config_file: Option<&Path>, cli: &CliOverrides) -> Result<Self, String> {
        let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(path) = config_file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            fig = fig.merge(Toml::file(path));
        }
        // Flat keys by name; provider sections as SLUICE_OIDC__URL, SLUICE_LDAP__BIND_DN, ...
        fig = fig.merge(
            Env::prefixed("SLUICE_")
                // The filter sees the variable's own case (figment lowercases later).
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    ENV_KEYS.contains(&k.as_str())
                        || ENV_SECTIONS
                            .iter()
                            .any(|s| k.starts_with(&format!("{s}__")))
                })
                .split("__"),
        );
        if let Ok(roots) = std::env::var("SLUICE_ALLOWED_FILE_ROOTS") {
            let roots: Vec<PathBuf> = roots
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
            fig = fig.merge(Serialized::default("allowed_file_roots", roots));
        }
        if let Ok(list) = std::env::var("SLUICE_ALLOWED_STORAGE_ENDPOINTS") {
            let list: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            fig = fig.merge(Serialized::default("allowed_storage_endpoints", list));
        }
        // The name the storage-delegation issue documents (Lakekeeper's double-underscore style).
        if let Ok(v) = std::env::var("SLUICE__S3_REQUIRE_EXTERNAL_ID_FOR_SYSTEM_CREDENTIALS") {
            let b = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => return Err(format!("SLUICE__S3_REQUIRE_EXTERNAL_ID_FOR_SYSTEM_CREDENTIALS: expected true or false, got '{other}'")),
            };
            fig = fig.merge(Serialized::default(
                "require_external_id_for_system_credentials",
                b,
            ));
        }
        fig = fig.merge(Serialized::defaults(cli));
        // figment names the key and the source (file or env var) that was wrong. serde
        // reports errors inside a flattened struct without either, so the storage keys are
        // extracted on their own first, and an unknown key gets its name and source back.
        let invalid = |e: figment::Error| format!("invalid configuration: {e}");
        fig.extract::<sluice_storage::StorageSettings>()
            .map_err(invalid)?;
        let mut cfg: ServerConfig = fig
            .extract()
            .map_err(|e| invalid(locate_unknown_key(&fig, e)))?;
        cfg.validate()?;
        cfg.data_dir = absolute(&cfg.data_dir)?;
        if cfg.allowed_file_roots.is_empty() {
            cfg.allowed_file_roots.push(cfg.data_dir.clone());
        } else {
            cfg.allowed_file_roots = cfg
                .allowed_file_roots
                .iter()
                .map(|p| absolute(p))
                .collect::<Result<_, _>>()?;
        }
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        self.s3_listen_addr()?;
        if self.s3_region.trim().is_empty() {
            return Err("s3_region must not be empty".into());
        }
        if self.gateway_credentials_ttl_seconds == 0
            || self.gateway_credentials_ttl_seconds > 43_200
        {
            return Err("gateway_credentials_ttl_seconds must be between 1 and 43200".into());
        }
        if let Some(e) = self.s3_public_endpoint.as_deref().filter(|e| !e.is_empty()) {
            let ok = url::Url::parse(e)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(format!(
                    "s3_public_endpoint '{e}' is not an http(s) URL such as https://s3.example.com"
                ));
            }
        }
        if self.token_ttl_seconds < 60 || self.token_ttl_seconds > 86_400 {
            return Err("token_ttl_seconds must be between 60 and 86400".into());
        }
        if self.console_session_ttl_seconds < 60 || self.console_session_ttl_seconds > 86_400 {
            return Err("console_session_ttl_seconds must be between 60 and 86400".into());
        }
        if self.database_retry_attempts == 0 || self.database_retry_attempts > 100 {
            return Err("database_retry_attempts must be between 1 and 100".into());
        }
        if self.policy_cache_ttl_seconds > 3600 {
            return Err("policy_cache_ttl_seconds must be at most 3600".into());
        }
        if self.purge_lease_seconds == 0 {
            return Err("purge_lease_seconds must be at least 1".into());
        }
        if self.database_max_connections == 0 {
            return Err("database_max_connections must be at least 1".into());
        }
        if self.max_request_body_bytes < 1024 {
            return Err("max_request_body_bytes must be at least 1024".into());
        }
        for (field, v) in [
            ("request_timeout_seconds", self.request_timeout_seconds),
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
        ] {
            if v == 0 || v > 86_400 {
                return Err(format!("{field} must be between 1 and 86400"));
            }
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(format!(
                    "database_url: expected a sqlite: or postgres:// URL (got scheme '{}')",
                    url.split(':').next().unwrap_or("")
                ));
            }
        }
        for (field, value) in [
            ("gcs_sts_endpoint", &self.storage.gcs_sts_endpoint),
            ("gcs_endpoint", &self.storage.gcs_endpoint),
        ] {
            if let Some(v) = value {
                match url::Url::parse(v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    _ => return Err(format!("{field}: expected an http(s) URL")),
                }
            }
        }
        if let Some(list) = &self.storage.allowed_storage_endpoints {
            sluice_storage::EndpointAllowlist::new(list, &[])?;
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("sluice.db").display()))
    }
}

/// serde reports an unknown key of a struct with a flattened field as a bare message; give
/// it the key and its source, as figment does for every other error.
fn locate_unknown_key(fig: &Figment, mut e: figment::Error) -> figment::Error {
    if let figment::error::Kind::Message(m) = &e.kind {
        if let Some(key) = m
            .strip_prefix("unknown field `")
            .and_then(|r| r.strip_suffix('`'))
        {
            let key = key.to_string();
            e.metadata = fig.find_metadata(&key).cloned();
            e.profile = Some(fig.profile().clone());
            e.path = vec![key];
        }
    }
    e
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}
