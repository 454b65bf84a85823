//! Configuration: command-line flags, `HOOKRELAY_*` environment variables (clap reads
//! both, flags first), then the TOML file given by `--config`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use hookrelay_core::net::AddressPolicy;
use hookrelay_core::secrets::Cipher;
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
    /// PostgreSQL URL instead of the embedded database.
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
    /// Base64 of 32 bytes; encrypts stored secrets. Generated in the data dir when absent.
    #[arg(
        long,
        env = "HOOKRELAY_MASTER_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub master_key: Option<String>,
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
}

fn read_file(path: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
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

    /// The SQLite file, with the data dir created (owner-only) if needed.
    pub fn sqlite_path(&self) -> Result<PathBuf> {
        if let Some(url) = &self.database_url {
            let scheme = url.split(':').next().unwrap_or_default();
            bail!(
                "--database-url {scheme}://…: PostgreSQL is not supported by this version of hookrelay yet; \
                 leave it out to use the embedded SQLite database in --data-dir"
            );
        }
        create_private_dir(&self.data_dir)?;
        Ok(self.data_dir.join(DATABASE_FILE))
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
        Ok(ServeConfig {
            listen,
            policy: AddressPolicy {
                allow_http: args.allow_http.or(file.allow_http).unwrap_or(false),
                allowed_networks,
            },
            master_key: args.master_key.clone().or_else(|| file.master_key.clone()),
            extra_event_types: file.event_types.clone(),
            storage,
        })
    }

    /// The master key: given, or read from (first time: generated into) the data dir.
    pub fn cipher(&self) -> Result<Cipher> {
        if let Some(key) = &self.master_key {
            return Cipher::from_base64(key).context("HOOKRELAY_MASTER_KEY");
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
