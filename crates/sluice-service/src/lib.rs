//! Typed operations over the store, the storage layer and key material. Handlers call one
//! function here per request; nothing in this crate knows about HTTP.

pub mod auth;
pub mod authn;
pub mod authz;
mod cache;
pub mod catalog;
pub mod delegation;
pub mod display;
pub mod error;
mod field_ids;
pub mod gateway;
pub mod gateway_creds;
pub mod identity;
pub mod login;
mod metadata_json;
mod requirements;
pub mod rest;
pub mod soft_delete;
mod spec_compat;
pub mod table_cache;
pub mod view;
mod visible;
pub mod warehouse;

pub use error::{Result, ServiceError};

use sluice_auth::{SecretBox, TokenIssuer};
use sluice_storage::{Storage, StorageCredential, StorageProfile};
use sluice_store::{CatalogStore, Change, WarehouseRecord};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Directories under which `file` warehouses may live.
    pub allowed_file_roots: Vec<PathBuf>,
    /// The operator's storage settings, passed to every storage opened and every profile
    /// validated as they are.
    pub storage: sluice_storage::StorageSettings,
    /// How long a user's resolved policies are reused. Changes through this replica, and
    /// through others when the store has a change feed, clear it at once; the TTL bounds
    /// staleness should a notification be lost.
    pub policy_cache_ttl: std::time::Duration,
    /// How long the background purge holds a claimed deleted table; a replica that dies
    /// mid-purge blocks that table for at most this long before another takes it over.
    pub purge_lease: std::time::Duration,
    /// Bytes of current table metadata kept in memory for load-table (0: none).
    pub table_cache_max_bytes: u64,
    /// What temporary S3 gateway credentials say and how long they live.
    pub gateway: GatewaySettings,
}

/// The S3 gateway as vended credentials describe it.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// The region clients sign for (`s3_region`).
    pub region: String,
    /// The gateway's URL for clients (`s3_public_endpoint`); unset, the address it listens
    /// on ([`Services::set_gateway_address`]).
    pub public_endpoint: Option<String>,
    /// Lifetime of temporary gateway credentials (`gateway_credentials_ttl_seconds`).
    pub credentials_ttl: std::time::Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            region: "us-east-1".into(),
            public_endpoint: None,
            credentials_ttl: gateway_creds::DEFAULT_GATEWAY_CREDENTIALS_TTL,
        }
    }
}

impl ServiceConfig {
    pub fn new(allowed_file_roots: Vec<PathBuf>) -> Self {
        ServiceConfig {
            allowed_file_roots,
            storage: sluice_storage::StorageSettings::default(),
            policy_cache_ttl: authz::POLICY_CACHE_TTL,
            purge_lease: soft_delete::PURGE_LEASE,
            table_cache_max_bytes: table_cache::DEFAULT_MAX_BYTES,
            gateway: GatewaySettings::default(),
        }
    }
}

/// Warehouses with their decoded storage profiles (`None` where the stored profile does not
/// decode), in the store's order, with the lookups the per-request paths make: by id or name
/// (every catalog request) and by S3 bucket (the unscoped signer, which would otherwise
/// analyse the request against every warehouse).
#[derive(Default)]
pub(crate) struct WarehouseList {
    /// Shared with the requests that resolve a warehouse from the list (no copy of the
    /// row, whose stored profile is a JSON tree, per request).
    entries: Vec<(Arc<WarehouseRecord>, Option<StorageProfile>)>,
    by_id: HashMap<Uuid, usize>,
    by_name: HashMap<String, usize>,
    by_bucket: HashMap<String, Vec<usize>>,
}

impl WarehouseList {
    fn new(entries: Vec<(Arc<WarehouseRecord>, Option<StorageProfile>)>) -> Self {
        let mut list = WarehouseList {
            entries,
            ..Default::default()
        };
        for (i, (w, profile)) in list.entries.iter().enumerate() {
            list.by_id.entry(w.id).or_insert(i);
            list.by_name.entry(w.name.clone()).or_insert(i);
            if let Some(StorageProfile::S3(s3)) = profile {
                list.by_bucket.entry(s3.bucket.clone()).or_default().push(i);
            }
        }
        list
    }

    pub(crate) fn by_id(&self, id: Uuid) -> Option<&Arc<WarehouseRecord>> {
        self.by_id.get(&id).map(|&i| &self.entries[i].0)
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&Arc<WarehouseRecord>> {
        self.by_name.get(name).map(|&i| &self.entries[i].0)
    }

    /// The S3 warehouses whose bucket the request URI could address, in the store's order
    /// (see `sluice_storage::s3::bucket_candidates`); no other warehouse can accept it.
    pub(crate) fn addressed_by(&self, uri: &str) -> Vec<(&Arc<WarehouseRecord>, &StorageProfile)> {
        let mut idx: Vec<usize> = sluice_storage::s3::bucket_candidates(uri)
            .iter()
            .filter_map(|b| self.by_bucket.get(b))
            .flatten()
            .copied()
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .filter_map(|i| {
                let (w, p) = &self.entries[i];
                p.as_ref().map(|p| (w, p))
            })
            .collect()
    }

    /// The warehouses whose stored profile does not decode.
    pub(crate) fn undecodable(&self) -> impl Iterator<Item = &WarehouseRecord> {
        self.entries
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(w, _)| &**w)
    }
}

#[derive(Default)]
struct WarehouseProfiles {
    /// Bumped by every warehouse change, so a list read across one is not kept.
    generation: u64,
    list: Option<Arc<WarehouseList>>,
}

/// The service layer. Cheap to clone; every clone shares one state.
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CatalogStore>,
    secrets: SecretBox,
    tokens: TokenIssuer,
    config: ServiceConfig,
    /// Opened object stores per warehouse, keyed on the row's `updated_at` so a profile or
    /// credential change opens a fresh client.
    storages: Mutex<HashMap<Uuid, (chrono::DateTime<chrono::Utc>, Storage)>>,
    /// Every warehouse with its decoded profile, for sign requests that name no warehouse;
    /// dropped with `storages` on any warehouse change.
    profiles: Mutex<WarehouseProfiles>,
    /// The change feed is down: what other replicas change goes unheard.
    feed_down: std::sync::atomic::AtomicBool,
    policies: authz::PolicyCache,
    principals: auth::PrincipalCache,
    credentials: delegation::CredentialCache,
    tables: table_cache::TableCache,
    identity: login::IdentityProviders,
    authenticators: authn::Chain,
    /// `GET /v1/config` bodies by warehouse id (`catalog_config`).
    config_bodies: std::sync::RwLock<HashMap<Uuid, Arc<[u8]>>>,
    /// Where the S3 gateway listens, once it does.
    gateway_address: std::sync::RwLock<Option<std::net::SocketAddr>>,
    /// When the database last answered a health probe (ms after `started`; 0 = never).
    healthy_at: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

/// How long one successful database probe answers health checks: probes every few
/// hundred milliseconds (load balancers, orchestrators) then cost no database round trip,
/// and a database that stops answering is reported within this long.
const HEALTH_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl Services {
    /// Services without external identity providers.
    pub fn new(
        store: Arc<dyn CatalogStore>,
        secrets: SecretBox,
        tokens: TokenIssuer,
        config: ServiceConfig,
    ) -> Self {
        Self::with_identity_providers(
            store,
            secrets,
            tokens,
            config,
            login::IdentityProviders::default(),
        )
    }

    /// Services whose authentication chain and logins include the configured identity
    /// providers.
    pub fn with_identity_providers(
        store: Arc<dyn CatalogStore>,
        secrets: SecretBox,
        tokens: TokenIssuer,
        config: ServiceConfig,
        identity: login::IdentityProviders,
    ) -> Self {
        let policies = authz::PolicyCache::new(config.policy_cache_ttl);
        let principals = auth::PrincipalCache::new(config.policy_cache_ttl);
        let authenticators = authn::Chain::new(&identity);
        let tables = table_cache::TableCache::new(config.table_cache_max_bytes);
        Services {
            inner: Arc::new(Inner {
                store,
                secrets,
                tokens,
                config,
                storages: Mutex::new(HashMap::new()),
                profiles: Mutex::new(WarehouseProfiles::default()),
                feed_down: std::sync::atomic::AtomicBool::new(false),
                healthy_at: std::sync::atomic::AtomicU64::new(0),
                started: std::time::Instant::now(),
                policies,
                principals,
                credentials: delegation::CredentialCache::new(Arc::new(delegation::SystemClock)),
                tables,
                identity,
                authenticators,
                config_bodies: Default::default(),
                gateway_address: std::sync::RwLock::new(None),
            }),
        }
    }

    pub(crate) fn store(&self) -> &dyn CatalogStore {
        self.inner.store.as_ref()
    }

    pub(crate) fn identity_providers(&self) -> &login::IdentityProviders {
        &self.inner.identity
    }

    pub(crate) fn authenticators(&self) -> &authn::Chain {
        &self.inner.authenticators
    }

    /// Whether the database answers, probed at most once per [`HEALTH_REUSE`] while it
    /// does (a failure is never reused: every check after one probes again).
    pub async fn check_database(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let now_ms = || self.inner.started.elapsed().as_millis() as u64 + 1;
        let last = self.inner.healthy_at.load(Ordering::Acquire);
        if last != 0 && now_ms().saturating_sub(last) < HEALTH_REUSE.as_millis() as u64 {
            return Ok(());
        }
        let probed_at = now_ms();
        match self.store().get_setting("health.probe").await {
            Ok(_) => {
                self.inner.healthy_at.fetch_max(probed_at, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                self.inner.healthy_at.store(0, Ordering::Release);
                Err(e.into())
            }
        }
    }

    pub(crate) fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    /// Encrypts a small value for a round trip through the client (e.g. the OIDC login
    /// state cookie); only this deployment's master key can open it.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        self.secrets().encrypt(plaintext)
    }

    pub fn unseal(&self, data: &[u8]) -> Option<Vec<u8>> {
        self.secrets().decrypt(data).ok().map(|z| z.to_vec())
    }

    pub(crate) fn tokens(&self) -> &TokenIssuer {
        &self.inner.tokens
    }

    pub(crate) fn credential_cache(&self) -> &delegation::CredentialCache {
        &self.inner.credentials
    }

    pub(crate) fn policy_cache(&self) -> &authz::PolicyCache {
        &self.inner.policies
    }

    pub(crate) fn principal_cache(&self) -> &auth::PrincipalCache {
        &self.inner.principals
    }

    pub(crate) fn table_cache(&self) -> &table_cache::TableCache {
        &self.inner.tables
    }

    /// These tables' rows changed (or may have: called whatever the store answered), here
    /// or, through the change feed, on another replica.
    pub(crate) fn tables_changed(&self, ids: impl IntoIterator<Item = Uuid>) {
        for id in ids {
            self.table_cache().forget_table(id);
        }
    }

    /// Users, keys, groups, policies or attachments changed (here or, through the change
    /// feed, on another replica): nothing cached about who someone is or what they may do
    /// survives it.
    pub(crate) fn identity_changed(&self) {
        self.policy_cache().invalidate();
        self.principal_cache().invalidate();
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    fn profiles_slot(&self) -> std::sync::MutexGuard<'_, WarehouseProfiles> {
        self.inner
            .profiles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `decode_profile`, taken from the in-memory warehouse list when that holds this very
    /// row (same id and `updated_at`, which every warehouse change bumps): load-table and
    /// the signer run on every query and file, and decoding the stored JSON showed in both.
    pub(crate) fn profile_of(&self, w: &WarehouseRecord) -> Result<StorageProfile> {
        let cached = {
            let slot = self.profiles_slot();
            slot.list.as_ref().and_then(|list| {
                let (r, p) = &list.entries[*list.by_id.get(&w.id)?];
                (r.updated_at == w.updated_at).then(|| p.clone()).flatten()
            })
        };
        match cached {
            Some(p) => Ok(p),
            None => Self::decode_profile(w),
        }
    }

    pub(crate) fn decode_profile(w: &WarehouseRecord) -> Result<StorageProfile> {
        serde_json::from_value(w.storage_profile.clone()).map_err(|e| {
            ServiceError::Internal(format!("stored storage profile of {}: {e}", w.name))
        })
    }

    pub(crate) fn decrypt_credential(
        &self,
        w: &WarehouseRecord,
    ) -> Result<Option<StorageCredential>> {
        let Some(ct) = &w.storage_credential else {
            return Ok(None);
        };
        let plain = self.secrets().decrypt(ct).map_err(|e| {
            ServiceError::Internal(format!("storage credential of {}: {e}", w.name))
        })?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| ServiceError::Internal(format!("stored credential of {}: {e}", w.name)))
    }

    pub(crate) fn encrypt_credential(&self, c: &StorageCredential) -> Result<Vec<u8>> {
        let json = zeroize::Zeroizing::new(serde_json::to_vec(c).map_err(ServiceError::internal)?);
        Ok(self.secrets().encrypt(&json))
    }

    /// The opened storage of a warehouse, reusing a cached client while the row is unchanged.
    pub(crate) fn storage_for(&self, w: &WarehouseRecord) -> Result<Storage> {
        if let Some((at, s)) = self
            .inner
            .storages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&w.id)
        {
            if *at == w.updated_at {
                return Ok(s.clone());
            }
        }
        let profile = Self::decode_profile(w)?;
        let cred = self.decrypt_credential(w)?;
        let public = profile
            .gateway_served()
            .then(|| Self::warehouse_base(&w.name, &profile));
        let storage =
            Storage::open_served(&profile, cred.as_ref(), &self.config().storage, public)?;
        self.inner
            .storages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(w.id, (w.updated_at, storage.clone()));
        Ok(storage)
    }

    /// Every warehouse with its storage profile (`None` where the stored profile does not
    /// decode), in the store's order, without a database read or a decode while no
    /// warehouse changed.
    pub(crate) async fn warehouse_profiles(&self) -> Result<Arc<WarehouseList>> {
        use std::sync::atomic::Ordering;
        let generation = {
            let slot = self.profiles_slot();
            if let Some(list) = &slot.list {
                if !self.inner.feed_down.load(Ordering::Acquire) {
                    return Ok(list.clone());
                }
            }
            slot.generation
        };
        let list: Arc<WarehouseList> = Arc::new(WarehouseList::new(
            self.store()
                .list_warehouses()
                .await?
                .into_iter()
                .map(|w| {
                    let profile = Self::decode_profile(&w).ok();
                    (Arc::new(w), profile)
                })
                .collect(),
        ));
        let mut slot = self.profiles_slot();
        // A warehouse changed while the list was read: use it once, do not keep it.
        if slot.generation == generation && !self.inner.feed_down.load(Ordering::Acquire) {
            slot.list = Some(list.clone());
        }
        Ok(list)
    }

    fn forget_warehouse_profiles(&self) {
        let mut slot = self.profiles_slot();
        slot.generation += 1;
        slot.list = None;
    }

    /// The warehouse changed: its opened storage goes, the list of profiles, and (rare
    /// enough to start over) every cached table.
    pub(crate) fn forget_storage(&self, id: Uuid) {
        self.table_cache().clear();
        self.forget_warehouse_profiles();
        self.inner
            .storages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Applies one change another process (or this one) committed to what this replica
    /// caches.
    pub fn apply_change(&self, change: &Change) {
        match change {
            Change::Identity => {
                self.identity_changed();
                self.authenticators().forget_cached();
            }
            Change::Warehouse(id) => {
                self.forget_storage(*id);
                self.credential_cache().forget_warehouse(*id);
            }
            Change::Table(id) => self.tables_changed([*id]),
            Change::Lost | Change::Resumed => {
                let lost = matches!(change, Change::Lost);
                self.policy_cache().set_bypass(lost);
                self.principal_cache().set_bypass(lost);
                self.table_cache().set_bypass(lost);
                self.inner
                    .feed_down
                    .store(lost, std::sync::atomic::Ordering::Release);
                self.forget_warehouse_profiles();
                self.identity_changed();
                self.authenticators().forget_cached();
                self.inner
                    .storages
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                self.credential_cache().clear();
            }
        }
    }

    /// Subscribes to the store's cross-process change feed and applies every change to this
    /// replica's caches until the feed ends. None when the store has no feed (SQLite: one
    /// process, whose own writes already clear its caches).
    pub async fn watch_changes(&self) -> Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(mut rx) = self.store().subscribe_changes().await? else {
            return Ok(None);
        };
        let services = self.clone();
        Ok(Some(tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(change) => services.apply_change(&change),
                    // Fell behind the feed: some changes were skipped, so forget everything.
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(
                            skipped = n,
                            "change feed subscriber lagged; clearing caches"
                        );
                        services.apply_change(&Change::Lost);
                        services.apply_change(&Change::Resumed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        })))
    }
}

pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    // Millisecond precision: what the store round-trips.
    let n = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(n.timestamp_millis()).unwrap_or(n)
}
