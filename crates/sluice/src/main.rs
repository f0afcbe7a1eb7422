//! `sluice`: the server (`sluice serve`) and the client commands (`sluice login`,
//! `sluice warehouse list`, ...; see `cli/`).

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_server::{CliOverrides, Server, ServerConfig};
use sluice_service::auth::Bootstrap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// glibc's allocator was a quarter of the server's CPU on the signing path (many short-lived
/// strings and maps per request, freed on another worker than they were made on); mimalloc's
/// per-thread free lists make those cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: an Iceberg REST catalog and front door for a data lake"
)]
struct Cli {
    #[command(flatten)]
    global: cli::args::GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the catalog server. With no flags: 127.0.0.1:8181, SQLite and a local-file
    /// warehouse under ./sluice-data.
    Serve(ServeArgs),
    /// Create or upgrade the catalog database schema (SQLite or PostgreSQL) and exit; run
    /// it once before starting new replicas on an upgraded version.
    Migrate(MigrateArgs),
    /// Write every table of a catalog database (SQLite or PostgreSQL) to a versioned dump
    /// file (JSON Lines). Secrets stay encrypted under the master key that wrote them.
    Export(ExportArgs),
    /// Load a dump made by `sluice export` into a new, empty database (SQLite or PostgreSQL),
    /// in one transaction: everything or nothing.
    Import(ImportArgs),
    #[command(flatten)]
    Client(cli::args::ClientCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [env: SLUICE_LISTEN] [default: 127.0.0.1:8181]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the S3 gateway; "" turns it off [env: SLUICE_S3_LISTEN] [default: 127.0.0.1:8182]
    #[arg(long)]
    s3_listen: Option<String>,
    /// Data directory [env: SLUICE_DATA_DIR] [default: ./sluice-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL, e.g. sqlite:///var/lib/sluice/sluice.db [env: SLUICE_DATABASE_URL]
    #[arg(long)]
    database_url: Option<String>,
    /// TOML configuration file [env: SLUICE_CONFIG]
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, e.g. info or debug [env: SLUICE_LOG_LEVEL]
    #[arg(long)]
    log_level: Option<String>,
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Database URL (sqlite:… or postgres://…) [env: SLUICE_DATABASE_URL]
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    database_url: String,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Database to read (sqlite:… or postgres://…); nothing in it is changed [env: SLUICE_DATABASE_URL]
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    database_url: String,
    /// Dump file to write, or - for stdout
    #[arg(long, default_value = "-")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Database to load into (sqlite:… or postgres://…); must hold no catalog rows yet
    /// [env: SLUICE_DATABASE_URL]
    #[arg(long, env = "SLUICE_DATABASE_URL")]
    database_url: String,
    /// Dump file written by `sluice export`
    file: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let parsed = Cli::parse();
    match parsed.command {
        Command::Serve(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(serve(args))
        }
        Command::Migrate(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async {
                sluice_server::open_store(&args.database_url).await?;
                println!("database schema is up to date");
                anyhow::Ok(())
            })
        }
        Command::Export(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(export(args))
        }
        Command::Import(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(import(args))
        }
        Command::Client(command) => std::process::exit(cli::run(parsed.global, command)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cli = CliOverrides {
        listen: args.listen,
        s3_listen: args.s3_listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        log_level: args.log_level,
    };
    let config = ServerConfig::load(args.config.as_deref(), &cli).map_err(anyhow::Error::msg)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log level '{}'", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let bootstrap_key = sluice_server::bootstrap_key_from_env()?;
    let server = Server::open(config, bootstrap_key).await?;
    match &server.bootstrap {
        Bootstrap::Generated(key) => {
            // Printed once, to stdout and not through the logger, so it does not end up in
            // log aggregation by default.
            println!("================================================================");
            println!(" Sluice bootstrap admin credentials (shown ONCE; store them now)");
            println!("   access_key_id:     {}", key.access_key_id);
            println!("   secret_access_key: {}", key.secret_access_key.expose());
            println!("================================================================");
        }
        Bootstrap::FromEnvironment { access_key_id } => {
            tracing::info!(%access_key_id, "bootstrap admin key taken from the environment");
        }
        Bootstrap::AlreadyDone => {}
    }
    let listener = tokio::net::TcpListener::bind(server.config.listen)
        .await
        .with_context(|| format!("binding {}", server.config.listen))?;
    let addr = listener.local_addr()?;
    let s3_listener = match server.config.s3_listen_addr().map_err(anyhow::Error::msg)? {
        Some(at) => {
            let l = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("binding the S3 gateway to {at}"))?;
            Some(l)
        }
        None => None,
    };
    tracing::info!(data_dir = %server.config.data_dir.display(), "Sluice listening on http://{addr}");
    if let Some(l) = &s3_listener {
        let s3 = l.local_addr()?;
        tracing::info!(region = %server.config.s3_region, "Sluice S3 gateway listening on http://{s3}");
    }
    server
        .serve_with_gateway(listener, s3_listener, sluice_server::shutdown_signal())
        .await
}

fn describe(rows: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = rows.values().sum();
    let parts: Vec<String> = rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!("{total} rows ({})", parts.join(", "))
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let shown = sluice_server::redact_database_url(&args.database_url);
    let summary = if args.out.as_os_str() == "-" {
        let stdout = std::io::stdout().lock();
        sluice_store::transfer::export(&args.database_url, std::io::BufWriter::new(stdout)).await
    } else {
        // Written beside the target and renamed at the end, so a failed export never leaves
        // a file at --out that looks finished.
        let mut partial = args.out.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let result =
            sluice_store::transfer::export(&args.database_url, std::io::BufWriter::new(file)).await;
        match &result {
            Ok(_) => std::fs::rename(&partial, &args.out)
                .with_context(|| format!("writing {}", args.out.display()))?,
            Err(_) => {
                let _ = std::fs::remove_file(&partial);
            }
        }
        result
    }
    .with_context(|| format!("exporting {shown}"))?;
    eprintln!(
        "exported {} at schema version {} from {shown}",
        describe(&summary.rows),
        summary.schema_version
    );
    Ok(())
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let shown = sluice_server::redact_database_url(&args.database_url);
    let summary = sluice_store::transfer::import(&args.database_url, &args.file)
        .await
        .with_context(|| format!("importing {} into {shown}", args.file.display()))?;
    eprintln!(
        "imported {} at schema version {} into {shown}; every row count verified",
        describe(&summary.rows),
        summary.schema_version
    );
    Ok(())
}
