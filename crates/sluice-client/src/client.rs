//! `Client`: typed calls to the Sluice management and catalog APIs, plus raw access. Every
//! request carries the credential from the `TokenManager` and is retried once after a 401
//! with a renewed one.

use crate::auth::{join_path, join_segments, AuthContext, Authenticator, Token, TokenManager};
use crate::cache::TokenCache;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::types::*;
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// Separator of namespace levels in catalog URL paths (Iceberg REST spec: 0x1F, sent as %1F).
const NAMESPACE_SEPARATOR: &str = "\u{1f}";

/// A Sluice API client. Cheap to clone (one `Arc`), `Send + Sync`; clones share the HTTP
/// connection pool, the token and the cached server metadata.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    endpoint: url::Url,
    http: reqwest::Client,
    auth_header: HeaderName,
    tokens: TokenManager,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("auth", &self.inner.tokens.authenticator().name())
            .finish()
    }
}

static DEFAULT_CLIENT: OnceLock<Client> = OnceLock::new();

impl Client {
    /// A client for `config` (its `endpoint` is required) logging in with `authenticator`.
    /// Nothing is sent until the first call.
    pub fn new(config: ClientConfig, authenticator: Arc<dyn Authenticator>) -> Result<Client> {
        Client::build(config, authenticator, true)
    }

    fn build(
        config: ClientConfig,
        authenticator: Arc<dyn Authenticator>,
        interactive: bool,
    ) -> Result<Client> {
        let endpoint = config.endpoint_url()?;
        let http = config.http_client()?;
        let header = config.auth_header.as_deref().unwrap_or("authorization");
        let auth_header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            ClientError::Config(format!(
                "auth-header '{header}' ({}) is not a valid HTTP header name",
                config.source_of("auth-header")
            ))
        })?;
        // Only authenticators with an identity and a token to keep use the cache; a cache
        // that cannot be located (no HOME) just means logging in every time.
        let cache = if authenticator.cache_identity().is_some()
            && authenticator.basic_credentials().is_none()
        {
            match TokenCache::from_config(&config) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::warn!("tokens will not be cached: {e}");
                    None
                }
            }
        } else {
            None
        };
        let ctx = AuthContext::new(http.clone(), endpoint.clone());
        let mut tokens = TokenManager::new(authenticator, ctx, cache);
        if !interactive {
            tokens = tokens.non_interactive(config.profile.clone());
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                endpoint,
                http,
                auth_header,
                tokens,
            }),
        })
    }

    /// A client for `config` with the authenticator its auth method names
    /// (`crate::flows::from_config`).
    /// A flow that lacks only its secret still uses the token an earlier login cached
    /// (`crate::flows::from_config_or_cached`).
    pub fn from_config(config: ClientConfig) -> Result<Client> {
        let authenticator = crate::flows::from_config_or_cached(&config)?;
        Client::new(config, authenticator)
    }

    /// A client that uses the login `sluice login` made for `config`'s profile: its cached
    /// token, renewed silently where the flow can (refresh token, the stored key or client
    /// secret, the external command, AWS credentials). It never opens a browser or waits for
    /// a device approval: when only a new login would help, calls fail with
    /// [`ClientError::LoginRequired`] (`session expired: run sluice login --profile X`).
    pub fn from_login(config: ClientConfig) -> Result<Client> {
        let authenticator = crate::flows::from_config_or_cached(&config)?;
        Client::build(config, authenticator, false)
    }

    /// A client for profile `profile` (None: `SLUICE_PROFILE`, else the file's
    /// `default-profile`, else `default`) with the environment applied on top, using the
    /// login the `sluice` CLI made for it (see [`Client::from_login`]).
    ///
    /// ```no_run
    /// # async fn run() -> sluice_client::Result<()> {
    /// // After `sluice login --profile prod ...` once on this machine:
    /// let client = sluice_client::Client::from_profile(Some("prod"))?;
    /// for w in client.list_warehouses().await? {
    ///     println!("{} {}", w.name, w.id);
    /// }
    /// // The default profile, as plain `sluice` commands use it:
    /// let me = sluice_client::Client::from_profile(None)?.whoami().await?;
    /// println!("logged in as {}", me.name);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_profile(profile: Option<&str>) -> Result<Client> {
        let overrides = ClientConfig {
            profile: profile.map(str::to_string),
            ..Default::default()
        };
        Client::from_login(ClientConfig::resolve(overrides)?)
    }

    /// A client from the environment and the profile file alone (`ClientConfig::resolve`
    /// with no overrides), built on first use and shared by the whole process afterwards.
    /// A failure is not remembered: the next call tries again.
    pub fn default_client() -> Result<Client> {
        if let Some(c) = DEFAULT_CLIENT.get() {
            return Ok(c.clone());
        }
        let c = Client::from_config(ClientConfig::resolve(ClientConfig::default())?)?;
        // If another thread won the race, use its client so everyone shares one token.
        Ok(DEFAULT_CLIENT.get_or_init(|| c).clone())
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The validated endpoint.
    pub fn endpoint(&self) -> &url::Url {
        &self.inner.endpoint
    }

    /// The HTTP client all calls use (CA bundle, proxy, timeouts applied).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The token manager (login, logout, current token).
    pub fn tokens(&self) -> &TokenManager {
        &self.inner.tokens
    }

    /// Runs the login flow now and caches the token (`sluice login`).
    pub async fn login(&self) -> Result<Token> {
        self.inner.tokens.login().await
    }

    /// Forgets the token here and in the cache (`sluice logout`).
    pub async fn logout(&self) -> Result<()> {
        self.inner.tokens.logout().await
    }

    /// The server's `/.well-known/oauth-authorization-server` document (fetched once, then
    /// cached for the life of the client; no credential is sent).
    pub async fn server_metadata(&self) -> Result<serde_json::Value> {
        self.inner.tokens.context().server_metadata().await.cloned()
    }

    /// The server's version, from its metadata.
    pub async fn server_version(&self) -> Result<Option<String>> {
        Ok(self
            .server_metadata()
            .await?
            .get("sluice_version")
            .and_then(|v| v.as_str())
            .map(str::to_string))
    }

    /// `GET /health` without credentials.
    pub async fn health(&self) -> Result<()> {
        self.request(Method::GET, "/health")
            .unauthenticated()
            .send()
            .await
            .map(drop)
    }

    // -------------------------------------------------------------- raw access

    /// A request to `path` under the endpoint (already percent-encoded; may carry a query),
    /// e.g. `client.request(Method::GET, "/management/v1/users").send_json::<Value>()`.
    pub fn request(&self, method: Method, path: &str) -> Request {
        match join_path(&self.inner.endpoint, path) {
            Ok(url) => self.request_url(method, url),
            Err(e) => {
                let mut r = self.request_url(method, self.inner.endpoint.clone());
                r.error = Some(e);
                r
            }
        }
    }

    /// A request to the path made of `segments` under the endpoint, each percent-encoded
    /// (so user, group or table names may contain any character).
    pub fn request_segments(&self, method: Method, segments: &[&str]) -> Request {
        self.request_url(method, join_segments(&self.inner.endpoint, segments))
    }

    fn request_url(&self, method: Method, url: url::Url) -> Request {
        let builder = self.inner.http.request(method.clone(), url.clone());
        Request {
            client: self.clone(),
            method,
            url,
            builder,
            authenticated: true,
            error: None,
        }
    }

    /// Sends `body` (if any) as JSON to `path` and returns the response body as JSON: `null`
    /// for an empty body, a JSON string for a non-JSON body. For `sluice api`-style access.
    pub async fn raw_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await?;
        let url = resp.url().clone();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    fn mgmt(&self, method: Method, segments: &[&str]) -> Request {
        let mut all = vec!["management", "v1"];
        all.extend_from_slice(segments);
        self.request_segments(method, &all)
    }

    // -------------------------------------------------------------- identity

    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.mgmt(Method::GET, &["whoami"]).send_json().await
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        Ok(self
            .mgmt(Method::GET, &["users"])
            .send_json::<sluice_api::UsersResponse>()
            .await?
            .users)
    }

    pub async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        friendly_name: Option<&str>,
    ) -> Result<User> {
        let body = sluice_api::CreateUserRequest {
            name: name.into(),
            email: email.map(Into::into),
            friendly_name: friendly_name.map(Into::into),
        };
        self.mgmt(Method::POST, &["users"])
            .json(&body)
            .send_json()
            .await
    }

    pub async fn get_user(&self, name: &str) -> Result<User> {
        self.mgmt(Method::GET, &["users", name]).send_json().await
    }

    /// Changes email and/or friendly name: `None` leaves a field alone, `Some(None)` clears it.
    pub async fn update_user(
        &self,
        name: &str,
        email: Option<Option<&str>>,
        friendly_name: Option<Option<&str>>,
    ) -> Result<User> {
        let mut body = serde_json::Map::new();
        if let Some(e) = email {
            body.insert("email".into(), json!(e));
        }
        if let Some(f) = friendly_name {
            body.insert("friendly-name".into(), json!(f));
        }
        self.mgmt(Method::PATCH, &["users", name])
            .json(&body)
            .send_json()
            .await
    }

    pub async fn delete_user(&self, name: &str) -> Result<()> {
        self.mgmt(Method::DELETE, &["users", name])
            .send_empty()
            .await
    }

    /// The groups `user` belongs to.
    pub async fn user_groups(&self, user: &str) -> Result<Vec<Group>> {
        Ok(self
            .mgmt(Method::GET, &["users", user, "groups"])
            .send_json::<sluice_api::GroupsResponse>()
            .await?
            .groups)
    }

    /// The policies attached to `user` directly.
    pub async fn user_policies(&self, user: &str) -> Result<Vec<Policy>> {
        Ok(self
            .mgmt(Method::GET, &["users", user, "policies"])
            .send_json::<sluice_api::PoliciesResponse>()
            .await?
            .policies)
    }

    /// Creates an access key for `user`. The secret is in the result and nowhere else, ever.
    pub async fn create_access_key(&self, user: &str) -> Result<NewAccessKey> {
        self.mgmt(Method::POST, &["users", user, "access-keys"])
            .send_json()
            .await
    }

    pub async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKey>> {
        Ok(self
            .mgmt(Method::GET, &["users", user, "access-keys"])
            .send_json::<sluice_api::KeysResponse>()
            .await?
            .access_keys)
    }

    pub async fn delete_access_key(&self, user: &str, access_key_id: &str) -> Result<()> {
        self.mgmt(
            Method::DELETE,
            &["users", user, "access-keys", access_key_id],
        )
        .send_empty()
        .await
    }

    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        Ok(self
            .mgmt(Method::GET, &["groups"])
            .send_json::<sluice_api::GroupsResponse>()
            .await?
            .groups)
    }

    pub async fn create_group(&self, name: &str, description: Option<&str>) -> Result<Group> {
        let body = sluice_api::CreateGroupRequest {
            name: name.into(),
            description: description.map(Into::into),
        };
        self.mgmt(Method::POST, &["groups"])
            .json(&body)
            .send_json()
            .await
    }

    pub async fn get_group(&self, name: &str) -> Result<Group> {
        self.mgmt(Method::GET, &["groups", name]).send_json().await
    }

    pub async fn delete_group(&self, name: &str) -> Result<()> {
        self.mgmt(Method::DELETE, &["groups", name])
            .send_empty()
            .await
    }

    pub async fn add_group_member(&self, group: &str, user: &str) -> Result<()> {
        self.mgmt(Method::PUT, &["groups", group, "members", user])
            .send_empty()
            .await
    }

    pub async fn remove_group_member(&self, group: &str, user: &str) -> Result<()> {
        self.mgmt(Method::DELETE, &["groups", group, "members", user])
            .send_empty()
            .await
    }

    pub async fn group_members(&self, group: &str) -> Result<Vec<User>> {
        Ok(self
            .mgmt(Method::GET, &["groups", group, "members"])
            .send_json::<sluice_api::UsersResponse>()
            .await?
            .users)
    }

    /// The policies attached to `group`.
    pub async fn group_policies(&self, group: &str) -> Result<Vec<Policy>> {
        Ok(self
            .mgmt(Method::GET, &["groups", group, "policies"])
            .send_json::<sluice_api::PoliciesResponse>()
            .await?
            .policies)
    }

    pub async fn list_policies(&self) -> Result<Vec<Policy>> {
        Ok(self
            .mgmt(Method::GET, &["policies"])
            .send_json::<sluice_api::PoliciesResponse>()
            .await?
            .policies)
    }

    pub async fn create_policy(
        &self,
        name: &str,
        description: Option<&str>,
        statements: &[Statement],
    ) -> Result<Policy> {
        let body = sluice_api::PolicyRequest {
            name: Some(name.into()),
            description: description.map(Into::into),
            statements: statements.to_vec(),
        };
        self.mgmt(Method::POST, &["policies"])
            .json(&body)
            .send_json()
            .await
    }

    pub async fn get_policy(&self, name: &str) -> Result<Policy> {
        self.mgmt(Method::GET, &["policies", name])
            .send_json()
            .await
    }

    /// Replaces a policy's statements, and its description when `description` is Some (None
    /// keeps the current one). Policies cannot be renamed.
    pub async fn update_policy(
        &self,
        name: &str,
        description: Option<&str>,
        statements: &[Statement],
    ) -> Result<Policy> {
        let body = sluice_api::PolicyRequest {
            name: None,
            description: description.map(Into::into),
            statements: statements.to_vec(),
        };
        self.mgmt(Method::PUT, &["policies", name])
            .json(&body)
            .send_json()
            .await
    }

    pub async fn delete_policy(&self, name: &str) -> Result<()> {
        self.mgmt(Method::DELETE, &["policies", name])
            .send_empty()
            .await
    }

    pub async fn attach_user_policy(&self, user: &str, policy: &str) -> Result<()> {
        self.mgmt(Method::PUT, &["users", user, "policies", policy])
            .send_empty()
            .await
    }

    pub async fn detach_user_policy(&self, user: &str, policy: &str) -> Result<()> {
        self.mgmt(Method::DELETE, &["users", user, "policies", policy])
            .send_empty()
            .await
    }

    pub async fn attach_group_policy(&self, group: &str, policy: &str) -> Result<()> {
        self.mgmt(Method::PUT, &["groups", group, "policies", policy])
            .send_empty()
            .await
    }

    pub async fn detach_group_policy(&self, group: &str, policy: &str) -> Result<()> {
        self.mgmt(Method::DELETE, &["groups", group, "policies", policy])
            .send_empty()
            .await
    }

    /// Explains whether `user` may do `action` on `resource`.
    pub async fn check_permission(
        &self,
        user: &str,
        action: &str,
        resource: &str,
    ) -> Result<CheckResult> {
        let body = sluice_api::CheckRequest {
            user: user.into(),
            action: action.into(),
            resource: resource.into(),
        };
        self.mgmt(Method::POST, &["authz", "check"])
            .json(&body)
            .send_json()
            .await
    }

    /// Audit log entries, newest first; `before` is an entry id to page backwards from.
    pub async fn audit(&self, before: Option<i64>, limit: Option<u32>) -> Result<Vec<AuditEntry>> {
        let mut r = self.mgmt(Method::GET, &["audit"]);
        if let Some(b) = before {
            r = r.query(&[("before", b.to_string())]);
        }
        if let Some(l) = limit {
            r = r.query(&[("limit", l.to_string())]);
        }
        Ok(r.send_json::<sluice_api::AuditResponse>().await?.entries)
    }

    // -------------------------------------------------------------- warehouses

    pub async fn list_warehouses(&self) -> Result<Vec<Warehouse>> {
        Ok(self
            .mgmt(Method::GET, &["warehouse"])
            .send_json::<sluice_api::ListWarehousesResponse>()
            .await?
            .warehouses)
    }

    pub async fn create_warehouse(&self, req: &CreateWarehouseRequest) -> Result<Warehouse> {
        self.mgmt(Method::POST, &["warehouse"])
            .json(req)
            .send_json()
            .await
    }

    pub async fn get_warehouse(&self, id: Uuid) -> Result<Warehouse> {
        self.mgmt(Method::GET, &["warehouse", &id.to_string()])
            .send_json()
            .await
    }

    /// A warehouse by id (a UUID) or by name: what a person types on a command line.
    pub async fn find_warehouse(&self, name_or_id: &str) -> Result<Warehouse> {
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            return self.get_warehouse(id).await;
        }
        self.list_warehouses()
            .await?
            .into_iter()
            .find(|w| w.name == name_or_id)
            .ok_or_else(|| ClientError::Api {
                status: 404,
                kind: "NoSuchWarehouseException".into(),
                message: format!(
                    "warehouse '{name_or_id}' does not exist (or is not visible to you)"
                ),
            })
    }

    pub async fn rename_warehouse(&self, id: Uuid, new_name: &str) -> Result<Warehouse> {
        self.mgmt(Method::POST, &["warehouse", &id.to_string(), "rename"])
            .json(&sluice_api::RenameWarehouseRequest {
                new_name: new_name.into(),
            })
            .send_json()
            .await
    }

    pub async fn delete_warehouse(&self, id: Uuid) -> Result<()> {
        self.mgmt(Method::DELETE, &["warehouse", &id.to_string()])
            .send_empty()
            .await
    }

    pub async fn activate_warehouse(&self, id: Uuid) -> Result<Warehouse> {
        self.mgmt(Method::POST, &["warehouse", &id.to_string(), "activate"])
            .send_json()
            .await
    }

    pub async fn deactivate_warehouse(&self, id: Uuid) -> Result<Warehouse> {
        self.mgmt(Method::POST, &["warehouse", &id.to_string(), "deactivate"])
            .send_json()
            .await
    }

    /// Replaces the storage profile; `credential` None keeps the current credential.
    pub async fn update_warehouse_storage(
        &self,
        id: Uuid,
        storage_profile: serde_json::Value,
        credential: Option<serde_json::Value>,
    ) -> Result<Warehouse> {
        let body: sluice_api::UpdateStorageRequest = sluice_api::UpdateStorageRequest {
            storage_profile,
            storage_credential: credential,
        };
        self.mgmt(Method::POST, &["warehouse", &id.to_string(), "storage"])
            .json(&body)
            .send_json()
            .await
    }

    /// Replaces the storage credential; None removes it.
    pub async fn update_warehouse_credential(
        &self,
        id: Uuid,
        credential: Option<serde_json::Value>,
    ) -> Result<Warehouse> {
        self.mgmt(
            Method::POST,
            &["warehouse", &id.to_string(), "storage-credential"],
        )
        .json(&sluice_api::UpdateCredentialRequest {
            new_storage_credential: credential,
        })
        .send_json()
        .await
    }

    pub async fn update_warehouse_delete_profile(
        &self,
        id: Uuid,
        delete_profile: serde_json::Value,
    ) -> Result<Warehouse> {
        self.mgmt(
            Method::POST,
            &["warehouse", &id.to_string(), "delete-profile"],
        )
        .json(&sluice_api::UpdateDeleteProfileRequest { delete_profile })
        .send_json()
        .await
    }

    pub async fn list_deleted_tables(&self, id: Uuid) -> Result<Vec<DeletedTable>> {
        Ok(self
            .mgmt(
                Method::GET,
                &["warehouse", &id.to_string(), "deleted-tables"],
            )
            .send_json::<sluice_api::DeletedTablesResponse>()
            .await?
            .tables)
    }

    /// Restores a soft-deleted table, optionally under a new name; returns where it is now.
    pub async fn undrop_table(
        &self,
        id: Uuid,
        table_id: Uuid,
        new_name: Option<&str>,
    ) -> Result<TableIdentifier> {
        let mut r = self.mgmt(
            Method::POST,
            &[
                "warehouse",
                &id.to_string(),
                "deleted-tables",
                &table_id.to_string(),
                "undrop",
            ],
        );
        if let Some(n) = new_name {
            r = r.json(&sluice_api::UndropRequest {
                new_name: Some(n.into()),
            });
        }
        r.send_json().await
    }

    // -------------------------------------------------------------- catalog

    /// `GET /v1/config?warehouse=…`
    pub async fn catalog_config(&self, warehouse: &str) -> Result<CatalogConfig> {
        self.request_segments(Method::GET, &["v1", "config"])
            .query(&[("warehouse", warehouse)])
            .send_json()
            .await
    }

    /// The catalog prefix of `warehouse` (what every `/v1/{prefix}/…` call needs).
    pub async fn warehouse_prefix(&self, warehouse: &str) -> Result<String> {
        let cfg = self.catalog_config(warehouse).await?;
        cfg.prefix().map(str::to_string).ok_or_else(|| {
            ClientError::Protocol(format!(
                "the catalog config of warehouse '{warehouse}' has no prefix"
            ))
        })
    }

    fn catalog(&self, method: Method, prefix: &str, rest: &[&str]) -> Request {
        let mut segs = vec!["v1", prefix];
        segs.extend_from_slice(rest);
        self.request_segments(method, &segs)
    }

    /// Every namespace under `parent` (top level when None), following pagination.
    pub async fn list_namespaces<S: AsRef<str>>(
        &self,
        prefix: &str,
        parent: Option<&[S]>,
    ) -> Result<Vec<Vec<String>>> {
        let parent = parent.map(encode_namespace);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut r = self.catalog(Method::GET, prefix, &["namespaces"]);
            if let Some(p) = &parent {
                r = r.query(&[("parent", p)]);
            }
            if let Some(t) = &token {
                r = r.query(&[("pageToken", t)]);
            }
            let page: NamespacesPage = r.send_json().await?;
            out.extend(page.namespaces);
            match next_token(&token, page.next_page_token)? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub async fn create_namespace<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        let ns: Vec<&str> = namespace.iter().map(AsRef::as_ref).collect();
        let body = json!({ "namespace": ns, "properties": properties });
        self.catalog(Method::POST, prefix, &["namespaces"])
            .json(&body)
            .send_json()
            .await
    }

    pub async fn load_namespace<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
    ) -> Result<Namespace> {
        self.catalog(
            Method::GET,
            prefix,
            &["namespaces", &encode_namespace(namespace)],
        )
        .send_json()
        .await
    }

    pub async fn namespace_exists<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
    ) -> Result<bool> {
        self.catalog(
            Method::HEAD,
            prefix,
            &["namespaces", &encode_namespace(namespace)],
        )
        .exists()
        .await
    }

    pub async fn drop_namespace<S: AsRef<str>>(&self, prefix: &str, namespace: &[S]) -> Result<()> {
        self.catalog(
            Method::DELETE,
            prefix,
            &["namespaces", &encode_namespace(namespace)],
        )
        .send_empty()
        .await
    }

    pub async fn update_namespace_properties<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
        removals: &[String],
        updates: HashMap<String, String>,
    ) -> Result<UpdatePropertiesResult> {
        let body = json!({ "removals": removals, "updates": updates });
        self.catalog(
            Method::POST,
            prefix,
            &["namespaces", &encode_namespace(namespace), "properties"],
        )
        .json(&body)
        .send_json()
        .await
    }

    /// Every table in `namespace`, following pagination.
    pub async fn list_tables<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
    ) -> Result<Vec<TableIdentifier>> {
        let ns = encode_namespace(namespace);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut r = self.catalog(Method::GET, prefix, &["namespaces", &ns, "tables"]);
            if let Some(t) = &token {
                r = r.query(&[("pageToken", t)]);
            }
            let page: TablesPage = r.send_json().await?;
            out.extend(page.identifiers);
            match next_token(&token, page.next_page_token)? {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub async fn load_table<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
        table: &str,
    ) -> Result<LoadTableResult> {
        self.catalog(
            Method::GET,
            prefix,
            &["namespaces", &encode_namespace(namespace), "tables", table],
        )
        .send_json()
        .await
    }

    pub async fn table_exists<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
        table: &str,
    ) -> Result<bool> {
        self.catalog(
            Method::HEAD,
            prefix,
            &["namespaces", &encode_namespace(namespace), "tables", table],
        )
        .exists()
        .await
    }

    /// Drops a table; `purge` also deletes its data files.
    pub async fn drop_table<S: AsRef<str>>(
        &self,
        prefix: &str,
        namespace: &[S],
        table: &str,
        purge: bool,
    ) -> Result<()> {
        self.catalog(
            Method::DELETE,
            prefix,
            &["namespaces", &encode_namespace(namespace), "tables", table],
        )
        .query(&[("purgeRequested", if purge { "true" } else { "false" })])
        .send_empty()
        .await
    }

    pub async fn rename_table(
        &self,
        prefix: &str,
        from: &TableIdentifier,
        to: &TableIdentifier,
    ) -> Result<()> {
        self.catalog(Method::POST, prefix, &["tables", "rename"])
            .json(&json!({ "source": from, "destination": to }))
            .send_empty()
            .await
    }
}

fn encode_namespace<S: AsRef<str>>(ns: &[S]) -> String {
    ns.iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(NAMESPACE_SEPARATOR)
}

/// The next page token, refusing a server that hands back the token it was given (which
/// would otherwise loop forever).
fn next_token(current: &Option<String>, next: Option<String>) -> Result<Option<String>> {
    match next.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if current.as_ref() == Some(&t) => Err(ClientError::Protocol(
            "the server returned the same page token twice".into(),
        )),
        Some(t) => Ok(Some(t)),
    }
}

/// A request being built: like `reqwest::RequestBuilder`, plus the credential and the retry
/// after a 401 when sent.
pub struct Request {
    client: Client,
    method: Method,
    url: url::Url,
    builder: reqwest::RequestBuilder,
    authenticated: bool,
    /// A problem found while building (e.g. an unparsable raw path), reported by `send`.
    error: Option<ClientError>,
}

impl Request {
    pub fn query<T: Serialize + ?Sized>(mut self, query: &T) -> Self {
        self.builder = self.builder.query(query);
        self
    }

    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    pub fn header<K: AsRef<str>, V: AsRef<str>>(mut self, name: K, value: V) -> Self {
        self.builder = self.builder.header(name.as_ref(), value.as_ref());
        self
    }

    /// Any other `reqwest::RequestBuilder` adjustment (body, timeout, ...). A streaming body
    /// cannot be replayed, so such a request is not retried after a 401.
    pub fn with(
        mut self,
        f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Self {
        self.builder = f(self.builder);
        self
    }

    /// Send no credential (public endpoints).
    pub fn unauthenticated(mut self) -> Self {
        self.authenticated = false;
        self
    }

    /// Sends the request and returns the response whatever its status: the credential is
    /// attached, and after a 401 it is renewed and the request sent once more (unless
    /// renewing produced the same credential, which would be refused again).
    pub async fn send_unchecked(self) -> Result<reqwest::Response> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let Request {
            client,
            method,
            url,
            builder,
            authenticated,
            ..
        } = self;
        if !authenticated {
            return builder
                .send()
                .await
                .map_err(|e| ClientError::transport(&url, &e));
        }
        let tokens = client.tokens();
        let header = &client.inner.auth_header;
        let replay = builder.try_clone();
        let credential = tokens.authorization().await?;
        let resp = builder
            .header(header.clone(), sensitive(&credential)?)
            .send()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        tracing::debug!(%method, url = %url, status = resp.status().as_u16(), "sluice request");
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(replay) = replay else {
            return Ok(resp);
        };
        let renewed = tokens.on_unauthorized(&credential).await?;
        if renewed == credential {
            return Ok(resp);
        }
        let resp = replay
            .header(header.clone(), sensitive(&renewed)?)
            .send()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        tracing::debug!(%method, url = %url, status = resp.status().as_u16(), "sluice request (retried after 401)");
        Ok(resp)
    }

    /// Sends; a non-2xx answer becomes `ClientError::Api` with the server's message.
    pub async fn send(self) -> Result<reqwest::Response> {
        let resp = self.send_unchecked().await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(ClientError::from_response(resp).await)
        }
    }

    /// Sends and parses a JSON response body.
    pub async fn send_json<T: DeserializeOwned>(self) -> Result<T> {
        let resp = self.send().await?;
        let url = resp.url().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::transport(&url, &e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol(format!("cannot parse the response of {url}: {e}")))
    }

    /// Sends and ignores the (normally empty) response body.
    pub async fn send_empty(self) -> Result<()> {
        self.send().await.map(drop)
    }

    /// For HEAD existence checks: 2xx → true, 404 → false, anything else an error.
    pub async fn exists(self) -> Result<bool> {
        let resp = self.send_unchecked().await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            _ => Err(ClientError::from_response(resp).await),
        }
    }
}

/// A header value that reqwest/http keep out of Debug output.
fn sensitive(v: &str) -> Result<HeaderValue> {
    let mut h = HeaderValue::from_str(v).map_err(|_| {
        ClientError::Auth("the credential contains characters not allowed in an HTTP header".into())
    })?;
    h.set_sensitive(true);
    Ok(h)
}
