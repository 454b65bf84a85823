//! The `hookrelay` binary: command line, configuration and wiring (docs/operations.md).

/// jemalloc: the engine allocates many small, short-lived buffers across threads (request
/// bodies, headers, rows); glibc's allocator spent ~10 % of the CPU on them under load.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod bench;
mod config;
mod keys;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hookrelay_api::portal::links::{create_link, LinkFor};
use hookrelay_api::portal::PortalConfig;
use hookrelay_api::{AppState, Services};
use hookrelay_core::event_types::Catalog;
use hookrelay_core::{ids, secrets, Role};
use hookrelay_delivery::aws::Aws;
use hookrelay_delivery::eventbridge::EventBridge;
use hookrelay_delivery::ingest::{prepare, PublishRequest};
use hookrelay_delivery::Engine;
use hookrelay_store::{Claim, Ingested, NewClient, PgStore, SqliteStore, Store, StoreError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use config::{Backend, ServeConfig, Settings, Storage};

#[derive(Parser)]
#[command(
    name = "hookrelay",
    version,
    about = "Self-hosted webhook and event-delivery service"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "HOOKRELAY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the workers.
    Serve(Box<Settings>),
    /// Apply the database schema (serve does it too on start).
    Migrate(Box<Settings>),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage stores (tenants).
    #[command(subcommand)]
    Store(StoreCommand),
    /// The portal: print a single-use link that opens it.
    #[command(subcommand)]
    Portal(PortalCommand),
    /// Publish one event (the same checks and fan-out as POST /v1/events); a running
    /// server delivers it.
    Publish(PublishArgs),
    /// Re-seal every stored secret under a new master key, in batches, while the servers
    /// run (docs/operations.md#rotating-the-master-key). Every running node must hold the
    /// new key first (HOOKRELAY_OTHER_MASTER_KEYS, or the key file with SQLite).
    RotateMasterKey(Box<RotateArgs>),
    /// End-to-end delivery benchmark: starts a server, receivers and publishers on this
    /// machine and prints throughput, latency and memory (use a --release build).
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct RotateArgs {
    /// The new master key: base64 of 32 bytes (`openssl rand -base64 32`).
    #[arg(
        long,
        env = "HOOKRELAY_NEW_MASTER_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    new_key: String,
    /// Secrets read and written back per transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch_size: u64,
    /// How long to wait for every running node to hold the new key (e.g. 60s).
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    wait: String,
    #[command(flatten)]
    settings: Settings,
}

#[derive(clap::Args)]
struct PublishArgs {
    /// The store the event belongs to.
    #[arg(long)]
    store: String,
    /// The event type, e.g. store/order/created or ORDER_CONFIRMED.
    #[arg(long = "type")]
    event_type: String,
    /// The event's data: a JSON object or array.
    #[arg(long)]
    data: String,
    /// Resources the event concerns (repeatable).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Publishing again with the same key (for the store) delivers nothing twice.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Ordered subscriptions deliver the events of one key one at a time, in the order
    /// they were accepted (1-256 bytes).
    #[arg(long)]
    ordering_key: Option<String>,
    /// The event time, RFC 3339 (default: now).
    #[arg(long)]
    time: Option<String>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it as JSON (the token is shown only this once).
    Create {
        /// client, store-admin, publisher or admin.
        #[arg(long)]
        role: Role,
        /// The store a client or store-admin token belongs to (created if needed).
        #[arg(long)]
        store: Option<String>,
        /// The client id (generated when absent).
        #[arg(long)]
        client_id: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// List API clients as JSON lines (never the tokens).
    List {
        #[command(flatten)]
        settings: Settings,
    },
    /// Revoke a client's token.
    Revoke {
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Create a store.
    Create {
        /// The store hash: 1-32 characters of [a-z0-9].
        store: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// List stores as JSON lines.
    List {
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum PortalCommand {
    /// Print {"url", "expiresAt"}: a link that opens the portal once, for a store (as
    /// its administrator, or as one of its API clients) or, with --admin, the operator
    /// console.
    Link(PortalLinkArgs),
}

#[derive(clap::Args)]
struct PortalLinkArgs {
    /// The store the portal opens on.
    #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
    store: Option<String>,
    /// Act as this API client of the store (it sees what its token sees).
    #[arg(long, requires = "store")]
    client_id: Option<String>,
    /// The operator console (every store).
    #[arg(long)]
    admin: bool,
    /// How long the link may wait to be opened: 15m by default, at most 24h.
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    #[command(flatten)]
    settings: Settings,
}

async fn portal(cmd: PortalCommand) -> Result<()> {
    let PortalCommand::Link(args) = cmd;
    let settings = args.settings.load()?;
    let public_url = settings.public_url()?;
    let ttl = args
        .ttl
        .as_deref()
        .map(|t| config::parse_duration("--ttl", t))
        .transpose()?;
    let who = match args.store {
        Some(store) => LinkFor::Store {
            store,
            client_id: args.client_id,
        },
        None => LinkFor::Admin,
    };
    let db = open_backend(&Storage::resolve(&settings).backend()?).await?;
    let link = create_link(db.as_ref(), &public_url, who, ttl)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    print_json_line(&link)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => serve(ServeConfig::resolve(&args.load()?)?).await,
        Command::Migrate(args) => {
            let backend = Storage::resolve(&args.load()?).backend()?;
            let applied = match &backend {
                Backend::Sqlite(path) => SqliteStore::migrate(path),
                Backend::Postgres(url) => PgStore::migrate(url).await,
            }
            .with_context(|| format!("migrating {}", backend.describe()))?;
            println!(
                "{}",
                json!({"database": backend.describe(), "applied": applied})
            );
            Ok(())
        }
        Command::Token(cmd) => token(cmd).await,
        Command::Store(cmd) => store(cmd).await,
        Command::Portal(cmd) => portal(cmd).await,
        Command::Publish(args) => publish(args).await,
        Command::RotateMasterKey(args) => {
            let config = ServeConfig::resolve(&args.settings.load()?)?;
            let wait = hookrelay_core::duration::parse(&args.wait)
                .map_err(|e| anyhow::anyhow!("--wait: {e}"))?;
            let store = open_backend(&config.storage.backend()?).await?;
            let rotation = keys::Rotation {
                new_key: args.new_key,
                batch_size: args.batch_size as usize,
                wait,
            };
            print_json_line(&keys::rotate(&config, &*store, rotation).await?)
        }
        Command::Bench(args) => bench::run(args).await,
    }
}

async fn publish(args: PublishArgs) -> Result<()> {
    let settings = args.settings.load()?;
    let catalog = Catalog::with_defaults(settings.extra_event_types());
    let data: Box<serde_json::value::RawValue> =
        serde_json::from_str(&args.data).map_err(|e| anyhow::anyhow!("--data is not JSON: {e}"))?;
    let request = PublishRequest {
        store: args.store.clone(),
        event_type: args.event_type,
        data,
        resources: (!args.resources.is_empty()).then_some(args.resources),
        idempotency_key: args.idempotency_key,
        time: args.time,
        ordering_key: args.ordering_key,
    };
    let event = prepare(request, &catalog, settings.max_event_bytes()?)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
    let db = open_backend(&Storage::resolve(&settings).backend()?).await?;
    let written = db
        .ingest(vec![event], Claim::default())
        .await
        .context("writing the event")?;
    match written.into_iter().next() {
        Some(Ingested::Created {
            event_id,
            deliveries,
            ..
        }) => print_json_line(&json!({
            "eventId": event_id,
            "deliveries": deliveries.len(),
        })),
        Some(Ingested::Duplicate { event_id }) => print_json_line(&json!({
            "eventId": event_id,
            "duplicate": true,
        })),
        Some(Ingested::UnknownStore) => bail!("unknown store {:?}", args.store),
        None => bail!("the event was not written"),
    }
}

async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>> {
    open_backend(&Storage::resolve(&settings.load()?).backend()?).await
}

/// Opens the database, bringing its schema up to date.
async fn open_backend(backend: &Backend) -> Result<Arc<dyn Store>> {
    let store: Result<Arc<dyn Store>, StoreError> = match backend {
        Backend::Sqlite(path) => SqliteStore::open(path).map(|s| Arc::new(s) as _),
        Backend::Postgres(url) => PgStore::connect(url).await.map(|s| Arc::new(s) as _),
    };
    store.with_context(|| format!("opening database {}", backend.describe()))
}

fn print_json_line(value: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

async fn token(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            settings,
            role,
            store,
            client_id,
        } => {
            match (&store, role.needs_store()) {
                (None, true) => bail!("--store is required for role {}", role.as_str()),
                (Some(_), false) => bail!(
                    "role {} is not bound to a store; leave out --store",
                    role.as_str()
                ),
                (Some(s), true) if !ids::is_valid_store_hash(s) => {
                    bail!("--store {s:?} must be 1-32 characters of [a-z0-9]")
                }
                _ => {}
            }
            let client_id = client_id.unwrap_or_else(secrets::new_client_id);
            if !ids::is_valid_user_id(&client_id) {
                bail!("--client-id {client_id:?} must be 1-128 characters of [A-Za-z0-9._:-]");
            }
            let token = secrets::new_access_token();
            let db = open_store(&settings).await?;
            match db
                .create_client(NewClient {
                    client_id: client_id.clone(),
                    token_hash: secrets::hash_token(&token),
                    role,
                    store: store.clone(),
                })
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => bail!("client id {client_id:?} already exists"),
                Err(e) => return Err(e).context("creating the token"),
            }
            print_json_line(&json!({
                "clientId": client_id,
                "accessToken": token,
                "store": store,
                "role": role.as_str(),
            }))
        }
        TokenCommand::List { settings } => {
            for client in open_store(&settings).await?.list_clients().await? {
                print_json_line(&client)?;
            }
            Ok(())
        }
        TokenCommand::Revoke {
            settings,
            client_id,
        } => match open_store(&settings).await?.revoke_client(&client_id).await {
            Ok(()) => print_json_line(&json!({"clientId": client_id, "revoked": true})),
            Err(StoreError::NotFound) => bail!("no active client {client_id:?}"),
            Err(e) => Err(e).context("revoking the token"),
        },
    }
}

async fn store(cmd: StoreCommand) -> Result<()> {
    match cmd {
        StoreCommand::Create { settings, store } => {
            if !ids::is_valid_store_hash(&store) {
                bail!("store hash {store:?} must be 1-32 characters of [a-z0-9]");
            }
            match open_store(&settings).await?.create_store(&store).await {
                Ok(()) => print_json_line(&json!({"store": store, "created": true})),
                Err(StoreError::Conflict(_)) => bail!("store {store:?} already exists"),
                Err(e) => Err(e).context("creating the store"),
            }
        }
        StoreCommand::List { settings } => {
            for s in open_store(&settings).await?.list_stores().await? {
                print_json_line(&s)?;
            }
            Ok(())
        }
    }
}

fn install_metrics() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(hookrelay_delivery::metrics::ATTEMPT_SECONDS.to_owned()),
            hookrelay_delivery::metrics::ATTEMPT_BUCKETS,
        )
        .context("metrics buckets")?
        // Per-host gauges of hosts that went idle are no longer refreshed: let them go.
        // Every other gauge is refreshed each second or before each scrape.
        .idle_timeout(
            metrics_util::MetricKindMask::GAUGE,
            Some(std::time::Duration::from_secs(120)),
        )
        .install_recorder()
        .context("installing the metrics recorder")?;
    hookrelay_delivery::metrics::describe();
    // Histograms keep every sample until they are drained, which a scrape of /metrics
    // does: without a scraper they grew by about 20 bytes per delivery (a soak of 2M
    // deliveries went from 77 to 116 MB). Drain them every few seconds whoever scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

async fn serve(config: ServeConfig) -> Result<()> {
    let backend = config.storage.backend()?;
    let cipher = Arc::new(config.cipher()?);
    let store = open_backend(&backend).await?;
    keys::adopt_sealing_key(&*store, &cipher).await?;
    let metrics = install_metrics()?;
    // One AWS configuration for the process, loaded on first use.
    let aws = Arc::new(Aws::new(config.engine.request_timeout));
    let eventbridge = Arc::new(EventBridge::new(aws.clone()));
    let engine = Engine::start(
        store.clone(),
        cipher.clone(),
        config.engine.clone(),
        aws,
        eventbridge.clone(),
    )
    .await
    .context("starting the delivery engine")?;
    keys::keep(
        store.clone(),
        cipher.clone(),
        engine.node().to_owned(),
        config.key_file(),
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    let services = Services {
        store,
        cipher,
        catalog: Catalog::with_defaults(config.extra_event_types.clone()),
        policy: config.policy.clone(),
        engine: engine.clone(),
        eventbridge,
        partner_name: config.eventbridge_partner_name.clone(),
        max_event_bytes: config.max_event_bytes,
        metrics: Some(metrics),
        portal: PortalConfig {
            // The address bound, when none is configured (so that --listen :0 works).
            public_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{local}")),
            frame_ancestors: config.portal_frame_ancestors.clone(),
        },
        graphql: config.graphql,
    };
    let app = hookrelay_api::router(AppState::new(services));
    tracing::info!(address = %local, database = %backend.describe(), "hookrelay listening on {local}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error")?;
    engine.shutdown(Duration::from_secs(5)).await;
    tracing::info!("hookrelay stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
