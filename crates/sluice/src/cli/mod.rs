//! The client commands of the `sluice` binary: a thin layer over the `sluice-client` SDK
//! (configuration, login flows, token cache, typed API calls). This module maps arguments
//! to SDK calls and results to output; it holds no protocol logic of its own.

pub mod api;
pub mod args;
mod commands;
pub mod error;
pub mod input;
pub mod output;

use args::{ClientCommand, GlobalOpts};
use error::{exit, CliError, CliResult};
use output::Output;
use sluice_client::{ClientConfig, ConfigOverrides};

/// Runs one client command; returns the process exit code.
pub fn run(global: GlobalOpts, command: ClientCommand) -> i32 {
    // The SDK reports what it works around (a token that could not be cached or renewed)
    // through `tracing`: warnings to stderr; SLUICE_CLI_LOG=debug shows more.
    let filter = std::env::var("SLUICE_CLI_LOG").unwrap_or_else(|_| "warn".to_string());
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_new(filter) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .without_time()
            .with_target(false)
            .try_init();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return CliError::new(exit::FAILURE, format!("starting the async runtime: {e}"))
                .report()
        }
    };
    let ctx = Ctx {
        out: Output::new(global.output),
        global,
    };
    match rt.block_on(commands::dispatch(&ctx, command)) {
        Ok(()) => exit::OK,
        Err(e) => e.report(),
    }
}

/// What every command needs: the global flags and the output mode.
pub struct Ctx {
    pub global: GlobalOpts,
    pub out: Output,
}

impl Ctx {
    /// The code-level overrides from the global flags (they win over environment and profile).
    pub fn overrides(&self) -> ConfigOverrides {
        ConfigOverrides {
            endpoint: self.global.endpoint.clone(),
            profile: self.global.profile.clone(),
            insecure: self.global.insecure,
            ca_bundle: self.global.ca_bundle.clone(),
            ..Default::default()
        }
    }

    /// Resolves the configuration: `overrides` > environment > profile file.
    pub fn resolve(&self, overrides: ConfigOverrides) -> CliResult<ClientConfig> {
        ClientConfig::resolve(overrides).map_err(CliError::from)
    }

    /// An API client from the global flags + environment + profile.
    pub fn api(&self) -> CliResult<api::Api> {
        let config = self.resolve(self.overrides())?;
        api::Api::new(config)
    }
}
