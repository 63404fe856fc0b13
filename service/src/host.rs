//! What the service asks of the program that embeds it: open an agent, run one step of it,
//! flush what it recorded. The service schedules; the host knows how to unseal, load models and
//! build strategies (the `inft` program implements this with the same code as `inft run`).

use std::future::Future;
use std::time::Duration;

use agent_runtime::db::Db;
use agent_runtime::record::LogId;
use alloy::primitives::B256;

use crate::config::AgentSpec;

/// Opens agents for the service.
pub trait AgentHost: Send + Sync + 'static {
    /// A running agent.
    type Agent: HostedAgent;

    /// Opens the agent `spec` names: checks ownership or authorization, unseals it, loads (or
    /// shares) its model and builds its strategy. `db` is fenced by the agent's lease: once the
    /// lease is lost, every record or transaction the agent would write is refused.
    fn open(
        &self,
        spec: &AgentSpec,
        db: Db,
    ) -> impl Future<Output = Result<Self::Agent, AgentError>> + Send;

    /// The chain's latest block number (for every-N-blocks schedules).
    fn block_number(&self) -> impl Future<Output = Result<u64, AgentError>> + Send;

    /// How often an every-N-blocks agent asks [`block_number`](Self::block_number) whether its
    /// blocks have passed [default: every second]. A host on a slow chain may ask less often.
    fn block_poll_interval(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// The name of the agent's lease, the same on every node of a fleet and different for
    /// every agent sharing the database. It must be known before the agent is opened (a node
    /// opens an agent only once it holds the lease).
    ///
    /// The default, `agent/<decimal token id>`, is right while one database serves one
    /// deployment; a host serving several deployments (chains or `ActionLog` contracts) from
    /// one database should return `agent/<chain id>/<ActionLog address>/<token id>`.
    fn lease_key(&self, spec: &AgentSpec) -> String {
        match spec.token_id() {
            Ok(id) => format!("agent/{id}"),
            Err(_) => format!("agent/{}", spec.token),
        }
    }
}

/// An opened agent, driven one step at a time by the service.
pub trait HostedAgent: Send + 'static {
    /// The agent's action log (chain id, `ActionLog` contract, token id): the service counts
    /// the day's records in it against the daily step budget and shows its last record.
    fn log(&self) -> LogId;

    /// Runs one step: one action decided, acted on and recorded in the outbox (logged on chain
    /// in the background).
    fn step(&mut self) -> impl Future<Output = Result<StepSummary, AgentError>> + Send;

    /// Flushes the agent's outbox until every record is confirmed on chain.
    fn flush(&mut self) -> impl Future<Output = Result<(), AgentError>> + Send;

    /// Ends the agent's run before the service lets it go (shutdown, or its lease released),
    /// never after a stop for good (the agent may no longer be the wallet's): what a finished run
    /// leaves behind, such as the owner's memory update, goes into the outbox before the last
    /// flush. Returns what was done, for the log; by default nothing.
    fn finish_run(&mut self) -> impl Future<Output = Result<Option<String>, AgentError>> + Send {
        async { Ok(None) }
    }

    /// The agent's name for the log lines (e.g. from its sealed config); none by default.
    fn name(&self) -> Option<&str> {
        None
    }

    /// Unconfirmed outbox entries.
    fn outbox_depth(&self) -> impl Future<Output = Result<u64, AgentError>> + Send;

    /// What `/agents` shows of the agent beyond the service's own state (e.g. a trading agent's
    /// PnL and balances), as a JSON object.
    fn status(&self) -> serde_json::Value;
}

/// What one step did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepSummary {
    /// The record's position in the token's action log.
    pub seq: u64,
    /// The action's kind (`creative`, `trade`, `hold`, `refusal`, …).
    pub kind: String,
    /// One line for people: the piece's title, the trade's fill, the refusal's reason.
    pub summary: String,
    /// The record hash logged on chain.
    pub record_hash: B256,
    /// Why the firewall refused the trade, for a refusal (a short machine-readable reason).
    pub refusal: Option<String>,
    /// Tokens the model generated in this step.
    pub tokens_generated: u64,
    /// Seconds spent generating them.
    pub generation_secs: f64,
    /// Gas used by the transactions this step sent (trades), and what it cost in wei.
    pub gas_used: u64,
    /// Wei spent on gas by this step's transactions.
    pub gas_cost_wei: u128,
}

/// Why an agent could not open or step.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent can no longer run here and must not be retried: the token moved, the grant
    /// ended, the owner paused it.
    #[error("stopped: {0}")]
    Stopped(StopReason),
    /// The lease on the agent was lost (another node holds it now); the service drops the agent
    /// and lets the lease decide.
    #[error("lease lost")]
    LeaseLost,
    /// Anything else (RPC down, a step failed): retried after a backoff. `rpc` marks failures of
    /// the chain's RPC (counted apart in the metrics).
    #[error("{error:#}")]
    Failed {
        /// What failed.
        error: anyhow::Error,
        /// Whether it was the RPC endpoint.
        rpc: bool,
    },
}

impl AgentError {
    /// A retryable failure.
    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self::Failed {
            error: error.into(),
            rpc: false,
        }
    }

    /// A retryable failure of the RPC endpoint.
    pub fn rpc(error: impl Into<anyhow::Error>) -> Self {
        Self::Failed {
            error: error.into(),
            rpc: true,
        }
    }
}

/// Why an agent stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum StopReason {
    /// The token now belongs to someone else.
    Transferred {
        /// The new owner.
        owner: String,
    },
    /// The owner revoked the authorization this node acted under.
    Revoked,
    /// The authorization this node acted under expired, or ends too soon for another step's
    /// record to be logged under it.
    Expired,
    /// The owner paused the agent.
    Paused,
    /// Something else that retrying cannot fix (bad config, model not committed, …).
    Invalid {
        /// What.
        detail: String,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transferred { owner } => write!(f, "the token was transferred to {owner}"),
            Self::Revoked => f.write_str("the authorization was revoked"),
            Self::Expired => f.write_str("the authorization expired"),
            Self::Paused => f.write_str("the owner paused the agent"),
            Self::Invalid { detail } => f.write_str(detail),
        }
    }
}
