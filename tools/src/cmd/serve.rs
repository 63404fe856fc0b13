//! `inft serve`: host the agents of a config file in one process (or share them with the other
//! nodes of a fleet on one PostgreSQL), with `/health`, `/agents` and `/metrics`.
//!
//! The service (crate `inft-service`) schedules, leases and reports; this module is its
//! [`AgentHost`]: it opens agents with the code `inft run` uses and steps them one at a time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_runtime::blobstore::BlobStore;
use agent_runtime::db::{Db, DbError, redact_url};
use agent_runtime::error::ChainLogError;
use agent_runtime::lifecycle::LifecycleError;
use agent_runtime::memory::{AgentMemory, MemoryNote};
use agent_runtime::outbox::{LoggerHandle, Outbox, OutboxError};
use agent_runtime::record::LogId;
use agent_runtime::token::{Access, AgentNft, TokenError};
use agent_runtime::wallet::{Passphrase, load_keystore};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context as _;
use clap::Args;
use inft_contracts::scopes;
use inft_runtime::{
    GenerationTotals, Remembered, RunError, RunMemory, Strategy as _, StrategyError, remember_run,
    run_step,
};
use inft_service::config::{AgentSpec, ServeConfig};
use inft_service::host::{AgentError, AgentHost, HostedAgent, StepSummary, StopReason};
use sealing::SealingPublicKey;
use strategies::trading::{PairSymbols, TradingError, TradingStatus};

use super::Run;
use super::launch::{AgentStrategy, LaunchOptions, Launched, MarketChoice, TradingSetup, launch};
use super::node::{Node, NodeOpts};
use super::run::action_line;
use crate::cli::Context;

/// `inft serve`
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The config file (TOML; `examples/serve.toml` documents every key).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This node's name in the fleet's leases [default: the config's, else HOSTNAME-PID].
    #[arg(long, value_name = "NAME")]
    node_id: Option<String>,
    /// Address of `/health`, `/agents` and `/metrics` [default: the config's, 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

impl Run for ServeArgs {
    async fn run(self, _ctx: &Context) -> anyhow::Result<()> {
        let mut config = ServeConfig::load(&self.config)?;
        if let Some(id) = self.node_id {
            config.fleet.node_id = Some(id);
        }
        if let Some(listen) = self.listen {
            config.http.listen = listen;
        }
        let node = NodeOpts {
            home: config.node.home.clone(),
            rpc_url: config.node.rpc_url.clone(),
            deployment: config.node.deployment.clone(),
            gateway: config.node.gateway.clone(),
            max_blob_size: 8 << 30,
        }
        .load()?;
        node.check_chain().await?;
        let url = config.database_url();
        let db = Db::connect(&url)
            .await
            .with_context(|| format!("opening the database {}", redact_url(&url)))?;
        let reader = node.reader()?;
        let host = Arc::new(ServeHost { node, reader });
        let shutdown = inft_service::Shutdown::on_signals();
        inft_service::serve(config, db, host, shutdown).await?;
        Ok(())
    }
}

/// Opens agents for the service.
struct ServeHost {
    node: Node,
    reader: DynProvider,
}

impl AgentHost for ServeHost {
    type Agent = HostedInft;

    async fn open(&self, spec: &AgentSpec, db: Db) -> Result<HostedInft, AgentError> {
        let invalid = |detail: String| AgentError::Stopped(StopReason::Invalid { detail });
        let token = spec.token_id().map_err(invalid)?;
        // A keystore that does not open will not open on a retry either.
        let wallet = spec_signer(&self.node, spec).map_err(|e| invalid(format!("{e:#}")))?;
        let setup = TradingSetup {
            policy: spec.policy.clone(),
            dry_run: spec.dry_run,
            fund: None,
            move_market: spec.move_market.zip(spec.market_maker.clone()),
            market: MarketChoice {
                router: spec.router,
                base_token: spec.base_token,
                quote_token: spec.quote_token,
            },
        };
        let launched = launch(
            &self.node,
            &wallet,
            LaunchOptions {
                token,
                threads: spec.threads,
                gpu_layers: spec.gpu_layers,
                trading: &setup,
                db,
            },
        )
        .await
        .map_err(|e| classify(e, OpenedAs::Opening))?;
        let Launched {
            opened,
            nft: owner_nft,
            store,
            secret,
            session,
            outbox,
            role: _,
            record_signer,
            strategy,
            trading,
        } = launched;
        // Only the owner's runs leave a note in the memory (an executor reads none and writes
        // none: see agent_runtime::memory).
        let memory = match (&opened.access, &opened.agent.memory) {
            (Access::Owner, Some(memory)) => Some(RunMemoryOwner {
                nft: owner_nft,
                owner: wallet.address(),
                store,
                owner_key: secret.public_key(),
                memory: memory.clone(),
            }),
            _ => None,
        };
        let name = opened.agent.config.name.clone();
        let nft = AgentNft::new(self.reader.clone(), &self.node.deployment);
        let owner_at_open = nft.state(token).await.map_err(AgentError::rpc)?.owner;
        let log = *session.log();
        // Records an earlier process left go first, and the position catches up with the chain.
        outbox
            .sync_position(&log)
            .await
            .map_err(|e| classify(e.into(), OpenedAs::Opening))?;
        let logger = outbox.spawn_for(log);
        Ok(HostedInft {
            rights: Rights {
                token,
                wallet: wallet.address(),
                access: opened.access,
                owner_at_open,
                nft,
                last_step: Duration::ZERO,
            },
            name,
            reader: self.reader.clone(),
            session,
            strategy,
            outbox,
            record_signer,
            logger: Some(logger),
            steps: 0,
            seqs: None,
            memory,
            trading,
            generated: GenerationTotals::default(),
        })
    }

    async fn block_number(&self) -> Result<u64, AgentError> {
        self.reader
            .get_block_number()
            .await
            .map_err(AgentError::rpc)
    }

    /// One database may serve several deployments: the lease names the action log too. The
    /// token id in decimal, however the config spells it, so every node names it alike.
    fn lease_key(&self, spec: &AgentSpec) -> String {
        let d = &self.node.deployment;
        let token = spec
            .token_id()
            .map_or_else(|_| spec.token.clone(), |id| id.to_string());
        format!("agent/{}/{}/{token}", d.chain_id, d.action_log)
    }
}

/// The wallet an `[[agent]]` acts as: its keystore, unlocked with its passphrase file or the
/// environment's passphrase (never a prompt: a service has no terminal).
fn spec_signer(node: &Node, spec: &AgentSpec) -> anyhow::Result<PrivateKeySigner> {
    let path = match (&spec.keystore, &spec.account) {
        (Some(path), _) => path.clone(),
        (None, Some(name)) => node.home.join("keystores").join(format!("{name}.json")),
        (None, None) => anyhow::bail!("no keystore or account"),
    };
    let passphrase = match &spec.passphrase_file {
        Some(file) => Passphrase::from_file(file)?,
        None => Passphrase::from_env()?.with_context(|| {
            format!(
                "no passphrase for {}: set passphrase_file, INFT_PASSPHRASE or INFT_PASSPHRASE_FILE",
                path.display()
            )
        })?,
    };
    load_keystore(&path, &passphrase)
        .with_context(|| format!("unlocking keystore {}", path.display()))
}

/// What the wallet was allowed when the agent opened, checked again before every step.
struct Rights {
    token: U256,
    wallet: Address,
    access: Access,
    owner_at_open: Address,
    nft: AgentNft,
    /// How long the last step took: a grant must outlast the next one (see [`grant_too_short`]).
    last_step: Duration,
}

/// The least time an executor's grant must have left, beyond twice the last step's time, for a
/// step to begin: time for the record's transaction to be mined after the step.
const GRANT_MARGIN: Duration = Duration::from_secs(10);

/// Whether a grant ending at `expiry` (chain time) is too close to `now` for another step: the
/// action log refuses an executor whose grant has ended, so a step begun too late would act
/// (trade) and leave its record unloggable in this node's outbox.
fn grant_too_short(now: u64, expiry: u64, last_step: Duration) -> bool {
    let margin = GRANT_MARGIN + last_step * 2;
    now.saturating_add(margin.as_secs_f64().ceil() as u64) >= expiry
}

/// An agent the service steps.
struct HostedInft {
    rights: Rights,
    /// The agent's name (its sealed config's).
    name: String,
    reader: DynProvider,
    session: inft_runtime::AgentSession,
    strategy: AgentStrategy,
    outbox: Outbox,
    record_signer: PrivateKeySigner,
    logger: Option<LoggerHandle>,
    steps: u64,
    /// The log positions of this run's first and last actions.
    seqs: Option<[u64; 2]>,
    /// What the end of an owner's run updates (`None` for an executor or a token without memory).
    memory: Option<RunMemoryOwner>,
    trading: Option<(Arc<Mutex<TradingStatus>>, PairSymbols)>,
    generated: GenerationTotals,
}

/// The owners' end-of-run transactions (`updateData`), one at a time in this process: the agents
/// of one owner finish together at shutdown, and their wallet's nonces must not race.
static OWNER_UPDATES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The owner's side of a hosted agent's memory: where its end-of-run update is published.
struct RunMemoryOwner {
    nft: AgentNft,
    owner: Address,
    store: Arc<dyn BlobStore>,
    owner_key: SealingPublicKey,
    memory: AgentMemory,
}

impl Rights {
    /// Stops for good once the wallet may no longer run the token: transferred, grant revoked
    /// or expired (or ending before another step could be logged), paused. Checked before every
    /// step, so no step runs on a stale right.
    async fn check(&self) -> Result<(), AgentError> {
        let state = self.nft.state(self.token).await.map_err(AgentError::rpc)?;
        if state.paused {
            return Err(AgentError::Stopped(StopReason::Paused));
        }
        let transferred = || {
            AgentError::Stopped(StopReason::Transferred {
                owner: state.owner.to_string(),
            })
        };
        match self.access {
            Access::Owner if state.owner != self.wallet => Err(transferred()),
            Access::Owner => Ok(()),
            // A transfer voids every grant: say what happened, not just that the grant is gone.
            Access::Authorized { .. } if state.owner != self.owner_at_open => Err(transferred()),
            Access::Authorized { expiry, .. } => {
                let granted = self.nft.access(self.token, self.wallet, scopes::RUN).await;
                let now = self.nft.chain_time().await.map_err(AgentError::rpc)?;
                match granted {
                    Ok(_) if grant_too_short(now, expiry, self.last_step) => {
                        Err(AgentError::Stopped(StopReason::Expired))
                    }
                    Ok(_) => Ok(()),
                    Err(TokenError::Unauthorized { .. }) => {
                        Err(AgentError::Stopped(if now >= expiry {
                            StopReason::Expired
                        } else {
                            StopReason::Revoked
                        }))
                    }
                    Err(e) => Err(AgentError::rpc(e)),
                }
            }
        }
    }
}

impl HostedAgent for HostedInft {
    fn log(&self) -> LogId {
        *self.session.log()
    }

    async fn step(&mut self) -> Result<StepSummary, AgentError> {
        self.rights.check().await?;
        let started = Instant::now();
        let report = run_step(
            &mut self.session,
            &mut self.strategy,
            &self.outbox,
            self.steps,
        )
        .await
        .map_err(classify_run)?;
        self.rights.last_step = started.elapsed();
        self.steps += 1;
        self.seqs = Some(
            self.seqs
                .map_or([report.seq, report.seq], |[first, _]| [first, report.seq]),
        );

        let totals = self.session.generation_totals();
        let (tokens, generate_ms) = (
            totals.tokens - self.generated.tokens,
            totals.generate_ms - self.generated.generate_ms,
        );
        self.generated = totals;
        let (mut gas_used, mut gas_cost_wei) = (0, 0);
        if let Some(tx) = report.tx_hash
            && let Ok(Some(receipt)) = self.reader.get_transaction_receipt(tx).await
        {
            gas_used = receipt.gas_used;
            gas_cost_wei = u128::from(receipt.gas_used) * receipt.effective_gas_price;
        }
        let refusal = (report.kind.as_str() == "refusal").then(|| {
            report.details["refusal"]["rule"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned()
        });
        let symbols = self.trading.as_ref().map(|(_, s)| s);
        Ok(StepSummary {
            seq: report.seq,
            kind: report.kind.to_string(),
            summary: action_line(&report, symbols),
            record_hash: report.record_hash,
            refusal,
            tokens_generated: tokens,
            generation_secs: generate_ms / 1000.0,
            gas_used,
            gas_cost_wei,
        })
    }

    async fn flush(&mut self) -> Result<(), AgentError> {
        if let Some(logger) = self.logger.take() {
            logger.shutdown().await;
        }
        let log = self.log();
        let flushed = self.outbox.flush_rebasing(&log, &self.record_signer).await;
        // Logging goes on in the background if the agent steps again.
        self.logger = Some(self.outbox.spawn_for(log));
        flushed
            .map(|_| ())
            .map_err(|e| classify(e.into(), OpenedAs::Running))
    }

    async fn finish_run(&mut self) -> Result<Option<String>, AgentError> {
        let (Some(owner), Some(note), true) = (
            self.memory.as_ref(),
            self.strategy.memory_note(),
            self.steps > 0,
        ) else {
            return Ok(None);
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(AgentError::failed)?
            .as_secs();
        let _one_at_a_time = OWNER_UPDATES.lock().await;
        // The update is recorded and flushed in the foreground: the background logger stops
        // first, and the final flush starts it again.
        if let Some(logger) = self.logger.take() {
            logger.shutdown().await;
        }
        let log = self.log();
        let Some(note) = MemoryNote::new(now, self.steps, self.seqs, &note) else {
            return Ok(None);
        };
        let Remembered { update, record } = remember_run(
            &log,
            &self.record_signer,
            &self.outbox,
            RunMemory {
                nft: &owner.nft,
                owner: owner.owner,
                store: owner.store.as_ref(),
                owner_key: &owner.owner_key,
                token: self.rights.token,
                memory: owner.memory.clone(),
            },
            note,
        )
        .await
        .map_err(|e| classify(e.into(), OpenedAs::Running))?;
        Ok(Some(format!(
            "memory updated after {} steps: {} notes, data hash {} (seq {})",
            self.steps,
            update.notes,
            update.new_data_hash,
            record.record().seq
        )))
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn outbox_depth(&self) -> impl Future<Output = Result<u64, AgentError>> + Send {
        // The agent itself is not `Sync` (its llama.cpp context): own what the query needs.
        let (db, log) = (self.outbox.db().clone(), self.log());
        async move {
            let pending = db
                .unconfirmed(&log, u32::MAX)
                .await
                .map_err(|e| classify(e.into(), OpenedAs::Running))?;
            Ok(pending.len() as u64)
        }
    }

    fn status(&self) -> serde_json::Value {
        let mut status = serde_json::json!({
            "wallet": self.rights.wallet,
            "signer": self.record_signer.address(),
            "role": if matches!(self.rights.access, Access::Owner) { "owner" } else { "executor" },
            "model_sha256": self.session.model().sha256_hex(),
            "tokens_generated": self.generated.tokens,
        });
        if let Some(t) = self
            .trading
            .as_ref()
            .and_then(|(s, _)| s.lock().ok().map(|t| t.clone()))
        {
            status["trading"] = t.to_json();
        }
        status
    }
}

/// Where an error happened, to tell a stop from a retry.
#[derive(Clone, Copy)]
enum OpenedAs {
    Opening,
    Running,
}

fn classify_run(e: RunError) -> AgentError {
    classify(e.into(), OpenedAs::Running)
}

/// Whether `cause` is a fenced write that found the lease gone. Checked level by level:
/// transparent wrappers (`RunError::Outbox`, `OutboxError::Db`, `StrategyError::Other`) hide
/// the `DbError` from `source()`.
fn lease_lost(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<DbError>()
        .is_some_and(DbError::is_lease_lost)
        || cause
            .downcast_ref::<OutboxError>()
            .is_some_and(OutboxError::is_lease_lost)
        || matches!(cause.downcast_ref::<RunError>(), Some(RunError::Outbox(o)) if o.is_lease_lost())
        || cause
            .downcast_ref::<TradingError>()
            .is_some_and(TradingError::is_lease_lost)
        // A trade's nonce manager, behind the strategy's transparent `Other`.
        || matches!(
            cause.downcast_ref::<StrategyError>(),
            Some(StrategyError::Other(inner))
                if inner.downcast_ref::<TradingError>().is_some_and(TradingError::is_lease_lost)
        )
}

/// Sorts a failure into stop-for-good, lease lost, or retry (RPC or other).
fn classify(e: anyhow::Error, at: OpenedAs) -> AgentError {
    let invalid = |detail: String| AgentError::Stopped(StopReason::Invalid { detail });
    for cause in e.chain() {
        if lease_lost(cause) {
            return AgentError::LeaseLost;
        }
        // `LifecycleError::Token` is transparent: its `TokenError` is not a separate cause.
        let token_error = match cause.downcast_ref::<LifecycleError>() {
            Some(LifecycleError::Paused(_)) => return AgentError::Stopped(StopReason::Paused),
            Some(
                l @ (LifecycleError::ModelNotCommitted { .. }
                | LifecycleError::AgentMismatch { .. }
                | LifecycleError::BadModelHash(_)),
            ) => return invalid(l.to_string()),
            Some(LifecycleError::Token(t)) => Some(t),
            _ => cause.downcast_ref::<TokenError>(),
        };
        match token_error {
            Some(t @ TokenError::Unauthorized { .. }) if matches!(at, OpenedAs::Opening) => {
                return invalid(t.to_string());
            }
            Some(TokenError::NotFound(id)) => return invalid(format!("token {id} does not exist")),
            Some(TokenError::Rpc(_)) => return AgentError::rpc(e),
            _ => {}
        }
        if cause
            .downcast_ref::<alloy::transports::TransportError>()
            .is_some()
        {
            return AgentError::rpc(e);
        }
        if let Some(ChainLogError::Transient(_)) = cause.downcast_ref::<ChainLogError>() {
            return AgentError::rpc(e);
        }
    }
    AgentError::failed(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> DbError {
        DbError::LeaseLost {
            key: "agent/1".into(),
        }
    }

    #[test]
    fn a_lost_lease_is_found_behind_transparent_wrappers() {
        // RunError::Outbox and OutboxError::Db are transparent: source() never yields the DbError.
        let run = RunError::Outbox(OutboxError::Db(lost()));
        assert!(matches!(classify_run(run), AgentError::LeaseLost));
        let open = anyhow::Error::from(OutboxError::Db(lost())).context("opening");
        assert!(matches!(
            classify(open, OpenedAs::Opening),
            AgentError::LeaseLost
        ));
        // A trade's nonce manager write, through the strategy's error.
        let trade = StrategyError::from(TradingError::Db(Box::new(lost())));
        let step = RunError::Step {
            step: 3,
            source: trade,
        };
        assert!(matches!(classify_run(step), AgentError::LeaseLost));
    }

    #[test]
    fn a_grant_must_outlast_the_next_step_and_its_logging() {
        let step = Duration::from_millis(2_500);
        // 10 s to mine the record, and twice the last step: 15 s.
        assert!(!grant_too_short(1_000, 1_016, step));
        assert!(grant_too_short(1_000, 1_015, step));
        assert!(grant_too_short(1_000, 1_000, step));
        assert!(grant_too_short(1_000, 900, Duration::ZERO));
        // Before the first step, the margin alone.
        assert!(!grant_too_short(1_000, 1_011, Duration::ZERO));
        assert!(grant_too_short(1_000, 1_010, Duration::ZERO));
        // A slow model needs more of the grant left.
        assert!(grant_too_short(1_000, 1_100, Duration::from_secs(60)));
    }

    #[test]
    fn stops_are_told_from_retries() {
        let token = U256::from(7u64);
        let paused = anyhow::Error::from(LifecycleError::Paused(token));
        assert!(matches!(
            classify(paused, OpenedAs::Opening),
            AgentError::Stopped(StopReason::Paused)
        ));
        let unauthorized = || {
            anyhow::Error::from(LifecycleError::Token(TokenError::Unauthorized {
                token,
                account: Address::ZERO,
                scope: scopes::RUN,
            }))
        };
        // Opening without a right is final; the same error while running is left to the
        // access check before the next step (it tells transferred, revoked and expired apart).
        assert!(matches!(
            classify(unauthorized(), OpenedAs::Opening),
            AgentError::Stopped(StopReason::Invalid { .. })
        ));
        assert!(matches!(
            classify(unauthorized(), OpenedAs::Running),
            AgentError::Failed { rpc: false, .. }
        ));
        let rpc = anyhow::Error::from(TokenError::Rpc("connection refused".into()));
        assert!(matches!(
            classify(rpc, OpenedAs::Running),
            AgentError::Failed { rpc: true, .. }
        ));
        let other = anyhow::anyhow!("the model produced nothing");
        assert!(matches!(
            classify(other, OpenedAs::Running),
            AgentError::Failed { rpc: false, .. }
        ));
    }
}
