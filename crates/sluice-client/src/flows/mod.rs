//! Login flows, each an [`Authenticator`]. [`from_config`] picks one from the resolved
//! configuration; every flow can also be built in code.
//!
//! | `auth-method`        | authenticator              | token from                                    | refresh                     |
//! |----------------------|----------------------------|-----------------------------------------------|-----------------------------|
//! | `access-key`         | [`AccessKeyAuth`]          | HTTP Basic, or `/v1/oauth/tokens` (exchange)  | exchange again              |
//! | `static-token`       | [`StaticTokenAuth`]        | the configured token                          | —                           |
//! | `client-credentials` | [`ClientCredentialsAuth`]  | RFC 6749 §4.4 at the token URL                | repeat the grant            |
//! | `pkce`               | [`PkceAuth`]               | RFC 6749 §4.1 + RFC 7636, loopback redirect   | `refresh_token` grant       |
//! | `device`             | [`DeviceAuth`]             | RFC 8628                                      | `refresh_token` grant       |
//! | `external-command`   | [`ExternalCommandAuth`]    | `sh -c token-command`                         | run again                   |
//! | `api-key`            | [`ApiKeyAuth`]             | client credentials at the key's endpoint      | repeat the grant            |
//! | `aws-role`           | [`AwsRoleAuth`]            | `/auth/external/principal/login`              | log in again                |
//! | `web-identity`       | [`WebIdentityAuth`]        | `/auth/sts/login`                             | —                           |
//! | `ldap`               | [`LdapAuth`]               | `/auth/ldap/login`                            | log in again                |
//!
//! Every HTTP call goes through [`AuthContext::http`](crate::auth::AuthContext); interactive flows show what the person
//! must do through a [`PromptSink`] (stderr by default) and open URLs through a
//! [`BrowserOpener`] (the system browser by default), both injectable.

mod api_key;
mod aws_role;
mod client_credentials;
mod device;
mod external_command;
mod oauth;
mod oidc;
mod pkce;
mod sluice_login;
mod ui;

pub use api_key::{decode_api_key, encode_api_key, ApiKey, ApiKeyAuth, API_KEY_PREFIX};
pub use aws_role::{AwsRoleAuth, DEFAULT_AWS_REGION};
pub use client_credentials::{AccessKeyAuth, ClientCredentialsAuth, StaticTokenAuth};
pub use device::{DeviceAuth, DEFAULT_DEVICE_INTERVAL, DEVICE_CODE_GRANT, SLOW_DOWN_STEP};
pub use external_command::{ExternalCommandAuth, DEFAULT_COMMAND_TIMEOUT};
pub use oidc::OidcOptions;
pub use pkce::PkceAuth;
pub use sluice_login::{LdapAuth, WebIdentityAuth, WebIdentityCode};
pub use ui::{BrowserOpener, Prompt, PromptSink, StderrPrompt, SystemBrowser};

use crate::auth::Authenticator;
use crate::config::{AuthMethod, ClientConfig};
use crate::error::{ClientError, Result};
use sluice_core::Secret;
use std::sync::Arc;
use std::time::Duration;

/// How long an interactive browser login may take unless `login-timeout-seconds` says otherwise.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

fn need<'a, T>(v: &'a Option<T>, method: &str, setting: &str, env: &str) -> Result<&'a T> {
    v.as_ref().ok_or_else(|| {
        ClientError::Config(format!(
            "{method} login needs {setting} (set {env} or `{setting}` in the profile)"
        ))
    })
}

fn need_str<'a>(v: &'a Option<String>, method: &str, setting: &str, env: &str) -> Result<&'a str> {
    match v.as_deref() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ClientError::Config(format!(
            "{method} login needs {setting} (set {env} or `{setting}` in the profile)"
        ))),
    }
}

fn need_secret<'a>(
    v: &'a Option<Secret>,
    method: &str,
    setting: &str,
    env: &str,
) -> Result<&'a Secret> {
    match need(v, method, setting, env)? {
        s if s.is_empty() => Err(ClientError::Config(format!(
            "{method} login needs {setting} (set {env} or `{setting}` in the profile)"
        ))),
        s => Ok(s),
    }
}

/// The auth method `config` selects: `auth_method`, else access-key when an access key id is
/// set, else static-token when a token is set, else api-key when an API key is set.
pub fn select_method(config: &ClientConfig) -> Result<AuthMethod> {
    if let Some(m) = &config.auth_method {
        return Ok(m.clone());
    }
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    let set_secret = |s: &Option<Secret>| s.as_ref().is_some_and(|s| !s.is_empty());
    if set(&config.access_key_id) {
        Ok(AuthMethod::AccessKey)
    } else if set_secret(&config.token) {
        Ok(AuthMethod::StaticToken)
    } else if set_secret(&config.api_key) {
        Ok(AuthMethod::ApiKey)
    } else {
        Err(ClientError::Config(
            "no credentials configured: set an access key (SLUICE_ACCESS_KEY_ID and \
             SLUICE_SECRET_ACCESS_KEY), a token (SLUICE_TOKEN), an API key (SLUICE_API_KEY), or \
             choose a login with SLUICE_AUTH_METHOD (access-key, static-token, client-credentials, \
             pkce, device, external-command, api-key, aws-role, web-identity, ldap); the profile \
             keys are access-key-id, secret-access-key, token, api-key and auth-method"
                .into(),
        ))
    }
}

/// The authenticator for `config` (see [`select_method`]); fails with a configuration error
/// naming the settings a method still needs.
pub fn from_config(config: &ClientConfig) -> Result<Arc<dyn Authenticator>> {
    let login_timeout = config.login_timeout.unwrap_or(DEFAULT_LOGIN_TIMEOUT);
    Ok(match select_method(config)? {
        AuthMethod::AccessKey => {
            let m = "access-key";
            let id = need_str(
                &config.access_key_id,
                m,
                "access-key-id",
                "SLUICE_ACCESS_KEY_ID",
            )?;
            let secret = need_secret(
                &config.secret_access_key,
                m,
                "secret-access-key",
                "SLUICE_SECRET_ACCESS_KEY",
            )?;
            Arc::new(AccessKeyAuth::new(
                id,
                secret.clone(),
                config.exchange_access_key,
            ))
        }
        AuthMethod::StaticToken => {
            let t = need_secret(&config.token, "static-token", "token", "SLUICE_TOKEN")?;
            Arc::new(StaticTokenAuth::new(t.clone()))
        }
        AuthMethod::ClientCredentials => {
            let m = "client-credentials";
            let id = need_str(&config.client_id, m, "client-id", "SLUICE_CLIENT_ID")?;
            let secret = need_secret(
                &config.client_secret,
                m,
                "client-secret",
                "SLUICE_CLIENT_SECRET",
            )?;
            let mut a = ClientCredentialsAuth::new(id, secret.clone())
                .scopes(config.scopes.clone())
                .allow_insecure_http(config.insecure);
            if let Some(u) = config.token_url.as_ref().filter(|u| !u.is_empty()) {
                a = a.token_url(u.clone());
            }
            if let Some(aud) = config.audience.as_ref().filter(|a| !a.is_empty()) {
                a = a.audience(aud.clone());
            }
            Arc::new(a)
        }
        AuthMethod::Pkce => Arc::new(
            PkceAuth::new(OidcOptions::from_config(config))
                .redirect_port(config.redirect_port.unwrap_or(0))
                .login_timeout(login_timeout),
        ),
        AuthMethod::Device => {
            let mut d = DeviceAuth::new(OidcOptions::from_config(config));
            if let Some(t) = config.login_timeout {
                d = d.login_timeout(t);
            }
            Arc::new(d)
        }
        AuthMethod::ExternalCommand => {
            let c = need_str(
                &config.token_command,
                "external-command",
                "token-command",
                "SLUICE_TOKEN_COMMAND",
            )?;
            Arc::new(
                ExternalCommandAuth::new(c)
                    .timeout(config.login_timeout.unwrap_or(DEFAULT_COMMAND_TIMEOUT)),
            )
        }
        AuthMethod::ApiKey => {
            let k = need_secret(&config.api_key, "api-key", "api-key", "SLUICE_API_KEY")?;
            Arc::new(ApiKeyAuth::from_key_string(k.expose())?)
        }
        AuthMethod::AwsRole => {
            let mut a = AwsRoleAuth::new();
            if let Some(r) = config.aws_region.as_ref().filter(|r| !r.is_empty()) {
                a = a.region(r.clone());
            }
            Arc::new(a)
        }
        AuthMethod::WebIdentity => Arc::new(
            WebIdentityAuth::browser(OidcOptions::from_config(config))
                .redirect_port(config.redirect_port.unwrap_or(0))
                .login_timeout(login_timeout),
        ),
        AuthMethod::Ldap => {
            let m = "ldap";
            let user = need_str(&config.username, m, "username", "SLUICE_USERNAME")?;
            let password = need_secret(&config.password, m, "password", "SLUICE_PASSWORD")?;
            Arc::new(LdapAuth::new(user, password.clone()))
        }
    })
}

/// A flow whose secret is not at hand (not given, not stored) but whose identity is known
/// from its non-secret settings: it can use the token an earlier login cached, and is
/// renewed by `refresh` where that needs no secret, but never logs in by itself.
struct CachedSession {
    name: &'static str,
    identity: String,
    /// Why the flow itself could not be built (for interactive callers).
    missing: ClientError,
}

#[async_trait::async_trait]
impl Authenticator for CachedSession {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cache_identity(&self) -> Option<String> {
        Some(self.identity.clone())
    }
    async fn authenticate(&self, _ctx: &crate::auth::AuthContext) -> Result<crate::auth::Token> {
        Err(self.missing.clone())
    }
    fn needs_person(&self) -> bool {
        true
    }
}

/// Like [`from_config`], but a flow that lacks only its secret still gets an authenticator
/// that uses the token cached for its identity (so `sluice login` once is enough even when
/// the secret was not kept). Other configuration errors are returned as they are.
pub fn from_config_or_cached(config: &ClientConfig) -> Result<Arc<dyn Authenticator>> {
    let missing = match from_config(config) {
        Ok(a) => return Ok(a),
        Err(e @ ClientError::Config(_)) => e,
        Err(e) => return Err(e),
    };
    let set = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let session = |name: &'static str, identity: String| -> Arc<dyn Authenticator> {
        Arc::new(CachedSession {
            name,
            identity,
            missing: missing.clone(),
        })
    };
    Ok(
        match (
            select_method(config)?,
            set(&config.access_key_id),
            set(&config.client_id),
            set(&config.username),
        ) {
            (AuthMethod::AccessKey, Some(id), _, _) if config.exchange_access_key => {
                session("access-key", format!("access-key:{id}"))
            }
            (AuthMethod::ClientCredentials, _, Some(id), _) => {
                session("client-credentials", format!("client-credentials:{id}"))
            }
            (AuthMethod::Ldap, _, _, Some(user)) => session("ldap", format!("ldap:{user}")),
            _ => return Err(missing),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: &ClientConfig) -> String {
        match from_config(c) {
            Ok(a) => panic!("expected an error, got {}", a.name()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn selection_and_missing_settings() {
        let mut c = ClientConfig::default();
        let e = err(&c);
        assert!(
            e.contains("SLUICE_ACCESS_KEY_ID")
                && e.contains("SLUICE_TOKEN")
                && e.contains("SLUICE_AUTH_METHOD"),
            "{e}"
        );

        c.token = Some(Secret::new("t"));
        assert_eq!(from_config(&c).unwrap().name(), "static-token");
        c.access_key_id = Some("AKIAEXAMPLE000000001".into());
        assert!(err(&c).contains("SLUICE_SECRET_ACCESS_KEY"));
        c.secret_access_key = Some(Secret::new("s"));
        let a = from_config(&c).unwrap();
        assert_eq!(a.name(), "access-key");
        assert_eq!(a.basic_credentials().unwrap().0, "AKIAEXAMPLE000000001");
        assert!(a.cache_identity().is_none());
        c.exchange_access_key = true;
        let a = from_config(&c).unwrap();
        assert!(a.basic_credentials().is_none());
        assert_eq!(
            a.cache_identity().as_deref(),
            Some("access-key:AKIAEXAMPLE000000001")
        );

        let mut c = ClientConfig {
            auth_method: Some(AuthMethod::ClientCredentials),
            ..Default::default()
        };
        assert!(err(&c).contains("SLUICE_CLIENT_ID"));
        c.client_id = Some("x".into());
        assert!(err(&c).contains("SLUICE_CLIENT_SECRET"));
        c.client_secret = Some(Secret::new("y"));
        assert_eq!(from_config(&c).unwrap().name(), "client-credentials");

        let c = ClientConfig {
            auth_method: Some(AuthMethod::Ldap),
            username: Some("u".into()),
            ..Default::default()
        };
        assert!(err(&c).contains("SLUICE_PASSWORD"));
        let c = ClientConfig {
            auth_method: Some(AuthMethod::ExternalCommand),
            ..Default::default()
        };
        assert!(err(&c).contains("SLUICE_TOKEN_COMMAND"));
        let c = ClientConfig {
            auth_method: Some(AuthMethod::ApiKey),
            api_key: Some(Secret::new("bogus")),
            ..Default::default()
        };
        assert!(err(&c).contains("not a valid Sluice API key"));
        for (m, name) in [
            (AuthMethod::Pkce, "pkce"),
            (AuthMethod::Device, "device"),
            (AuthMethod::AwsRole, "aws-role"),
            (AuthMethod::WebIdentity, "web-identity"),
        ] {
            let c = ClientConfig {
                auth_method: Some(m),
                ..Default::default()
            };
            assert_eq!(from_config(&c).unwrap().name(), name);
        }
    }
}
