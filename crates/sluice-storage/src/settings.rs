//! The operator's storage settings: one struct from the server's configuration file and
//! environment (flattened into the server config, so every key stays top-level) down to
//! opening storages and validating profiles. A new storage switch is one field here.

use serde::{Deserialize, Serialize};

/// Process-wide storage settings, from the server's configuration (never from warehouses: a
/// tenant must not be able to change them). `Default` is the server's default: every
/// system identity off, external ids required, no emulators, endpoints unrestricted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageSettings {
    /// Whether warehouses may use the server's own AWS identity (`aws-system-identity`).
    /// Off by default: with it, anybody who may create a warehouse can act with the
    /// server's cloud permissions. Checked when opening too, so switching it off also stops
    /// existing warehouses from acting with the server's identity.
    pub enable_aws_system_credentials: bool,
    /// With system identity, require an `external-id` and an `assume-role-arn`, so a
    /// warehouse can only reach roles whose trust policy names that external id (AWS's
    /// defence against the confused-deputy problem). On by default; a rule for accepting
    /// warehouses, not for opening existing ones. Also read from
    /// `SLUICE__S3_REQUIRE_EXTERNAL_ID_FOR_SYSTEM_CREDENTIALS`.
    pub require_external_id_for_system_credentials: bool,
    /// Base URL of Cloudflare's API for R2 credential vending, for proxies and tests;
    /// `None` means [`crate::s3::DEFAULT_CLOUDFLARE_API_BASE`].
    pub cloudflare_api_base: Option<String>,
    /// Whether GCS warehouses may use the server's application-default credentials
    /// (`gcp-system-identity`); off by default and checked on open, like
    /// `enable_aws_system_credentials`.
    pub enable_gcp_system_credentials: bool,
    /// Google STS token-exchange URL for GCS credential vending; `None` means
    /// [`crate::gcs::DEFAULT_GCS_STS_ENDPOINT`]. Tests point it at a local stand-in.
    pub gcs_sts_endpoint: Option<String>,
    /// GCS JSON API base URL of an emulator (fake-gcs-server), like the
    /// `STORAGE_EMULATOR_HOST` convention; `None` means Google's. Also handed to clients as
    /// `gcs.service.host`.
    pub gcs_endpoint: Option<String>,
    /// Whether ADLS warehouses may use the server's own Azure identity
    /// (`azure-system-identity`); off by default and checked on open, like
    /// `enable_aws_system_credentials`.
    pub enable_azure_system_credentials: bool,
    /// Storage endpoints warehouses may send requests to (hosts, `*.domain`, `host:port` or
    /// URLs), besides the clouds' public endpoints and `gcs_endpoint`/`gcs_sts_endpoint`.
    /// `None`: any endpoint (see [`crate::endpoints`]). Also
    /// `SLUICE_ALLOWED_STORAGE_ENDPOINTS`, comma-separated.
    pub allowed_storage_endpoints: Option<Vec<String>>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings {
            enable_aws_system_credentials: false,
            require_external_id_for_system_credentials: true,
            cloudflare_api_base: None,
            enable_gcp_system_credentials: false,
            gcs_sts_endpoint: None,
            gcs_endpoint: None,
            enable_azure_system_credentials: false,
            allowed_storage_endpoints: None,
        }
    }
}

impl StorageSettings {
    /// `allowed_storage_endpoints` with the server's own endpoints (`gcs_endpoint`,
    /// `gcs_sts_endpoint`) added; `None` when unset (unrestricted). An unusable list fails
    /// closed: only the public clouds are allowed.
    pub fn endpoint_allowlist(&self) -> Option<crate::EndpointAllowlist> {
        let entries = self.allowed_storage_endpoints.as_ref()?;
        let own: Vec<&str> = [&self.gcs_endpoint, &self.gcs_sts_endpoint]
            .into_iter()
            .filter_map(|u| u.as_deref())
            .collect();
        match crate::EndpointAllowlist::new(entries, &own) {
            Ok(list) => Some(list),
            Err(e) => {
                tracing::error!(error = %e, "allowed_storage_endpoints is invalid; allowing only public cloud endpoints");
                crate::EndpointAllowlist::new(&[], &own).ok()
            }
        }
    }
}
