//! Client configuration, resolved once with precedence code > environment > profile file.
//!
//! Profile file: `SLUICE_CONFIG_FILE`, else `$XDG_CONFIG_HOME/sluice/config.yaml`, else
//! `~/.config/sluice/config.yaml`:
//!
//! ```yaml
//! default-profile: prod
//! profiles:
//!   prod:
//!     endpoint: https://sluice.example.com
//!     auth-method: pkce
//!   local:
//!     endpoint: http://localhost:8181
//!     access-key-id: AKIA...
//!     secret-access-key: ...
//! ```
//!
//! The profile used is the one named in code, else `SLUICE_PROFILE`, else `default-profile`
//! in the file, else `default` (which may be absent: then no profile applies).

use crate::error::{ClientError, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sluice_core::Secret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to log in. Each variant maps to one authenticator in `flows`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// Access key id + secret: sent as HTTP Basic, or exchanged at `/v1/oauth/tokens`
    /// when `exchange_access_key` is set.
    AccessKey,
    /// A fixed bearer token.
    StaticToken,
    /// OAuth2 client credentials against Sluice or an external IdP.
    ClientCredentials,
    /// Browser login with PKCE and a loopback redirect.
    Pkce,
    /// OAuth2 device authorization grant (RFC 8628).
    Device,
    /// Run a command; its stdout is the token.
    ExternalCommand,
    /// One string encoding endpoint, client id, secret and org.
    ApiKey,
    /// AWS IAM principal login (presigned GetCallerIdentity).
    AwsRole,
    /// Web identity: code/state/redirect_uri exchanged at `/auth/sts/login`.
    WebIdentity,
    /// LDAP username/password at `/auth/ldap/login`.
    Ldap,
}

impl AuthMethod {
    /// Every method, in declaration order (for help texts and error messages).
    pub const ALL: [AuthMethod; 10] = [
        AuthMethod::AccessKey,
        AuthMethod::StaticToken,
        AuthMethod::ClientCredentials,
        AuthMethod::Pkce,
        AuthMethod::Device,
        AuthMethod::ExternalCommand,
        AuthMethod::ApiKey,
        AuthMethod::AwsRole,
        AuthMethod::WebIdentity,
        AuthMethod::Ldap,
    ];

    /// The kebab-case name used in the environment and the profile file.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::AccessKey => "access-key",
            AuthMethod::StaticToken => "static-token",
            AuthMethod::ClientCredentials => "client-credentials",
            AuthMethod::Pkce => "pkce",
            AuthMethod::Device => "device",
            AuthMethod::ExternalCommand => "external-command",
            AuthMethod::ApiKey => "api-key",
            AuthMethod::AwsRole => "aws-role",
            AuthMethod::WebIdentity => "web-identity",
            AuthMethod::Ldap => "ldap",
        }
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        AuthMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = AuthMethod::ALL.iter().map(AuthMethod::as_str).collect();
                format!(
                    "unknown auth method '{s}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Fully resolved settings. Built by `ClientConfig::resolve`; every field documents its
/// environment variable and profile key (kebab-case in YAML).
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// `SLUICE_ENDPOINT` / `endpoint`
    pub endpoint: Option<String>,
    /// `SLUICE_AUTH_METHOD` / `auth-method`; when none is given anywhere, `resolve` derives
    /// it (see `effective_auth_method`): access-key when a key is set, else static-token when
    /// a token is set, else api-key, client-credentials (id and secret), external-command.
    pub auth_method: Option<AuthMethod>,
    /// `SLUICE_ACCESS_KEY_ID` / `access-key-id`
    pub access_key_id: Option<String>,
    /// `SLUICE_SECRET_ACCESS_KEY` / `secret-access-key`
    pub secret_access_key: Option<Secret>,
    /// `SLUICE_EXCHANGE_ACCESS_KEY` / `exchange-access-key`: trade the key for a JWT.
    pub exchange_access_key: bool,
    /// `SLUICE_TOKEN` / `token`
    pub token: Option<Secret>,
    /// `SLUICE_CLIENT_ID` / `client-id`
    pub client_id: Option<String>,
    /// `SLUICE_CLIENT_SECRET` / `client-secret`
    pub client_secret: Option<Secret>,
    /// `SLUICE_TOKEN_URL` / `token-url`: token endpoint for client credentials against an
    /// external IdP (default: the server metadata, else Sluice's `/v1/oauth/tokens`).
    pub token_url: Option<String>,
    /// `SLUICE_AUDIENCE` / `audience`
    pub audience: Option<String>,
    /// `SLUICE_SCOPES` (space-separated) / `scopes` (a list, or one space-separated string)
    pub scopes: Vec<String>,
    /// `SLUICE_REDIRECT_PORT` / `redirect-port`: loopback port for PKCE (0 = ephemeral).
    pub redirect_port: Option<u16>,
    /// `SLUICE_LOGIN_TIMEOUT_SECONDS` / `login-timeout-seconds` (interactive flows)
    pub login_timeout: Option<Duration>,
    /// `SLUICE_TOKEN_COMMAND` / `token-command`: for external-command.
    pub token_command: Option<String>,
    /// `SLUICE_API_KEY` / `api-key`
    pub api_key: Option<Secret>,
    /// `SLUICE_USERNAME` / `username` (LDAP)
    pub username: Option<String>,
    /// `SLUICE_PASSWORD` / `password` (LDAP)
    pub password: Option<Secret>,
    /// `SLUICE_AWS_REGION` / `aws-region` (AWS role login; default from the AWS chain)
    pub aws_region: Option<String>,
    /// `SLUICE_AUTH_HEADER` / `auth-header`: header to put the credential in
    /// (default `authorization`).
    pub auth_header: Option<String>,
    /// `SLUICE_INSECURE` / `insecure`: allow plain http to non-loopback hosts and skip TLS
    /// verification. Only when asked.
    pub insecure: bool,
    /// `SLUICE_CA_BUNDLE` / `ca-bundle`: PEM file added to the trusted roots for EVERY call.
    pub ca_bundle: Option<PathBuf>,
    /// `SLUICE_PROXY` / `proxy`
    pub proxy: Option<String>,
    /// `SLUICE_TIMEOUT_SECONDS` / `timeout-seconds` (per request; default 60)
    pub timeout: Option<Duration>,
    /// `SLUICE_CONNECT_TIMEOUT_SECONDS` / `connect-timeout-seconds` (default 10)
    pub connect_timeout: Option<Duration>,
    /// `SLUICE_NO_KEYRING=1` / `no-keyring`: use the 0600 file cache only.
    pub no_keyring: bool,
    /// `SLUICE_TOKEN_CACHE_DIR` / `token-cache-dir`: where the file fallback lives
    /// (default: the config dir, `$XDG_CONFIG_HOME/sluice` or `~/.config/sluice`).
    pub token_cache_dir: Option<PathBuf>,
    /// The profile these settings came from, if any. As an override: the profile to use
    /// (wins over `SLUICE_PROFILE` and `default-profile`).
    pub profile: Option<String>,
    /// `SLUICE_CONFIG_FILE`: the profile file. As an override: the file to read. After
    /// `resolve`: the file that was consulted (even if it did not exist).
    pub config_file: Option<PathBuf>,
    /// Filled by `resolve`: for every setting that has a value, where it came from, keyed by
    /// its profile key (`endpoint` → `environment variable SLUICE_ENDPOINT`). Used in error
    /// messages and by `sluice config show`. Ignored as an override.
    pub sources: BTreeMap<String, String>,
}

/// Settings given in code; each `Some` (or `true`, or non-empty list) wins over environment
/// and profile. A `false` flag here means "not set in code", not "force off".
pub type ConfigOverrides = ClientConfig;

/// One named profile in the profile file (same keys as `ClientConfig`, kebab-case). Unknown
/// keys are rejected so a typo (`endpont:`) fails loudly instead of being ignored.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<AuthMethod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret")]
    pub secret_access_key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_access_key: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret")]
    pub token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret")]
    pub client_secret: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// A YAML list or one space-separated string.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_scopes"
    )]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret")]
    pub api_key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_secret")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_keyring: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_cache_dir: Option<PathBuf>,
}

// The profile file is 0600 and the only place such secrets are written on purpose; `Secret`
// itself refuses to serialize so nothing else can write one by accident.
fn ser_secret<S: Serializer>(v: &Option<Secret>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
}

fn de_scopes<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Scopes>::deserialize(d)? {
        None => None,
        Some(Scopes::One(s)) => Some(s.split_whitespace().map(str::to_string).collect()),
        Some(Scopes::Many(v)) => Some(v),
    })
}

/// The on-disk shape of the profile file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// The profile file, loaded for reading or editing (`sluice login` saving an endpoint and
/// method, `sluice profile ...`). Saving rewrites the whole file with 0600 permissions
/// (comments are not preserved).
#[derive(Debug)]
pub struct ProfileFile {
    path: PathBuf,
    exists: bool,
    data: FileData,
}

impl ProfileFile {
    /// The file `resolve` would read: `SLUICE_CONFIG_FILE`, else the default location.
    pub fn default_path() -> Result<PathBuf> {
        config_file_path(&process_env)
    }

    /// Loads `path`; a missing file is an empty one (so the first `save` creates it).
    pub fn load(path: impl Into<PathBuf>) -> Result<ProfileFile> {
        let path = path.into();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(ProfileFile {
                data: parse_file(&path, &text)?,
                path,
                exists: true,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileFile {
                path,
                exists: false,
                data: FileData::default(),
            }),
            Err(e) => Err(ClientError::Config(format!(
                "cannot read profile file {}: {e}",
                path.display()
            ))),
        }
    }

    /// Loads the file at `default_path()`.
    pub fn load_default() -> Result<ProfileFile> {
        Self::load(Self::default_path()?)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file existed when loaded.
    pub fn exists(&self) -> bool {
        self.exists
    }

    pub fn default_profile(&self) -> Option<&str> {
        self.data.default_profile.as_deref()
    }

    pub fn set_default_profile(&mut self, name: Option<String>) {
        self.data.default_profile = name;
    }

    /// Profile names, sorted.
    pub fn profile_names(&self) -> Vec<String> {
        self.data.profiles.keys().cloned().collect()
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.data.profiles.get(name)
    }

    pub fn profile_mut(&mut self, name: &str) -> Option<&mut Profile> {
        self.data.profiles.get_mut(name)
    }

    /// Adds or replaces a profile.
    pub fn set_profile(&mut self, name: impl Into<String>, profile: Profile) {
        self.data.profiles.insert(name.into(), profile);
    }

    pub fn remove_profile(&mut self, name: &str) -> Option<Profile> {
        self.data.profiles.remove(name)
    }

    /// Writes the file atomically (temp file + rename, so a crash never leaves half a file)
    /// with 0600 permissions: profiles may hold secrets. Parent directories are created 0700.
    pub fn save(&mut self) -> Result<()> {
        let text = serde_yaml_ng::to_string(&self.data)
            .map_err(|e| ClientError::Config(format!("cannot serialize profile file: {e}")))?;
        crate::fsutil::write_private(&self.path, text.as_bytes()).map_err(|e| {
            ClientError::Config(format!(
                "cannot write profile file {}: {e}",
                self.path.display()
            ))
        })?;
        self.exists = true;
        Ok(())
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileData> {
    // An empty (or comment-only) file is a valid, empty configuration.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(FileData::default());
    }
    serde_yaml_ng::from_str(text)
        .map_err(|e| ClientError::Config(format!("profile file {}: {e}", path.display())))
}

/// An environment lookup. `resolve` uses the process environment; tests and embedders can
/// pass their own (the process environment is global and racy to mutate in tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

fn env_value(env: EnvLookup<'_>, key: &str) -> Option<String> {
    env(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Sluice's config directory: `$XDG_CONFIG_HOME/sluice`, else `~/.config/sluice`.
pub fn default_config_dir() -> Result<PathBuf> {
    config_dir(&process_env)
}

fn config_dir(env: EnvLookup<'_>) -> Result<PathBuf> {
    // XDG says relative values are invalid and must be ignored.
    if let Some(x) = env_value(env, "XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(x.join("sluice"));
    }
    let home = env_value(env, "HOME")
        .or_else(|| env_value(env, "USERPROFILE"))
        .ok_or_else(|| {
            ClientError::Config(
                "cannot find the config directory: neither HOME nor XDG_CONFIG_HOME is set \
             (set SLUICE_CONFIG_FILE and SLUICE_TOKEN_CACHE_DIR instead)"
                    .into(),
            )
        })?;
    Ok(PathBuf::from(home).join(".config").join("sluice"))
}

fn config_file_path(env: EnvLookup<'_>) -> Result<PathBuf> {
    match env_value(env, "SLUICE_CONFIG_FILE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => Ok(config_dir(env)?.join("config.yaml")),
    }
}

fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "expected true/false (or 1/0, yes/no, on/off), got '{s}'"
        )),
    }
}

fn parse_seconds(s: &str) -> std::result::Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("expected a whole number of seconds, got '{s}'"))
}

/// Merges one setting at a time and remembers where each value came from.
struct Merge<'a> {
    env: EnvLookup<'a>,
    profile: Option<&'a Profile>,
    profile_desc: String,
    sources: BTreeMap<String, String>,
}

impl Merge<'_> {
    fn take<T>(
        &mut self,
        key: &str,
        var: &str,
        code: Option<T>,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
        from_profile: impl Fn(&Profile) -> Option<T>,
    ) -> Result<Option<T>> {
        if let Some(v) = code {
            self.sources.insert(key.into(), "code".into());
            return Ok(Some(v));
        }
        if let Some(raw) = env_value(self.env, var) {
            let v = parse(&raw)
                .map_err(|e| ClientError::Config(format!("{var} (environment): {e}")))?;
            self.sources
                .insert(key.into(), format!("environment variable {var}"));
            return Ok(Some(v));
        }
        if let Some(v) = self.profile.and_then(from_profile) {
            self.sources.insert(key.into(), self.profile_desc.clone());
            return Ok(Some(v));
        }
        Ok(None)
    }

    fn string(
        &mut self,
        key: &str,
        var: &str,
        code: Option<String>,
        p: impl Fn(&Profile) -> Option<String>,
    ) -> Result<Option<String>> {
        self.take(key, var, code, |s| Ok(s.to_string()), p)
    }

    fn secret(
        &mut self,
        key: &str,
        var: &str,
        code: Option<Secret>,
        p: impl Fn(&Profile) -> Option<Secret>,
    ) -> Result<Option<Secret>> {
        self.take(key, var, code, |s| Ok(Secret::new(s)), p)
    }

    fn path(
        &mut self,
        key: &str,
        var: &str,
        code: Option<PathBuf>,
        p: impl Fn(&Profile) -> Option<PathBuf>,
    ) -> Result<Option<PathBuf>> {
        self.take(key, var, code, |s| Ok(PathBuf::from(s)), p)
    }

    fn flag(
        &mut self,
        key: &str,
        var: &str,
        code: bool,
        p: impl Fn(&Profile) -> Option<bool>,
    ) -> Result<bool> {
        Ok(self
            .take(key, var, code.then_some(true), parse_bool, p)?
            .unwrap_or(false))
    }

    fn seconds(
        &mut self,
        key: &str,
        var: &str,
        code: Option<Duration>,
        p: impl Fn(&Profile) -> Option<u64>,
    ) -> Result<Option<Duration>> {
        self.take(
            key,
            var,
            code,
            |s| parse_seconds(s).map(Duration::from_secs),
            |pr| p(pr).map(Duration::from_secs),
        )
    }
}

impl ClientConfig {
    /// Resolves the configuration from code overrides, the process environment and the
    /// profile file (precedence in that order).
    pub fn resolve(code: ConfigOverrides) -> Result<ClientConfig> {
        Self::resolve_with_env(code, &process_env)
    }

    /// `resolve` with an explicit environment lookup instead of the process environment.
    pub fn resolve_with_env(code: ConfigOverrides, env: EnvLookup<'_>) -> Result<ClientConfig> {
        // Which file. A missing HOME only matters if a file is actually needed.
        let (file_path, file_source) =
            match (&code.config_file, env_value(env, "SLUICE_CONFIG_FILE")) {
                (Some(p), _) => (Some(p.clone()), "code"),
                (None, Some(p)) => (
                    Some(PathBuf::from(p)),
                    "environment variable SLUICE_CONFIG_FILE",
                ),
                (None, None) => (
                    config_dir(env).ok().map(|d| d.join("config.yaml")),
                    "default location",
                ),
            };
        let file = match &file_path {
            Some(p) => Some(ProfileFile::load(p)?),
            None => None,
        };

        // Which profile, and whether it was asked for explicitly (then it must exist).
        let (profile_name, explicit_source) = if let Some(p) = code.profile.clone() {
            (p, Some("code".to_string()))
        } else if let Some(p) = env_value(env, "SLUICE_PROFILE") {
            (p, Some("environment variable SLUICE_PROFILE".to_string()))
        } else if let Some(p) = file
            .as_ref()
            .and_then(|f| f.default_profile().map(str::to_string))
        {
            let src = format!(
                "default-profile in {}",
                file.as_ref()
                    .map(|f| f.path().display().to_string())
                    .unwrap_or_default()
            );
            (p, Some(src))
        } else {
            ("default".to_string(), None)
        };
        let profile = file.as_ref().and_then(|f| f.profile(&profile_name));
        if profile.is_none() {
            if let Some(src) = &explicit_source {
                let where_ = match &file {
                    Some(f) if f.exists() => {
                        let names = f.profile_names();
                        let known = if names.is_empty() { "it has no profiles".to_string() } else { format!("it has: {}", names.join(", ")) };
                        format!("{} ({known})", f.path().display())
                    }
                    Some(f) => format!("{} (the file does not exist; its location comes from the {file_source})", f.path().display()),
                    None => "any profile file (no HOME, XDG_CONFIG_HOME or SLUICE_CONFIG_FILE to find one)".to_string(),
                };
                return Err(ClientError::Config(format!(
                    "profile '{profile_name}' ({src}) is not defined in {where_}"
                )));
            }
        }
        let profile_desc = match &file {
            Some(f) => format!("profile '{profile_name}' in {}", f.path().display()),
            None => format!("profile '{profile_name}'"),
        };

        let mut m = Merge {
            env,
            profile,
            profile_desc,
            sources: BTreeMap::new(),
        };
        let c = code;
        let mut out = ClientConfig {
            endpoint: m.string("endpoint", "SLUICE_ENDPOINT", c.endpoint, |p| {
                p.endpoint.clone()
            })?,
            auth_method: m.take(
                "auth-method",
                "SLUICE_AUTH_METHOD",
                c.auth_method,
                str::parse,
                |p| p.auth_method.clone(),
            )?,
            access_key_id: m.string(
                "access-key-id",
                "SLUICE_ACCESS_KEY_ID",
                c.access_key_id,
                |p| p.access_key_id.clone(),
            )?,
            secret_access_key: m.secret(
                "secret-access-key",
                "SLUICE_SECRET_ACCESS_KEY",
                c.secret_access_key,
                |p| p.secret_access_key.clone(),
            )?,
            exchange_access_key: m.flag(
                "exchange-access-key",
                "SLUICE_EXCHANGE_ACCESS_KEY",
                c.exchange_access_key,
                |p| p.exchange_access_key,
            )?,
            token: m.secret("token", "SLUICE_TOKEN", c.token, |p| p.token.clone())?,
            client_id: m.string("client-id", "SLUICE_CLIENT_ID", c.client_id, |p| {
                p.client_id.clone()
            })?,
            client_secret: m.secret(
                "client-secret",
                "SLUICE_CLIENT_SECRET",
                c.client_secret,
                |p| p.client_secret.clone(),
            )?,
            token_url: m.string("token-url", "SLUICE_TOKEN_URL", c.token_url, |p| {
                p.token_url.clone()
            })?,
            audience: m.string("audience", "SLUICE_AUDIENCE", c.audience, |p| {
                p.audience.clone()
            })?,
            scopes: m
                .take(
                    "scopes",
                    "SLUICE_SCOPES",
                    (!c.scopes.is_empty()).then_some(c.scopes),
                    |s| Ok(s.split_whitespace().map(str::to_string).collect()),
                    |p| p.scopes.clone(),
                )?
                .unwrap_or_default(),
            redirect_port: m.take(
                "redirect-port",
                "SLUICE_REDIRECT_PORT",
                c.redirect_port,
                |s| {
                    s.parse::<u16>()
                        .map_err(|_| format!("expected a port number 0-65535, got '{s}'"))
                },
                |p| p.redirect_port,
            )?,
            login_timeout: m.seconds(
                "login-timeout-seconds",
                "SLUICE_LOGIN_TIMEOUT_SECONDS",
                c.login_timeout,
                |p| p.login_timeout_seconds,
            )?,
            token_command: m.string(
                "token-command",
                "SLUICE_TOKEN_COMMAND",
                c.token_command,
                |p| p.token_command.clone(),
            )?,
            api_key: m.secret("api-key", "SLUICE_API_KEY", c.api_key, |p| {
                p.api_key.clone()
            })?,
            username: m.string("username", "SLUICE_USERNAME", c.username, |p| {
                p.username.clone()
            })?,
            password: m.secret("password", "SLUICE_PASSWORD", c.password, |p| {
                p.password.clone()
            })?,
            aws_region: m.string("aws-region", "SLUICE_AWS_REGION", c.aws_region, |p| {
                p.aws_region.clone()
            })?,
            auth_header: m.string("auth-header", "SLUICE_AUTH_HEADER", c.auth_header, |p| {
                p.auth_header.clone()
            })?,
            insecure: m.flag("insecure", "SLUICE_INSECURE", c.insecure, |p| p.insecure)?,
            ca_bundle: m.path("ca-bundle", "SLUICE_CA_BUNDLE", c.ca_bundle, |p| {
                p.ca_bundle.clone()
            })?,
            proxy: m.string("proxy", "SLUICE_PROXY", c.proxy, |p| p.proxy.clone())?,
            timeout: m.seconds(
                "timeout-seconds",
                "SLUICE_TIMEOUT_SECONDS",
                c.timeout,
                |p| p.timeout_seconds,
            )?,
            connect_timeout: m.seconds(
                "connect-timeout-seconds",
                "SLUICE_CONNECT_TIMEOUT_SECONDS",
                c.connect_timeout,
                |p| p.connect_timeout_seconds,
            )?,
            no_keyring: m.flag("no-keyring", "SLUICE_NO_KEYRING", c.no_keyring, |p| {
                p.no_keyring
            })?,
            token_cache_dir: m.path(
                "token-cache-dir",
                "SLUICE_TOKEN_CACHE_DIR",
                c.token_cache_dir,
                |p| p.token_cache_dir.clone(),
            )?,
            profile: profile.map(|_| profile_name.clone()),
            config_file: file_path,
            sources: BTreeMap::new(),
        };
        out.sources = m.sources;
        if out.auth_method.is_none() {
            if let Some(derived) = out.effective_auth_method() {
                out.sources.insert(
                    "auth-method".into(),
                    "derived from the credentials that are set".into(),
                );
                out.auth_method = Some(derived);
            }
        }
        // Validate now so a bad endpoint is reported with its source before any request.
        if out.endpoint.is_some() {
            out.endpoint_url()?;
        }
        out.load_stored_secrets(env);
        if let Some(h) = &out.auth_header {
            if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(ClientError::Config(format!(
                    "auth-header '{h}' ({}) is not a valid HTTP header name",
                    out.source_of("auth-header")
                )));
            }
        }
        Ok(out)
    }

    /// Fills the secret the auth method needs, when code, environment and profile file left
    /// it unset, from what `sluice login` stored for this profile and endpoint (OS keyring or
    /// `secrets.json`). Nothing stored, or no store to be found, leaves it unset.
    fn load_stored_secrets(&mut self, env: EnvLookup<'_>) {
        let (Some(profile), Some(endpoint)) = (self.profile.clone(), self.endpoint.clone()) else {
            return;
        };
        let settings: &[&str] = match self.effective_auth_method() {
            Some(AuthMethod::AccessKey) => &["secret-access-key"],
            Some(
                AuthMethod::ClientCredentials
                | AuthMethod::Pkce
                | AuthMethod::Device
                | AuthMethod::WebIdentity,
            ) => &["client-secret"],
            Some(AuthMethod::ApiKey) => &["api-key"],
            Some(AuthMethod::StaticToken) => &["token"],
            _ => &[],
        };
        let dir = match &self.token_cache_dir {
            Some(d) => d.clone(),
            None => match config_dir(env) {
                Ok(d) => d,
                Err(_) => return,
            },
        };
        let store = crate::cache::SecretStore::new(&dir, !self.no_keyring);
        for &setting in settings {
            let slot = match setting {
                "secret-access-key" => &mut self.secret_access_key,
                "client-secret" => &mut self.client_secret,
                "api-key" => &mut self.api_key,
                _ => &mut self.token,
            };
            if slot.is_some() {
                continue;
            }
            if let Some((secret, at)) = store.load(&endpoint, &profile, setting) {
                *slot = Some(secret);
                self.sources.insert(
                    setting.to_string(),
                    format!("stored for profile '{profile}' ({at})"),
                );
            }
        }
    }

    /// The auth method: the configured one, else derived from which credentials are set.
    pub fn effective_auth_method(&self) -> Option<AuthMethod> {
        if let Some(m) = &self.auth_method {
            return Some(m.clone());
        }
        if self.access_key_id.is_some() {
            Some(AuthMethod::AccessKey)
        } else if self.token.is_some() {
            Some(AuthMethod::StaticToken)
        } else if self.api_key.is_some() {
            Some(AuthMethod::ApiKey)
        } else if self.client_id.is_some() && self.client_secret.is_some() {
            Some(AuthMethod::ClientCredentials)
        } else if self.token_command.is_some() {
            Some(AuthMethod::ExternalCommand)
        } else {
            None
        }
    }

    /// Where a setting came from (profile key, e.g. `endpoint`), for error messages.
    pub fn source_of(&self, key: &str) -> String {
        self.sources
            .get(key)
            .cloned()
            .unwrap_or_else(|| "code".to_string())
    }

    /// The endpoint as a URL, validated: http(s), a host, no query or fragment, and plain
    /// http only to a loopback host unless `insecure` is set.
    pub fn endpoint_url(&self) -> Result<url::Url> {
        let raw = self.endpoint.as_deref().ok_or_else(|| {
            ClientError::Config(
                "no endpoint configured: pass one, set SLUICE_ENDPOINT, or put `endpoint:` in a profile".into(),
            )
        })?;
        let src = self.source_of("endpoint");
        let url = url::Url::parse(raw.trim()).map_err(|e| {
            ClientError::Config(format!("endpoint '{raw}' ({src}) is not a valid URL: {e}"))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ClientError::Config(format!(
                "endpoint '{raw}' ({src}) must start with https:// or http://"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ClientError::Config(format!(
                "endpoint '{raw}' ({src}) has no host"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ClientError::Config(format!(
                "endpoint '{raw}' ({src}) must not have a query or fragment"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ClientError::Config(format!(
                "endpoint ({src}) must not embed credentials; use access-key-id/secret-access-key or a token"
            )));
        }
        require_secure_url(&url, self.insecure)
            .map_err(|e| ClientError::Config(format!("endpoint ({src}): {e}")))?;
        Ok(url)
    }

    /// Profile names in the profile file (`SLUICE_CONFIG_FILE` or the default location);
    /// empty when the file does not exist.
    pub fn profiles_in_file() -> Result<Vec<String>> {
        Ok(ProfileFile::load_default()?.profile_names())
    }

    /// A profile from the profile file, if defined.
    pub fn load_profile(name: &str) -> Result<Option<Profile>> {
        Ok(ProfileFile::load_default()?.profile(name).cloned())
    }

    /// Adds or replaces profile `name` in the profile file, creating the file (0600) if
    /// needed. Returns the file's path.
    pub fn save_profile(name: &str, profile: &Profile) -> Result<PathBuf> {
        if name.trim().is_empty() {
            return Err(ClientError::Config(
                "a profile name must not be empty".into(),
            ));
        }
        let mut f = ProfileFile::load_default()?;
        f.set_profile(name, profile.clone());
        f.save()?;
        Ok(f.path().to_path_buf())
    }

    /// The file token cache: `tokens.json` in `token_cache_dir`, else in the config dir.
    pub fn token_cache_path(&self) -> Result<PathBuf> {
        match &self.token_cache_dir {
            Some(d) => Ok(d.join("tokens.json")),
            None => Ok(default_config_dir()?.join("tokens.json")),
        }
    }
}

/// Refuses plain `http://` to a host other than loopback unless `insecure`: a token or
/// password sent in clear text over a network is as good as published. Login flows should
/// apply it to IdP URLs they learn from metadata too.
pub fn require_secure_url(url: &url::Url, insecure: bool) -> Result<()> {
    if url.scheme() == "https" || insecure {
        return Ok(());
    }
    if url.scheme() == "http" && is_loopback(url) {
        return Ok(());
    }
    Err(ClientError::Config(format!(
        "refusing plain {}:// to non-loopback host '{}': credentials would travel unencrypted; \
         use https, or set insecure (SLUICE_INSECURE=1) if you really mean it",
        url.scheme(),
        url.host_str().unwrap_or("")
    )))
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("config.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const FILE: &str = "default-profile: dev\nprofiles:\n  dev:\n    endpoint: http://localhost:1\n    access-key-id: AKIADEV\n    timeout-seconds: 5\n    scopes: a b\n  prod:\n    endpoint: https://prod.example.com\n    auth-method: pkce\n    scopes: [x, y]\n";

    #[test]
    fn precedence_code_env_profile() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), FILE);
        let p = path.to_str().unwrap();

        // Profile only.
        let c = ClientConfig::resolve_with_env(
            ClientConfig::default(),
            &env_of(&[("SLUICE_CONFIG_FILE", p)]),
        )
        .unwrap();
        assert_eq!(c.profile.as_deref(), Some("dev"));
        assert_eq!(c.endpoint.as_deref(), Some("http://localhost:1"));
        assert_eq!(c.timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.scopes, ["a", "b"]);
        assert_eq!(c.auth_method, Some(AuthMethod::AccessKey));
        assert!(
            c.source_of("endpoint").contains("profile 'dev'"),
            "{:?}",
            c.sources
        );

        // Env beats profile.
        let env = env_of(&[
            ("SLUICE_CONFIG_FILE", p),
            ("SLUICE_ENDPOINT", "http://127.0.0.1:2"),
            ("SLUICE_TIMEOUT_SECONDS", "7"),
        ]);
        let c = ClientConfig::resolve_with_env(ClientConfig::default(), &env).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(c.timeout, Some(Duration::from_secs(7)));
        assert_eq!(
            c.source_of("endpoint"),
            "environment variable SLUICE_ENDPOINT"
        );
        assert_eq!(c.access_key_id.as_deref(), Some("AKIADEV"));

        // Code beats env.
        let code = ClientConfig {
            endpoint: Some("http://[::1]:3".into()),
            ..Default::default()
        };
        let c = ClientConfig::resolve_with_env(code, &env).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://[::1]:3"));
        assert_eq!(c.source_of("endpoint"), "code");

        // Profile choice: env beats default-profile, code beats env.
        let env = env_of(&[("SLUICE_CONFIG_FILE", p), ("SLUICE_PROFILE", "prod")]);
        let c = ClientConfig::resolve_with_env(ClientConfig::default(), &env).unwrap();
        assert_eq!(c.profile.as_deref(), Some("prod"));
        assert_eq!(c.auth_method, Some(AuthMethod::Pkce));
        assert_eq!(c.scopes, ["x", "y"]);
        let code = ClientConfig {
            profile: Some("dev".into()),
            ..Default::default()
        };
        assert_eq!(
            ClientConfig::resolve_with_env(code, &env)
                .unwrap()
                .profile
                .as_deref(),
            Some("dev")
        );
    }

    #[test]
    fn errors_name_setting_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), FILE);
        let p = path.to_str().unwrap();
        let err = |pairs: &[(&str, &str)]| {
            let mut all = vec![("SLUICE_CONFIG_FILE", p)];
            all.extend_from_slice(pairs);
            ClientConfig::resolve_with_env(ClientConfig::default(), &env_of(&all))
                .unwrap_err()
                .to_string()
        };
        let e = err(&[("SLUICE_TIMEOUT_SECONDS", "soon")]);
        assert!(
            e.contains("SLUICE_TIMEOUT_SECONDS") && e.contains("soon"),
            "{e}"
        );
        let e = err(&[("SLUICE_AUTH_METHOD", "magic")]);
        assert!(
            e.contains("SLUICE_AUTH_METHOD") && e.contains("pkce"),
            "{e}"
        );
        let e = err(&[("SLUICE_PROFILE", "nope")]);
        assert!(
            e.contains("'nope'") && e.contains("SLUICE_PROFILE") && e.contains("dev, prod"),
            "{e}"
        );
        let e = err(&[("SLUICE_ENDPOINT", "http://example.com")]);
        assert!(
            e.contains("SLUICE_ENDPOINT") && e.contains("insecure"),
            "{e}"
        );
        let e = err(&[("SLUICE_INSECURE", "maybe")]);
        assert!(e.contains("SLUICE_INSECURE"), "{e}");
        // insecure lets plain http through.
        let env = env_of(&[
            ("SLUICE_CONFIG_FILE", p),
            ("SLUICE_ENDPOINT", "http://example.com"),
            ("SLUICE_INSECURE", "1"),
        ]);
        assert!(
            ClientConfig::resolve_with_env(ClientConfig::default(), &env)
                .unwrap()
                .insecure
        );

        // Unknown key: names the key and the file.
        let bad = write(dir.path(), "profiles:\n  x:\n    endpont: https://a\n");
        let env = env_of(&[("SLUICE_CONFIG_FILE", bad.to_str().unwrap())]);
        let e = ClientConfig::resolve_with_env(ClientConfig::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("endpont") && e.contains(bad.to_str().unwrap()),
            "{e}"
        );
        let bad = write(dir.path(), "default_profile: x\n");
        let env = env_of(&[("SLUICE_CONFIG_FILE", bad.to_str().unwrap())]);
        let e = ClientConfig::resolve_with_env(ClientConfig::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("default_profile"), "{e}");
    }

    #[test]
    fn missing_file_and_default_locations() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        // No file: fine, no profile.
        let c = ClientConfig::resolve_with_env(ClientConfig::default(), &env_of(&[("HOME", home)]))
            .unwrap();
        assert_eq!(c.profile, None);
        assert_eq!(
            c.config_file,
            Some(dir.path().join(".config/sluice/config.yaml"))
        );
        // XDG wins over HOME.
        let xdg = dir.path().join("xdg");
        let c = ClientConfig::resolve_with_env(
            ClientConfig::default(),
            &env_of(&[("HOME", home), ("XDG_CONFIG_HOME", xdg.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.config_file, Some(xdg.join("sluice/config.yaml")));
        // Explicit profile with no file: clear error.
        let e = ClientConfig::resolve_with_env(
            ClientConfig::default(),
            &env_of(&[("HOME", home), ("SLUICE_PROFILE", "p")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'p'") && e.contains("does not exist"), "{e}");
        // Nothing at all still resolves (no endpoint yet).
        let c = ClientConfig::resolve_with_env(ClientConfig::default(), &env_of(&[])).unwrap();
        assert_eq!(c.endpoint, None);
        assert!(c
            .endpoint_url()
            .unwrap_err()
            .to_string()
            .contains("SLUICE_ENDPOINT"));
    }

    #[test]
    fn profile_file_round_trip_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.yaml");
        let mut f = ProfileFile::load(&path).unwrap();
        assert!(!f.exists());
        f.set_profile(
            "work",
            Profile {
                endpoint: Some("https://w".into()),
                auth_method: Some(AuthMethod::Device),
                client_secret: Some(Secret::new("s3cret")),
                scopes: Some(vec!["a".into(), "b".into()]),
                ..Default::default()
            },
        );
        f.set_default_profile(Some("work".into()));
        f.save().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("auth-method: device") && text.contains("client-secret: s3cret"),
            "{text}"
        );
        let g = ProfileFile::load(&path).unwrap();
        assert_eq!(g.default_profile(), Some("work"));
        assert_eq!(g.profile_names(), ["work"]);
        let p = g.profile("work").unwrap();
        assert_eq!(p.client_secret.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(
            p.scopes.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
    }

    #[test]
    fn loopback_rules() {
        for ok in [
            "https://example.com",
            "http://localhost:8181",
            "http://127.0.0.5",
            "http://[::1]:80",
            "http://a.localhost",
        ] {
            assert!(
                require_secure_url(&url::Url::parse(ok).unwrap(), false).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
        ] {
            assert!(
                require_secure_url(&url::Url::parse(bad).unwrap(), false).is_err(),
                "{bad}"
            );
            assert!(
                require_secure_url(&url::Url::parse(bad).unwrap(), true).is_ok(),
                "{bad}"
            );
        }
    }

    #[test]
    fn auth_method_parsing() {
        assert_eq!(
            "client_credentials".parse::<AuthMethod>().unwrap(),
            AuthMethod::ClientCredentials
        );
        assert_eq!(
            "AWS-ROLE".parse::<AuthMethod>().unwrap(),
            AuthMethod::AwsRole
        );
        for m in AuthMethod::ALL {
            assert_eq!(serde_json::to_value(&m).unwrap(), m.as_str());
        }
    }
}
