//! Storage access delegation: vended short-lived credentials scoped to one table, and
//! remote signing of S3 requests for one table. Query engines never see the warehouse's
//! own keys.

use crate::cache::KeyedCache;
use crate::{Result, ServiceError, Services};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_auth::policy::{resource, Action};
use sluice_core::{NamespaceName, Principal};
use sluice_storage::s3::{
    sign_gateway_request, GatewaySigningKey, S3Operation, SignRequest, SignedRequest,
};
use sluice_storage::{
    AccessLevel, S3Flavor, S3Profile, SignerEndpoint, Storage, StorageProfile, TableCredentials,
};
use sluice_store::{TableRecord, WarehouseRecord};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

/// What the client accepts (`X-Iceberg-Access-Delegation`) and where it reached us.
#[derive(Debug, Clone, Default)]
pub struct AccessDelegation {
    pub vended_credentials: bool,
    pub remote_signing: bool,
    /// The externally visible base URL of this server, for `s3.signer.uri`.
    pub base_url: String,
}

impl AccessDelegation {
    /// Parses the header value: a comma-separated list; unknown entries are ignored, as
    /// the spec allows servers to.
    pub fn from_header(value: Option<&str>, base_url: String) -> Self {
        let mut d = AccessDelegation {
            base_url,
            ..Default::default()
        };
        for part in value.unwrap_or("").split(',').map(str::trim) {
            match part.to_ascii_lowercase().as_str() {
                "vended-credentials" => d.vended_credentials = true,
                "remote-signing" => d.remote_signing = true,
                _ => {}
            }
        }
        d
    }

    pub fn requested(&self) -> bool {
        self.vended_credentials || self.remote_signing
    }
}

/// What a load/create/register response delivers for storage access.
#[derive(Debug, Default)]
pub struct Delegated {
    pub config: HashMap<String, String>,
    pub storage_credentials: Vec<StorageCredentialEntry>,
    /// `None` when the client asked for no delegation.
    pub outcome: Option<DelegationOutcome>,
}

impl Delegated {
    fn none(config: HashMap<String, String>, reason: String) -> Self {
        Delegated {
            config,
            storage_credentials: vec![],
            outcome: Some(DelegationOutcome::None { reason }),
        }
    }
}

/// The mechanism that answered an `X-Iceberg-Access-Delegation` hint, reported to the client
/// in a response header so that "no credentials" is never a silent surprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegationOutcome {
    VendedCredentials,
    RemoteSigning,
    None { reason: String },
}

impl DelegationOutcome {
    /// The `X-Sluice-Delegation` header value: `vended-credentials`, `remote-signing`, or
    /// `none; reason="…"` (an RFC 9110 quoted string, visible ASCII only).
    pub fn header_value(&self) -> String {
        match self {
            DelegationOutcome::VendedCredentials => "vended-credentials".into(),
            DelegationOutcome::RemoteSigning => "remote-signing".into(),
            DelegationOutcome::None { reason } => {
                let quoted: String = reason
                    .chars()
                    .map(|c| {
                        if c == ' ' || c.is_ascii_graphic() {
                            c
                        } else {
                            '?'
                        }
                    })
                    .flat_map(|c| match c {
                        '"' | '\\' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                format!("none; reason=\"{quoted}\"")
            }
        }
    }
}

/// One entry of `storage-credentials` in the Iceberg REST spec.
#[derive(Debug, Clone, Serialize)]
pub struct StorageCredentialEntry {
    pub prefix: String,
    pub config: HashMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoadCredentialsResponse {
    pub storage_credentials: Vec<StorageCredentialEntry>,
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Credentials are reused until this long before they expire, so a client never receives
/// credentials that die mid-query.
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
const MAX_SLOTS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    pub warehouse: Uuid,
    /// A changed profile or credential must not serve credentials minted under the old one.
    pub warehouse_version: i64,
    pub table: Uuid,
    pub level: AccessLevel,
    /// Temporary gateway credentials name their issuer (user, access key); cloud
    /// credentials are the same for every caller (`None`).
    pub issuer: Option<(Uuid, Option<String>)>,
}

/// Per-(warehouse, table, access level) cache. Callers asking for the same key at once
/// queue behind one refresh, so only the first calls STS (single flight).
pub(crate) struct CredentialCache {
    clock: Arc<dyn Clock>,
    entries: KeyedCache<CacheKey, TableCredentials>,
}

impl CredentialCache {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        CredentialCache {
            clock,
            // Entries die by their own expiry (checked on use); the bound keeps expired ones
            // of tables nobody asks for again from piling up.
            entries: KeyedCache::new(MAX_SLOTS, None),
        }
    }

    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        key: CacheKey,
        fetch: F,
    ) -> Result<TableCredentials>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TableCredentials>>,
    {
        let now = self.clock.now();
        self.entries
            .get_or_refresh(key, |c| c.expiration - now > REFRESH_MARGIN, fetch)
            .await
    }

    /// Drops every cached credential of one warehouse (its settings changed, or it is gone).
    pub(crate) fn forget_warehouse(&self, warehouse: Uuid) {
        self.entries.forget_if(move |k| k.warehouse == warehouse);
    }

    pub(crate) fn clear(&self) {
        self.entries.clear();
    }
}

impl Services {
    /// The access a caller gets to a table's files: read-write with `catalog:WriteTable`,
    /// otherwise read-only.
    async fn access_level(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        table: &TableRecord,
    ) -> Result<AccessLevel> {
        let res = resource::table(&wh.name, table.namespace.parts(), &table.name);
        Ok(
            if self.is_allowed(caller, Action::WriteTable, &res).await? {
                AccessLevel::ReadWrite
            } else {
                AccessLevel::Read
            },
        )
    }

    async fn vend(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        storage: &Storage,
        table: &TableRecord,
        level: AccessLevel,
    ) -> Result<TableCredentials> {
        let key = CacheKey {
            warehouse: wh.id,
            warehouse_version: wh.updated_at.timestamp_millis(),
            table: table.id,
            level,
            issuer: None,
        };
        let session = format!("sluice-{}", caller.user_name);
        self.credential_cache()
            .get_or_fetch(key, || async {
                storage
                    .vend(&table.location, level, &session)
                    .await
                    .map_err(Into::into)
            })
            .await
    }

    /// Temporary gateway credentials for a table of a warehouse the gateway serves, reused
    /// per (user, access key, table, level) like cloud credentials.
    pub(crate) async fn vend_gateway(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        table: GatewayTable<'_>,
        base_url: &str,
    ) -> Result<TableCredentials> {
        let res = resource::table(&wh.name, table.namespace.parts(), table.name);
        let write_action = if table.staged {
            Action::CreateTable
        } else {
            Action::WriteTable
        };
        let level = if self.is_allowed(caller, write_action, &res).await? {
            AccessLevel::ReadWrite
        } else {
            AccessLevel::Read
        };
        self.vend_gateway_at(caller, wh, table, base_url, level)
            .await
    }

    /// Temporary gateway credentials for `table` at `level`, which the caller must hold.
    async fn vend_gateway_at(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        table: GatewayTable<'_>,
        base_url: &str,
        level: AccessLevel,
    ) -> Result<TableCredentials> {
        let key = CacheKey {
            warehouse: wh.id,
            warehouse_version: wh.updated_at.timestamp_millis(),
            table: table.id,
            level,
            issuer: Some((caller.user_id, caller.access_key_id.clone())),
        };
        self.credential_cache()
            .get_or_fetch(key, || {
                self.mint_gateway_credentials(caller, wh, table, level, base_url)
            })
            .await
    }

    /// The gateway as an S3 endpoint (path style, bucket = warehouse), for the signer's
    /// checks and signatures. The gateway's URL is the one vended credentials carry.
    fn gateway_sign_profile(&self, wh: &WarehouseRecord, base_url: &str) -> Result<S3Profile> {
        let mut p = S3Profile::new(wh.name.clone(), self.config().gateway.region.clone());
        p.endpoint = Some(self.gateway_endpoint(base_url)?);
        p.path_style_access = true;
        p.flavor = S3Flavor::S3Compat;
        // The gateway itself decides deletes by the table's rights.
        p.push_s3_delete_disabled = false;
        Ok(p)
    }

    /// `delegate_access` for a warehouse the gateway serves: temporary gateway credentials
    /// for vended-credentials, or the signer endpoint (signing with a temporary key) for
    /// remote-signing alone; the gateway's endpoint either way, so that a client with its
    /// own Sluice key can reach the files too.
    async fn delegate_through_gateway(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        table: &TableRecord,
        staged: bool,
        delegation: &AccessDelegation,
    ) -> Result<Delegated> {
        let mut config = HashMap::from([
            ("s3.path-style-access".to_string(), "true".to_string()),
            (
                "s3.region".to_string(),
                self.config().gateway.region.clone(),
            ),
            (
                "client.region".to_string(),
                self.config().gateway.region.clone(),
            ),
        ]);
        let endpoint = self.gateway_endpoint(&delegation.base_url);
        if let Ok(e) = &endpoint {
            config.insert("s3.endpoint".into(), e.clone());
        }
        if !delegation.requested() {
            return Ok(Delegated {
                config,
                storage_credentials: vec![],
                outcome: None,
            });
        }
        if let Err(ServiceError::BadRequest(m)) = endpoint {
            return Ok(Delegated::none(config, format!("no delegation: {m}")));
        }
        let res = resource::table(&wh.name, table.namespace.parts(), &table.name);
        if !delegation.vended_credentials {
            self.authorize(caller, Action::StorageSign, &res).await?;
            let endpoint = self.signer_endpoint(wh, table, staged);
            let gateway = StorageProfile::S3(self.gateway_sign_profile(wh, &delegation.base_url)?);
            if let Some(signing) = gateway.remote_signing_config(SignerEndpoint {
                uri: &delegation.base_url,
                endpoint: &endpoint,
            }) {
                config.extend(signing);
            }
            return Ok(Delegated {
                config,
                storage_credentials: vec![],
                outcome: Some(DelegationOutcome::RemoteSigning),
            });
        }
        self.authorize(caller, Action::VendCredentials, &res)
            .await?;
        let creds = self
            .vend_gateway(
                caller,
                wh,
                GatewayTable {
                    staged,
                    ..GatewayTable::of(table)
                },
                &delegation.base_url,
            )
            .await?;
        config.extend(creds.config.clone());
        Ok(Delegated {
            config,
            storage_credentials: vec![StorageCredentialEntry {
                prefix: table.location.clone(),
                config: creds.config,
            }],
            outcome: Some(DelegationOutcome::VendedCredentials),
        })
    }

    /// Extra `config` and `storage-credentials` for a load/create/register response,
    /// according to what the client accepts and what the warehouse can do.
    ///
    /// `X-Iceberg-Access-Delegation` is a hint (the spec lets a server satisfy it with any
    /// mechanism it supports, or none): the request is served either way. Vended credentials
    /// when the client accepts them and the warehouse can vend; otherwise the warehouse's
    /// remote signing when it has one; otherwise nothing, and the outcome's reason says why
    /// (a response header and the log carry it). Never empty or key-less credentials.
    /// Refusals of the caller's rights stay errors: they are not a property of the warehouse.
    pub(crate) async fn delegate_access(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        profile: &StorageProfile,
        table: &TableRecord,
        staged: bool,
        delegation: &AccessDelegation,
    ) -> Result<Delegated> {
        if profile.gateway_served() {
            return self
                .delegate_through_gateway(caller, wh, table, staged, delegation)
                .await;
        }
        let config = profile.table_config();
        if !delegation.requested() {
            return Ok(Delegated {
                config,
                storage_credentials: vec![],
                outcome: None,
            });
        }
        if profile.needs_no_credentials() {
            let reason = "the warehouse's storage needs no credentials".to_string();
            return Ok(Delegated::none(config, reason));
        }
        let res = resource::table(&wh.name, table.namespace.parts(), &table.name);
        let mut why_not = Vec::new();
        if delegation.vended_credentials {
            if profile.vends_credentials() {
                self.authorize(caller, Action::VendCredentials, &res)
                    .await?;
                let level = self.access_level(caller, wh, table).await?;
                let storage = self.storage_for(wh)?;
                match self.vend(caller, wh, &storage, table, level).await {
                    Ok(creds) => {
                        let mut config = config;
                        config.extend(creds.config.clone());
                        return Ok(Delegated {
                            config,
                            storage_credentials: vec![StorageCredentialEntry {
                                prefix: table.location.clone(),
                                config: creds.config,
                            }],
                            outcome: Some(DelegationOutcome::VendedCredentials),
                        });
                    }
                    // The warehouse's setup rules vending out for this table (e.g. a SAS that
                    // cannot be narrowed below the container); outages stay errors.
                    Err(ServiceError::BadRequest(m)) => {
                        why_not.push(format!("no vended credentials: {m}"))
                    }
                    Err(e) => return Err(e),
                }
            } else {
                why_not.push(format!(
                    "no vended credentials: {}",
                    profile.vending_unavailable_reason()
                ));
            }
        }
        let endpoint = self.signer_endpoint(wh, table, staged);
        match profile.remote_signing_config(SignerEndpoint {
            uri: &delegation.base_url,
            endpoint: &endpoint,
        }) {
            Some(signing) => {
                // Asked for explicitly, a missing right is the caller's error; offered in place
                // of vended credentials, it only means there is nothing to hand out.
                let allowed = if delegation.remote_signing {
                    self.authorize(caller, Action::StorageSign, &res).await?;
                    true
                } else {
                    self.is_allowed(caller, Action::StorageSign, &res).await?
                };
                if allowed {
                    let mut config = config;
                    config.extend(signing);
                    return Ok(Delegated {
                        config,
                        storage_credentials: vec![],
                        outcome: Some(DelegationOutcome::RemoteSigning),
                    });
                }
                why_not.push(format!(
                    "no remote signing: the caller may not sign requests for this table ({})",
                    Action::StorageSign
                ));
            }
            None if delegation.remote_signing => {
                why_not.push("no remote signing: the storage has no remote-signing protocol".into())
            }
            None => {}
        }
        let reason = why_not.join("; ");
        tracing::info!(warehouse = %wh.name, table = %format!("{}.{}", table.namespace, table.name), %reason, "access delegation asked for, none delivered");
        Ok(Delegated::none(config, reason))
    }

    /// `GET …/tables/{table}/credentials`: fresh (or cached) vended credentials.
    pub async fn load_credentials(
        &self,
        caller: &Principal,
        prefix: &str,
        ns: &str,
        table: &str,
        base_url: &str,
    ) -> Result<LoadCredentialsResponse> {
        let t = self.visible_table_at(caller, prefix, ns, table).await?;
        self.authorize(caller, Action::VendCredentials, t.resource())
            .await?;
        let rec = self.table_record(&t).await?;
        let wh = t.warehouse();
        let profile = self.profile_of(wh)?;
        if profile.gateway_served() {
            let creds = self
                .vend_gateway(caller, wh, GatewayTable::of(&rec), base_url)
                .await?;
            return Ok(LoadCredentialsResponse {
                storage_credentials: vec![StorageCredentialEntry {
                    prefix: rec.location.clone(),
                    config: creds.config,
                }],
            });
        }
        if profile.needs_no_credentials() {
            return Ok(LoadCredentialsResponse {
                storage_credentials: vec![],
            });
        }
        if !profile.vends_credentials() {
            return Err(ServiceError::BadRequest(format!(
                "warehouse '{}' does not vend credentials: {}",
                wh.name,
                profile.vending_unavailable_reason()
            )));
        }
        let level = self.access_level(caller, wh, &rec).await?;
        let storage = self.storage_for(wh)?;
        let creds = self.vend(caller, wh, &storage, &rec, level).await?;
        Ok(LoadCredentialsResponse {
            storage_credentials: vec![StorageCredentialEntry {
                prefix: rec.location.clone(),
                config: creds.config,
            }],
        })
    }

    /// Signs one S3 request for a caller. With `scope` (warehouse prefix, table id) the
    /// request must target that table; without it, the table is found from the URI.
    pub async fn sign_s3_request(
        &self,
        caller: &Principal,
        scope: Option<(&str, Uuid)>,
        req: SignRequest,
    ) -> Result<SignedRequest> {
        let (wh, table) = match scope {
            Some((prefix, table_id)) => {
                // Engines sign every file they touch: warehouse and table come from memory
                // when they can (both caches are cleared by any change of what they hold).
                let wh = self.resolve_warehouse_cached(prefix).await?;
                let t = match self.table_cache().get_by_id(table_id) {
                    Some(cached) => Some(cached.record.clone()),
                    None => self.store().get_table_by_id(table_id).await?,
                }
                .filter(|t| t.warehouse_id == wh.id);
                (wh, t)
            }
            None => {
                // Resolve the table from the first location the request touches; the table
                // must belong to the warehouse whose profile understood the URI (two
                // warehouses may share a bucket under different prefixes).
                let list = self.warehouse_profiles().await?;
                let mut found = None;
                for (w, profile) in list.addressed_by(&req.uri) {
                    if let Ok(target) = profile.resolve_sign_target(&req) {
                        if let Some(first) = target.locations.first() {
                            if let Some(t) = self.table_holding(w.id, first).await? {
                                found = Some((w.clone(), Some(TableRecord::clone(&t))));
                                break;
                            }
                        }
                    }
                }
                let Some((w, t)) = found else {
                    // A warehouse whose profile does not decode might have been the one: say
                    // so rather than that nobody manages the table.
                    if let Some(w) = list.undecodable().next() {
                        return Err(Self::decode_profile(w).err().unwrap_or_else(|| {
                            ServiceError::Internal(format!("storage profile of {}", w.name))
                        }));
                    }
                    return Err(ServiceError::Forbidden(
                        "the request does not target a table this server manages".into(),
                    ));
                };
                if w.status != sluice_store::WarehouseStatus::Active {
                    return Err(ServiceError::Forbidden(format!(
                        "warehouse '{}' is inactive",
                        w.name
                    )));
                }
                (w, t)
            }
        };
        let table =
            table.ok_or_else(|| ServiceError::NoSuchTable("table does not exist".into()))?;
        let t = self
            .visible_table(caller, wh, table.namespace.clone(), &table.name)
            .await?;
        self.authorize(caller, Action::StorageSign, t.resource())
            .await?;
        let scope = SignScope {
            table_id: table.id,
            ns: t.namespace(),
            name: t.name(),
            location: &table.location,
            res: t.resource(),
            write_action: Action::WriteTable,
            staged: false,
        };
        self.sign_inside(caller, t.warehouse(), scope, req).await
    }

    /// The table's signer endpoint (relative to the catalog URI). A staged table is not in
    /// the catalog yet, so its endpoint carries what the signer needs to know about it,
    /// sealed with the master key (any replica can open it; nobody else can forge or widen
    /// it).
    fn signer_endpoint(&self, wh: &WarehouseRecord, table: &TableRecord, staged: bool) -> String {
        if staged {
            format!(
                "v1/{}/staged-tables/{}/sign",
                wh.id,
                self.staged_grant(wh, table)
            )
        } else {
            format!("v1/{}/tables/{}/sign", wh.id, table.id)
        }
    }

    fn staged_grant(&self, wh: &WarehouseRecord, table: &TableRecord) -> String {
        let grant = StagedGrant {
            kind: STAGED_GRANT_KIND.into(),
            warehouse: wh.id,
            table: table.id,
            namespace: table.namespace.parts().to_vec(),
            name: table.name.clone(),
            location: table.location.clone(),
            expires: (Utc::now() + STAGED_GRANT_VALIDITY).timestamp(),
        };
        let json = serde_json::to_vec(&grant).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(self.seal(&json))
    }

    /// Signs a request for a table created with `stage-create`, through the grant its
    /// signer endpoint carries. Until the create is committed the caller needs the right to
    /// create that table (it writes the data files the commit will reference); afterwards the
    /// table's own rights apply, as on the ordinary endpoint.
    pub async fn sign_staged_s3_request(
        &self,
        caller: &Principal,
        prefix: &str,
        grant: &str,
        req: SignRequest,
    ) -> Result<SignedRequest> {
        let invalid = || {
            ServiceError::Forbidden("the signer endpoint's staged-table grant is invalid or expired; load or create the table again".into())
        };
        let sealed = URL_SAFE_NO_PAD.decode(grant).map_err(|_| invalid())?;
        let grant: StagedGrant = self
            .unseal(&sealed)
            .and_then(|json| serde_json::from_slice(&json).ok())
            .filter(|g: &StagedGrant| {
                g.kind == STAGED_GRANT_KIND && g.expires > Utc::now().timestamp()
            })
            .ok_or_else(invalid)?;
        let wh = self.resolve_warehouse(prefix).await?;
        if wh.id != grant.warehouse {
            return Err(invalid());
        }
        let ns = NamespaceName::new(grant.namespace.clone()).map_err(|_| invalid())?;
        let res = resource::table(&wh.name, ns.parts(), &grant.name);
        match self.store().get_table(wh.id, &ns, &grant.name).await? {
            Some(t) if t.id == grant.table => {
                return self
                    .sign_s3_request(caller, Some((prefix, t.id)), req)
                    .await
            }
            Some(_) => {
                return Err(ServiceError::Forbidden(format!(
                    "table {ns}.{} was created by another request; load it again",
                    grant.name
                )))
            }
            None => {}
        }
        self.require_create_table(caller, &wh, &ns, &grant.name)
            .await?;
        self.authorize(caller, Action::StorageSign, &res).await?;
        let scope = SignScope {
            table_id: grant.table,
            ns: &ns,
            name: &grant.name,
            location: &grant.location,
            res: &res,
            write_action: Action::CreateTable,
            staged: true,
        };
        self.sign_inside(caller, &wh, scope, req).await
    }

    /// The checks every signed request passes once the caller may sign for the table: all
    /// objects strictly below the table's location (and, for a staged table, claimed by no
    /// committed table), `write_action` for writes and deletes, deletes only where the
    /// warehouse lets clients delete.
    async fn sign_inside(
        &self,
        caller: &Principal,
        wh: &WarehouseRecord,
        scope: SignScope<'_>,
        req: SignRequest,
    ) -> Result<SignedRequest> {
        let SignScope {
            table_id,
            ns,
            name,
            location,
            res,
            write_action,
            staged,
        } = scope;
        let storage = self.storage_for(wh)?;
        let profile = storage.profile();
        // A gateway-served warehouse is signed for as the gateway (an S3 endpoint whose
        // bucket is the warehouse), with a temporary gateway key for the table.
        let gateway = profile
            .gateway_served()
            .then(|| self.gateway_sign_profile(wh, &req.uri))
            .transpose()?;
        // Checked once, against the profile whose credentials will sign.
        let checked = match &gateway {
            Some(g) => g.check_sign_request(&req)?,
            None => storage.check_sign_request(&req)?,
        };
        let target = checked.target();
        // Strictly below the table's directory: a list prefix equal to the bare location
        // would also return a sibling table's keys (`t1` → `t10`).
        let base = location.trim_end_matches('/');
        let inside = |loc: &str| loc.strip_prefix(base).is_some_and(|r| r.starts_with('/'));
        if let Some(outside) = target.locations.iter().find(|l| !inside(l)) {
            return Err(ServiceError::Forbidden(format!(
                "{outside} is outside the location of table {ns}.{name}"
            )));
        }
        if staged {
            // The location is reserved only when the create commits: refuse to sign into a
            // table that has taken it since.
            for loc in &target.locations {
                if let Some(other) = self.store().table_containing_location(loc).await? {
                    return Err(ServiceError::Forbidden(format!(
                        "{loc} belongs to table {}.{}",
                        other.namespace, other.name
                    )));
                }
            }
        }
        match target.operation {
            S3Operation::Read => {}
            S3Operation::Write => self.authorize(caller, write_action, res).await?,
            S3Operation::Delete => {
                if !profile.client_deletes_allowed() {
                    return Err(ServiceError::Forbidden(format!(
                        "warehouse '{}' does not allow clients to delete objects (push-s3-delete-disabled)",
                        wh.name
                    )));
                }
                self.authorize(caller, write_action, res).await?;
            }
        }
        if gateway.is_none() {
            return Ok(storage.sign_checked(&checked).await?);
        }
        let table = GatewayTable {
            id: table_id,
            namespace: ns,
            name,
            location,
            staged,
        };
        // The key signs this one request: a read is signed with a read-only key; a write
        // or delete was authorized above. (It also spares a second policy evaluation.)
        let level = match target.operation {
            S3Operation::Read => AccessLevel::Read,
            S3Operation::Write | S3Operation::Delete => AccessLevel::ReadWrite,
        };
        let creds = self
            .vend_gateway_at(caller, wh, table, &req.uri, level)
            .await?;
        let get = |k: &str| {
            creds.config.get(k).map(String::as_str).ok_or_else(|| {
                ServiceError::Internal(format!("temporary gateway credentials lack {k}"))
            })
        };
        let key = GatewaySigningKey {
            access_key_id: get("s3.access-key-id")?,
            secret_access_key: get("s3.secret-access-key")?,
            session_token: get("s3.session-token")?,
        };
        Ok(sign_gateway_request(key, &checked)?)
    }
}

/// What temporary gateway credentials are minted for: a table (staged or committed).
#[derive(Clone, Copy)]
pub(crate) struct GatewayTable<'a> {
    pub id: Uuid,
    pub namespace: &'a NamespaceName,
    pub name: &'a str,
    pub location: &'a str,
    /// Not committed yet: writing needs `catalog:CreateTable` on its name, and the gateway
    /// finds no table holding its keys.
    pub staged: bool,
}

impl<'a> GatewayTable<'a> {
    pub(crate) fn of(t: &'a TableRecord) -> Self {
        GatewayTable {
            id: t.id,
            namespace: &t.namespace,
            name: &t.name,
            location: &t.location,
            staged: false,
        }
    }
}

/// The table a signed request must stay inside, and what writing to it requires.
struct SignScope<'a> {
    table_id: Uuid,
    ns: &'a NamespaceName,
    name: &'a str,
    location: &'a str,
    /// The table's policy resource.
    res: &'a str,
    /// `catalog:WriteTable`, or `catalog:CreateTable` for a staged table.
    write_action: Action,
    /// Not yet committed, so its location is not reserved.
    staged: bool,
}

const STAGED_GRANT_KIND: &str = "staged-table-signing";
/// How long a staged table's signer endpoint stays usable: long enough for a slow CTAS,
/// short enough that a leaked endpoint does not live forever. Every request is authorized
/// anew regardless.
const STAGED_GRANT_VALIDITY: chrono::Duration = chrono::Duration::hours(12);

/// What a staged table's signer endpoint carries. The `kind` keeps other sealed values
/// (e.g. the SSO state cookie) from being accepted as a grant.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StagedGrant {
    kind: String,
    warehouse: Uuid,
    table: Uuid,
    namespace: Vec<String>,
    name: String,
    location: String,
    expires: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    struct FakeClock(AtomicI64);
    impl Clock for FakeClock {
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp(self.0.load(Ordering::SeqCst), 0).unwrap()
        }
    }

    fn creds(exp: DateTime<Utc>, n: usize) -> TableCredentials {
        TableCredentials {
            config: HashMap::from([("id".to_string(), format!("ASIA{n}"))]),
            expiration: exp,
        }
    }

    fn key() -> CacheKey {
        CacheKey {
            warehouse: Uuid::nil(),
            warehouse_version: 0,
            table: Uuid::nil(),
            level: AccessLevel::Read,
            issuer: None,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_expired_entries_renew() {
        let clock = Arc::new(FakeClock(AtomicI64::new(1_000_000)));
        let cache = Arc::new(CredentialCache::new(clock.clone()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..20 {
            let (cache, calls, clock) = (cache.clone(), calls.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(key(), || async move {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(creds(clock.now() + chrono::Duration::hours(1), n))
                    })
                    .await
                    .unwrap()
                    .config["id"]
                    .clone()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "ASIA0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Still fresh 50 minutes later (10 minutes left > 5 minute margin).
        clock.0.fetch_add(50 * 60, Ordering::SeqCst);
        let c = cache
            .get_or_fetch(key(), || async { Ok(creds(Utc::now(), 99)) })
            .await
            .unwrap();
        assert_eq!(c.config["id"].clone(), "ASIA0");
        // Inside the margin: renewed.
        clock.0.fetch_add(6 * 60, Ordering::SeqCst);
        let now = clock.now();
        let c = cache
            .get_or_fetch(key(), || async move {
                Ok(creds(now + chrono::Duration::hours(1), 1))
            })
            .await
            .unwrap();
        assert_eq!(c.config["id"].clone(), "ASIA1");
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let clock = Arc::new(FakeClock(AtomicI64::new(0)));
        let cache = CredentialCache::new(clock.clone());
        let r = cache
            .get_or_fetch(key(), || async {
                Err(ServiceError::Unavailable("sts down".into()))
            })
            .await;
        assert!(r.is_err());
        let now = clock.now();
        let c = cache
            .get_or_fetch(key(), || async move {
                Ok(creds(now + chrono::Duration::hours(1), 7))
            })
            .await
            .unwrap();
        assert_eq!(c.config["id"].clone(), "ASIA7");
    }

    #[test]
    fn header_parsing() {
        let d = AccessDelegation::from_header(
            Some("vended-credentials, remote-signing"),
            String::new(),
        );
        assert!(d.vended_credentials && d.remote_signing);
        let d = AccessDelegation::from_header(Some(""), String::new());
        assert!(!d.requested());
        let d = AccessDelegation::from_header(Some("something-else"), String::new());
        assert!(!d.requested());
    }
}
