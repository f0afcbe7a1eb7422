//! `sluice-bench`: the load harness of `scripts/bench.sh` (issue #20). It talks to Sluice over
//! HTTP only and depends on no Sluice crate, so it builds in seconds.
//!
//! - `baseline`: the floor to compare against, an axum server whose one route answers any
//!   method on any path with a body of a given size;
//! - `sign-floor`: the least work of any remote signer (JSON in, one `aws-sigv4` signature,
//!   JSON out), the floor under the sign endpoint;
//! - `setup`: prepares a running Sluice for `wrk` (token, a warm table with a few commits, a
//!   remote-signing request body) and prints what the script needs as JSON;
//! - `polaris`: catalog workloads modelled on Apache Polaris' benchmark suite (create a tree
//!   of namespaces and tables, read the tree, a read/update mix with commit conflicts);
//! - `coldstart`: whole-process time from spawning `sluice serve` to its first `200` on
//!   `/health`, and its idle RSS, over several runs.

mod api;
mod baseline;
mod coldstart;
mod polaris;
mod setup;
mod signfloor;
mod stats;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The allocator `sluice` uses, so that the baseline differs from it only by Sluice's work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    about = "Load harness for Sluice (scripts/bench.sh)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where and as whom to reach a running Sluice.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// Sluice's base URL, e.g. http://127.0.0.1:8181
    #[arg(long)]
    pub base: String,
    /// Access key id (the OAuth2 client id).
    #[arg(long)]
    pub key: String,
    /// Secret access key (the OAuth2 client secret).
    #[arg(long)]
    pub secret: String,
    /// Warehouse name.
    #[arg(long, default_value = "default")]
    pub warehouse: String,
}

#[derive(Subcommand)]
enum Command {
    /// An axum server answering every request with a body of `--body-bytes` bytes; prints
    /// the bound address as the first line of stdout.
    Baseline {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        #[arg(long)]
        body_bytes: usize,
    },
    /// The floor of a remote-signing request: JSON in, one aws-sigv4 signature, JSON out.
    SignFloor {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Prepares a warm table and a remote-signing request for wrk; prints JSON.
    Setup {
        #[command(flatten)]
        target: Target,
        /// Where to write the sign request body (JSON) that wrk posts.
        #[arg(long)]
        sign_body_file: PathBuf,
    },
    /// Polaris-style workloads: create a tree, read it, a read/update mix; prints JSON.
    Polaris(polaris::Args),
    /// Cold start of `sluice serve` to its first 200 on /health, and idle RSS; prints JSON.
    Coldstart(coldstart::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Coldstart(args) => coldstart::run(&args),
        other => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(async move {
                    match other {
                        Command::Baseline { listen, body_bytes } => {
                            baseline::serve(listen, body_bytes).await
                        }
                        Command::SignFloor { listen } => signfloor::serve(listen).await,
                        Command::Setup {
                            target,
                            sign_body_file,
                        } => setup::run(&target, &sign_body_file).await,
                        Command::Polaris(args) => polaris::run(&args).await,
                        Command::Coldstart(_) => unreachable!("handled above"),
                    }
                })
            }),
    };
    if let Err(e) = result {
        eprintln!("sluice-bench: {e}");
        std::process::exit(1);
    }
}
