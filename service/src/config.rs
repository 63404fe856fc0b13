//! The `inft serve` config file (TOML). `examples/serve.toml` is a documented example.
//!
//! ```toml
//! [node]
//! home = ".inft"                 # local state: keystores, blob store, default database
//! rpc_url = "http://127.0.0.1:8545"
//! deployment = ".inft/deployment.json"
//!
//! [database]
//! url = "postgres://inft@127.0.0.1:5432/inft"   # default: sqlite://HOME/inft.db
//!
//! [http]
//! listen = "127.0.0.1:9464"
//!
//! [[agent]]
//! token = "1"
//! account = "alice"              # keystore HOME/keystores/alice.json (or keystore = "FILE")
//! every_secs = 10                # or every_blocks = 5
//! daily_steps = 500
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::U256;
use serde::Deserialize;

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is out of place.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Chain and local state.
    pub node: NodeSection,
    /// The database (shared by every node of a fleet).
    #[serde(default)]
    pub database: DatabaseSection,
    /// The observability listener.
    #[serde(default)]
    pub http: HttpSection,
    /// Leases and node identity.
    #[serde(default)]
    pub fleet: FleetSection,
    /// Retry and concurrency limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// The agents to host.
    #[serde(rename = "agent", default)]
    pub agents: Vec<AgentSpec>,
}

/// `[node]`: which chain, which deployment, where local state lives.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Local state directory (keystores, blob store, default database); relative paths are
    /// relative to the config file.
    pub home: PathBuf,
    /// JSON-RPC endpoint [default: the one `inft dev up` recorded in the home].
    pub rpc_url: Option<String>,
    /// Deployment file [default: HOME/deployment.json].
    pub deployment: Option<PathBuf>,
    /// Blob gateway base URL instead of the home's local blob store.
    pub gateway: Option<String>,
}

/// `[database]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://FILE` or `postgres://…` [default: sqlite://HOME/inft.db]. A fleet needs
    /// PostgreSQL.
    pub url: Option<String>,
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Address of `/health`, `/agents` and `/metrics` [default: 127.0.0.1:9464, loopback only].
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// `[fleet]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// This node's name in `/health`, `/agents` and the logs [default: HOSTNAME-PID]. Leases
    /// are held under it plus a random per-process instance number, so two processes never
    /// pass for one, even with the same name.
    pub node_id: Option<String>,
    /// How long a lease lasts without renewal: a dead node's agents move after at most this.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
}

impl Default for FleetSection {
    fn default() -> Self {
        Self {
            node_id: None,
            lease_secs: default_lease_secs(),
        }
    }
}

fn default_lease_secs() -> u64 {
    15
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Steps running at once on this node (inference shares the CPU).
    #[serde(default = "default_parallel_steps")]
    pub parallel_steps: usize,
    /// First retry delay after a failure; doubles up to `max_backoff_secs`.
    #[serde(default = "default_backoff")]
    pub backoff_secs: f64,
    /// Longest retry delay.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: f64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            parallel_steps: default_parallel_steps(),
            backoff_secs: default_backoff(),
            max_backoff_secs: default_max_backoff(),
        }
    }
}

fn default_parallel_steps() -> usize {
    1
}
fn default_backoff() -> f64 {
    1.0
}
fn default_max_backoff() -> f64 {
    60.0
}

/// One `[[agent]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The token id (decimal or 0x-hex).
    pub token: String,
    /// Keystore name in HOME/keystores to act as (the owner, or a user the owner authorized).
    pub account: Option<String>,
    /// Keystore file to act as, instead of `account`.
    pub keystore: Option<PathBuf>,
    /// File holding the keystore's passphrase [default: INFT_PASSPHRASE / INFT_PASSPHRASE_FILE].
    pub passphrase_file: Option<PathBuf>,
    /// Run a step every this many seconds.
    pub every_secs: Option<f64>,
    /// Run a step every this many blocks.
    pub every_blocks: Option<u64>,
    /// Most steps per UTC day (counted from the database, so a fleet shares the budget).
    pub daily_steps: Option<u64>,
    /// Inference threads [default: the agent config's, else all cores].
    pub threads: Option<u32>,
    /// Model layers offloaded to the GPU (a `cuda` build).
    #[serde(default)]
    pub gpu_layers: u32,
    /// Trading agents: the owner's policy file [default: HOME/trading-policy.json].
    pub policy: Option<PathBuf>,
    /// Trading agents: simulate trades, send nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Trading agents: an existing Uniswap V2 Router02 to trade through (its `factory()` and
    /// `WETH()` are read from it) [default: the deployment file's market's].
    pub router: Option<alloy::primitives::Address>,
    /// Trading agents: the token bought and sold [default: the deployment market's].
    pub base_token: Option<alloy::primitives::Address>,
    /// Trading agents: the token prices are counted in [default: the deployment market's].
    pub quote_token: Option<alloy::primitives::Address>,
    /// Dev chains: move the market before each step with this seed (needs `market_maker`).
    pub move_market: Option<u64>,
    /// Dev chains: keystore name of the noise trader.
    pub market_maker: Option<String>,
}

/// When an agent steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Every so often.
    Every(Duration),
    /// Every this many blocks.
    Blocks(u64),
}

impl AgentSpec {
    /// The token id.
    pub fn token_id(&self) -> Result<U256, String> {
        let parsed = match self.token.strip_prefix("0x") {
            Some(hex) => U256::from_str_radix(hex, 16),
            None => U256::from_str_radix(&self.token, 10),
        };
        parsed.map_err(|e| format!("invalid token id {:?}: {e}", self.token))
    }

    /// The schedule (exactly one of `every_secs`, `every_blocks`).
    pub fn schedule(&self) -> Result<Schedule, String> {
        match (self.every_secs, self.every_blocks) {
            (Some(s), None) if s.is_finite() && s > 0.0 => {
                Ok(Schedule::Every(Duration::from_secs_f64(s)))
            }
            (None, Some(b)) if b > 0 => Ok(Schedule::Blocks(b)),
            (Some(_), Some(_)) => Err("give every_secs or every_blocks, not both".into()),
            (None, None) => Err("no schedule: give every_secs or every_blocks".into()),
            _ => Err("every_secs and every_blocks must be positive".into()),
        }
    }
}

impl ServeConfig {
    /// Reads and checks `path`; relative paths inside are made relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.node.home);
        if let Some(d) = &mut self.node.deployment {
            fix(d);
        }
        for a in &mut self.agents {
            for p in [&mut a.keystore, &mut a.passphrase_file, &mut a.policy]
                .into_iter()
                .flatten()
            {
                fix(p);
            }
        }
    }

    /// The database URL: `[database] url`, else SQLite in the home.
    pub fn database_url(&self) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.node.home.join("inft.db").display()))
    }

    fn check(&self) -> Result<(), String> {
        if self.agents.is_empty() {
            return Err("no [[agent]] to host".into());
        }
        if self.fleet.lease_secs < 2 {
            return Err("[fleet] lease_secs must be at least 2".into());
        }
        if self.limits.parallel_steps == 0 {
            return Err("[limits] parallel_steps must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, a) in self.agents.iter().enumerate() {
            let at = |m: String| format!("agent #{} (token {}): {m}", i + 1, a.token);
            let id = a.token_id().map_err(at)?;
            if !seen.insert(id) {
                return Err(at("the token is listed twice".into()));
            }
            a.schedule().map_err(at)?;
            if a.account.is_some() == a.keystore.is_some() {
                return Err(at("give exactly one of account or keystore".into()));
            }
            if a.move_market.is_some() && a.market_maker.is_none() {
                return Err(at("move_market needs market_maker".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::AgentSpec;

    #[test]
    fn agent_names_an_existing_uniswap() {
        let spec: AgentSpec = toml::from_str(
            r#"
            token = "7"
            every_secs = 5
            router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
            base_token = "0x0000000000000000000000000000000000000001"
            quote_token = "0x0000000000000000000000000000000000000002"
            "#,
        )
        .expect("parses");
        assert_eq!(
            spec.router.map(|a| a.to_string()).as_deref(),
            Some("0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D")
        );
        assert!(spec.base_token.is_some() && spec.quote_token.is_some());
        let bad = toml::from_str::<AgentSpec>("token = \"7\"\nrouter = \"uniswap\"");
        assert!(bad.is_err());
    }
}
