//! Configuration: command-line flags, `HOOKRELAY_*` environment variables (clap reads
//! both, flags first), then the TOML file given by `--config`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::retry::RetrySchedule;
use hookrelay_core::secrets::Cipher;
use hookrelay_delivery::breaker::BreakerConfig;
use hookrelay_delivery::eventbridge::{self, EventBridgeSettings};
use hookrelay_delivery::ingest::DEFAULT_MAX_EVENT_BYTES;
use hookrelay_delivery::EngineConfig;
use serde::Deserialize;

/// Options every command that touches the database takes.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// TOML configuration file.
    #[arg(long, env = "HOOKRELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded SQLite database and generated master key.
    #[arg(long, env = "HOOKRELAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:password@host:port/database) instead of the
    /// embedded database: any number of nodes may share it. Needs HOOKRELAY_MASTER_KEY.
    #[arg(long, env = "HOOKRELAY_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on.
    #[arg(long, env = "HOOKRELAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Allow http:// webhook URLs and auth endpoints (default: https only).
    #[arg(long, env = "HOOKRELAY_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_http: Option<bool>,
    /// Comma-separated CIDRs destinations may use although they are non-public.
    #[arg(long, env = "HOOKRELAY_ALLOWED_NETWORKS", value_name = "CIDRS")]
    pub allowed_networks: Option<String>,
    /// Base64 of 32 bytes; encrypts stored secrets. Generated in the data dir when absent
    /// (SQLite only: with PostgreSQL every node must be given the same key).
    #[arg(
        long,
        env = "HOOKRELAY_MASTER_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub master_key: Option<String>,
    /// Seconds to wait before each retry, comma-separated; its length is the number of retries.
    #[arg(long, env = "HOOKRELAY_RETRY_SCHEDULE", value_name = "SECS,...")]
    pub retry_schedule: Option<String>,
    /// Whole-request timeout of one webhook attempt (e.g. 10s, 500ms).
    #[arg(long, env = "HOOKRELAY_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// Largest event `data` accepted, in bytes of JSON.
    #[arg(long, env = "HOOKRELAY_MAX_EVENT_BYTES", value_name = "BYTES")]
    pub max_event_bytes: Option<usize>,
    /// How long a silent node keeps its deliveries before others take them (e.g. 30s).
    #[arg(long, env = "HOOKRELAY_LEASE_TIMEOUT", value_name = "DURATION")]
    pub lease_timeout: Option<String>,
    /// Events (with their deliveries and attempts) are deleted this long after they were
    /// accepted (e.g. 30d, 12h).
    #[arg(long, env = "HOOKRELAY_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,
    /// The ceiling of the adaptive limit of requests in flight per destination host.
    #[arg(long, env = "HOOKRELAY_MAX_IN_FLIGHT_PER_HOST", value_name = "N")]
    pub max_in_flight_per_host: Option<usize>,
    /// The floor of that limit, where each host starts.
    #[arg(long, env = "HOOKRELAY_MIN_IN_FLIGHT_PER_HOST", value_name = "N")]
    pub min_in_flight_per_host: Option<usize>,
    /// Circuit breaker (hosts; endpoints too unless set apart): the sliding window (e.g. 2m).
    #[arg(long, env = "HOOKRELAY_BREAKER_WINDOW", value_name = "DURATION")]
    pub breaker_window: Option<String>,
    /// Circuit breaker: requests in the window before it may open.
    #[arg(long, env = "HOOKRELAY_BREAKER_MIN_REQUESTS", value_name = "N")]
    pub breaker_min_requests: Option<u32>,
    /// Circuit breaker: opens below this share of successes (0-1).
    #[arg(long, env = "HOOKRELAY_BREAKER_SUCCESS_RATIO", value_name = "RATIO")]
    pub breaker_success_ratio: Option<f64>,
    /// Circuit breaker: how long a failing host is paused (e.g. 3m).
    #[arg(long, env = "HOOKRELAY_BREAKER_PAUSE", value_name = "DURATION")]
    pub breaker_pause: Option<String>,
    /// Endpoint breaker (one webhook URL, judged by its answers): the sliding window;
    /// default: breaker_window.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_WINDOW",
        value_name = "DURATION"
    )]
    pub endpoint_breaker_window: Option<String>,
    /// Endpoint breaker: requests in the window before it may open; default:
    /// breaker_min_requests.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_MIN_REQUESTS",
        value_name = "N"
    )]
    pub endpoint_breaker_min_requests: Option<u32>,
    /// Endpoint breaker: opens below this share of successes; default:
    /// breaker_success_ratio.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_SUCCESS_RATIO",
        value_name = "RATIO"
    )]
    pub endpoint_breaker_success_ratio: Option<f64>,
    /// Endpoint breaker: how long a failing endpoint is paused; default: breaker_pause.
    #[arg(
        long,
        env = "HOOKRELAY_ENDPOINT_BREAKER_PAUSE",
        value_name = "DURATION"
    )]
    pub endpoint_breaker_pause: Option<String>,
    /// The SaaS partner name in EventBridge partner event source names
    /// (aws.partner/{name}/{store}/{source}).
    #[arg(long, env = "HOOKRELAY_EVENTBRIDGE_PARTNER_NAME", value_name = "NAME")]
    pub eventbridge_partner_name: Option<String>,
    /// The EventBridge DetailType of BigCommerce-style events.
    #[arg(long, env = "HOOKRELAY_EVENTBRIDGE_DETAIL_TYPE", value_name = "TEXT")]
    pub eventbridge_detail_type: Option<String>,
    /// How long a partial EventBridge batch waits for more events (e.g. 50ms).
    #[arg(
        long,
        env = "HOOKRELAY_EVENTBRIDGE_BATCH_WAIT",
        value_name = "DURATION"
    )]
    pub eventbridge_batch_wait: Option<String>,
    /// The URL the portal's links start with (default: http:// and the listen address).
    #[arg(long, env = "HOOKRELAY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Origins that may show the portal in a frame (the platform's dashboard), space- or
    /// comma-separated; default 'none'.
    #[arg(long, env = "HOOKRELAY_PORTAL_FRAME_ANCESTORS", value_name = "ORIGINS")]
    pub portal_frame_ancestors: Option<String>,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `30d` or a bare number of seconds.
pub fn parse_duration(name: &str, text: &str) -> Result<Duration> {
    hookrelay_core::duration::parse(text).map_err(|e| anyhow::anyhow!("{name} {e}"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Networks {
    #[default]
    None,
    List(Vec<String>),
    Text(String),
}

/// The TOML file. Unknown keys are refused, so that a typo does not go unnoticed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    allow_http: Option<bool>,
    #[serde(default)]
    allowed_networks: Networks,
    master_key: Option<String>,
    /// Event types added to the built-in catalog.
    #[serde(default)]
    event_types: Vec<String>,
    retry_schedule: Option<String>,
    request_timeout: Option<String>,
    max_event_bytes: Option<usize>,
    lease_timeout: Option<String>,
    retention: Option<String>,
    max_in_flight_per_host: Option<usize>,
    min_in_flight_per_host: Option<usize>,
    breaker_window: Option<String>,
    breaker_min_requests: Option<u32>,
    breaker_success_ratio: Option<f64>,
    breaker_pause: Option<String>,
    endpoint_breaker_window: Option<String>,
    endpoint_breaker_min_requests: Option<u32>,
    endpoint_breaker_success_ratio: Option<f64>,
    endpoint_breaker_pause: Option<String>,
    eventbridge_partner_name: Option<String>,
    eventbridge_detail_type: Option<String>,
    eventbridge_batch_wait: Option<String>,
    public_url: Option<String>,
    portal_frame_ancestors: Option<String>,
}

fn read_file(path: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Which database, resolved.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Backend {
    /// For logs and output: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(path) => path.display().to_string(),
            Backend::Postgres(url) => hookrelay_store::PgStore::describe(url),
        }
    }
}

/// Where the data lives, resolved.
#[derive(Debug, Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    file: std::sync::Arc<FileConfig>,
}

pub const DEFAULT_DATA_DIR: &str = "./hookrelay-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DATABASE_FILE: &str = "hookrelay.sqlite3";
pub const MASTER_KEY_FILE: &str = "master.key";
/// The SaaS partner name when none is configured (docs/operations.md#configuration).
pub const DEFAULT_PARTNER_NAME: &str = "hookrelay.example";

impl Storage {
    pub fn resolve(args: &StorageArgs) -> Result<Self> {
        let file = read_file(args.config.as_deref())?;
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = args
            .database_url
            .clone()
            .or_else(|| file.database_url.clone());
        Ok(Storage {
            data_dir,
            database_url,
            file: std::sync::Arc::new(file),
        })
    }

    /// Event types the config file adds to the catalog.
    pub fn extra_event_types(&self) -> Vec<String> {
        self.file.event_types.clone()
    }

    /// `public_url`: the flag's, else the file's, else http:// and the listen address
    /// (`listen`: the flag's, else the file's, else the default).
    pub fn public_url(&self, flag: Option<&str>, listen: Option<&str>) -> Result<String> {
        let listen = listen
            .or(self.file.listen.as_deref())
            .unwrap_or(DEFAULT_LISTEN);
        let url = match flag.or(self.file.public_url.as_deref()) {
            Some(url) => url.trim().trim_end_matches('/').to_owned(),
            None => format!("http://{listen}"),
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => Ok(url),
            _ => bail!("public_url {url:?} must be an http:// or https:// URL such as https://hooks.example.com"),
        }
    }

    /// `portal_frame_ancestors` as a CSP source list: `'none'` by default.
    pub fn frame_ancestors(&self, flag: Option<&str>) -> Result<String> {
        let Some(text) = flag.or(self.file.portal_frame_ancestors.as_deref()) else {
            return Ok("'none'".to_owned());
        };
        let sources: Vec<&str> = text.split([' ', ',']).filter(|s| !s.is_empty()).collect();
        for source in &sources {
            let keyword = matches!(*source, "'none'" | "'self'");
            let origin = (source.starts_with("https://") || source.starts_with("http://"))
                && source.is_ascii()
                && !source.contains([';', '\'', '"']);
            if !(keyword || origin) {
                bail!(
                    "portal_frame_ancestors: {source:?} is not an origin like https://dashboard.example.com (or 'self' / 'none')"
                );
            }
        }
        if sources.is_empty() {
            bail!("portal_frame_ancestors is empty; leave it out for 'none'");
        }
        Ok(sources.join(" "))
    }

    /// `max_event_bytes` from the config file, or the default.
    pub fn max_event_bytes(&self) -> usize {
        self.file.max_event_bytes.unwrap_or(DEFAULT_MAX_EVENT_BYTES)
    }

    /// The database: PostgreSQL when a URL is given, else the SQLite file (with the data
    /// dir created, owner-only, if needed).
    pub fn backend(&self) -> Result<Backend> {
        if let Some(url) = &self.database_url {
            let scheme = url.split("://").next().unwrap_or_default();
            if !matches!(scheme, "postgres" | "postgresql") {
                bail!(
                    "--database-url must be a PostgreSQL URL (postgres://user:password@host:port/database), \
                     not {scheme:?}; leave it out to use the embedded SQLite database in --data-dir"
                );
            }
            return Ok(Backend::Postgres(url.clone()));
        }
        create_private_dir(&self.data_dir)?;
        Ok(Backend::Sqlite(self.data_dir.join(DATABASE_FILE)))
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", dir.display()))?;
    }
    Ok(())
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub storage: Storage,
    pub listen: SocketAddr,
    pub policy: AddressPolicy,
    pub master_key: Option<String>,
    pub extra_event_types: Vec<String>,
    pub engine: EngineConfig,
    pub max_event_bytes: usize,
    pub eventbridge_partner_name: String,
    /// `public_url` as given; `None`: http:// and the address bound.
    pub public_url: Option<String>,
    pub portal_frame_ancestors: String,
}

impl ServeConfig {
    pub fn resolve(args: &ServeArgs) -> Result<Self> {
        let storage = Storage::resolve(&args.storage)?;
        let file = storage.file.clone();
        let listen_text = args
            .listen
            .clone()
            .or_else(|| file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().with_context(|| {
            format!("--listen {listen_text:?} is not an address like 127.0.0.1:8080")
        })?;
        let networks = match (&args.allowed_networks, &file.allowed_networks) {
            (Some(text), _) => text.clone(),
            (None, Networks::Text(text)) => text.clone(),
            (None, Networks::List(list)) => list.join(","),
            (None, Networks::None) => String::new(),
        };
        let allowed_networks = AddressPolicy::parse_networks(&networks)
            .map_err(|e| anyhow::anyhow!("allowed_networks: {e}"))?;
        let policy = AddressPolicy {
            allow_http: args.allow_http.or(file.allow_http).unwrap_or(false),
            allowed_networks,
        };
        let duration =
            |name: &str, flag: &Option<String>, key: &Option<String>, default: Duration| match flag
                .as_ref()
                .or(key.as_ref())
            {
                Some(text) => parse_duration(name, text),
                None => Ok(default),
            };
        let defaults = EngineConfig::default();
        let retry = match args
            .retry_schedule
            .as_ref()
            .or(file.retry_schedule.as_ref())
        {
            Some(text) => RetrySchedule::parse(text).map_err(|e| anyhow::anyhow!(e))?,
            None => RetrySchedule::default(),
        };
        let request_timeout = duration(
            "request_timeout",
            &args.request_timeout,
            &file.request_timeout,
            defaults.request_timeout,
        )?;
        if request_timeout.is_zero() {
            bail!("request_timeout must be more than 0");
        }
        let lease_timeout = duration(
            "lease_timeout",
            &args.lease_timeout,
            &file.lease_timeout,
            defaults.lease_timeout,
        )?;
        if lease_timeout < Duration::from_millis(300) {
            bail!("lease_timeout must be at least 300ms");
        }
        let retention = duration(
            "retention",
            &args.retention,
            &file.retention,
            defaults.retention,
        )?;
        if retention < Duration::from_secs(1) {
            bail!("retention must be at least 1s");
        }
        let max_in_flight_per_host = args
            .max_in_flight_per_host
            .or(file.max_in_flight_per_host)
            .unwrap_or(defaults.max_in_flight_per_host);
        if max_in_flight_per_host == 0 {
            bail!("max_in_flight_per_host must be at least 1");
        }
        let min_in_flight_per_host =
            match args.min_in_flight_per_host.or(file.min_in_flight_per_host) {
                Some(0) => bail!("min_in_flight_per_host must be at least 1"),
                Some(min) if min > max_in_flight_per_host => bail!(
                    "min_in_flight_per_host ({min}) must not be above max_in_flight_per_host \
                 ({max_in_flight_per_host})"
                ),
                Some(min) => min,
                // A ceiling set under the default floor is a fixed limit.
                None => defaults.min_in_flight_per_host.min(max_in_flight_per_host),
            };
        let breaker = resolve_breaker(
            "breaker",
            [
                BreakerInput {
                    window: &args.breaker_window,
                    min_requests: args.breaker_min_requests,
                    success_ratio: args.breaker_success_ratio,
                    pause: &args.breaker_pause,
                },
                BreakerInput {
                    window: &file.breaker_window,
                    min_requests: file.breaker_min_requests,
                    success_ratio: file.breaker_success_ratio,
                    pause: &file.breaker_pause,
                },
            ],
            defaults.breaker,
        )?;
        // Each endpoint setting defaults to the host level's, so `breaker_*` alone sets
        // the rule for both.
        let endpoint_breaker = resolve_breaker(
            "endpoint_breaker",
            [
                BreakerInput {
                    window: &args.endpoint_breaker_window,
                    min_requests: args.endpoint_breaker_min_requests,
                    success_ratio: args.endpoint_breaker_success_ratio,
                    pause: &args.endpoint_breaker_pause,
                },
                BreakerInput {
                    window: &file.endpoint_breaker_window,
                    min_requests: file.endpoint_breaker_min_requests,
                    success_ratio: file.endpoint_breaker_success_ratio,
                    pause: &file.endpoint_breaker_pause,
                },
            ],
            breaker,
        )?;
        let max_event_bytes = args
            .max_event_bytes
            .or(file.max_event_bytes)
            .unwrap_or(DEFAULT_MAX_EVENT_BYTES);
        if !(1..=16 * 1024 * 1024).contains(&max_event_bytes) {
            bail!("max_event_bytes must be between 1 and 16777216");
        }
        let partner_name = args
            .eventbridge_partner_name
            .clone()
            .or_else(|| file.eventbridge_partner_name.clone())
            .unwrap_or_else(|| DEFAULT_PARTNER_NAME.to_owned());
        if !hookrelay_core::aws::is_source_segment(&partner_name) {
            bail!("eventbridge_partner_name {partner_name:?} must be 1-64 characters of letters, digits, '.', '-' and '_'");
        }
        let detail_type = args
            .eventbridge_detail_type
            .clone()
            .or_else(|| file.eventbridge_detail_type.clone())
            .unwrap_or_else(|| eventbridge::DEFAULT_DETAIL_TYPE.to_owned());
        if detail_type.trim().is_empty() || detail_type.len() > 128 {
            bail!("eventbridge_detail_type must be 1-128 characters");
        }
        let batch_wait = duration(
            "eventbridge_batch_wait",
            &args.eventbridge_batch_wait,
            &file.eventbridge_batch_wait,
            eventbridge::DEFAULT_BATCH_WAIT,
        )?;
        if batch_wait > Duration::from_secs(10) {
            bail!("eventbridge_batch_wait must be at most 10s");
        }
        let public_url = match args.public_url.as_deref().or(file.public_url.as_deref()) {
            Some(url) => Some(storage.public_url(Some(url), None)?),
            None => None,
        };
        let portal_frame_ancestors =
            storage.frame_ancestors(args.portal_frame_ancestors.as_deref())?;
        Ok(ServeConfig {
            public_url,
            portal_frame_ancestors,
            eventbridge_partner_name: partner_name,
            listen,
            engine: EngineConfig {
                retry,
                request_timeout,
                lease_timeout,
                retention,
                max_in_flight_per_host,
                min_in_flight_per_host,
                breaker,
                endpoint_breaker,
                policy: policy.clone(),
                eventbridge: EventBridgeSettings {
                    detail_type,
                    batch_wait,
                },
                ..defaults
            },
            max_event_bytes,
            policy,
            master_key: args.master_key.clone().or_else(|| file.master_key.clone()),
            extra_event_types: file.event_types.clone(),
            storage,
        })
    }

    /// The master key: given, or (SQLite only) read from (first time: generated into) the
    /// data dir. Nodes sharing a PostgreSQL database must all be given the same key.
    pub fn cipher(&self) -> Result<Cipher> {
        if let Some(key) = &self.master_key {
            return Cipher::from_base64(key).context("HOOKRELAY_MASTER_KEY");
        }
        if self.storage.database_url.is_some() {
            bail!(
                "HOOKRELAY_MASTER_KEY (or --master-key) is required with PostgreSQL: every node \
                 must use the same key to read the secrets it stores. Make one with \
                 `openssl rand -base64 32` and keep it safe"
            );
        }
        let path = self.storage.data_dir.join(MASTER_KEY_FILE);
        if !path.exists() {
            create_private_dir(&self.storage.data_dir)?;
            write_private(&path, &Cipher::generate_key())?;
            tracing::info!(path = %path.display(), "generated a new master key; back it up with the database");
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read master key {}", path.display()))?;
        Cipher::from_base64(&text).with_context(|| format!("master key file {}", path.display()))
    }
}

/// One breaker level's settings as one source gives them (flags, or the file).
struct BreakerInput<'a> {
    window: &'a Option<String>,
    min_requests: Option<u32>,
    success_ratio: Option<f64>,
    pause: &'a Option<String>,
}

/// A breaker level (`prefix`: `breaker` or `endpoint_breaker`, as the options are
/// named) from its flags, then its file keys, then `default`; checked.
fn resolve_breaker(
    prefix: &str,
    [flag, file]: [BreakerInput<'_>; 2],
    default: BreakerConfig,
) -> Result<BreakerConfig> {
    let duration = |name: &str, flag: &Option<String>, key: &Option<String>, default| match flag
        .as_ref()
        .or(key.as_ref())
    {
        Some(text) => parse_duration(&format!("{prefix}_{name}"), text),
        None => Ok(default),
    };
    let breaker = BreakerConfig {
        window: duration("window", flag.window, file.window, default.window)?,
        min_requests: flag
            .min_requests
            .or(file.min_requests)
            .unwrap_or(default.min_requests),
        min_success_ratio: flag
            .success_ratio
            .or(file.success_ratio)
            .unwrap_or(default.min_success_ratio),
        pause: duration("pause", flag.pause, file.pause, default.pause)?,
    };
    if !(0.0..=1.0).contains(&breaker.min_success_ratio) {
        bail!("{prefix}_success_ratio must be between 0 and 1");
    }
    if breaker.window.is_zero() {
        bail!("{prefix}_window must be more than 0");
    }
    Ok(breaker)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
