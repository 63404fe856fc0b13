//! `inft run`: load an agent from the chain, unseal it into memory and run it, logging every
//! action on chain.

use std::sync::Arc;

use agent_runtime::agent::{AgentKind, AgentSession, run_steps};
use agent_runtime::engine::{ContextOptions, ModelOptions};
use agent_runtime::lifecycle::open_agent;
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::pipeline::UnsealOptions;
use agent_runtime::record::LogId;
use agent_runtime::token::Access;
use alloy::primitives::U256;
use anyhow::bail;
use clap::Args;
use inft_contracts::scopes;
use sealing::SealOptions;
use serde_json::json;
use strategies::creative::CreativeStrategy;

use super::Run;
use super::node::{NodeOpts, WalletOpts};
use crate::cli::Context;

/// `inft run`
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The token id (decimal or 0x-hex).
    #[arg(value_parser = parse_token_id)]
    token: U256,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
    /// Number of steps (actions) to run.
    #[arg(long, default_value_t = 5)]
    steps: u64,
    /// Inference threads [default: all cores].
    #[arg(long)]
    threads: Option<u32>,
    /// Model layers to offload to the GPU (needs a build with `--features cuda`).
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
}

/// Parses a uint256 token id, decimal or `0x`-hex.
pub(crate) fn parse_token_id(s: &str) -> Result<U256, String> {
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(s, 10),
    };
    parsed.map_err(|e| format!("invalid token id {s:?}: {e}"))
}

impl Run for RunArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let store = node.store()?;
        let secret = node.sealing_secret(&wallet)?;

        let model_opts = ModelOptions {
            gpu_layers: self.gpu_layers,
            ..ModelOptions::default()
        };
        let opened = open_agent(
            &nft,
            store.as_ref(),
            wallet.address(),
            &secret,
            self.token,
            scopes::RUN,
            &UnsealOptions {
                model: model_opts,
                seal: SealOptions::default(),
            },
        )
        .await?;
        let agent = opened.agent;
        // The owner runs as the agent (its unsealed key signs and logs); an authorized user is
        // never given the agent key and acts as an executor with its own wallet.
        let (record_signer, role) = match (&agent.agent_key, opened.access) {
            (Some(key), _) => (key.clone(), "agent"),
            (None, Access::Authorized { scopes: s, .. }) if s & scopes::LOG != 0 => {
                (wallet.clone(), "executor")
            }
            (None, _) => bail!(
                "this authorization does not include the log scope, so its actions cannot be logged"
            ),
        };

        let context_opts = ContextOptions {
            n_threads: self.threads.or(agent.config.context.n_threads),
            ..agent.config.context
        };
        let context = agent.model.new_context(&context_opts)?;
        let log = LogId {
            chain_id: node.deployment.chain_id,
            action_log: node.deployment.action_log,
            token_id: self.token,
        };
        let mut session = AgentSession::new(
            log,
            nft.address(),
            agent.config.clone(),
            record_signer.clone(),
            context,
        );

        let chain = AlloyChainLog::new(node.provider(&record_signer)?, node.deployment.start_block);
        let outbox = Outbox::new(node.db().await?, Arc::new(chain), OutboxConfig::default());

        let progress = ctx.spinner(&format!(
            "running token {} as {role} {}",
            self.token,
            record_signer.address()
        ));
        let on_step = |s: &agent_runtime::agent::StepReport| {
            progress.set_message(format!(
                "step {}/{} · seq {} · {} · {}",
                s.step + 1,
                self.steps,
                s.seq,
                s.kind,
                s.record_hash
            ));
        };
        let report = match &agent.config.kind {
            AgentKind::Creative { prompt } => {
                let mut strategy = CreativeStrategy::new(prompt.clone());
                run_steps(&mut session, &mut strategy, &outbox, self.steps, on_step).await?
            }
            AgentKind::Trading { strategy } => {
                bail!("trading strategy {strategy:?}: trading agents are not available yet")
            }
            other => bail!("unsupported agent kind {other:?}"),
        };
        progress.finish_and_clear();

        let steps: Vec<_> = report
            .steps
            .iter()
            .map(|s| json!({ "step": s.step, "seq": s.seq, "kind": s.kind.to_string(), "record_hash": s.record_hash }))
            .collect();
        let human = report
            .steps
            .iter()
            .map(|s| {
                format!(
                    "  seq {:>3}  {:<16} {}",
                    s.seq,
                    s.kind.to_string(),
                    s.record_hash
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        ctx.emit(
            format!(
                "token {} ran {} steps as {role} {} (model {}{})\n{human}\nlogged on chain in {} transaction(s)",
                self.token,
                report.steps.len(),
                record_signer.address(),
                agent.model.sha256_hex(),
                if agent.model_was_cached { ", shared" } else { "" },
                report.flush.transactions.len(),
            ),
            json!({
                "token_id": self.token.to_string(),
                "signer": record_signer.address(),
                "role": role,
                "model_sha256": agent.model.sha256_hex(),
                "steps": steps,
                "transactions": report.flush.transactions,
            }),
        );
        Ok(())
    }
}
