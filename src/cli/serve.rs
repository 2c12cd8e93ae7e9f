//! `wangge serve`: the HTTP service on the configured store, optionally loading the
//! Binzhou demo into an empty one first.

use super::demo;
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use wangge::http::{self, AppState};
use wangge::settings::Settings;
use wangge::store::{self, Store};
use wangge::workflow::live::LiveGrids;
use wangge::workflow::plans;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080, or the settings'].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Load the Binzhou demo (regions, grids, fictional members) into an empty store.
    #[arg(long)]
    demo: bool,
    /// TOML settings file (see README); `WANGGE_*` variables override it.
    #[arg(long, env = "WANGGE_CONFIG")]
    config: Option<PathBuf>,
    /// Real county boundaries the demo is generated from (by default the binary's own
    /// copy of `data/binzhou_371600_full.datav.geojson`).
    #[arg(long)]
    demo_counties: Option<PathBuf>,
    /// Where the generated demo is kept.
    #[arg(long, default_value = "var/demo")]
    demo_dir: PathBuf,
    /// The demo's departments, matters list and calendar (by default the binary's own
    /// copy of `data/matters.json`).
    #[arg(long)]
    demo_matters: Option<PathBuf>,
}

fn init_tracing(format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (never in the binary) is harmless; ignore it.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let mut settings = Settings::load(a.config.as_deref())?;
    if let Some(listen) = a.listen {
        settings.listen = listen;
    }
    init_tracing(&settings.log_format);
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0,
        ])
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    wangge::http::describe_metrics();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let store = store::open(&settings.database_url)
            .await
            .with_context(|| format!("opening the store at {}", settings.database_url))?;
        if a.demo {
            if !demo::has_grids(store.as_ref()).await? {
                let layers = demo::build_layers(
                    &demo::demo_input(
                        a.demo_counties.clone(),
                        &a.demo_dir,
                        demo::COUNTIES_FILE,
                        demo::DEMO_COUNTIES,
                    )?,
                    &a.demo_dir,
                    false,
                )?;
                demo::load_once(store.as_ref(), &layers.counties, &layers.townships, &layers.communities, layers.grids).await?;
            } else {
                tracing::info!("the store has grids already; the demo is not loaded again");
            }
            let matters = demo::demo_input(
                a.demo_matters.clone(),
                &a.demo_dir,
                demo::MATTERS_FILE,
                demo::DEMO_MATTERS,
            )?;
            demo::load_dispatch_once(store.as_ref(), &matters).await?;
            demo::create_demo_users_once(store.as_ref()).await?;
        }
        let loading = std::time::Instant::now();
        let live = Arc::new(LiveGrids::load(store.as_ref()).await?);
        let grids = live.snapshot().locator.grids().len();
        let load_secs = loading.elapsed().as_secs_f64();
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let reload_every = Duration::from_secs(settings.reload_check_secs);
        let limits = http::server::ConnectionLimits {
            per_address: settings.max_connections_per_address,
            total: settings.max_connections,
            header_read: Duration::from_secs(settings.header_read_timeout_secs),
            write_stall: Duration::from_secs(settings.write_stall_timeout_secs),
            exempt: settings
                .trusted_proxies
                .iter()
                .filter_map(|p| wangge::settings::parse_proxy(p))
                .collect(),
        };
        let state = AppState::new(store.clone(), live.clone(), settings, Some(metrics));
        tokio::spawn(follow_activations(store.clone(), live.clone(), reload_every));
        tokio::spawn(activate_when_due(store.clone(), live.clone()));
        tokio::spawn(http::feed_events(state.clone(), Duration::from_millis(250)));
        tokio::spawn(sweep_cases(store.clone(), state.settings.clone()));
        // Built before serving, so a bad webhook_ca_file stops the start.
        let webhook_policy =
            wangge::workflow::webhooks::WebhookPolicy::from_settings(&state.settings);
        let webhook_client = wangge::workflow::webhooks::client(
            &webhook_policy,
            state.settings.webhook_ca_file.as_deref(),
        )
        .map_err(|why| anyhow::anyhow!("webhook_ca_file: {why}"))?;
        tokio::spawn(deliver_webhooks(store.clone(), webhook_policy, webhook_client));
        let pruned = state.clone();
        tokio::spawn(async move {
            // Rate-limit and login counts of addresses gone quiet.
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                pruned.prune_limits();
            }
        });
        println!("wangge serving {grids} grids from the {} store on http://{addr}/", store.backend());
        println!("  API docs http://{addr}/docs · OGC API http://{addr}/ogc · health http://{addr}/healthz");
        use std::io::Write;
        std::io::stdout().flush()?;
        tracing::info!(%addr, grids, load_secs, backend = store.backend(), "listening");
        http::server::serve(listener, http::router(state), limits, shutdown_signal()).await;
        tracing::info!("stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Reloads the snapshot when another process activates a plan: at once on a PostgreSQL
/// notification, and every `every` by comparing versions (the fallback, and the only
/// way on SQLite).
async fn follow_activations(store: Arc<dyn Store>, live: Arc<LiveGrids>, every: Duration) {
    let mut watch = match store.watch_grids().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for activations; polling only");
            None
        }
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = async { match watch.as_mut() { Some(w) => w.recv().await, None => std::future::pending().await } } => {}
        }
        match live.refresh(store.as_ref(), false).await {
            Ok(true) => tracing::info!(
                version = live.snapshot().version,
                grids = live.snapshot().locator.grids().len(),
                "boundaries reloaded"
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "reload failed; serving the previous boundaries"),
        }
    }
}

/// Activates approved plans whose effective date has come: at start and every hour, so
/// a plan approved for a date needs nobody at midnight. Replicas may race for the same
/// plan; the store lets one win and the others see a conflict, which is only logged.
async fn activate_when_due(store: Arc<dyn Store>, live: Arc<LiveGrids>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let today = wangge::domain::today_in_china();
        match plans::activate_due(store.as_ref(), "scheduler", today, Some(&live), None).await {
            Ok(done) => {
                for (id, result) in done {
                    match result {
                        Ok(a) => tracing::info!(
                            plan = id,
                            inserted = a.inserted,
                            closed = a.closed,
                            "plan activated on its effective date"
                        ),
                        Err(e) => {
                            tracing::warn!(plan = id, error = %e, "plan due but not activated")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the plans due"),
        }
    }
}

/// Notices due and overdue cases every `sweep_secs` (escalating overdue ones when so
/// configured). Replicas may sweep at once; each case is noticed once.
async fn sweep_cases(store: Arc<dyn Store>, settings: Arc<wangge::settings::Settings>) {
    let mut tick = tokio::time::interval(Duration::from_secs(settings.sweep_secs));
    let sweep = wangge::workflow::dispatch::SweepSettings {
        due_soon: chrono::Duration::hours(i64::from(settings.due_soon_hours)),
        escalate_overdue: settings.escalate_overdue,
    };
    loop {
        tick.tick().await;
        match wangge::workflow::dispatch::sweep(store.as_ref(), wangge::domain::now(), sweep).await
        {
            Ok(r) if r.due_soon + r.overdue > 0 => tracing::info!(
                due_soon = r.due_soon,
                overdue = r.overdue,
                escalated = r.escalated,
                "deadlines noticed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "deadline sweep failed"),
        }
    }
}

/// Starts queued webhooks every second (each on its own task).
async fn deliver_webhooks(
    store: Arc<dyn Store>,
    policy: wangge::workflow::webhooks::WebhookPolicy,
    client: reqwest::Client,
) {
    let deliverer = wangge::workflow::webhooks::Deliverer::new(store, client, policy);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = deliverer.start_due(wangge::domain::now(), 100).await {
            tracing::warn!(error = %e, "webhook round failed");
        }
    }
}

/// Ctrl-C or SIGTERM: stop accepting, finish in-flight requests.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
