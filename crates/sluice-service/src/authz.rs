//! The single authorization decision point. Every service operation calls `authorize` (or
//! a visibility check) with its action and resource before doing any work.
//!
//! A user's effective policies are resolved once and cached: entries are dropped at once
//! by any change to users, groups, policies or attachments made through this process, and
//! by the store's change feed for changes made by other replicas (PostgreSQL
//! `LISTEN`/`NOTIFY`, see `Services::watch_changes`). Entries also expire after the
//! configured TTL (`ServiceConfig::policy_cache_ttl`), the bound should a notification be
//! lost. While the feed is down nothing is cached at all.

use crate::cache::KeyedCache;
use crate::{Result, ServiceError, Services};
use sluice_auth::policy::{self, Action, Decision, Policy, PolicySet};
use sluice_core::Principal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The default TTL of cached policy sets.
pub const POLICY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most users whose policy sets are kept at once.
const POLICY_CACHE_CAPACITY: u64 = 100_000;

pub(crate) struct PolicyCache {
    ttl: Duration,
    /// Bumped by every invalidation; a set read under an older generation is stale even if
    /// it was stored after the invalidation (a read racing a change).
    generation: AtomicU64,
    /// Set while the cross-replica change feed is down: changes on other replicas would go
    /// unnoticed, so every request reads the database.
    bypass: AtomicBool,
    /// Per user: (generation it was read under, the set); entries expire after `ttl`.
    entries: KeyedCache<Uuid, (u64, Arc<PolicySet>)>,
}

impl PolicyCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        PolicyCache {
            ttl,
            generation: AtomicU64::new(0),
            bypass: AtomicBool::new(false),
            entries: KeyedCache::new(
                POLICY_CACHE_CAPACITY,
                Some(ttl.max(Duration::from_millis(1))),
            ),
        }
    }

    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    pub(crate) fn set_bypass(&self, on: bool) {
        self.bypass.store(on, Ordering::SeqCst);
    }
}

impl Services {
    /// The caller's effective policies (cached).
    pub async fn policy_set(&self, p: &Principal) -> Result<Arc<PolicySet>> {
        let cache = self.policy_cache();
        if cache.bypass.load(Ordering::SeqCst) || cache.ttl.is_zero() {
            return Ok(Arc::new(
                self.load_policy_set(p.user_id, &p.user_name).await?,
            ));
        }
        let current = cache.generation.load(Ordering::SeqCst);
        let (_, set) = cache
            .entries
            .get_or_refresh(
                p.user_id,
                |(g, _)| *g == current,
                || async {
                    // Tagged with the generation seen before reading, so a change that lands
                    // during the read makes this entry stale at once.
                    let set = self.load_policy_set(p.user_id, &p.user_name).await?;
                    Ok::<_, ServiceError>((current, Arc::new(set)))
                },
            )
            .await?;
        Ok(set)
    }

    pub(crate) async fn load_policy_set(
        &self,
        user_id: Uuid,
        user_name: &str,
    ) -> Result<PolicySet> {
        let rows = self.store().effective_policies(user_id).await?;
        let mut policies = Vec::with_capacity(rows.len() + 1);
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            // A policy reached both directly and via groups decides the same way each time.
            if !seen.insert(row.policy.id) {
                continue;
            }
            match policy::parse_statements(&row.policy.statements_json) {
                Ok(statements) => policies.push(Policy {
                    name: row.policy.name,
                    statements,
                }),
                // Fail closed for the whole request: skipping the policy could drop a deny.
                Err(e) => {
                    return Err(ServiceError::Internal(format!(
                        "stored policy '{}' is unreadable: {e}",
                        row.policy.name
                    )))
                }
            }
        }
        policies.push(policy::builtin_self_service(user_name));
        Ok(PolicySet::new(policies))
    }

    /// Allow or `Forbidden`.
    pub async fn authorize(&self, p: &Principal, action: Action, resource: &str) -> Result<()> {
        if self.policy_set(p).await?.is_allowed(action, resource) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "user '{}' is not allowed to perform {action} on {resource}",
                p.user_name
            )))
        }
    }

    pub async fn is_allowed(&self, p: &Principal, action: Action, resource: &str) -> Result<bool> {
        Ok(self.policy_set(p).await?.is_allowed(action, resource))
    }

    /// Explains a decision for any user (operators need to see why).
    pub async fn explain(
        &self,
        user_id: Uuid,
        user_name: &str,
        action: Action,
        resource: &str,
    ) -> Result<Decision> {
        Ok(self
            .load_policy_set(user_id, user_name)
            .await?
            .evaluate(action, resource))
    }
}
