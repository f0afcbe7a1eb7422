//! Where every external login ends: a Sluice user (created on first login, linked to the
//! external identity, put into its initial groups) and a Sluice-signed token. Identity
//! providers (OIDC, LDAP, AWS IAM, web identity) only prove who someone is; this module
//! decides which Sluice user that is, which groups a first login gets, how long its token
//! lives and where the browser may be sent afterwards.

use crate::auth::TokenResponse;
use crate::{now, Result, ServiceError, Services};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use sluice_auth::aws_iam::AwsIamVerifier;
use sluice_auth::ldap::LdapAuthenticator;
use sluice_auth::oidc::{OidcIdentity, OidcProvider, ProviderMetadata};
use sluice_core::Principal;
use sluice_store::{ExternalIdentityRecord, StoreError, UserRecord};
use std::sync::Arc;
use uuid::Uuid;

/// The configured external identity providers (each absent unless configured). The
/// clients are built by the server from its configuration; every decision over what they
/// prove is made here and in [`crate::authn`].
#[derive(Default, Clone)]
pub struct IdentityProviders {
    pub oidc: Option<Arc<OidcProvider>>,
    pub ldap: Option<Arc<LdapAuthenticator>>,
    pub aws_iam: Option<Arc<AwsIamVerifier>>,
}

/// A login endpoint's provider, for answering 404 when it is not configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginProvider {
    Oidc,
    Ldap,
    AwsIam,
}

impl LoginProvider {
    fn name(self) -> &'static str {
        match self {
            LoginProvider::Oidc => "OIDC",
            LoginProvider::Ldap => "LDAP",
            LoginProvider::AwsIam => "AWS IAM login",
        }
    }
}

/// A finished login: who it is and their Sluice token.
#[derive(Debug)]
pub struct Login {
    pub principal: Principal,
    pub token: TokenResponse,
}

/// What a person typed into a login form.
pub enum PasswordLogin<'a> {
    AccessKey {
        id: &'a str,
        secret: &'a str,
    },
    Ldap {
        username: &'a str,
        password: &'a str,
    },
}

/// How long the browser has to come back from the identity provider.
pub const LOGIN_STATE_TTL_SECS: i64 = 600;

/// Browser SSO, step 1: where to send the browser, and the sealed login state the client
/// keeps (as a cookie) until the callback.
#[derive(Debug)]
pub struct OidcLoginStart {
    pub authorization_url: String,
    /// base64url of the encrypted [`LoginState`]; only this deployment can open it.
    pub sealed_state: String,
    /// The callback URL the provider will redirect to.
    pub redirect_uri: String,
}

/// What the identity provider sent back to the callback.
#[derive(Debug, Default)]
pub struct OidcCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Browser SSO, step 2: the login, and where the login asked to go afterwards.
#[derive(Debug)]
pub struct OidcLoginDone {
    pub login: Login,
    /// A local path checked when the login started.
    pub return_to: Option<String>,
    pub redirect_uri: String,
}

/// The login state that round-trips through the browser, sealed.
#[derive(serde::Serialize, serde::Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    return_to: Option<String>,
    exp: i64,
}

/// What clients may learn about the configured providers (`/.well-known/...`).
#[derive(Debug)]
pub struct AuthMetadata {
    pub oidc: Option<OidcMetadata>,
    pub ldap: bool,
    /// The AWS IAM login's server id, when that login is configured.
    pub aws_iam_server_id: Option<String>,
}

#[derive(Debug)]
pub enum OidcMetadata {
    /// The provider's discovery document could not be fetched; Sluice's own endpoints are
    /// still listed.
    Unavailable { issuer: String },
    Available {
        provider: Box<ProviderMetadata>,
        /// The client id a CLI should use (the public one when configured).
        client_id: String,
        scopes: Vec<String>,
        audience: String,
    },
}

/// Only local paths: an absolute URL here would make the login an open redirect.
/// Browsers drop tabs and newlines from URLs, so "/\t/evil" would become "//evil".
fn check_return_to(r: &str) -> Result<()> {
    if !r.starts_with('/')
        || r.starts_with("//")
        || r.contains('\\')
        || r.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ServiceError::BadRequest(
            "return_to must be a path on this server".into(),
        ));
    }
    Ok(())
}

/// A proven external identity.
#[derive(Debug, Clone)]
pub struct ExternalLogin {
    /// `oidc`, `ldap`, `aws-iam`, `web-identity`.
    pub source: &'static str,
    /// Stable identifier in that system (`<issuer>#<sub>`, the LDAP DN, the principal ARN).
    pub subject: String,
    /// Desired Sluice user name; made unique if taken by someone else.
    pub preferred_name: String,
    pub email: Option<String>,
    pub friendly_name: Option<String>,
    /// Groups for a first login (names; unknown ones are skipped with a warning).
    pub initial_groups: Vec<String>,
}

/// User names must stay usable in resource strings and URLs.
fn sanitize_name(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-=,".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() {
        "user".into()
    } else {
        s
    }
}

impl Services {
    /// Maps an external identity to its Sluice user, creating the user on first login.
    /// Email and friendly name follow the identity provider on every login.
    pub(crate) async fn login_external(&self, login: ExternalLogin) -> Result<Principal> {
        for _ in 0..3 {
            if let Some(link) = self
                .store()
                .get_external_identity(login.source, &login.subject)
                .await?
            {
                let mut user = self.store().get_user(link.user_id).await?.ok_or_else(|| {
                    ServiceError::Unauthorized("the linked user no longer exists".into())
                })?;
                let changed = (login.email.is_some() && user.email != login.email)
                    || (login.friendly_name.is_some() && user.friendly_name != login.friendly_name);
                if changed {
                    if login.email.is_some() {
                        user.email = login.email.clone();
                    }
                    if login.friendly_name.is_some() {
                        user.friendly_name = login.friendly_name.clone();
                    }
                    self.store().update_user(&user).await?;
                }
                return Ok(Principal {
                    user_id: user.id,
                    user_name: user.name,
                    access_key_id: None,
                });
            }
            match self.provision(&login).await {
                Ok(p) => return Ok(p),
                // Someone else's first login of the same identity won: read their result.
                Err(ServiceError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ServiceError::Unavailable(
            "could not provision the user; retry".into(),
        ))
    }

    async fn provision(&self, login: &ExternalLogin) -> Result<Principal> {
        let base = sanitize_name(&login.preferred_name);
        let mut name = base.clone();
        // Another user (a built-in one, or another provider's) may hold the name already.
        for i in 2..50 {
            if self.store().get_user_by_name(&name).await?.is_none() {
                break;
            }
            name = format!(
                "{base}-{}{}",
                login.source,
                if i > 2 {
                    format!("-{i}")
                } else {
                    String::new()
                }
            );
        }
        let mut group_ids = Vec::new();
        for g in &login.initial_groups {
            match self.store().get_group_by_name(g).await? {
                Some(grp) => group_ids.push(grp.id),
                None => {
                    tracing::warn!(group = %g, source = login.source, "initial group does not exist; skipped")
                }
            }
        }
        let n = now();
        let user = UserRecord {
            id: Uuid::new_v4(),
            name: name.clone(),
            email: login.email.clone(),
            friendly_name: login.friendly_name.clone(),
            source: login.source.to_string(),
            created_at: n,
        };
        let link = ExternalIdentityRecord {
            source: login.source.to_string(),
            subject: login.subject.clone(),
            user_id: user.id,
            created_at: n,
        };
        self.store()
            .create_user_with_identity(&user, &link, &group_ids)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists(m) => ServiceError::AlreadyExists(m),
                other => other.into(),
            })?;
        self.identity_changed();
        tracing::info!(user = %name, source = login.source, "provisioned user on first login");
        Ok(Principal {
            user_id: user.id,
            user_name: user.name,
            access_key_id: None,
        })
    }

    /// A Sluice token for a logged-in principal; `ttl` is capped by the server's token TTL.
    pub(crate) fn issue_session_token(
        &self,
        p: &Principal,
        ttl: Option<i64>,
    ) -> Result<TokenResponse> {
        let max = self.tokens().ttl_seconds();
        let ttl = ttl.filter(|t| *t > 0).map_or(max, |t| t.min(max));
        let token = self
            .tokens()
            .issue_with_ttl(
                p.user_id,
                &p.user_name,
                p.access_key_id.as_deref(),
                None,
                now().timestamp(),
                ttl,
            )
            .map_err(ServiceError::internal)?;
        Ok(TokenResponse {
            access_token: token,
            token_type: "bearer",
            expires_in: ttl,
            issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
            scope: None,
        })
    }

    // ---- external principals (AWS IAM ARNs attached to users by an admin) ----

    pub async fn list_external_principals(
        &self,
        caller: &Principal,
        user: &str,
    ) -> Result<Vec<ExternalPrincipalInfo>> {
        use sluice_auth::policy::{resource, Action};
        self.authorize(caller, Action::ReadUser, &resource::user(user))
            .await?;
        let u = self
            .store()
            .get_user_by_name(user)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("user '{user}' does not exist")))?;
        Ok(self
            .store()
            .list_external_identities(u.id)
            .await?
            .into_iter()
            .map(|r| ExternalPrincipalInfo {
                source: r.source,
                id: r.subject,
                created_at: r.created_at,
            })
            .collect())
    }

    /// Attaches an AWS principal ARN to a user, so `aws-iam` logins of that principal
    /// become that user.
    pub async fn attach_external_principal(
        &self,
        caller: &Principal,
        user: &str,
        arn: &str,
    ) -> Result<ExternalPrincipalInfo> {
        use sluice_auth::policy::{resource, Action};
        let target = format!("{}/external-principal/{arn}", resource::user(user));
        self.audited(caller, Action::UpdateUser, &target, async {
            self.authorize(caller, Action::UpdateUser, &resource::user(user))
                .await?;
            let arn = arn.trim();
            if !(arn.starts_with("arn:aws") && arn.split(':').count() >= 6) {
                return Err(ServiceError::BadRequest(format!(
                    "'{arn}' is not an AWS principal ARN"
                )));
            }
            let principal =
                sluice_auth::aws_iam::principal_arn(arn).unwrap_or_else(|| arn.to_string());
            let u =
                self.store().get_user_by_name(user).await?.ok_or_else(|| {
                    ServiceError::NotFound(format!("user '{user}' does not exist"))
                })?;
            let rec = ExternalIdentityRecord {
                source: "aws-iam".into(),
                subject: principal.clone(),
                user_id: u.id,
                created_at: now(),
            };
            self.store()
                .create_external_identity(&rec)
                .await
                .map_err(|e| match e {
                    StoreError::AlreadyExists(_) => ServiceError::AlreadyExists(format!(
                        "principal {principal} is already attached to a user"
                    )),
                    other => other.into(),
                })?;
            Ok(ExternalPrincipalInfo {
                source: rec.source,
                id: rec.subject,
                created_at: rec.created_at,
            })
        })
        .await
    }

    pub async fn detach_external_principal(
        &self,
        caller: &Principal,
        user: &str,
        arn: &str,
    ) -> Result<()> {
        use sluice_auth::policy::{resource, Action};
        let target = format!("{}/external-principal/{arn}", resource::user(user));
        self.audited(caller, Action::UpdateUser, &target, async {
            self.authorize(caller, Action::UpdateUser, &resource::user(user))
                .await?;
            let u =
                self.store().get_user_by_name(user).await?.ok_or_else(|| {
                    ServiceError::NotFound(format!("user '{user}' does not exist"))
                })?;
            // The same normalization as attach: a session ARN names its role.
            let arn = sluice_auth::aws_iam::principal_arn(arn.trim())
                .unwrap_or_else(|| arn.trim().to_string());
            match self.store().get_external_identity("aws-iam", &arn).await? {
                Some(r) if r.user_id == u.id => {}
                _ => {
                    return Err(ServiceError::NotFound(format!(
                        "principal {arn} is not attached to user '{user}'"
                    )))
                }
            }
            self.store()
                .delete_external_identity("aws-iam", &arn)
                .await?;
            Ok(())
        })
        .await
    }
}

/// The external logins: each proves an identity with its provider, maps it to a Sluice
/// user (provisioning on first login) and issues a session token.
impl Services {
    /// 404 for a login endpoint whose provider is not configured.
    pub fn require_login_provider(&self, p: LoginProvider) -> Result<()> {
        let i = self.identity_providers();
        let configured = match p {
            LoginProvider::Oidc => i.oidc.is_some(),
            LoginProvider::Ldap => i.ldap.is_some(),
            LoginProvider::AwsIam => i.aws_iam.is_some(),
        };
        if configured {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "{} is not configured on this server",
                p.name()
            )))
        }
    }

    fn oidc(&self) -> Result<&Arc<OidcProvider>> {
        self.require_login_provider(LoginProvider::Oidc)?;
        self.identity_providers()
            .oidc
            .as_ref()
            .ok_or_else(|| ServiceError::internal("OIDC provider missing"))
    }

    /// What clients may learn about the configured providers. An unreachable identity
    /// provider is reported as such and never hides Sluice's own endpoints.
    pub async fn auth_metadata(&self) -> AuthMetadata {
        let i = self.identity_providers();
        let oidc = match &i.oidc {
            None => None,
            Some(oidc) => {
                let cfg = oidc.config();
                Some(match oidc.metadata().await {
                    Ok(provider) => OidcMetadata::Available {
                        provider: Box::new(provider),
                        client_id: cfg
                            .public_client_id
                            .clone()
                            .unwrap_or_else(|| cfg.client_id.clone()),
                        scopes: cfg.scopes.clone(),
                        audience: cfg
                            .allowed_audiences
                            .first()
                            .cloned()
                            .unwrap_or_else(|| cfg.client_id.clone()),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "identity provider metadata unavailable");
                        OidcMetadata::Unavailable {
                            issuer: cfg.url.clone(),
                        }
                    }
                })
            }
        };
        AuthMetadata {
            oidc,
            ldap: i.ldap.is_some(),
            aws_iam_server_id: i.aws_iam.as_ref().map(|a| a.config().server_id.clone()),
        }
    }

    /// A proven OIDC identity → its Sluice user. First login: groups from the configured
    /// claim when the token carries it, otherwise the configured defaults.
    pub(crate) async fn oidc_principal(
        &self,
        oidc: &OidcProvider,
        source: &'static str,
        id: OidcIdentity,
    ) -> Result<Principal> {
        let cfg = oidc.config();
        let groups = if cfg.initial_groups_claim_name.is_some() && !id.groups.is_empty() {
            id.groups.clone()
        } else {
            cfg.default_initial_groups.clone()
        };
        self.login_external(ExternalLogin {
            source,
            subject: format!("{}#{}", id.issuer, id.subject),
            preferred_name: id.username.clone(),
            email: id.email.clone(),
            friendly_name: id.friendly_name.clone(),
            initial_groups: groups,
        })
        .await
    }

    /// LDAP username/password → its Sluice user; a first login joins `default_user_group`.
    /// Every failure reads "invalid credentials" to the caller; the reason goes to the log.
    pub(crate) async fn ldap_principal(
        &self,
        ldap: &LdapAuthenticator,
        username: &str,
        password: &str,
    ) -> Result<Principal> {
        let identity = ldap.authenticate(username, password).await?;
        self.login_external(ExternalLogin {
            source: "ldap",
            subject: identity.dn.clone(),
            preferred_name: identity.username.clone(),
            email: identity.email.clone(),
            friendly_name: identity.friendly_name.clone(),
            initial_groups: ldap.config().default_user_group.iter().cloned().collect(),
        })
        .await
    }

    fn session(&self, principal: Principal, ttl: Option<i64>) -> Result<Login> {
        let token = self.issue_session_token(&principal, ttl)?;
        Ok(Login { principal, token })
    }

    /// Browser SSO, step 1: authorization code + PKCE + state + nonce. The state is sealed
    /// for the client to keep, so any replica can finish the login. The callback goes to
    /// the configured `callback_base_url`, else to `request_base` (where the client
    /// reached us).
    pub async fn begin_oidc_login(
        &self,
        return_to: Option<String>,
        request_base: String,
    ) -> Result<OidcLoginStart> {
        let oidc = self.oidc()?;
        if let Some(r) = &return_to {
            check_return_to(r)?;
        }
        let base = oidc
            .config()
            .callback_base_url
            .clone()
            .unwrap_or(request_base);
        let redirect_uri = format!("{}/auth/oidc/callback", base.trim_end_matches('/'));
        let (verifier, challenge) = sluice_auth::oidc::pkce_pair();
        let st = LoginState {
            state: sluice_auth::oidc::random_token(),
            nonce: sluice_auth::oidc::random_token(),
            verifier,
            redirect_uri: redirect_uri.clone(),
            return_to,
            exp: chrono::Utc::now().timestamp() + LOGIN_STATE_TTL_SECS,
        };
        let authorization_url = oidc
            .authorization_url(&redirect_uri, &st.state, &st.nonce, &challenge)
            .await?;
        let sealed_state =
            B64URL.encode(self.seal(&serde_json::to_vec(&st).map_err(ServiceError::internal)?));
        Ok(OidcLoginStart {
            authorization_url,
            sealed_state,
            redirect_uri,
        })
    }

    /// Browser SSO, step 2: check the state, exchange the code (PKCE verifier, nonce),
    /// provision the user and issue the session token.
    pub async fn finish_oidc_login(
        &self,
        sealed_state: Option<&str>,
        callback: OidcCallback,
    ) -> Result<OidcLoginDone> {
        let oidc = self.oidc()?;
        if let Some(err) = callback.error {
            return Err(ServiceError::Unauthorized(format!(
                "the identity provider refused the login: {err}{}",
                callback
                    .error_description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )));
        }
        let bad_state = || {
            ServiceError::Unauthorized(
                "login state is missing, expired or does not match; start again at /auth/oidc/login"
                    .into(),
            )
        };
        let st: LoginState = sealed_state
            .and_then(|s| B64URL.decode(s.as_bytes()).ok())
            .and_then(|b| self.unseal(&b))
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(bad_state)?;
        let given = callback.state.unwrap_or_default();
        if st.exp < chrono::Utc::now().timestamp()
            || !sluice_core::Secret::new(st.state.clone()).ct_eq(&given)
        {
            return Err(bad_state());
        }
        let code = callback
            .code
            .ok_or_else(|| ServiceError::BadRequest("missing code".into()))?;
        let identity = oidc
            .exchange_code(&code, &st.redirect_uri, Some(&st.verifier), Some(&st.nonce))
            .await?;
        let principal = self.oidc_principal(oidc, "oidc", identity).await?;
        Ok(OidcLoginDone {
            login: self.session(principal, None)?,
            return_to: st.return_to,
            redirect_uri: st.redirect_uri,
        })
    }

    /// Web-identity login: the client ran the browser step itself and hands over the code.
    /// `ttl` is capped by the server's token TTL.
    pub async fn web_identity_login(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
        ttl: Option<i64>,
    ) -> Result<Login> {
        let oidc = self.oidc()?;
        let identity = oidc
            .exchange_code(code, redirect_uri, code_verifier, None)
            .await?;
        let principal = self.oidc_principal(oidc, "web-identity", identity).await?;
        self.session(principal, ttl)
    }

    /// A person's login form (the console): an access key pair or LDAP username and
    /// password → a session of at most `ttl` seconds (capped by the token TTL).
    pub async fn password_login(
        &self,
        login: PasswordLogin<'_>,
        ttl: Option<i64>,
    ) -> Result<Login> {
        let principal = match login {
            PasswordLogin::AccessKey { id, secret } => self.authenticate_key(id, secret).await?,
            PasswordLogin::Ldap { username, password } => {
                self.require_login_provider(LoginProvider::Ldap)?;
                let ldap = self
                    .identity_providers()
                    .ldap
                    .as_ref()
                    .ok_or_else(|| ServiceError::internal("LDAP provider missing"))?;
                self.ldap_principal(ldap, username, password).await?
            }
        };
        self.session(principal, ttl)
    }

    /// LDAP username and password → a session.
    pub async fn ldap_login(&self, username: &str, password: &str) -> Result<Login> {
        self.require_login_provider(LoginProvider::Ldap)?;
        let ldap = self
            .identity_providers()
            .ldap
            .as_ref()
            .ok_or_else(|| ServiceError::internal("LDAP provider missing"))?;
        let principal = self.ldap_principal(ldap, username, password).await?;
        self.session(principal, None)
    }

    /// AWS IAM login: a presigned GetCallerIdentity proves the principal. It must be
    /// attached to a user unless `auto_provision_group` is set; the token lives at most
    /// `max_session_ttl_seconds` (and the server's token TTL).
    pub async fn aws_iam_login(&self, identity_token: &str, ttl: Option<i64>) -> Result<Login> {
        self.require_login_provider(LoginProvider::AwsIam)?;
        let aws = self
            .identity_providers()
            .aws_iam
            .as_ref()
            .ok_or_else(|| ServiceError::internal("AWS IAM verifier missing"))?;
        let principal = aws.verify(identity_token, chrono::Utc::now()).await?;
        let linked = self
            .store()
            .get_external_identity("aws-iam", &principal.principal_arn)
            .await?;
        let cfg = aws.config();
        if linked.is_none() && cfg.auto_provision_group.is_none() {
            return Err(ServiceError::Unauthorized(format!(
                "principal {} is not attached to any user",
                principal.principal_arn
            )));
        }
        // Name for an auto-provisioned user: the role or user name from the ARN.
        let preferred = principal
            .principal_arn
            .rsplit('/')
            .next()
            .unwrap_or("aws-principal")
            .to_string();
        let p = self
            .login_external(ExternalLogin {
                source: "aws-iam",
                subject: principal.principal_arn.clone(),
                preferred_name: preferred,
                email: None,
                friendly_name: Some(principal.arn.clone()),
                initial_groups: cfg.auto_provision_group.iter().cloned().collect(),
            })
            .await?;
        let ttl = ttl.map(|t| t.min(cfg.max_session_ttl_seconds as i64));
        self.session(p, ttl)
    }
}

pub use sluice_api::ExternalPrincipal as ExternalPrincipalInfo;

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("alice"), "alice");
        assert_eq!(sanitize_name("Alice Smith/x"), "Alice-Smith-x");
        assert_eq!(sanitize_name(""), "user");
        assert_eq!(sanitize_name("a@b.org"), "a@b.org");
    }

    #[test]
    fn return_to_must_be_a_local_path() {
        for ok in ["/", "/management/v1/whoami", "/a?b=c#d"] {
            assert!(check_return_to(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/a b",
            "evil",
            "",
        ] {
            assert!(
                matches!(check_return_to(bad), Err(ServiceError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
