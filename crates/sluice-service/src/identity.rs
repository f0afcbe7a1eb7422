//! Users, groups, policies, access keys and the audit log. Every write is authorized,
//! validated completely before anything is stored, and recorded in the audit log with
//! its result (forbidden and failed attempts included).

use crate::auth::NewAccessKey;
use crate::{now, Result, ServiceError, Services};
use sluice_auth::policy::{self, resource, Action, Decision, Statement};
use sluice_core::Principal;
use sluice_store::{AuditRecord, GroupRecord, PolicyRecord, StoreError, UserRecord};
use std::future::Future;
use uuid::Uuid;

// The wire types are defined once, in sluice-api; the service returns them directly.
pub use sluice_api::{
    AccessKey as AccessKeyInfo, AuditEntry, CheckResult, EffectivePolicy as EffectivePolicyInfo,
    Group as GroupInfo, Policy as PolicyInfo, User as UserInfo, WhoAmI,
};

/// What a caller may be offered; see [`Services::capabilities`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    /// Users, groups, policies, access checks and the audit log.
    pub administer: bool,
    pub create_warehouse: bool,
}

fn user_info(u: UserRecord) -> UserInfo {
    UserInfo {
        id: u.id,
        name: u.name,
        email: u.email,
        friendly_name: u.friendly_name,
        source: u.source,
        created_at: u.created_at,
    }
}

fn group_info(g: GroupRecord) -> GroupInfo {
    GroupInfo {
        id: g.id,
        name: g.name,
        description: g.description,
        created_at: g.created_at,
    }
}

fn policy_info(p: PolicyRecord) -> Result<PolicyInfo> {
    let statements = policy::parse_statements(&p.statements_json)
        .map_err(|e| ServiceError::Internal(format!("stored policy {}: {e}", p.name)))?;
    Ok(PolicyInfo {
        id: p.id,
        name: p.name,
        description: p.description,
        statements,
        builtin: p.builtin,
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
}

/// Names of users, groups and policies: printable, no separators that would need escaping
/// in resource strings by humans writing policies.
fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@+-=,".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::BadRequest(format!(
            "invalid {kind} name '{name}': use 1-128 characters of letters, digits and . _ @ + - = ,"
        )))
    }
}

fn validate_email(email: &Option<String>) -> Result<()> {
    match email {
        Some(e)
            if e.len() > 320
                || !e.contains('@')
                || e.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(ServiceError::BadRequest(format!("invalid email '{e}'")))
        }
        _ => Ok(()),
    }
}

const BOOTSTRAP_ADMINS: &str = "bootstrap.admins-membership";
pub const ADMINS_GROUP: &str = "Admins";

impl Services {
    /// Runs a write, then records who tried what on which target and how it ended.
    pub(crate) async fn audited<T, F>(
        &self,
        caller: &Principal,
        action: Action,
        target: &str,
        op: F,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let result = op.await;
        let (outcome, detail) = match &result {
            Ok(_) => ("success", None),
            Err(ServiceError::Forbidden(m)) => ("denied", Some(m.clone())),
            Err(e) => ("failure", Some(e.to_string())),
        };
        let rec = AuditRecord {
            id: 0,
            at: now(),
            actor_id: Some(caller.user_id).filter(|id| !id.is_nil()),
            actor_name: caller.user_name.clone(),
            action: action.to_string(),
            target: target.to_string(),
            result: outcome.to_string(),
            detail,
        };
        if let Err(e) = self.store().append_audit(&rec).await {
            tracing::error!(error = %e, action = action.as_str(), target, "could not write the audit log");
        }
        if result.is_ok() {
            self.identity_changed();
        }
        result
    }

    async fn user_by_name(&self, name: &str) -> Result<UserRecord> {
        self.store()
            .get_user_by_name(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("user '{name}' does not exist")))
    }

    async fn group_by_name(&self, name: &str) -> Result<GroupRecord> {
        self.store()
            .get_group_by_name(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("group '{name}' does not exist")))
    }

    async fn policy_by_name(&self, name: &str) -> Result<PolicyRecord> {
        self.store()
            .get_policy_by_name(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("policy '{name}' does not exist")))
    }

    /// The default groups and their built-in policies; idempotent, run at every start so
    /// an install created before they existed gets them too.
    pub async fn ensure_default_groups(&self) -> Result<()> {
        for (group, policy_name, statements) in policy::default_group_policies() {
            let n = now();
            let statements_json =
                serde_json::to_string(&statements).map_err(ServiceError::internal)?;
            let pol = match self.store().get_policy_by_name(policy_name).await? {
                // Built-in policies follow the release: an upgrade brings their new text.
                Some(mut p) if p.builtin && p.statements_json != statements_json => {
                    p.statements_json = statements_json;
                    p.updated_at = n;
                    self.store().update_policy(&p).await?;
                    p
                }
                Some(p) => p,
                None => {
                    let rec = PolicyRecord {
                        id: Uuid::new_v4(),
                        name: policy_name.to_string(),
                        description: Some(format!("Built-in policy of the {group} group")),
                        statements_json,
                        builtin: true,
                        created_at: n,
                        updated_at: n,
                    };
                    ignore_exists(self.store().create_policy(&rec).await)?;
                    self.policy_by_name(policy_name).await?
                }
            };
            let grp = match self.store().get_group_by_name(group).await? {
                Some(g) => g,
                None => {
                    let rec = GroupRecord {
                        id: Uuid::new_v4(),
                        name: group.to_string(),
                        description: Some(format!("Default group {group}")),
                        created_at: n,
                    };
                    ignore_exists(self.store().create_group(&rec).await)?;
                    self.group_by_name(group).await?
                }
            };
            self.store().attach_group_policy(grp.id, pol.id).await?;
        }
        if self.store().get_setting(BOOTSTRAP_ADMINS).await?.is_none() {
            if let Some(admin) = self
                .store()
                .get_user_by_name(crate::auth::ADMIN_USER)
                .await?
            {
                let admins = self.group_by_name(ADMINS_GROUP).await?;
                self.store().add_group_member(admins.id, admin.id).await?;
                self.store().set_setting(BOOTSTRAP_ADMINS, "done").await?;
            }
        }
        self.identity_changed();
        Ok(())
    }

    // ------------------------------------------------------------------ whoami / explain

    pub async fn whoami(&self, caller: &Principal) -> Result<WhoAmI> {
        let user = self
            .store()
            .get_user(caller.user_id)
            .await?
            .ok_or_else(|| ServiceError::Unauthorized("user no longer exists".into()))?;
        let groups = self
            .store()
            .list_user_groups(caller.user_id)
            .await?
            .into_iter()
            .map(|g| g.name)
            .collect();
        let policies = self
            .store()
            .effective_policies(caller.user_id)
            .await?
            .into_iter()
            .map(|e| EffectivePolicyInfo {
                policy: e.policy.name,
                via_group: e.via_group,
            })
            .collect();
        Ok(WhoAmI {
            user_id: user.id,
            name: user.name,
            email: user.email,
            source: user.source,
            access_key_id: caller.access_key_id.clone(),
            groups,
            policies,
        })
    }

    /// What a front door should offer this caller (the console hides what would be
    /// refused; every operation still authorizes itself).
    pub async fn capabilities(&self, caller: &Principal) -> Result<Capabilities> {
        Ok(Capabilities {
            administer: self
                .is_allowed(caller, Action::ListUsers, "sluice:auth:::user/*")
                .await?,
            create_warehouse: self
                .is_allowed(caller, Action::CreateWarehouse, &resource::warehouse("*"))
                .await?,
        })
    }

    pub async fn check_permission(
        &self,
        caller: &Principal,
        user: &str,
        action: &str,
        res: &str,
    ) -> Result<CheckResult> {
        self.authorize(caller, Action::CheckPermission, &resource::user(user))
            .await?;
        let action: Action = action
            .parse()
            .map_err(|e: policy::UnknownActionError| ServiceError::BadRequest(e.to_string()))?;
        if res.is_empty() || res.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ServiceError::BadRequest(format!(
                "malformed resource '{res}'"
            )));
        }
        let u = self.user_by_name(user).await?;
        let Decision {
            allowed,
            decided_by,
        } = self.explain(u.id, &u.name, action, res).await?;
        let reason = match (&decided_by, allowed) {
            (Some(s), true) => format!(
                "allowed by statement {} of policy '{}'",
                s.statement, s.policy
            ),
            (Some(s), false) => format!(
                "denied by statement {} of policy '{}' (an explicit deny wins)",
                s.statement, s.policy
            ),
            (None, _) => "denied: no statement of any policy of this user allows it".to_string(),
        };
        Ok(CheckResult {
            user: u.name,
            action: action.as_str().to_string(),
            resource: res.to_string(),
            decision: if allowed { "allow" } else { "deny" }.into(),
            statement: decided_by,
            reason,
        })
    }

    pub async fn list_audit(
        &self,
        caller: &Principal,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditEntry>> {
        self.authorize(caller, Action::ReadAuditLog, &resource::audit_log())
            .await?;
        // Refused rather than clamped: the OpenAPI document promises 1..=1000, and a client
        // asking for more than it gets would silently miss entries.
        let limit = match limit {
            None => 100,
            Some(l @ 1..=1000) => l,
            Some(l) => {
                return Err(ServiceError::BadRequest(format!(
                    "limit must be between 1 and 1000, not {l}"
                )))
            }
        };
        Ok(self
            .store()
            .list_audit(before, limit)
            .await?
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                at: r.at,
                actor_id: r.actor_id,
                actor: r.actor_name,
                action: r.action,
                target: r.target,
                result: r.result,
                detail: r.detail,
            })
            .collect())
    }

    // ------------------------------------------------------------------ users

    pub async fn create_user(
        &self,
        caller: &Principal,
        name: &str,
        email: Option<String>,
        friendly_name: Option<String>,
    ) -> Result<UserInfo> {
        let target = resource::user(name);
        self.audited(caller, Action::CreateUser, &target, async {
            self.authorize(caller, Action::CreateUser, &target).await?;
            validate_name("user", name)?;
            validate_email(&email)?;
            let rec = UserRecord {
                id: Uuid::new_v4(),
                name: name.to_string(),
                email,
                friendly_name,
                source: "builtin".into(),
                created_at: now(),
            };
            self.store()
                .create_user(&rec)
                .await
                .map_err(|e| exists_as(e, format!("user '{name}' already exists")))?;
            Ok(user_info(rec))
        })
        .await
    }

    pub async fn list_users(&self, caller: &Principal) -> Result<Vec<UserInfo>> {
        self.authorize(caller, Action::ListUsers, "sluice:auth:::user/*")
            .await?;
        Ok(self
            .store()
            .list_users()
            .await?
            .into_iter()
            .map(user_info)
            .collect())
    }

    pub async fn get_user(&self, caller: &Principal, name: &str) -> Result<UserInfo> {
        self.authorize(caller, Action::ReadUser, &resource::user(name))
            .await?;
        Ok(user_info(self.user_by_name(name).await?))
    }

    pub async fn update_user(
        &self,
        caller: &Principal,
        name: &str,
        email: Option<Option<String>>,
        friendly_name: Option<Option<String>>,
    ) -> Result<UserInfo> {
        let target = resource::user(name);
        self.audited(caller, Action::UpdateUser, &target, async {
            self.authorize(caller, Action::UpdateUser, &target).await?;
            let mut u = self.user_by_name(name).await?;
            if let Some(e) = email {
                validate_email(&e)?;
                u.email = e;
            }
            if let Some(f) = friendly_name {
                u.friendly_name = f;
            }
            self.store().update_user(&u).await?;
            Ok(user_info(u))
        })
        .await
    }

    pub async fn delete_user(&self, caller: &Principal, name: &str) -> Result<()> {
        let target = resource::user(name);
        self.audited(caller, Action::DeleteUser, &target, async {
            self.authorize(caller, Action::DeleteUser, &target).await?;
            let u = self.user_by_name(name).await?;
            if u.id == caller.user_id {
                return Err(ServiceError::BadRequest(
                    "you cannot delete yourself".into(),
                ));
            }
            self.store().delete_user(u.id).await?;
            Ok(())
        })
        .await
    }

    // ------------------------------------------------------------------ access keys

    pub async fn create_user_key(&self, caller: &Principal, user: &str) -> Result<NewAccessKey> {
        let target = resource::user(user);
        self.audited(caller, Action::CreateCredentials, &target, async {
            self.authorize(caller, Action::CreateCredentials, &target)
                .await?;
            let u = self.user_by_name(user).await?;
            self.create_access_key(u.id).await
        })
        .await
    }

    pub async fn list_user_keys(
        &self,
        caller: &Principal,
        user: &str,
    ) -> Result<Vec<AccessKeyInfo>> {
        self.authorize(caller, Action::ListCredentials, &resource::user(user))
            .await?;
        let u = self.user_by_name(user).await?;
        Ok(self
            .store()
            .list_access_keys(u.id)
            .await?
            .into_iter()
            .map(|k| AccessKeyInfo {
                access_key_id: k.access_key_id,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
            })
            .collect())
    }

    pub async fn delete_user_key(
        &self,
        caller: &Principal,
        user: &str,
        key_id: &str,
    ) -> Result<()> {
        let target = resource::user(user);
        self.audited(
            caller,
            Action::DeleteCredentials,
            &format!("{target}/access-key/{key_id}"),
            async {
                self.authorize(caller, Action::DeleteCredentials, &target)
                    .await?;
                let u = self.user_by_name(user).await?;
                match self.store().get_access_key(key_id).await? {
                    Some(k) if k.user_id == u.id => {}
                    _ => {
                        return Err(ServiceError::NotFound(format!(
                            "user '{user}' has no access key '{key_id}'"
                        )))
                    }
                }
                self.store().delete_access_key(key_id).await?;
                Ok(())
            },
        )
        .await
    }

    // ------------------------------------------------------------------ groups

    pub async fn create_group(
        &self,
        caller: &Principal,
        name: &str,
        description: Option<String>,
    ) -> Result<GroupInfo> {
        let target = resource::group(name);
        self.audited(caller, Action::CreateGroup, &target, async {
            self.authorize(caller, Action::CreateGroup, &target).await?;
            validate_name("group", name)?;
            let rec = GroupRecord {
                id: Uuid::new_v4(),
                name: name.to_string(),
                description,
                created_at: now(),
            };
            self.store()
                .create_group(&rec)
                .await
                .map_err(|e| exists_as(e, format!("group '{name}' already exists")))?;
            Ok(group_info(rec))
        })
        .await
    }

    pub async fn list_groups(&self, caller: &Principal) -> Result<Vec<GroupInfo>> {
        self.authorize(caller, Action::ListGroups, "sluice:auth:::group/*")
            .await?;
        Ok(self
            .store()
            .list_groups()
            .await?
            .into_iter()
            .map(group_info)
            .collect())
    }

    pub async fn get_group(&self, caller: &Principal, name: &str) -> Result<GroupInfo> {
        self.authorize(caller, Action::ReadGroup, &resource::group(name))
            .await?;
        Ok(group_info(self.group_by_name(name).await?))
    }

    pub async fn delete_group(&self, caller: &Principal, name: &str) -> Result<()> {
        let target = resource::group(name);
        self.audited(caller, Action::DeleteGroup, &target, async {
            self.authorize(caller, Action::DeleteGroup, &target).await?;
            let g = self.group_by_name(name).await?;
            self.store().delete_group(g.id).await?;
            Ok(())
        })
        .await
    }

    pub async fn add_group_member(
        &self,
        caller: &Principal,
        group: &str,
        user: &str,
    ) -> Result<()> {
        let target = resource::group(group);
        self.audited(
            caller,
            Action::AddGroupMember,
            &format!("{target}/member/{user}"),
            async {
                self.authorize(caller, Action::AddGroupMember, &target)
                    .await?;
                let g = self.group_by_name(group).await?;
                let u = self.user_by_name(user).await?;
                self.store().add_group_member(g.id, u.id).await?;
                Ok(())
            },
        )
        .await
    }

    pub async fn remove_group_member(
        &self,
        caller: &Principal,
        group: &str,
        user: &str,
    ) -> Result<()> {
        let target = resource::group(group);
        self.audited(
            caller,
            Action::RemoveGroupMember,
            &format!("{target}/member/{user}"),
            async {
                self.authorize(caller, Action::RemoveGroupMember, &target)
                    .await?;
                let g = self.group_by_name(group).await?;
                let u = self.user_by_name(user).await?;
                self.store()
                    .remove_group_member(g.id, u.id)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound(_) => ServiceError::NotFound(format!(
                            "user '{user}' is not a member of group '{group}'"
                        )),
                        other => other.into(),
                    })
            },
        )
        .await
    }

    pub async fn list_group_members(
        &self,
        caller: &Principal,
        group: &str,
    ) -> Result<Vec<UserInfo>> {
        self.authorize(caller, Action::ReadGroup, &resource::group(group))
            .await?;
        let g = self.group_by_name(group).await?;
        Ok(self
            .store()
            .list_group_members(g.id)
            .await?
            .into_iter()
            .map(user_info)
            .collect())
    }

    pub async fn list_user_groups(&self, caller: &Principal, user: &str) -> Result<Vec<GroupInfo>> {
        self.authorize(caller, Action::ReadUser, &resource::user(user))
            .await?;
        let u = self.user_by_name(user).await?;
        Ok(self
            .store()
            .list_user_groups(u.id)
            .await?
            .into_iter()
            .map(group_info)
            .collect())
    }

    // ------------------------------------------------------------------ policies

    pub async fn create_policy(
        &self,
        caller: &Principal,
        name: &str,
        description: Option<String>,
        statements: Vec<Statement>,
    ) -> Result<PolicyInfo> {
        let target = resource::policy(name);
        self.audited(caller, Action::CreatePolicy, &target, async {
            self.authorize(caller, Action::CreatePolicy, &target)
                .await?;
            validate_name("policy", name)?;
            policy::validate_statements(&statements)
                .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
            let n = now();
            let rec = PolicyRecord {
                id: Uuid::new_v4(),
                name: name.to_string(),
                description,
                statements_json: serde_json::to_string(&statements)
                    .map_err(ServiceError::internal)?,
                builtin: false,
                created_at: n,
                updated_at: n,
            };
            self.store()
                .create_policy(&rec)
                .await
                .map_err(|e| exists_as(e, format!("policy '{name}' already exists")))?;
            policy_info(rec)
        })
        .await
    }

    pub async fn list_policies(&self, caller: &Principal) -> Result<Vec<PolicyInfo>> {
        self.authorize(caller, Action::ListPolicies, "sluice:auth:::policy/*")
            .await?;
        self.store()
            .list_policies()
            .await?
            .into_iter()
            .map(policy_info)
            .collect()
    }

    pub async fn get_policy(&self, caller: &Principal, name: &str) -> Result<PolicyInfo> {
        self.authorize(caller, Action::ReadPolicy, &resource::policy(name))
            .await?;
        policy_info(self.policy_by_name(name).await?)
    }

    pub async fn update_policy(
        &self,
        caller: &Principal,
        name: &str,
        description: Option<String>,
        statements: Vec<Statement>,
    ) -> Result<PolicyInfo> {
        let target = resource::policy(name);
        self.audited(caller, Action::UpdatePolicy, &target, async {
            self.authorize(caller, Action::UpdatePolicy, &target)
                .await?;
            policy::validate_statements(&statements)
                .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
            let mut p = self.policy_by_name(name).await?;
            if p.builtin {
                return Err(ServiceError::BadRequest(format!(
                    "policy '{name}' is built in and cannot be changed"
                )));
            }
            p.statements_json =
                serde_json::to_string(&statements).map_err(ServiceError::internal)?;
            if description.is_some() {
                p.description = description;
            }
            p.updated_at = now();
            self.store().update_policy(&p).await?;
            policy_info(p)
        })
        .await
    }

    pub async fn delete_policy(&self, caller: &Principal, name: &str) -> Result<()> {
        let target = resource::policy(name);
        self.audited(caller, Action::DeletePolicy, &target, async {
            self.authorize(caller, Action::DeletePolicy, &target)
                .await?;
            let p = self.policy_by_name(name).await?;
            if p.builtin {
                return Err(ServiceError::BadRequest(format!(
                    "policy '{name}' is built in and cannot be deleted"
                )));
            }
            self.store().delete_policy(p.id).await?;
            Ok(())
        })
        .await
    }

    /// Attaching needs `auth:AttachPolicy` on the policy AND on the user or group it is
    /// attached to, so a narrowly delegated attach right cannot grant arbitrary policies.
    pub async fn attach_policy(
        &self,
        caller: &Principal,
        to: Attachment<'_>,
        policy_name: &str,
    ) -> Result<()> {
        let target = format!("{}/policy/{policy_name}", to.resource());
        self.audited(caller, Action::AttachPolicy, &target, async {
            self.authorize(caller, Action::AttachPolicy, &resource::policy(policy_name))
                .await?;
            self.authorize(caller, Action::AttachPolicy, &to.resource())
                .await?;
            let p = self.policy_by_name(policy_name).await?;
            match to {
                Attachment::User(u) => {
                    let u = self.user_by_name(u).await?;
                    self.store().attach_user_policy(u.id, p.id).await?;
                }
                Attachment::Group(g) => {
                    let g = self.group_by_name(g).await?;
                    self.store().attach_group_policy(g.id, p.id).await?;
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn detach_policy(
        &self,
        caller: &Principal,
        from: Attachment<'_>,
        policy_name: &str,
    ) -> Result<()> {
        let target = format!("{}/policy/{policy_name}", from.resource());
        self.audited(caller, Action::DetachPolicy, &target, async {
            self.authorize(caller, Action::DetachPolicy, &resource::policy(policy_name))
                .await?;
            self.authorize(caller, Action::DetachPolicy, &from.resource())
                .await?;
            let p = self.policy_by_name(policy_name).await?;
            let not_attached = |e: StoreError| match e {
                StoreError::NotFound(_) => {
                    ServiceError::NotFound(format!("policy '{policy_name}' is not attached there"))
                }
                other => other.into(),
            };
            match from {
                Attachment::User(u) => {
                    let u = self.user_by_name(u).await?;
                    self.store()
                        .detach_user_policy(u.id, p.id)
                        .await
                        .map_err(not_attached)?;
                }
                Attachment::Group(g) => {
                    let g = self.group_by_name(g).await?;
                    self.store()
                        .detach_group_policy(g.id, p.id)
                        .await
                        .map_err(not_attached)?;
                }
            }
            Ok(())
        })
        .await
    }

    pub async fn list_attached_policies(
        &self,
        caller: &Principal,
        of: Attachment<'_>,
    ) -> Result<Vec<PolicyInfo>> {
        let rows = match of {
            Attachment::User(u) => {
                self.authorize(caller, Action::ReadUser, &resource::user(u))
                    .await?;
                let u = self.user_by_name(u).await?;
                self.store().list_user_policies(u.id).await?
            }
            Attachment::Group(g) => {
                self.authorize(caller, Action::ReadGroup, &resource::group(g))
                    .await?;
                let g = self.group_by_name(g).await?;
                self.store().list_group_policies(g.id).await?
            }
        };
        rows.into_iter().map(policy_info).collect()
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Attachment<'a> {
    User(&'a str),
    Group(&'a str),
}

impl Attachment<'_> {
    fn resource(&self) -> String {
        match self {
            Attachment::User(u) => resource::user(u),
            Attachment::Group(g) => resource::group(g),
        }
    }
}

fn exists_as(e: StoreError, msg: String) -> ServiceError {
    match e {
        StoreError::AlreadyExists(_) => ServiceError::AlreadyExists(msg),
        other => other.into(),
    }
}

fn ignore_exists(r: sluice_store::Result<()>) -> Result<()> {
    match r {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
