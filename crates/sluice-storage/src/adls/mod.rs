//! Azure ADLS Gen2 warehouses: the `adls` profile, `az` credentials, object access through
//! `object_store`'s Azure Blob client, and SAS vending (service SAS with the account key,
//! user-delegation SAS with Entra ID tokens).

pub(crate) mod access;
mod backend;
mod credential;
mod profile;
pub mod sas;

pub use access::vended_config;
pub(crate) use backend::AdlsBackend;
pub use credential::AzCredential;
pub use profile::{
    AdlsProfile, DEFAULT_ADLS_HOST, DEFAULT_AUTHORITY_HOST, DEFAULT_SAS_TOKEN_VALIDITY_SECONDS,
    SAS_TOKEN_VALIDITY_RANGE,
};

use std::sync::Arc;

use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};

use crate::client::{client_options, retry_config};
use crate::error::{error_chain, Result, StorageError};
use access::{AdlsAccess, AdlsAuth, ObjectStoreTokens};

/// An `object_store` client for the profile's filesystem on the account's Blob endpoint.
pub(crate) fn build_store(access: &AdlsAccess) -> Result<MicrosoftAzure> {
    let p = &access.profile;
    let client = client_options(p.is_emulator());
    let mut b = MicrosoftAzureBuilder::new()
        .with_account(&p.account_name)
        .with_container_name(&p.filesystem)
        // A path-style emulator URL already holds the account; a cloud URL is used as is.
        .with_endpoint(p.blob_endpoint())
        .with_retry(retry_config())
        .with_client_options(client);
    b = match &access.auth {
        AdlsAuth::Key(k) => b.with_access_key(k.expose()),
        AdlsAuth::Token(t) => b.with_credentials(Arc::new(ObjectStoreTokens(t.clone()))),
    };
    b.build().map_err(|e| {
        StorageError::Invalid(format!("cannot configure adls client: {}", error_chain(&e)))
    })
}
