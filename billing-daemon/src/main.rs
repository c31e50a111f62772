//! `billing-daemon` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use billing_daemon::config::Settings;
use billing_daemon::{MIGRATOR, demo, serve, telemetry, token};
use clap::{Parser, Subcommand};

/// Jasiyo billing daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML config file (environment variables override it).
    #[arg(long, env = "JASIYO_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the embedded database migrations.
    Migrate,
    /// Publish the snapshot and serve the REST API.
    Serve {
        /// Apply pending migrations first.
        #[arg(long)]
        migrate: bool,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Load the demo data set (idempotent).
    DemoData {
        /// Shared secret for demo-router (default: keep the existing one, or random).
        #[arg(long, env = "JASIYO_DEMO_ROUTER_SECRET")]
        router_secret: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; prints it once on stdout (only its SHA-256 is stored).
    Create {
        /// A label for the token.
        #[arg(long)]
        name: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("billing-daemon: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log, settings.log_format);
    match run(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "billing-daemon failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { migrate } => {
            if migrate {
                let pool = serve::connect(&settings).await?;
                MIGRATOR.run(&pool).await?;
                pool.close().await;
            }
            serve::run(settings).await
        }
        Command::Migrate => {
            let pool = serve::connect(&settings).await?;
            MIGRATOR.run(&pool).await?;
            tracing::info!(database = %settings.database_display(), "migrations applied");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { name },
        } => {
            let pool = serve::connect(&settings).await?;
            let t = token::create(&pool, &name).await?;
            println!("{t}");
            Ok(())
        }
        Command::DemoData { router_secret } => {
            let pool = serve::connect(&settings).await?;
            let s = demo::load(&pool, router_secret.as_deref()).await?;
            println!(
                "plans: \"Home 5M\" (5M/5M, 30 days, KES 1500, pppoe+hotspot); hotspot packages sold on the \
                 demo router's login page: \"Hotspot 1 hour\" (KES 20), \"Hotspot 1 day\" (KES 50, 2 GB), \
                 \"Hotspot 1 GB\" (KES 100, valid 7 days)"
            );
            println!(
                "router: {} ip={} secret={}",
                s.router_name, s.router_ip, s.router_secret
            );
            println!(
                "subscribers: alice/alice-pass (active), bob/bob-pass (suspended), carol/carol-pass (expired), dave/dave-pass (hotspot, MAC 02:00:00:00:00:01), test/test (active)"
            );
            Ok(())
        }
    }
}
