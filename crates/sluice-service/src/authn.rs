//! Who is calling: one chain of authenticators, one per credential kind. The HTTP edge only
//! parses a request into a [`Credential`] and calls [`Services::authenticate`]; which
//! credential means whom, and every failure's answer, is decided here.
//!
//! Adding a front door (the S3 gateway's SigV4/SigV2 keys, the console's session) is one
//! more [`Credential`] variant parsed by that front door's extractor and one more
//! [`Authenticator`] registered in [`Chain::new`].

use crate::cache::KeyedCache;
use crate::login::IdentityProviders;
use crate::{Result, ServiceError, Services};
use sha2::{Digest, Sha256};
use sluice_auth::ldap::LdapAuthenticator;
use sluice_auth::oidc::OidcProvider;
use sluice_core::{AccessKeyId, Principal, Secret};
use std::sync::Arc;
use std::time::Duration;

/// A credential as a front door found it on the request, typed but not yet checked.
pub enum Credential {
    /// HTTP Basic `id:secret`: an access key pair, or LDAP username and password.
    Basic { id: String, secret: Secret },
    /// `Authorization: Bearer`: a Sluice JWT or a token of the configured OIDC provider.
    Bearer(Secret),
    /// The browser session cookie set by SSO or the console's login (a Sluice JWT).
    /// `safe_method` says whether the request is a GET or HEAD: a cookie rides along on
    /// cross-site requests, so on its own it never authorizes a change. `csrf` is the
    /// anti-forgery token a console form carried (`None` where the front door has none, as
    /// on the API): a change is authorized only when it is the session's
    /// [`Services::csrf_token`].
    SessionCookie {
        token: Secret,
        safe_method: bool,
        csrf: Option<Secret>,
    },
}

/// One credential kind. The first authenticator in the chain that claims a credential
/// decides it; a failure does not fall through to the next one (a wrong LDAP password must
/// not be retried as something else).
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    /// `None`: not this authenticator's kind of credential.
    async fn authenticate(
        &self,
        services: &Services,
        credential: &Credential,
    ) -> Option<Result<Principal>>;

    /// Drops cached results: a user changed or deleted (here or on another replica) must
    /// not stay authenticated from a cache.
    fn forget_cached(&self) {}
}

const CREDENTIALS_REQUIRED: &str =
    "authentication required: use HTTP Basic with an access key or a bearer token";

/// The configured authenticators, in the order they are asked.
pub(crate) struct Chain(Vec<Box<dyn Authenticator>>);

impl Chain {
    pub(crate) fn new(providers: &IdentityProviders) -> Self {
        let mut chain: Vec<Box<dyn Authenticator>> = Vec::new();
        if let Some(ldap) = providers
            .ldap
            .as_ref()
            .filter(|l| l.config().allow_basic_auth)
        {
            chain.push(Box::new(LdapBasic::new(ldap.clone())));
        }
        chain.push(Box::new(AccessKeyBasic));
        if let Some(oidc) = &providers.oidc {
            chain.push(Box::new(OidcBearer(oidc.clone())));
        }
        chain.push(Box::new(SluiceBearer));
        chain.push(Box::new(SessionCookie));
        Chain(chain)
    }

    pub(crate) fn forget_cached(&self) {
        for a in &self.0 {
            a.forget_cached();
        }
    }
}

impl Services {
    /// The principal a credential proves; `None` (no credential) and credentials nobody
    /// accepts answer 401 "authentication required".
    pub async fn authenticate(&self, credential: Option<&Credential>) -> Result<Principal> {
        if let Some(credential) = credential {
            for a in &self.authenticators().0 {
                if let Some(result) = a.authenticate(self, credential).await {
                    return result;
                }
            }
        }
        Err(ServiceError::Unauthorized(CREDENTIALS_REQUIRED.into()))
    }
}

/// Access key id and secret as HTTP Basic.
struct AccessKeyBasic;

#[async_trait::async_trait]
impl Authenticator for AccessKeyBasic {
    async fn authenticate(&self, s: &Services, c: &Credential) -> Option<Result<Principal>> {
        let Credential::Basic { id, secret } = c else {
            return None;
        };
        Some(s.authenticate_key(id, secret.expose()).await)
    }
}

/// A Sluice-issued JWT as a bearer token.
struct SluiceBearer;

#[async_trait::async_trait]
impl Authenticator for SluiceBearer {
    async fn authenticate(&self, s: &Services, c: &Credential) -> Option<Result<Principal>> {
        let Credential::Bearer(token) = c else {
            return None;
        };
        Some(s.authenticate_token(token.expose()).await)
    }
}

/// The session cookie: on safe methods; on others only with the session's CSRF token
/// (without one nobody claims it and the request is unauthenticated; with a wrong one it is
/// refused).
struct SessionCookie;

#[async_trait::async_trait]
impl Authenticator for SessionCookie {
    async fn authenticate(&self, s: &Services, c: &Credential) -> Option<Result<Principal>> {
        let Credential::SessionCookie {
            token,
            safe_method,
            csrf,
        } = c
        else {
            return None;
        };
        if !safe_method {
            let csrf = csrf.as_ref()?;
            if !csrf.ct_eq(&s.csrf_token(token)) {
                return Some(Err(ServiceError::Forbidden(
                    "missing or wrong CSRF token: reload the page and try again".into(),
                )));
            }
        }
        Some(s.authenticate_token(token.expose()).await)
    }
}

/// Domain separation of the CSRF token from any other hash of the session token.
const CSRF_CONTEXT: &[u8] = b"sluice-console-csrf-v1\0";

impl Services {
    /// The anti-forgery token bound to a session token: a page embeds it in every form and
    /// [`Credential::SessionCookie`] requires it for changes. A cross-site page can neither
    /// read the HttpOnly cookie nor this token, and the token does not reveal the cookie.
    pub fn csrf_token(&self, session_token: &Secret) -> String {
        let digest = Sha256::new()
            .chain_update(CSRF_CONTEXT)
            .chain_update(session_token.expose().as_bytes())
            .finalize();
        sluice_core::hex(&digest)
    }
}

/// Bearer tokens of the configured OIDC provider, recognised by their (unverified) issuer;
/// signature and claims are verified next. Users are provisioned on first use.
struct OidcBearer(Arc<OidcProvider>);

#[async_trait::async_trait]
impl Authenticator for OidcBearer {
    async fn authenticate(&self, s: &Services, c: &Credential) -> Option<Result<Principal>> {
        let Credential::Bearer(token) = c else {
            return None;
        };
        if !self.0.is_candidate(token.expose()) {
            return None;
        }
        Some(match self.0.verify_bearer(token.expose()).await {
            Ok(identity) => s.oidc_principal(&self.0, "oidc", identity).await,
            Err(e) => Err(e.into()),
        })
    }
}

/// How long an LDAP Basic result is reused: short, so a password change or a disabled
/// account takes effect quickly.
const LDAP_BASIC_CACHE_TTL: Duration = Duration::from_secs(60);

/// LDAP username and password as HTTP Basic on the API (config `allow_basic_auth`), for
/// user names that are not access key ids. Results are cached briefly so API calls do not
/// bind per request.
struct LdapBasic {
    ldap: Arc<LdapAuthenticator>,
    /// Keyed by a hash of username and password.
    cache: KeyedCache<[u8; 32], Principal>,
}

impl LdapBasic {
    fn new(ldap: Arc<LdapAuthenticator>) -> Self {
        LdapBasic {
            ldap,
            cache: KeyedCache::new(10_000, Some(LDAP_BASIC_CACHE_TTL)),
        }
    }
}

#[async_trait::async_trait]
impl Authenticator for LdapBasic {
    async fn authenticate(&self, s: &Services, c: &Credential) -> Option<Result<Principal>> {
        let Credential::Basic { id, secret } = c else {
            return None;
        };
        if AccessKeyId::parse(id).is_ok() {
            return None;
        }
        let key: [u8; 32] = Sha256::new()
            .chain_update(id.as_bytes())
            .chain_update([0u8])
            .chain_update(secret.expose().as_bytes())
            .finalize()
            .into();
        Some(
            self.cache
                .get_or_refresh(
                    key,
                    |_| true,
                    || s.ldap_principal(&self.ldap, id, secret.expose()),
                )
                .await,
        )
    }

    fn forget_cached(&self) {
        self.cache.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_auth::{KeyMaterial, SecretBox, TokenIssuer};

    async fn services() -> Services {
        let store = sluice_store::SqliteStore::connect("sqlite::memory:")
            .await
            .expect("in-memory store");
        Services::new(
            Arc::new(store),
            SecretBox::new(&KeyMaterial::random()),
            TokenIssuer::new(&KeyMaterial::random(), "sluice", 3600),
            crate::ServiceConfig::new(vec![]),
        )
    }

    fn unauthorized(r: Result<Principal>) -> String {
        match r {
            Err(ServiceError::Unauthorized(m)) => m,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn each_credential_kind_goes_to_its_authenticator() {
        let s = services().await;
        let admin = match s.bootstrap(None).await.expect("bootstrap") {
            crate::auth::Bootstrap::Generated(k) => k,
            other => panic!("{other:?}"),
        };
        let basic = |id: &str, secret: &str| Credential::Basic {
            id: id.into(),
            secret: Secret::new(secret),
        };
        let p = s
            .authenticate(Some(&basic(
                &admin.access_key_id,
                admin.secret_access_key.expose(),
            )))
            .await
            .expect("access key");
        assert_eq!(p.user_name, "admin");
        assert_eq!(
            p.access_key_id.as_deref(),
            Some(admin.access_key_id.as_str())
        );
        // Without LDAP every Basic credential is an access key.
        assert_eq!(
            unauthorized(s.authenticate(Some(&basic("alice", "pw"))).await),
            "invalid access key id or secret"
        );

        let token = s.issue_session_token(&p, None).expect("token").access_token;
        let bearer = Credential::Bearer(Secret::new(token.clone()));
        assert_eq!(
            s.authenticate(Some(&bearer)).await.unwrap().user_id,
            p.user_id
        );
        assert_eq!(
            unauthorized(
                s.authenticate(Some(&Credential::Bearer(Secret::new("x"))))
                    .await
            ),
            "invalid bearer token"
        );

        let cookie = |safe_method| Credential::SessionCookie {
            token: Secret::new(token.clone()),
            safe_method,
            csrf: None,
        };
        assert_eq!(
            s.authenticate(Some(&cookie(true))).await.unwrap().user_id,
            p.user_id
        );
        // A cookie never authorizes a change: nobody claims it.
        assert_eq!(
            unauthorized(s.authenticate(Some(&cookie(false))).await),
            CREDENTIALS_REQUIRED
        );
        // A change with the session's CSRF token is the user's; a wrong token is refused.
        let with_csrf = |csrf: &str| Credential::SessionCookie {
            token: Secret::new(token.clone()),
            safe_method: false,
            csrf: Some(Secret::new(csrf)),
        };
        let good = s.csrf_token(&Secret::new(token.clone()));
        assert_eq!(
            s.authenticate(Some(&with_csrf(&good)))
                .await
                .unwrap()
                .user_id,
            p.user_id
        );
        assert!(matches!(
            s.authenticate(Some(&with_csrf(""))).await,
            Err(ServiceError::Forbidden(_))
        ));
        assert_eq!(
            unauthorized(s.authenticate(None).await),
            CREDENTIALS_REQUIRED
        );
    }
}
