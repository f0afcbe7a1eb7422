//! One function per command: arguments → SDK call (through `api::Api`) → output.

use super::api::Api;
use super::args::*;
use super::error::{CliError, CliResult};
use super::input::{json_object_arg, namespace_levels, properties, statements_arg};
use super::output::{
    cell, col, field, names, opt_text, opt_when, print_str, render_fields, render_table, size_cell,
    text, time_cell, when, yes_no, Field,
};
use super::Ctx;
use serde_json::{json, Value};
use sluice_client::cache::SecretStore;
use sluice_client::config::ProfileFile;
use sluice_client::{
    AccessKey, AuthMethod, ConfigOverrides, CreateWarehouseRequest, Group, Policy, User, Warehouse,
    WhoAmI,
};
use sluice_core::Secret;

pub async fn dispatch(ctx: &Ctx, command: ClientCommand) -> CliResult {
    match command {
        ClientCommand::Login(a) => login(ctx, *a).await,
        ClientCommand::Logout => logout(ctx).await,
        ClientCommand::Whoami => whoami(ctx).await,
        ClientCommand::Config(c) => config(ctx, c),
        ClientCommand::Warehouse(c) => warehouse(ctx, c).await,
        ClientCommand::Namespace(c) => namespace(ctx, c).await,
        ClientCommand::Table(c) => table(ctx, c).await,
        ClientCommand::User(c) => user(ctx, c).await,
        ClientCommand::Group(c) => group(ctx, c).await,
        ClientCommand::Policy(c) => policy(ctx, c).await,
        ClientCommand::Key(c) => key(ctx, c).await,
    }
}

// ---------------------------------------------------------------------------------------
// login, logout, whoami
// ---------------------------------------------------------------------------------------

fn auth_method(m: Method) -> AuthMethod {
    match m {
        Method::AccessKey => AuthMethod::AccessKey,
        Method::StaticToken => AuthMethod::StaticToken,
        Method::ClientCredentials => AuthMethod::ClientCredentials,
        Method::Pkce => AuthMethod::Pkce,
        Method::Device => AuthMethod::Device,
        Method::ExternalCommand => AuthMethod::ExternalCommand,
        Method::ApiKey => AuthMethod::ApiKey,
        Method::AwsRole => AuthMethod::AwsRole,
        Method::WebIdentity => AuthMethod::WebIdentity,
        Method::Ldap => AuthMethod::Ldap,
    }
}

/// Reads one secret from standard input (`--secret-stdin`): the first line, trimmed.
fn read_stdin_secret() -> CliResult<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_line(&mut s)
        .map_err(|e| CliError::usage(format!("--secret-stdin: reading standard input: {e}")))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        return Err(CliError::usage("--secret-stdin: standard input is empty"));
    }
    Ok(s)
}

fn login_overrides(ctx: &Ctx, a: &LoginArgs) -> CliResult<ConfigOverrides> {
    let mut o = ctx.overrides();
    o.auth_method = a.method.map(auth_method);
    o.access_key_id = a.access_key_id.clone();
    o.secret_access_key = a.secret_access_key.clone().map(Secret::new);
    o.exchange_access_key = a.exchange_access_key;
    o.token = a.token.clone().map(Secret::new);
    o.client_id = a.client_id.clone();
    o.client_secret = a.client_secret.clone().map(Secret::new);
    o.token_url = a.token_url.clone();
    o.audience = a.audience.clone();
    o.scopes = a.scopes.clone();
    o.redirect_port = a.redirect_port;
    o.login_timeout = a.login_timeout.map(std::time::Duration::from_secs);
    o.token_command = a.token_command.clone();
    o.api_key = a.api_key.clone().map(Secret::new);
    o.username = a.username.clone();
    o.password = a.password.clone().map(Secret::new);
    o.aws_region = a.aws_region.clone();
    if a.secret_stdin {
        // Which secret depends on the method, so resolve once without it to learn the method.
        // (As the login resolves it: a profile this login is about to create is no error.)
        let method = match &o.auth_method {
            Some(m) => Some(m.clone()),
            None => login_config(ctx, o.clone(), true)?
                .0
                .effective_auth_method(),
        };
        let secret = Secret::new(read_stdin_secret()?);
        match method {
            Some(AuthMethod::AccessKey) => o.secret_access_key = Some(secret),
            Some(AuthMethod::StaticToken) => o.token = Some(secret),
            Some(AuthMethod::ClientCredentials) => o.client_secret = Some(secret),
            Some(AuthMethod::ApiKey) => o.api_key = Some(secret),
            Some(AuthMethod::Ldap) => o.password = Some(secret),
            Some(m) => {
                return Err(CliError::usage(format!(
                    "--secret-stdin: the {m} method takes no secret"
                )));
            }
            None => {
                return Err(CliError::usage(
                    "--secret-stdin: choose a login method with --method",
                ))
            }
        }
    }
    Ok(o)
}

/// The profile `--profile` or `SLUICE_PROFILE` selects, if any.
fn selected_profile(ctx: &Ctx) -> Option<String> {
    ctx.global.profile.clone().or_else(|| {
        std::env::var("SLUICE_PROFILE")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

/// The configuration for a login. `login --save --profile NEW` creates profile NEW, so a
/// selected profile that is not in the file yet is not an error there: the settings then
/// come from the flags and the environment alone.
fn login_config(
    ctx: &Ctx,
    overrides: ConfigOverrides,
    save: bool,
) -> CliResult<(sluice_client::ClientConfig, String)> {
    let selected = selected_profile(ctx);
    if save {
        if let Some(name) = &selected {
            let file = ProfileFile::load_default()?;
            if file.profile(name).is_none() {
                let absent = std::env::temp_dir()
                    .join(format!("sluice-no-profile-{}.yaml", uuid::Uuid::new_v4()));
                let code = ConfigOverrides {
                    profile: None,
                    config_file: Some(absent),
                    ..overrides
                };
                let env = |k: &str| {
                    if k == "SLUICE_PROFILE" {
                        None
                    } else {
                        std::env::var(k).ok()
                    }
                };
                let mut config = sluice_client::ClientConfig::resolve_with_env(code, &env)?;
                config.config_file = Some(file.path().to_path_buf());
                return Ok((config, name.clone()));
            }
        }
    }
    let config = ctx.resolve(overrides)?;
    let name = config
        .profile
        .clone()
        .or(selected)
        .unwrap_or_else(|| "default".to_string());
    Ok((config, name))
}

async fn login(ctx: &Ctx, a: LoginArgs) -> CliResult {
    login_inner(ctx, a).await.map_err(|e| {
        if e.code == super::error::exit::FAILURE && e.message.starts_with("configuration:") {
            e.with_hint("`sluice login --help` lists each method's options; `sluice config show` shows what is set")
        } else {
            e
        }
    })
}

/// Whether this login saves its settings: `--save`, `--no-save`, else only when the
/// profile does not exist yet (the first login of a profile).
fn should_save(ctx: &Ctx, a: &LoginArgs) -> CliResult<bool> {
    if a.no_save {
        return Ok(false);
    }
    if a.save {
        return Ok(true);
    }
    let file = ProfileFile::load_default()?;
    let name = selected_profile(ctx)
        .or_else(|| file.default_profile().map(str::to_string))
        .unwrap_or_else(|| "default".to_string());
    Ok(file.profile(&name).is_none())
}

async fn login_inner(ctx: &Ctx, a: LoginArgs) -> CliResult {
    let overrides = login_overrides(ctx, &a)?;
    let save = should_save(ctx, &a)?;
    let (config, profile_name) = login_config(ctx, overrides, save)?;
    let method = config.effective_auth_method();
    let api = Api::for_login(config.clone())?;
    api.login().await?;
    let me = api.whoami().await?;
    if save {
        save_login_profile(&config, &profile_name, method.as_ref())?;
    }
    if ctx.out.is_json() {
        super::output::print_json(&me);
    } else {
        let how = method.map(|m| format!(" with {m}")).unwrap_or_default();
        let endpoint = config.endpoint.as_deref().unwrap_or("?");
        eprintln!("Logged in to {endpoint}{how}.");
        print_whoami(&me);
    }
    Ok(())
}

/// Saving a login: the non-secret settings it used into profile `name` (created if
/// needed), its secret into the secret store (OS keyring, else `secrets.json` 0600 beside the
/// token cache). The profile file never receives a secret: it is a settings file people copy
/// and share.
fn save_login_profile(
    config: &sluice_client::ClientConfig,
    name: &str,
    method: Option<&AuthMethod>,
) -> CliResult {
    let mut file = match &config.config_file {
        Some(p) => ProfileFile::load(p.clone())?,
        None => ProfileFile::load_default()?,
    };
    let mut profile = file.profile(name).cloned().unwrap_or_default();
    profile.endpoint = config.endpoint.clone();
    if let Some(m) = method {
        profile.auth_method = Some(m.clone());
    }
    let keep = |new: &Option<String>, old: &mut Option<String>| {
        if let Some(v) = new.as_ref().filter(|v| !v.is_empty()) {
            *old = Some(v.clone());
        }
    };
    keep(&config.access_key_id, &mut profile.access_key_id);
    keep(&config.client_id, &mut profile.client_id);
    keep(&config.token_url, &mut profile.token_url);
    keep(&config.audience, &mut profile.audience);
    keep(&config.token_command, &mut profile.token_command);
    keep(&config.username, &mut profile.username);
    keep(&config.aws_region, &mut profile.aws_region);
    if config.exchange_access_key {
        profile.exchange_access_key = Some(true);
    }
    if !config.scopes.is_empty() {
        profile.scopes = Some(config.scopes.clone());
    }
    if config.redirect_port.is_some() {
        profile.redirect_port = config.redirect_port;
    }
    if config.insecure {
        profile.insecure = Some(true);
    }
    if config.ca_bundle.is_some() {
        profile.ca_bundle = config.ca_bundle.clone();
    }
    file.set_profile(name.to_string(), profile);
    // The first profile saved becomes the one plain commands use, so `sluice login --profile
    // X` followed by `sluice whoami` works as it reads.
    if file.default_profile().is_none() && file.profile("default").is_none() {
        file.set_default_profile(Some(name.to_string()));
    }
    file.save()?;
    let mut stored = Vec::new();
    if let Some(endpoint) = &config.endpoint {
        let store = SecretStore::from_config(config)?;
        let secrets = [
            ("secret-access-key", &config.secret_access_key),
            ("client-secret", &config.client_secret),
            ("api-key", &config.api_key),
            ("token", &config.token),
        ];
        for (setting, value) in secrets {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                store.store(endpoint, name, setting, v);
                stored.push(setting);
            }
        }
    }
    eprintln!(
        "Saved the login settings to profile '{name}' in {}.",
        file.path().display()
    );
    if !stored.is_empty() {
        eprintln!(
            "Stored the {} for profile '{name}' (OS keyring, else {}).",
            stored.join(" and "),
            SecretStore::from_config(config)?.file_path().display()
        );
    }
    Ok(())
}

async fn logout(ctx: &Ctx) -> CliResult {
    let config = ctx.resolve(ctx.overrides())?;
    let secrets = match (&config.profile, &config.endpoint) {
        (Some(p), Some(e)) => SecretStore::from_config(&config)?.delete_all(e, p),
        _ => false,
    };
    // A profile whose method cannot be built any more still gets its secrets removed.
    let token = match Api::new(config) {
        Ok(api) => api.logout().await?,
        Err(e) if secrets => {
            tracing::debug!("no token to remove: {}", e.message);
            false
        }
        Err(e) => return Err(e),
    };
    let removed = match (token, secrets) {
        (true, true) => Some("the cached token and the stored secret were removed"),
        (true, false) => Some("the cached token was removed"),
        (false, true) => Some("the stored secret was removed"),
        (false, false) => None,
    };
    if let Some(what) = removed {
        ctx.out.done(
            &format!("Logged out: {what}."),
            json!({"status": "logged-out", "token-removed": token, "secret-removed": secrets}),
        );
    } else {
        ctx.out.done(
            "Nothing to log out: no token is cached and no secret is stored for this profile \
             (credentials in the environment or the profile file are yours to remove).",
            json!({"status": "no-token"}),
        );
    }
    Ok(())
}

async fn whoami(ctx: &Ctx) -> CliResult {
    let api = ctx.api()?;
    let me = api.whoami().await?;
    if ctx.out.is_json() {
        super::output::print_json(&me);
    } else {
        print_whoami(&me);
    }
    Ok(())
}

fn print_whoami(me: &WhoAmI) {
    let policies: Vec<String> = me
        .policies
        .iter()
        .map(|p| {
            let name = text(&p.policy);
            match &p.via_group {
                Some(g) => format!("{name} (via {})", text(g)),
                None => name,
            }
        })
        .collect();
    let rows = vec![
        ("user".to_string(), text(&me.name)),
        ("user id".to_string(), me.user_id.to_string()),
        ("email".to_string(), opt_text(me.email.as_deref())),
        ("source".to_string(), text(&me.source)),
        (
            "access key".to_string(),
            opt_text(me.access_key_id.as_deref()),
        ),
        ("groups".to_string(), names(&me.groups)),
        (
            "policies".to_string(),
            if policies.is_empty() {
                "-".into()
            } else {
                policies.join(", ")
            },
        ),
    ];
    print_str(&render_fields(&rows));
}

// ---------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------

fn config(ctx: &Ctx, c: ConfigCommand) -> CliResult {
    match c {
        ConfigCommand::Profiles => config_profiles(ctx),
        ConfigCommand::Show => config_show(ctx),
    }
}

fn config_profiles(ctx: &Ctx) -> CliResult {
    let file = ProfileFile::load_default()?;
    // Same order as the SDK's resolution: --profile > SLUICE_PROFILE > default-profile > default.
    let active = selected_profile(ctx)
        .or_else(|| file.default_profile().map(str::to_string))
        .unwrap_or_else(|| "default".to_string());
    let rows: Vec<Value> = file
        .profile_names()
        .into_iter()
        .map(|name| {
            let p = file.profile(&name);
            json!({
                "name": name,
                "active": name == active,
                "endpoint": p.and_then(|p| p.endpoint.clone()),
                "auth-method": p.and_then(|p| p.auth_method.as_ref().map(|m| m.to_string())),
            })
        })
        .collect();
    if ctx.out.is_json() {
        super::output::print_json(&json!({
            "file": file.path().display().to_string(),
            "exists": file.exists(),
            "active": active,
            "profiles": rows,
        }));
        return Ok(());
    }
    if !file.exists() {
        eprintln!(
            "No profile file at {} (`sluice login --save` creates one).",
            file.path().display()
        );
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("{} defines no profiles.", file.path().display());
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                if r["active"] == json!(true) {
                    "*".to_string()
                } else {
                    String::new()
                },
                cell(r.get("name")),
                cell(r.get("endpoint")),
                cell(r.get("auth-method")),
            ]
        })
        .collect();
    print_str(&render_table(
        &["", "PROFILE", "ENDPOINT", "AUTH METHOD"],
        &table,
    ));
    if !rows.iter().any(|r| r["active"] == json!(true)) {
        eprintln!(
            "(the selected profile '{active}' is not in {})",
            file.path().display()
        );
    }
    Ok(())
}

/// Every resolved setting with its value (secrets masked) and where it came from.
fn config_show(ctx: &Ctx) -> CliResult {
    let c = ctx.resolve(ctx.overrides())?;
    let masked = |s: &Option<Secret>| s.as_ref().map(|_| "********".to_string());
    let secs = |d: &Option<std::time::Duration>| d.map(|d| d.as_secs().to_string());
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let flag = |b: bool| b.then(|| "true".to_string());
    let settings: Vec<(&str, Option<String>)> = vec![
        ("endpoint", c.endpoint.clone()),
        ("auth-method", c.auth_method.as_ref().map(|m| m.to_string())),
        ("access-key-id", c.access_key_id.clone()),
        ("secret-access-key", masked(&c.secret_access_key)),
        ("exchange-access-key", flag(c.exchange_access_key)),
        ("token", masked(&c.token)),
        ("client-id", c.client_id.clone()),
        ("client-secret", masked(&c.client_secret)),
        ("token-url", c.token_url.clone()),
        ("audience", c.audience.clone()),
        ("scopes", (!c.scopes.is_empty()).then(|| c.scopes.join(" "))),
        ("redirect-port", c.redirect_port.map(|p| p.to_string())),
        ("login-timeout-seconds", secs(&c.login_timeout)),
        ("token-command", c.token_command.clone()),
        ("api-key", masked(&c.api_key)),
        ("username", c.username.clone()),
        ("password", masked(&c.password)),
        ("aws-region", c.aws_region.clone()),
        ("auth-header", c.auth_header.clone()),
        ("insecure", flag(c.insecure)),
        ("ca-bundle", path(&c.ca_bundle)),
        ("proxy", c.proxy.clone()),
        ("timeout-seconds", secs(&c.timeout)),
        ("connect-timeout-seconds", secs(&c.connect_timeout)),
        ("no-keyring", flag(c.no_keyring)),
        ("token-cache-dir", path(&c.token_cache_dir)),
    ];
    // What applies when nothing is set (the SDK's own defaults), shown as such.
    let cache_dir = c
        .token_cache_path()
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()));
    let defaults: Vec<(&str, Option<String>)> = vec![
        ("auth-header", Some("authorization".into())),
        (
            "timeout-seconds",
            Some(sluice_client::http::DEFAULT_TIMEOUT.as_secs().to_string()),
        ),
        (
            "connect-timeout-seconds",
            Some(
                sluice_client::http::DEFAULT_CONNECT_TIMEOUT
                    .as_secs()
                    .to_string(),
            ),
        ),
        (
            "login-timeout-seconds",
            Some(
                sluice_client::flows::DEFAULT_LOGIN_TIMEOUT
                    .as_secs()
                    .to_string(),
            ),
        ),
        ("token-cache-dir", cache_dir),
    ];
    let secret = method_secret(&c);
    let settings: Vec<(&str, Option<String>, String)> = settings
        .into_iter()
        .map(|(k, v)| match v {
            // Code-level overrides in the CLI are its flags.
            Some(v) => (k, Some(v), c.source_of(k).replace("code", "flag")),
            // The login method's secret is named even when it is missing, so "is it
            // stored?" has an answer either way.
            None if Some(k) == secret => (k, Some(NOT_STORED.to_string()), "-".to_string()),
            None => match defaults
                .iter()
                .find(|(d, _)| *d == k)
                .and_then(|(_, v)| v.clone())
            {
                Some(d) => (k, Some(d), "default".to_string()),
                None => (k, None, String::new()),
            },
        })
        .collect();
    let profile = c.profile.clone();
    let file = path(&c.config_file);
    let session = cached_session(&c);
    if ctx.out.is_json() {
        let mut map = serde_json::Map::new();
        for (k, v, source) in &settings {
            if v.as_deref() == Some(NOT_STORED) {
                map.insert(k.to_string(), json!({"value": null, "stored": false}));
            } else if let Some(v) = v {
                let mut entry = json!({"value": v, "source": source});
                if source.starts_with("stored for profile") {
                    entry["stored"] = json!(true);
                }
                map.insert(k.to_string(), entry);
            }
        }
        // null: the method keeps no token; {"cached": false}: nothing cached.
        let session = session.map(|s| match s {
            None => json!({"cached": false}),
            Some(s) => json!({"cached": true, "expires-at": s.expires_at,
                "expired": s.expires_at.is_some_and(|e| e <= chrono::Utc::now()),
                "renewable": s.renewable}),
        });
        super::output::print_json(
            &json!({"profile": profile, "config-file": file, "session": session, "settings": map}),
        );
        return Ok(());
    }
    print_str(&format!(
        "profile:      {}\n",
        profile.as_deref().unwrap_or("(none)")
    ));
    print_str(&format!(
        "profile file: {}\n",
        file.as_deref().unwrap_or("(none)")
    ));
    if let Some(line) = session_line(session.as_ref(), profile.as_deref()) {
        print_str(&format!("session:      {line}\n"));
    }
    print_str("\n");
    let rows: Vec<Vec<String>> = settings
        .iter()
        .filter_map(|(k, v, source)| {
            v.as_ref()
                .map(|v| vec![k.to_string(), cell(Some(&json!(v))), source.clone()])
        })
        .collect();
    if rows.is_empty() {
        print_str("(nothing configured)\n");
    } else {
        print_str(&render_table(&["SETTING", "VALUE", "SOURCE"], &rows));
    }
    Ok(())
}

/// How `config show` marks the login method's secret when none is at hand.
const NOT_STORED: &str = "(not stored)";

/// The secret setting the resolved login method uses, if it has one.
fn method_secret(c: &sluice_client::ClientConfig) -> Option<&'static str> {
    Some(match sluice_client::flows::select_method(c).ok()? {
        AuthMethod::AccessKey => "secret-access-key",
        AuthMethod::ClientCredentials => "client-secret",
        AuthMethod::ApiKey => "api-key",
        AuthMethod::StaticToken => "token",
        AuthMethod::Ldap => "password",
        _ => return None,
    })
}

/// The token a login cached for this profile's endpoint and identity (read only: no
/// renewal, no network).
struct CachedSession {
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether the next command can renew it without a person (a refresh token, or a
    /// method that logs in again on its own).
    renewable: bool,
}

/// None when the method keeps no token (a plain access key, an external command, AWS);
/// else the token it cached, if any. A method that cannot even be set up (its secret is
/// gone, e.g. after a logout) has no session either.
fn cached_session(c: &sluice_client::ClientConfig) -> Option<Option<CachedSession>> {
    let Ok(auth) = sluice_client::flows::from_config_or_cached(c) else {
        return Some(None);
    };
    if auth.basic_credentials().is_some() {
        return None;
    }
    let id = auth.cache_identity()?;
    let cache = sluice_client::TokenCache::from_config(c).ok()?;
    let cached = cache.load_entry(c.endpoint_url().ok()?.as_str(), &id);
    Some(cached.map(|(t, _)| CachedSession {
        expires_at: t.expires_at,
        renewable: t.refresh_token.is_some() || !auth.needs_person(),
    }))
}

fn session_line(s: Option<&Option<CachedSession>>, profile: Option<&str>) -> Option<String> {
    let login = match profile {
        Some(p) => format!("sluice login --profile {p}"),
        None => "sluice login".to_string(),
    };
    let Some(s) = s? else {
        return Some(format!("none (run {login})"));
    };
    Some(match s.expires_at {
        None => "token without expiry".to_string(),
        Some(e) if e > chrono::Utc::now() => format!("valid until {}", when(&e)),
        Some(e) if s.renewable => format!("expired {} (the next command renews it)", when(&e)),
        Some(e) => format!("expired {} (run {login})", when(&e)),
    })
}

// ---------------------------------------------------------------------------------------
// warehouses
// ---------------------------------------------------------------------------------------

const WAREHOUSE_COLS: &[Field<Warehouse>] = &[
    field("NAME", |w: &Warehouse| text(&w.name)),
    field("ID", |w: &Warehouse| w.id.to_string()),
    field("STATUS", |w: &Warehouse| text(&w.status)),
    field("STORAGE", |w: &Warehouse| {
        cell(w.storage_profile.get("type"))
    }),
    field("LOCATION", |w: &Warehouse| text(&w.location)),
];

const WAREHOUSE_FIELDS: &[Field<Warehouse>] = &[
    field("name", |w: &Warehouse| text(&w.name)),
    field("id", |w: &Warehouse| w.id.to_string()),
    field("status", |w: &Warehouse| text(&w.status)),
    field("location", |w: &Warehouse| text(&w.location)),
    field("storage profile", |w: &Warehouse| {
        cell(Some(&w.storage_profile))
    }),
    field("storage credential", |w: &Warehouse| {
        yes_no(w.has_storage_credential)
    }),
    field("delete profile", |w: &Warehouse| {
        cell(Some(&w.delete_profile))
    }),
    field("created", |w: &Warehouse| when(&w.created_at)),
    field("updated", |w: &Warehouse| when(&w.updated_at)),
];

async fn warehouse(ctx: &Ctx, c: WarehouseCommand) -> CliResult {
    // Arguments are checked before the configuration is: a typo in a flag is reported as
    // such even where no server is configured.
    let out = &ctx.out;
    match c {
        WarehouseCommand::Create {
            name,
            storage_profile,
            storage_credential,
            delete_profile,
        } => {
            let mut req = CreateWarehouseRequest::new(
                name,
                json_object_arg("storage-profile", &storage_profile)?,
            );
            if let Some(c) = storage_credential {
                req.storage_credential = Some(json_object_arg("storage-credential", &c)?);
            }
            if let Some(d) = delete_profile {
                req.delete_profile = Some(json_object_arg("delete-profile", &d)?);
            }
            let api = ctx.api()?;
            let w = api.create_warehouse(&req).await?;
            out.record(&w, WAREHOUSE_FIELDS);
        }
        WarehouseCommand::List => {
            let api = ctx.api()?;
            let list = api.list_warehouses().await?;
            out.rows("warehouses", &list, WAREHOUSE_COLS);
        }
        WarehouseCommand::Get(r) => {
            let api = ctx.api()?;
            let w = api.find_warehouse(&r.warehouse).await?;
            out.record(&w, WAREHOUSE_FIELDS);
        }
        WarehouseCommand::Delete(r) => {
            let api = ctx.api()?;
            let id = api.warehouse_id(&r.warehouse).await?;
            api.delete_warehouse(&id).await?;
            out.done(
                &format!("Deleted warehouse {}.", r.warehouse),
                json!({"deleted": "warehouse", "id": id.to_string()}),
            );
        }
        WarehouseCommand::Rename {
            warehouse,
            new_name,
        } => {
            let api = ctx.api()?;
            let id = api.warehouse_id(&warehouse.warehouse).await?;
            let w = api.rename_warehouse(&id, &new_name).await?;
            out.record(&w, WAREHOUSE_FIELDS);
        }
        WarehouseCommand::Activate(r) => {
            let api = ctx.api()?;
            let id = api.warehouse_id(&r.warehouse).await?;
            let w = api.set_warehouse_active(&id, true).await?;
            out.record(&w, WAREHOUSE_FIELDS);
        }
        WarehouseCommand::Deactivate(r) => {
            let api = ctx.api()?;
            let id = api.warehouse_id(&r.warehouse).await?;
            let w = api.set_warehouse_active(&id, false).await?;
            out.record(&w, WAREHOUSE_FIELDS);
        }
    }
    Ok(())
}

/// The array under `key` of a list response (empty if absent).
fn rows(raw: &Value, key: &str) -> Vec<Value> {
    raw.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// namespaces and tables
// ---------------------------------------------------------------------------------------

fn dotted(levels: &Value) -> Value {
    match levels.as_array() {
        Some(a) => json!(a
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join(".")),
        None => levels.clone(),
    }
}

fn ns_levels(sel: &NamespaceSel) -> CliResult<Vec<String>> {
    namespace_levels("namespace", &sel.namespace)
}

async fn namespace(ctx: &Ctx, c: NamespaceCommand) -> CliResult {
    // Arguments are checked before the configuration is: a typo in a flag is reported as
    // such even where no server is configured.
    let out = &ctx.out;
    match c {
        NamespaceCommand::List { warehouse, parent } => {
            let parent = namespace_levels("parent", &parent)?;
            let api = ctx.api()?;
            let raw = api.list_namespaces(&warehouse, &parent).await?;
            let rows: Vec<Value> = rows(&raw, "namespaces")
                .iter()
                .map(|n| json!({"namespace": dotted(n)}))
                .collect();
            out.list(&raw, &rows, &[col("NAMESPACE", "namespace")]);
        }
        NamespaceCommand::Create {
            ns,
            properties: props,
        } => {
            let levels = ns_levels(&ns)?;
            let props = properties(&props)?;
            let api = ctx.api()?;
            let raw = api.create_namespace(&ns.warehouse, &levels, props).await?;
            print_namespace(ctx, &raw);
        }
        NamespaceCommand::Get { ns } => {
            let levels = ns_levels(&ns)?;
            let api = ctx.api()?;
            let raw = api.load_namespace(&ns.warehouse, &levels).await?;
            print_namespace(ctx, &raw);
        }
        NamespaceCommand::Drop { ns } => {
            let levels = ns_levels(&ns)?;
            let api = ctx.api()?;
            api.drop_namespace(&ns.warehouse, &levels).await?;
            out.done(
                &format!("Dropped namespace {}.", levels.join(".")),
                json!({"dropped": "namespace", "warehouse": ns.warehouse, "namespace": levels}),
            );
        }
    }
    Ok(())
}

fn print_namespace(ctx: &Ctx, raw: &Value) {
    if ctx.out.is_json() {
        super::output::print_json(raw);
        return;
    }
    let mut rows = vec![(
        "namespace".to_string(),
        cell(Some(&dotted(&raw["namespace"]))),
    )];
    if let Some(props) = raw.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            rows.push((format!("  {}", cell(Some(&json!(k)))), cell(Some(v))));
        }
    }
    print_str(&render_fields(&rows));
}

async fn table(ctx: &Ctx, c: TableCommand) -> CliResult {
    // Arguments are checked before the configuration is: a typo in a flag is reported as
    // such even where no server is configured.
    let out = &ctx.out;
    match c {
        TableCommand::List { ns } => {
            let levels = ns_levels(&ns)?;
            let api = ctx.api()?;
            let raw = api.list_tables(&ns.warehouse, &levels).await?;
            let rows: Vec<Value> = rows(&raw, "identifiers")
                .iter()
                .map(|i| json!({"namespace": dotted(&i["namespace"]), "name": i["name"]}))
                .collect();
            out.list(
                &raw,
                &rows,
                &[col("NAMESPACE", "namespace"), col("TABLE", "name")],
            );
        }
        TableCommand::Get { ns, table } => {
            let levels = ns_levels(&ns)?;
            let api = ctx.api()?;
            let raw = api.load_table(&ns.warehouse, &levels, &table).await?;
            if out.is_json() {
                super::output::print_json(&raw);
            } else {
                print_table(&levels, &table, &raw);
            }
        }
        TableCommand::Drop { ns, table, purge } => {
            let levels = ns_levels(&ns)?;
            let api = ctx.api()?;
            api.drop_table(&ns.warehouse, &levels, &table, purge)
                .await?;
            let what = if purge {
                "Dropped and purged"
            } else {
                "Dropped"
            };
            out.done(
                &format!("{what} table {}.{table}.", levels.join(".")),
                json!({"dropped": "table", "warehouse": ns.warehouse, "namespace": levels, "name": table, "purge": purge}),
            );
        }
        TableCommand::Rename {
            ns,
            table,
            new_name,
            to_namespace,
        } => {
            let levels = ns_levels(&ns)?;
            let to = if to_namespace.is_empty() {
                levels.clone()
            } else {
                namespace_levels("to-namespace", &to_namespace)?
            };
            let api = ctx.api()?;
            api.rename_table(&ns.warehouse, &levels, &table, &to, &new_name)
                .await?;
            out.done(
                &format!(
                    "Renamed table {}.{table} to {}.{new_name}.",
                    levels.join("."),
                    to.join(".")
                ),
                json!({
                    "renamed": "table",
                    "warehouse": ns.warehouse,
                    "source": {"namespace": levels, "name": table},
                    "destination": {"namespace": to, "name": new_name},
                }),
            );
        }
    }
    Ok(())
}

/// A loaded table for people: identity, location, current snapshot, the current schema,
/// the snapshot history (newest first) and the refs (branches and tags).
fn print_table(levels: &[String], name: &str, raw: &Value) {
    let m = &raw["metadata"];
    let snapshots = m
        .get("snapshots")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let current_schema_id = m.get("current-schema-id").cloned().unwrap_or(Value::Null);
    let schema = m
        .get("schemas")
        .and_then(Value::as_array)
        .and_then(|s| {
            s.iter()
                .find(|s| s.get("schema-id") == Some(&current_schema_id))
        })
        .or_else(|| m.get("schema"));
    let current = m
        .get("current-snapshot-id")
        .filter(|v| v.as_i64().is_some_and(|id| id >= 0));
    let current_summary = current
        .and_then(|id| snapshots.iter().find(|s| s.get("snapshot-id") == Some(id)))
        .and_then(|s| s.get("summary"));
    let summary = |k: &str| current_summary.and_then(|s| s.get(k));
    let rows = vec![
        (
            "table".to_string(),
            format!("{}.{}", levels.join("."), cell(Some(&json!(name)))),
        ),
        ("uuid".to_string(), cell(m.get("table-uuid"))),
        ("location".to_string(), cell(m.get("location"))),
        ("format version".to_string(), cell(m.get("format-version"))),
        (
            "metadata location".to_string(),
            cell(raw.get("metadata-location")),
        ),
        ("current snapshot".to_string(), cell(current)),
        ("records".to_string(), cell(summary("total-records"))),
        ("data files".to_string(), cell(summary("total-data-files"))),
        ("size".to_string(), size_cell(summary("total-files-size"))),
        ("snapshots".to_string(), snapshots.len().to_string()),
        (
            "last updated".to_string(),
            time_cell(m.get("last-updated-ms")),
        ),
    ];
    print_str(&render_fields(&rows));
    if let Some(fields) = schema
        .and_then(|s| s.get("fields"))
        .and_then(Value::as_array)
    {
        let table: Vec<Vec<String>> = fields
            .iter()
            .map(|f| {
                vec![
                    cell(f.get("id")),
                    cell(f.get("name")),
                    cell(f.get("type")),
                    cell(f.get("required")),
                ]
            })
            .collect();
        print_str("\n");
        print_str("schema:\n");
        print_str(&render_table(&["ID", "NAME", "TYPE", "REQUIRED"], &table));
    }
    if !snapshots.is_empty() {
        let mut history = snapshots.clone();
        history.sort_by_key(|s| {
            std::cmp::Reverse(s.get("timestamp-ms").and_then(Value::as_i64).unwrap_or(0))
        });
        let table: Vec<Vec<String>> = history
            .iter()
            .map(|s| {
                let sum = |k: &str| s.get("summary").and_then(|x| x.get(k));
                let id = s.get("snapshot-id");
                let marker = if id.is_some() && id == current {
                    " *"
                } else {
                    ""
                };
                vec![
                    format!("{}{marker}", cell(id)),
                    time_cell(s.get("timestamp-ms")),
                    cell(sum("operation")),
                    cell(sum("added-records")),
                    cell(sum("deleted-records")),
                    size_cell(sum("added-files-size")),
                ]
            })
            .collect();
        print_str("\n");
        print_str("snapshots (newest first, * = current):\n");
        print_str(&render_table(
            &[
                "SNAPSHOT",
                "TIME",
                "OPERATION",
                "ADDED RECORDS",
                "REMOVED RECORDS",
                "ADDED SIZE",
            ],
            &table,
        ));
    }
    if let Some(refs) = m
        .get("refs")
        .and_then(Value::as_object)
        .filter(|r| !r.is_empty())
    {
        let table: Vec<Vec<String>> = refs
            .iter()
            .map(|(name, r)| {
                vec![
                    cell(Some(&json!(name))),
                    cell(r.get("type")),
                    cell(r.get("snapshot-id")),
                ]
            })
            .collect();
        print_str("\n");
        print_str("refs:\n");
        print_str(&render_table(&["REF", "TYPE", "SNAPSHOT"], &table));
    }
}

// ---------------------------------------------------------------------------------------
// identity: users, groups, policies, keys
// ---------------------------------------------------------------------------------------

const USER_COLS: &[Field<User>] = &[
    field("NAME", |u: &User| text(&u.name)),
    field("ID", |u: &User| u.id.to_string()),
    field("EMAIL", |u: &User| opt_text(u.email.as_deref())),
    field("SOURCE", |u: &User| text(&u.source)),
    field("CREATED", |u: &User| when(&u.created_at)),
];
const USER_FIELDS: &[Field<User>] = &[
    field("name", |u: &User| text(&u.name)),
    field("id", |u: &User| u.id.to_string()),
    field("email", |u: &User| opt_text(u.email.as_deref())),
    field("friendly name", |u: &User| {
        opt_text(u.friendly_name.as_deref())
    }),
    field("source", |u: &User| text(&u.source)),
    field("created", |u: &User| when(&u.created_at)),
];

async fn user(ctx: &Ctx, c: UserCommand) -> CliResult {
    let api = ctx.api()?;
    let out = &ctx.out;
    match c {
        UserCommand::Create {
            name,
            email,
            friendly_name,
        } => {
            let u = api
                .create_user(&name, email.as_deref(), friendly_name.as_deref())
                .await?;
            out.record(&u, USER_FIELDS);
        }
        UserCommand::List => {
            let list = api.list_users().await?;
            out.rows("users", &list, USER_COLS);
        }
        UserCommand::Get { name } => {
            let u = api.get_user(&name).await?;
            out.record(&u, USER_FIELDS);
        }
        UserCommand::Delete { name } => {
            api.delete_user(&name).await?;
            out.done(
                &format!("Deleted user {name}."),
                json!({"deleted": "user", "name": name}),
            );
        }
    }
    Ok(())
}

const GROUP_COLS: &[Field<Group>] = &[
    field("NAME", |g: &Group| text(&g.name)),
    field("ID", |g: &Group| g.id.to_string()),
    field("DESCRIPTION", |g: &Group| {
        opt_text(g.description.as_deref())
    }),
    field("CREATED", |g: &Group| when(&g.created_at)),
];
const GROUP_FIELDS: &[Field<Group>] = &[
    field("name", |g: &Group| text(&g.name)),
    field("id", |g: &Group| g.id.to_string()),
    field("description", |g: &Group| {
        opt_text(g.description.as_deref())
    }),
    field("created", |g: &Group| when(&g.created_at)),
];

async fn group(ctx: &Ctx, c: GroupCommand) -> CliResult {
    let api = ctx.api()?;
    let out = &ctx.out;
    match c {
        GroupCommand::Create { name, description } => {
            let g = api.create_group(&name, description.as_deref()).await?;
            out.record(&g, GROUP_FIELDS);
        }
        GroupCommand::List => {
            let list = api.list_groups().await?;
            out.rows("groups", &list, GROUP_COLS);
        }
        GroupCommand::Get { name } => {
            let g = api.get_group(&name).await?;
            out.record(&g, GROUP_FIELDS);
        }
        GroupCommand::Delete { name } => {
            api.delete_group(&name).await?;
            out.done(
                &format!("Deleted group {name}."),
                json!({"deleted": "group", "name": name}),
            );
        }
        GroupCommand::AddMember { group, user } => {
            api.add_group_member(&group, &user).await?;
            out.done(
                &format!("Added {user} to {group}."),
                json!({"added": user, "group": group}),
            );
        }
        GroupCommand::RemoveMember { group, user } => {
            api.remove_group_member(&group, &user).await?;
            out.done(
                &format!("Removed {user} from {group}."),
                json!({"removed": user, "group": group}),
            );
        }
        GroupCommand::Members { group } => {
            let list = api.group_members(&group).await?;
            out.rows("users", &list, USER_COLS);
        }
    }
    Ok(())
}

const POLICY_COLS: &[Field<Policy>] = &[
    field("NAME", |p: &Policy| text(&p.name)),
    field("BUILTIN", |p: &Policy| yes_no(p.builtin)),
    field("STATEMENTS", |p: &Policy| p.statements.len().to_string()),
    field("DESCRIPTION", |p: &Policy| {
        opt_text(p.description.as_deref())
    }),
];

async fn policy(ctx: &Ctx, c: PolicyCommand) -> CliResult {
    // Arguments are checked before the configuration is: a typo in a flag is reported as
    // such even where no server is configured.
    let out = &ctx.out;
    match c {
        PolicyCommand::Create {
            name,
            statements,
            description,
        } => {
            let statements = super::api::parse_statements(statements_arg(&statements)?)?;
            let api = ctx.api()?;
            let p = api
                .create_policy(&name, description.as_deref(), statements)
                .await?;
            print_policy(ctx, &p);
        }
        PolicyCommand::List => {
            let api = ctx.api()?;
            let list = api.list_policies().await?;
            out.rows("policies", &list, POLICY_COLS);
        }
        PolicyCommand::Get { name } => {
            let api = ctx.api()?;
            let p = api.get_policy(&name).await?;
            print_policy(ctx, &p);
        }
        PolicyCommand::Update {
            name,
            statements,
            description,
        } => {
            let statements = super::api::parse_statements(statements_arg(&statements)?)?;
            let api = ctx.api()?;
            let p = api
                .update_policy(&name, description.as_deref(), statements)
                .await?;
            print_policy(ctx, &p);
        }
        PolicyCommand::Delete { name } => {
            let api = ctx.api()?;
            api.delete_policy(&name).await?;
            out.done(
                &format!("Deleted policy {name}."),
                json!({"deleted": "policy", "name": name}),
            );
        }
        PolicyCommand::Attach { name, target } => {
            let (kind, who) = target_of(&target);
            let api = ctx.api()?;
            api.attach_policy(&name, kind, &who, true).await?;
            out.done(
                &format!("Attached policy {name} to {kind} {who}."),
                json!({"attached": name, kind: who}),
            );
        }
        PolicyCommand::Detach { name, target } => {
            let (kind, who) = target_of(&target);
            let api = ctx.api()?;
            api.attach_policy(&name, kind, &who, false).await?;
            out.done(
                &format!("Detached policy {name} from {kind} {who}."),
                json!({"detached": name, kind: who}),
            );
        }
    }
    Ok(())
}

/// `("user"|"group", name)`; clap guarantees exactly one is set.
fn target_of(t: &AttachTarget) -> (&'static str, String) {
    match (&t.user, &t.group) {
        (Some(u), _) => ("user", u.clone()),
        (None, Some(g)) => ("group", g.clone()),
        (None, None) => ("user", String::new()),
    }
}

fn print_policy(ctx: &Ctx, p: &Policy) {
    if ctx.out.is_json() {
        super::output::print_json(p);
        return;
    }
    let rows = vec![
        ("name".to_string(), text(&p.name)),
        ("id".to_string(), p.id.to_string()),
        (
            "description".to_string(),
            opt_text(p.description.as_deref()),
        ),
        ("builtin".to_string(), yes_no(p.builtin)),
        ("created".to_string(), when(&p.created_at)),
        ("updated".to_string(), when(&p.updated_at)),
    ];
    print_str(&render_fields(&rows));
    let table: Vec<Vec<String>> = p
        .statements
        .iter()
        .map(|s| vec![s.effect.to_string(), names(&s.action), text(&s.resource)])
        .collect();
    print_str("\n");
    print_str("statements:\n");
    print_str(&render_table(&["EFFECT", "ACTIONS", "RESOURCE"], &table));
}

const KEY_COLS: &[Field<AccessKey>] = &[
    field("ACCESS KEY ID", |k: &AccessKey| text(&k.access_key_id)),
    field("CREATED", |k: &AccessKey| when(&k.created_at)),
    field("LAST USED", |k: &AccessKey| {
        opt_when(k.last_used_at.as_ref())
    }),
];

async fn key(ctx: &Ctx, c: KeyCommand) -> CliResult {
    let api = ctx.api()?;
    let out = &ctx.out;
    match c {
        KeyCommand::Create { user } => {
            let user = owner(&api, user).await?;
            let k = api.create_key(&user).await?;
            eprintln!(
                "WARNING: the secret access key is shown ONCE, now. Store it somewhere safe: it cannot be retrieved again \
                 (if lost, delete this key and create a new one)."
            );
            if out.is_json() {
                super::output::print_json(&k);
            } else {
                let rows = vec![
                    ("user".to_string(), text(&k.user)),
                    ("access key id".to_string(), text(&k.access_key_id)),
                    // Printed verbatim (no escaping) so it can be copied exactly.
                    (
                        "secret access key".to_string(),
                        k.secret_access_key.expose().to_string(),
                    ),
                ];
                print_str(&render_fields(&rows));
            }
        }
        KeyCommand::List { user } => {
            let user = owner(&api, user).await?;
            let list = api.list_keys(&user).await?;
            out.rows("access-keys", &list, KEY_COLS);
        }
        KeyCommand::Delete { key, user } => {
            let user = owner(&api, user).await?;
            api.delete_key(&user, &key).await?;
            out.done(
                &format!("Deleted access key {key} of {user}."),
                json!({"deleted": "access-key", "access-key-id": key, "user": user}),
            );
        }
    }
    Ok(())
}

/// `--user`, else the caller (whoami).
async fn owner(api: &Api, user: Option<String>) -> CliResult<String> {
    if let Some(u) = user {
        return Ok(u);
    }
    Ok(api.whoami().await?.name)
}
