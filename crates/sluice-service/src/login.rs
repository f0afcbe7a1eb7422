//! Where every external login ends: a Sluice user (created on first login, linked to the
//! external identity, put into its initial groups) and a Sluice-signed token. Identity
//! providers (OIDC, LDAP, AWS IAM, web identity) only prove who someone is; this module
//! decides which Sluice user that is.

use crate::auth::TokenResponse;
use crate::{now, Result, ServiceError, Services};
use sluice_core::Principal;
use sluice_store::{ExternalIdentityRecord, StoreError, UserRecord};
use uuid::Uuid;

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
    pub async fn login_external(&self, login: ExternalLogin) -> Result<Principal> {
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
        self.policy_cache().invalidate();
        tracing::info!(user = %name, source = login.source, "provisioned user on first login");
        Ok(Principal {
            user_id: user.id,
            user_name: user.name,
            access_key_id: None,
        })
    }

    /// A Sluice token for a logged-in principal; `ttl` is capped by the server's token TTL.
    pub fn issue_session_token(&self, p: &Principal, ttl: Option<i64>) -> Result<TokenResponse> {
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
        use sluice_auth::policy::{actions, resource};
        self.authorize(caller, actions::READ_USER, &resource::user(user))
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
        use sluice_auth::policy::{actions, resource};
        let target = format!("{}/external-principal/{arn}", resource::user(user));
        self.audited(caller, actions::UPDATE_USER, &target, async {
            self.authorize(caller, actions::UPDATE_USER, &resource::user(user))
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
        use sluice_auth::policy::{actions, resource};
        let target = format!("{}/external-principal/{arn}", resource::user(user));
        self.audited(caller, actions::UPDATE_USER, &target, async {
            self.authorize(caller, actions::UPDATE_USER, &resource::user(user))
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
}
