//! `inft audit`: rebuild an agent's history from chain events and public records, verify it,
//! optionally replay its inferences, and write a self-contained HTML report.

use std::fmt::Write as _;
use std::path::PathBuf;

use agent_runtime::audit::html;
use agent_runtime::audit::{
    AuditTarget, audit_token, private_prompts_of, replay_with_prompts, restore_records,
};
use agent_runtime::engine::{ContextOptions, Engine};
use agent_runtime::indexer::Indexer;
use agent_runtime::lifecycle::open_agent;
use agent_runtime::pipeline::UnsealOptions;
use alloy::primitives::U256;
use anyhow::{Context as _, bail};
use clap::Args;
use inft_contracts::scopes;
use serde_json::json;

use super::Run;
use super::node::{NodeOpts, WalletOpts};
use super::run::parse_token_id;
use crate::cli::Context;

/// `inft audit`
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// The token id (decimal or 0x-hex).
    #[arg(value_parser = parse_token_id)]
    token: U256,
    #[command(flatten)]
    node: NodeOpts,
    /// Also write a self-contained HTML report (timeline, findings, PnL chart) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Re-run every logged inference with its recorded prompt, sampler settings and seed, and
    /// compare output hashes. Needs a wallet that owns or is authorized to run the token.
    #[arg(long)]
    replay: bool,
    #[command(flatten)]
    wallet: WalletOpts,
    /// Inference threads for --replay [default: the agent's configuration].
    #[arg(long)]
    threads: Option<u32>,
    /// Put this node's own signed copies of records back into the record store where the audit
    /// finds them missing, altered or carrying a signature that is not the agent's (the runtime
    /// that ran the actions keeps every signed record in its database), then audit again.
    #[arg(long)]
    repair: bool,
}

impl Run for AuditArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let d = &node.deployment;
        let reader = node.reader()?;
        let db = node.db().await?;
        let spinner = ctx.spinner("indexing chain events");
        let synced = Indexer::new(
            reader.clone(),
            d.chain_id,
            d.agent_nft,
            d.action_log,
            d.start_block,
        )
        .sync(&db)
        .await
        .context("indexing chain events")?;
        spinner.set_message("verifying records");
        let store = node.store()?;
        let target = AuditTarget {
            chain_id: d.chain_id,
            agent_nft: d.agent_nft,
            action_log: d.action_log,
            token_id: self.token,
        };
        let mut report = audit_token(&reader, &db, store.as_ref(), &target).await?;
        let mut restored = Vec::new();
        if self.repair && !report.is_clean() {
            spinner.set_message("restoring records from this node's database");
            restored = restore_records(&db, store.as_ref(), &report).await?;
            if restored.iter().any(|r| r.outcome.is_ok()) {
                report = audit_token(&reader, &db, store.as_ref(), &target).await?;
            }
        }

        let replayed = if self.replay {
            spinner.set_message("replaying inferences");
            let wallet = self.wallet.signer(&node.home)?;
            let nft = node.nft(&wallet)?;
            let secret = node.sealing_secret(&wallet).await?;
            let opened = open_agent(
                &nft,
                store.as_ref(),
                wallet.address(),
                &secret,
                self.token,
                scopes::RUN,
                &UnsealOptions::default(),
            )
            .await
            .context("opening the agent for replay")?;
            let agent = opened.agent;
            let context = ContextOptions {
                n_threads: self.threads.or(agent.config.context.n_threads),
                ..agent.config.context
            };
            let records: Vec<_> = report
                .actions
                .iter()
                .filter_map(|a| a.record.clone())
                .collect();
            let prompts = private_prompts_of(&db, &records).await?;
            let model = agent.model.clone();
            let build = Engine::global()?.llama_build().to_owned();
            Some(
                tokio::task::spawn_blocking(move || {
                    replay_with_prompts(&model, &context, &build, &records, &prompts)
                })
                .await?,
            )
        } else {
            None
        };
        spinner.finish_and_clear();

        if let Some(path) = &self.html {
            std::fs::write(path, html::html_report(&report, replayed.as_deref()))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let mut value = serde_json::to_value(&report)?;
        value["clean"] = json!(report.is_clean());
        value["indexed_to_block"] = json!(synced.to_block);
        value["pnl"] = serde_json::to_value(report.pnl_series())?;
        if let Some(r) = &replayed {
            value["replay"] = serde_json::to_value(r)?;
        }
        if let Some(path) = &self.html {
            value["html"] = json!(path);
        }
        if self.repair {
            value["restored"] = serde_json::to_value(&restored)?;
        }
        let mut text = String::new();
        for r in &restored {
            let _ = match &r.outcome {
                Ok(uri) => writeln!(text, "restored the record of action {} at {uri}", r.seq),
                Err(e) => writeln!(
                    text,
                    "could not restore the record of action {}: {e}",
                    r.seq
                ),
            };
        }
        text.push_str(&html::text_summary(
            &report,
            replayed.as_deref(),
            self.html.as_deref(),
        ));
        ctx.emit(text, value);
        if !report.is_clean() {
            bail!(
                "token {}: {} finding(s) in its action history",
                self.token,
                report.findings.len()
            );
        }
        Ok(())
    }
}
