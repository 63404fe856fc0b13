//! `inft audit`: rebuild an agent's history from chain events and public records, verify it,
//! optionally replay its inferences, and write a self-contained HTML report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use agent_runtime::audit::html;
use agent_runtime::audit::{
    AuditReport, AuditTarget, ReplayedAction, audit_token, restore_records,
};
use agent_runtime::blobstore::BlobStore;
use agent_runtime::db::Db;
use agent_runtime::provenance::exported_pieces;
use alloy::primitives::U256;
use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;

use super::Run;
use super::node::{Indexed, Node, NodeOpts, WalletOpts};
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// `inft audit`
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    #[command(flatten)]
    node: NodeOpts,
    /// Also write a self-contained HTML report (timeline, findings, PnL chart) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// With --html: link each creative action to its piece exported into DIR by
    /// `inft creations --out DIR` (only files whose bytes are the logged piece are linked).
    #[arg(long, value_name = "DIR", requires = "html")]
    pieces: Option<PathBuf>,
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
        let spinner = ctx.spinner("indexing chain events and verifying records");
        let token = self.token.resolve(&node).await?;
        let (Indexed { reader, db, synced }, store, mut report) =
            index_and_audit(&node, token).await?;
        let target = audit_target(&node, token);
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
            Some(
                self.replay_actions(&node, token, &db, store.as_ref(), &report)
                    .await?,
            )
        } else {
            None
        };
        spinner.finish_and_clear();

        if let Some(path) = &self.html {
            let pieces = match &self.pieces {
                Some(dir) => piece_links(path, dir, &report),
                None => BTreeMap::new(),
            };
            let page = html::html_report_linked(&report, replayed.as_deref(), &pieces);
            std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
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
        // The summary names the token in full on its first line: people read the short form.
        let summary = html::text_summary(&report, replayed.as_deref(), self.html.as_deref());
        text.push_str(&summary.replacen(&token.to_string(), &Id(token).to_string(), 1));
        ctx.emit(text, value);
        if !report.is_clean() {
            bail!(
                "token {}: {} finding(s) in its action history",
                Id(token),
                report.findings.len()
            );
        }
        Ok(())
    }
}

impl AuditArgs {
    /// Re-runs the token's logged inferences on its unsealed model (`--replay`).
    #[cfg(feature = "engine")]
    async fn replay_actions(
        &self,
        node: &Node,
        token: U256,
        db: &Db,
        store: &dyn BlobStore,
        report: &AuditReport,
    ) -> anyhow::Result<Vec<ReplayedAction>> {
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let secret = node.sealing_secret(&wallet).await?;
        let opened = inft_runtime::open_agent(
            &nft,
            store,
            wallet.address(),
            &secret,
            token,
            inft_contracts::scopes::RUN,
            &inft_runtime::UnsealOptions::default(),
        )
        .await
        .context("opening the agent for replay")?;
        let agent = opened.agent;
        let context = inft_engine::ContextOptions {
            n_threads: self.threads.or(agent.config.context.n_threads),
            ..agent.config.context
        };
        let records: Vec<_> = report
            .actions
            .iter()
            .filter_map(|a| a.record.clone())
            .collect();
        let prompts = agent_runtime::audit::private_prompts_of(db, &records).await?;
        let mut engine = inft_engine::Replayer::new(agent.model.clone(), context);
        Ok(tokio::task::spawn_blocking(move || {
            agent_runtime::audit::replay_with_prompts(&mut engine, &records, &prompts)
        })
        .await?)
    }

    /// Without the engine there is nothing to replay on: say how to get a build that has it.
    #[cfg(not(feature = "engine"))]
    async fn replay_actions(
        &self,
        _node: &Node,
        _token: U256,
        _db: &Db,
        _store: &dyn BlobStore,
        _report: &AuditReport,
    ) -> anyhow::Result<Vec<ReplayedAction>> {
        bail!(
            "--replay runs the model, and this inft was built without the inference engine \
             (--no-default-features): audit without --replay, or use an inft built with its \
             default features"
        )
    }
}

/// Indexes the node's chain events and audits `token` from them and the node's record store
/// (what `audit`, `creations` and `royalties` start from).
pub(crate) async fn index_and_audit(
    node: &Node,
    token: U256,
) -> anyhow::Result<(Indexed, Arc<dyn BlobStore>, AuditReport)> {
    let indexed = node.indexed().await?;
    let store = node.store()?;
    let report = audit_token(
        &indexed.reader,
        &indexed.db,
        store.as_ref(),
        &audit_target(node, token),
    )
    .await?;
    Ok((indexed, store, report))
}

/// The audit target of `token` in the node's deployment.
pub(crate) fn audit_target(node: &Node, token: U256) -> AuditTarget {
    let d = &node.deployment;
    AuditTarget {
        chain_id: d.chain_id,
        agent_nft: d.agent_nft,
        action_log: d.action_log,
        token_id: token,
    }
}

/// Links from the report at `html` to the pieces exported into `dir` (by seq): relative to the
/// report's directory when `dir` is below it, else absolute.
fn piece_links(html: &Path, dir: &Path, report: &AuditReport) -> BTreeMap<u64, String> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let base = absolute(html.parent().unwrap_or(Path::new(".")));
    exported_pieces(dir, report)
        .into_iter()
        .map(|(seq, path)| {
            let path = absolute(&path);
            let shown = path.strip_prefix(&base).unwrap_or(&path);
            let href: Vec<String> = shown
                .components()
                .filter_map(|c| match c {
                    Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
            let prefix = if shown.is_absolute() { "file:///" } else { "" };
            (seq, format!("{prefix}{}", href.join("/")))
        })
        .collect()
}
