//! `serve`: publish the first snapshot, start the journal consumer, then answer HTTP until
//! SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::accounting::consumer::{self, JournalConfig};
use crate::api::{AppState, app};
use crate::config::{Settings, resolve_group};
use crate::hotspot_page::PageSettings;
use crate::payments::{self, Mpesa};
use crate::portal::Portal;
use crate::vouchers::{self, VoucherConfig};
use crate::{enforcement, publisher};

/// Connections the HTTP handlers (API, payment callbacks, portal) and the payment
/// reconciler share.
const API_CONNECTIONS: u32 = 16;
/// The snapshot publisher's (a full load holds one; an incremental refetch one).
const SNAPSHOT_CONNECTIONS: u32 = 2;
/// The journal consumer's (a batch's transaction, and the stale-session sweep).
const JOURNAL_CONNECTIONS: u32 = 2;
/// The enforcer's (up to its claim of actions in flight share them).
const ENFORCEMENT_CONNECTIONS: u32 = 4;

/// Connects to Postgres with at most `max` connections (no I/O is retried here: a wrong URL
/// should fail fast).
async fn connect_pool(settings: &Settings, max: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(settings.connect_options()?)
        .await
        .with_context(|| format!("connecting to {}", settings.database_display()))
}

/// Connects to Postgres for a one-off command (migrate, demo data, users).
pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    connect_pool(settings, API_CONNECTIONS).await
}

/// One pool per task that talks to Postgres, so a burst in one never queues another behind
/// it: 500 payment callbacks at once would otherwise hold every connection while the snapshot
/// publisher, whose refetch is what lets the paying customers in, waited its turn; and 500
/// disconnects in flight would do the same to the API.
struct Pools {
    api: PgPool,
    snapshot: PgPool,
    journal: PgPool,
    enforcement: PgPool,
}

impl Pools {
    async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            api: connect_pool(settings, API_CONNECTIONS).await?,
            snapshot: connect_pool(settings, SNAPSHOT_CONNECTIONS).await?,
            journal: connect_pool(settings, JOURNAL_CONNECTIONS).await?,
            enforcement: connect_pool(settings, ENFORCEMENT_CONNECTIONS).await?,
        })
    }
}

/// Runs the daemon.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let pools = Pools::connect(&settings).await?;
    let gid = settings
        .snapshot_group
        .as_deref()
        .map(resolve_group)
        .transpose()?;
    // Before the snapshot: a malformed key file should stop the daemon before anything runs.
    let (voucher_key, origin) = vouchers::key::load_or_create(&settings.voucher_key_file, gid)?;
    if origin == vouchers::key::KeyOrigin::Created {
        tracing::info!(
            path = %settings.voucher_key_file.display(),
            "created a new voucher key file (give radiusd's jasiyo module the same path; back it up: \
             every voucher code depends on it)"
        );
    }
    let snapshot = publisher::start(pools.snapshot, &settings.snapshot_dir, gid)
        .await
        .context("publishing the first snapshot")?;
    // The snapshot group is radiusd's: the module appends to the journal as that user.
    let journal_config = JournalConfig {
        stale_sweep_interval: settings.stale_sweep_interval,
        default_interim_interval: settings.default_interim_interval,
        vouchers: Some(voucher_key.clone()),
        ..JournalConfig::new(&settings.journal_path, settings.journal_capacity, gid)
    };
    let journal = consumer::start(pools.journal, &journal_config)
        .await
        .with_context(|| format!("opening the journal {}", settings.journal_path.display()))?;
    let enforcer = enforcement::start(pools.enforcement, settings.enforcement);
    let mpesa = settings.mpesa.clone().map(Mpesa::new).transpose()?;
    let reconciler = mpesa
        .clone()
        .map(|m| payments::reconciler::start(pools.api.clone(), m));
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
    let portal = Arc::new(Portal::new(
        settings.portal,
        Some(settings.snapshot_dir.clone()),
    ));
    let sweeper = portal.spawn_sweeper(Duration::from_secs(60));
    let state = AppState {
        pool: pools.api,
        snapshot: snapshot.clone(),
        radius: settings.radius.clone(),
        journal: Some(journal.stats()),
        mpesa,
        vouchers: Some(VoucherConfig {
            key: voucher_key,
            isp_name: settings.isp_name.clone(),
        }),
        hotspot_page: PageSettings {
            public_url: settings.public_url.clone(),
            isp_name: settings.isp_name.clone(),
        },
        portal,
    };
    // The peer address is what the M-Pesa callback allow-list checks.
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("HTTP server")?;
    sweeper.abort();
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
