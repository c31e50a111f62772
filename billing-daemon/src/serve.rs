//! `serve`: publish the first snapshot, start the journal consumer, then answer HTTP until
//! SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::accounting::consumer::{self, JournalConfig};
use crate::api::{AppState, app};
use crate::config::{Settings, resolve_group};
use crate::payments::{self, Mpesa};
use crate::{enforcement, publisher};

/// Connects to Postgres (no I/O is retried here: a wrong URL should fail fast).
pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(settings.connect_options()?)
        .await
        .with_context(|| format!("connecting to {}", settings.database_display()))
}

/// Runs the daemon.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let pool = connect(&settings).await?;
    let gid = settings
        .snapshot_group
        .as_deref()
        .map(resolve_group)
        .transpose()?;
    let snapshot = publisher::start(pool.clone(), &settings.snapshot_dir, gid)
        .await
        .context("publishing the first snapshot")?;
    // The snapshot group is radiusd's: the module appends to the journal as that user.
    let journal_config = JournalConfig {
        stale_sweep_interval: settings.stale_sweep_interval,
        default_interim_interval: settings.default_interim_interval,
        ..JournalConfig::new(&settings.journal_path, settings.journal_capacity, gid)
    };
    let journal = consumer::start(pool.clone(), &journal_config)
        .await
        .with_context(|| format!("opening the journal {}", settings.journal_path.display()))?;
    let enforcer = enforcement::start(pool.clone(), settings.enforcement);
    let mpesa = settings.mpesa.clone().map(Mpesa::new).transpose()?;
    let reconciler = mpesa
        .clone()
        .map(|m| payments::reconciler::start(pool.clone(), m));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        listen = %addr,
        snapshot_dir = %settings.snapshot_dir.display(),
        snapshot_generation = snapshot.generation(),
        journal = %settings.journal_path.display(),
        database = %settings.database_display(),
        "billing-daemon ready"
    );
    // One machine-readable line on stdout for scripts (logs go to stderr).
    println!(
        "ready listen={addr} snapshot_generation={}",
        snapshot.generation()
    );
    let state = AppState {
        pool,
        snapshot: snapshot.clone(),
        radius: settings.radius.clone(),
        journal: Some(journal.stats()),
        mpesa,
    };
    // The peer address is what the M-Pesa callback allow-list checks.
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("HTTP server")?;
    // The consumer finishes the batch it is storing, so a stop loses no work.
    journal.shutdown().await;
    enforcer.shutdown().await;
    if let Some(r) = reconciler {
        r.shutdown().await;
    }
    snapshot.shutdown().await;
    tracing::info!("billing-daemon stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}
