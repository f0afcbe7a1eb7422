//! The single authorization decision point. Every service operation calls `authorize` (or
//! a visibility check) with its action and resource before doing any work.
//!
//! A user's effective policies are resolved once and cached: entries are dropped at once
//! by any change to users, groups, policies or attachments made through this process, and
//! expire after `POLICY_CACHE_TTL` so changes made by another replica apply within that
//! bound.

use crate::{Result, ServiceError, Services};
use sluice_auth::policy::{self, Decision, Policy, PolicySet};
use sluice_core::Principal;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const POLICY_CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct PolicyCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<Uuid, (u64, Instant, Arc<PolicySet>)>>,
}

impl PolicyCache {
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Services {
    /// The caller's effective policies (cached).
    pub async fn policy_set(&self, p: &Principal) -> Result<Arc<PolicySet>> {
        let cache = self.policy_cache();
        let generation = cache.generation.load(Ordering::SeqCst);
        if let Some((g, at, set)) = cache.entries.lock().unwrap_or_else(|e| e.into_inner()).get(&p.user_id) {
            if *g == generation && at.elapsed() < POLICY_CACHE_TTL {
                return Ok(set.clone());
            }
        }
        let set = Arc::new(self.load_policy_set(p.user_id, &p.user_name).await?);
        let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Only cache what was read under the current generation; a concurrent change would
        // otherwise be masked until the TTL runs out.
        if cache.generation.load(Ordering::SeqCst) == generation {
            entries.insert(p.user_id, (generation, Instant::now(), set.clone()));
        }
        Ok(set)
    }

    pub(crate) async fn load_policy_set(&self, user_id: Uuid, user_name: &str) -> Result<PolicySet> {
        let rows = self.store().effective_policies(user_id).await?;
        let mut policies = Vec::with_capacity(rows.len() + 1);
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            // A policy reached both directly and via groups decides the same way each time.
            if !seen.insert(row.policy.id) {
                continue;
            }
            match policy::parse_statements(&row.policy.statements_json) {
                Ok(statements) => policies.push(Policy { name: row.policy.name, statements }),
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
    pub async fn authorize(&self, p: &Principal, action: &str, resource: &str) -> Result<()> {
        if self.policy_set(p).await?.is_allowed(action, resource) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "user '{}' is not allowed to perform {action} on {resource}",
                p.user_name
            )))
        }
    }

    pub async fn is_allowed(&self, p: &Principal, action: &str, resource: &str) -> Result<bool> {
        Ok(self.policy_set(p).await?.is_allowed(action, resource))
    }

    /// Explains a decision for any user (operators need to see why).
    pub async fn explain(&self, user_id: Uuid, user_name: &str, action: &str, resource: &str) -> Result<Decision> {
        Ok(self.load_policy_set(user_id, user_name).await?.evaluate(action, resource))
    }
}
