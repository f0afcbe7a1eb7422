//! The HTTP edge of Sluice: routers, extractors, error mapping, configuration and startup.
//! Handlers stay thin; every rule lives in `sluice-service`.

pub mod app;
pub mod config;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod routes;
pub mod serve;
pub mod state;
pub mod throttle;

pub use config::{CliOverrides, ServerConfig};

use anyhow::Context;
use sluice_auth::{KeyMaterial, SecretBox, TokenIssuer};
use sluice_core::Secret;
use sluice_service::auth::Bootstrap;
use sluice_service::login::IdentityProviders;
use sluice_service::{ServiceConfig, Services};
use sluice_store::SqliteStore;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Everything `serve` needs, opened and bootstrapped but not yet listening.
pub struct Server {
    pub services: Services,
    pub config: ServerConfig,
    pub bootstrap: Bootstrap,
    /// Change-feed watchers; stopped when the server is dropped (after `serve` returns).
    watchers: Watchers,
}

/// Aborts its tasks on drop, so a server that is dropped stops following the change feed.
#[derive(Default)]
struct Watchers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watchers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn key_material(
    configured: Option<&str>,
    file: &std::path::Path,
    what: &str,
) -> anyhow::Result<KeyMaterial> {
    match configured {
        Some(b64) => {
            KeyMaterial::from_base64(b64).with_context(|| format!("{what} from configuration"))
        }
        None => KeyMaterial::load_or_create(file).with_context(|| format!("{what} file")),
    }
}

impl Server {
    /// Opens the data directory, database and key material and runs the first-start
    /// bootstrap. `bootstrap_key` is the admin key from the environment, if any.
    pub async fn open(
        config: ServerConfig,
        bootstrap_key: Option<(String, Secret)>,
    ) -> anyhow::Result<Self> {
        create_data_dir(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let master = key_material(
            config.master_key.as_deref(),
            &config.data_dir.join("master.key"),
            "master key",
        )?;
        let signing = key_material(
            config.jwt_signing_key.as_deref(),
            &config.data_dir.join("jwt-signing.key"),
            "JWT signing key",
        )?;
        let store = open_store_with(&config.database_url(), &config).await?;
        let providers = build_providers(&config)?;
        let services = Services::with_identity_providers(
            store,
            SecretBox::new(&master),
            TokenIssuer::new(&signing, "sluice", config.token_ttl_seconds),
            ServiceConfig {
                storage: config.storage.clone(),
                policy_cache_ttl: std::time::Duration::from_secs(config.policy_cache_ttl_seconds),
                purge_lease: std::time::Duration::from_secs(config.purge_lease_seconds),
                table_cache_max_bytes: config.table_cache_max_bytes,
                gateway: sluice_service::GatewaySettings {
                    region: config.s3_region.clone(),
                    public_endpoint: config.s3_public_endpoint.clone().filter(|e| !e.is_empty()),
                    credentials_ttl: std::time::Duration::from_secs(
                        config.gateway_credentials_ttl_seconds,
                    ),
                },
                ..ServiceConfig::new(config.allowed_file_roots.clone())
            },
            providers,
        );
        // Follow other replicas' changes from before our own first write, so nothing this
        // replica caches during bootstrap can be stale.
        let mut watchers = Watchers::default();
        if let Some(t) = services
            .watch_changes()
            .await
            .context("subscribing to the database change feed")?
        {
            watchers.0.push(t);
        }
        let bootstrap = services
            .bootstrap(bootstrap_key)
            .await
            .context("bootstrapping the admin user")?;
        services
            .ensure_default_groups()
            .await
            .context("creating the default groups and policies")?;
        if config.create_default_warehouse {
            services
                .ensure_default_warehouse(
                    &config.data_dir.join("warehouse"),
                    config.default_warehouse_gateway,
                )
                .await
                .context("creating the default warehouse")?;
        }
        Ok(Server {
            services,
            config,
            bootstrap,
            watchers,
        })
    }

    /// The API (and console) as one service: routes behind the [`app::Edge`].
    pub fn router(&self) -> app::Edge {
        // One throttle for the API and the console's login form.
        let throttle = Arc::new(throttle::AuthThrottle::new(
            self.config.auth_failures_per_minute,
        ));
        app::build_router(
            state::AppState {
                services: self.services.clone(),
                public_url: self.config.public_url.clone(),
                throttle: throttle.clone(),
            },
            self.config.console.then(|| sluice_console::ConsoleState {
                services: self.services.clone(),
                public_url: self.config.public_url.clone(),
                session_ttl_seconds: self.config.console_session_ttl_seconds,
                throttle,
            }),
            app::HttpLimits {
                max_body_bytes: self.config.max_request_body_bytes,
                request_timeout: std::time::Duration::from_secs(
                    self.config.request_timeout_seconds,
                ),
            },
        )
    }

    fn connection_limits(&self) -> serve::ConnectionLimits {
        serve::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(
                self.config.header_read_timeout_seconds,
            ),
            idle_timeout: std::time::Duration::from_secs(self.config.idle_timeout_seconds),
            max_connections: self.config.max_connections,
        }
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_with_gateway(listener, None, shutdown).await
    }

    /// Like [`Server::serve`], with the S3 gateway on its own listener when one is given.
    pub async fn serve_with_gateway(
        self,
        listener: TcpListener,
        s3_listener: Option<TcpListener>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let limits = self.connection_limits();
        let purger = spawn_purger(self.services.clone(), self.config.purge_interval_seconds);
        // One shutdown signal for both listeners.
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let gateway = s3_listener.map(|l| {
            if let Ok(addr) = l.local_addr() {
                self.services.set_gateway_address(addr);
            }
            let router = gateway::router(self.services.clone(), &self.config);
            tokio::spawn(serve::serve(l, router, limits, stopped(rx.clone())))
        });
        let result = serve::serve(listener, router, limits, stopped(rx))
            .await
            .context("serving HTTP");
        if let Some(g) = gateway {
            match g.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the S3 gateway listener failed"),
                Err(e) => tracing::error!(error = %e, "the S3 gateway listener panicked"),
            }
        }
        purger.abort();
        drop(self.watchers);
        result
    }
}

/// Creates the data directory (and missing parents) readable by this user only: it holds
/// the key files and the database. An existing directory keeps the mode its operator gave it.
fn create_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Bootstrap admin key from `SLUICE_BOOTSTRAP_ACCESS_KEY_ID` / `SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY`.
pub fn bootstrap_key_from_env() -> anyhow::Result<Option<(String, Secret)>> {
    let id = std::env::var("SLUICE_BOOTSTRAP_ACCESS_KEY_ID")
        .ok()
        .filter(|s| !s.is_empty());
    let secret = std::env::var("SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY")
        .ok()
        .filter(|s| !s.is_empty());
    match (id, secret) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some((id, Secret::new(secret)))),
        _ => anyhow::bail!(
            "set both SLUICE_BOOTSTRAP_ACCESS_KEY_ID and SLUICE_BOOTSTRAP_SECRET_ACCESS_KEY, or neither"
        ),
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Background purge of expired soft-deleted tables. Every replica may run it: rows are
/// claimed with a lease, so each table is purged once.
fn spawn_purger(
    services: sluice_service::Services,
    interval_seconds: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(std::time::Duration::from_secs(interval_seconds.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match services.purge_expired_tables().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tables = n, "purged expired soft-deleted tables"),
                Err(e) => {
                    tracing::warn!(error = %e, "purge of soft-deleted tables failed; retrying next interval")
                }
            }
        }
    })
}

/// Constructs the configured identity-provider clients. None of them touches the network
/// here: an identity provider that is down must not stop the catalog from starting.
fn build_providers(config: &ServerConfig) -> anyhow::Result<IdentityProviders> {
    // No redirects: identity-provider answers must come from the endpoint asked.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client for identity providers")?;
    let mut p = IdentityProviders::default();
    if let Some(c) = &config.oidc {
        p.oidc = Some(Arc::new(
            sluice_auth::oidc::OidcProvider::new(c.clone(), http.clone())
                .map_err(|e| anyhow::anyhow!("oidc: {e}"))?,
        ));
    }
    if let Some(c) = &config.ldap {
        p.ldap = Some(Arc::new(
            sluice_auth::ldap::LdapAuthenticator::new(c.clone())
                .map_err(|e| anyhow::anyhow!("ldap: {e}"))?,
        ));
    }
    if let Some(c) = &config.aws_iam {
        c.validate().map_err(anyhow::Error::msg)?;
        p.aws_iam = Some(Arc::new(sluice_auth::aws_iam::AwsIamVerifier::new(
            c.clone(),
            http,
        )));
    }
    Ok(p)
}

/// Opens the catalog store named by the URL (running pending migrations). The password of
/// a PostgreSQL URL never appears in errors.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn sluice_store::CatalogStore>> {
    open_store_with(url, &ServerConfig::default()).await
}

/// As `open_store`, with the pool settings of `config`.
pub async fn open_store_with(
    url: &str,
    config: &ServerConfig,
) -> anyhow::Result<Arc<dyn sluice_store::CatalogStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let shown = redact_url(url);
        let opts = sluice_store::PgOptions {
            max_connections: config.database_max_connections,
            statement_timeout: (config.database_statement_timeout_seconds > 0)
                .then(|| std::time::Duration::from_secs(config.database_statement_timeout_seconds)),
            retry_attempts: config.database_retry_attempts,
            ..Default::default()
        };
        let store = sluice_store::PostgresStore::connect_with(url, opts)
            .await
            .with_context(|| format!("opening PostgreSQL database {shown}"))?;
        Ok(Arc::new(store))
    } else {
        let store = SqliteStore::connect(url)
            .await
            .with_context(|| format!("opening database {url}"))?;
        Ok(Arc::new(store))
    }
}

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub fn redact_database_url(url: &str) -> String {
    redact_url(url)
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
