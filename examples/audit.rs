//! Job 4, **audit**: rebuild an agent's action history from chain events and public records and
//! verify it, as anyone can (no wallet, no key), and catch a tampered record.
//!
//! The example first makes a history: a creative agent runs three steps on the stand-in model,
//! each action signed by the agent key, published to a public record store and logged on chain.
//! Then an auditor indexes the chain's events, and `audit_token` checks every logged hash
//! against its published record, the hash chain (each record names the one before), the
//! signatures (the agent registered at the time) and the `logActions` receipts. Finally one
//! published record is edited, and the audit pins the change to that action. This is what
//! `inft audit TOKEN` does (plus an HTML report and, with `--replay`, re-running inference).
//!
//! ```sh
//! cargo run -p inft-examples --example audit
//! ```

use std::sync::Arc;

use agent_runtime::audit::{AuditReport, AuditTarget, Finding, audit_token};
use agent_runtime::blobstore::LocalDirStore;
use agent_runtime::db::Db;
use agent_runtime::indexer::Indexer;
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::record::LogId;
use alloy::primitives::U256;
use inft_contracts::scopes;
use inft_engine::grammar::CREATIVE_MAX_TOKENS;
use inft_examples::Sandbox;
use inft_runtime::{AgentSession, run_steps};
use inft_types::config::AgentKind;
use strategies::creative::CreativeStrategy;

const PROMPT: &str = "Write a short poem about the sea.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let d = sandbox.deployment.clone();
    // Where agents publish their signed action records, for anyone to read (a local directory
    // here; an HTTP gateway in production).
    let public = Arc::new(LocalDirStore::open(sandbox.dir.path().join("public"))?);

    // --- The agent's side: mint, open, run three steps, each action published and logged. ---
    let alice = sandbox.actor(1).await?;
    let config = sandbox.config(
        "poet",
        AgentKind::Creative {
            prompt: PROMPT.into(),
        },
        CREATIVE_MAX_TOKENS,
    );
    let minted = sandbox.mint(&alice, &config, 1).await?;
    let token = minted.token_id;
    let opened = sandbox.open(&alice, token, scopes::RUN).await?;
    let agent_key = opened
        .agent
        .agent_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner unseals the agent key"))?;
    let log = LogId {
        chain_id: d.chain_id,
        action_log: d.action_log,
        token_id: token,
    };
    let context = opened
        .agent
        .model
        .new_context(&opened.agent.config.context)?;
    let mut session = AgentSession::new(
        log,
        d.agent_nft,
        opened.agent.config.clone(),
        agent_key.clone(),
        context,
    );
    let outbox = Outbox::publishing(
        Db::open(sandbox.dir.path().join("agent.db")).await?,
        Arc::new(AlloyChainLog::new(
            sandbox.provider(&agent_key),
            d.start_block,
        )),
        public.clone(),
        OutboxConfig::default(),
    );
    // (The stand-in model's weights are random, so its "poems" are noise; the audit does not
    // care what was written, only that the record is the one signed and logged.)
    let mut strategy = CreativeStrategy::new(PROMPT);
    let run = run_steps(&mut session, &mut strategy, &outbox, 3, |s| {
        println!("agent logged action {} ({})", s.seq, s.kind.as_str());
    })
    .await?;
    anyhow::ensure!(
        run.steps.len() == 3,
        "the agent ran {} steps",
        run.steps.len()
    );

    // --- The auditor's side: a read-only provider, its own database, the public records. ---
    let auditor_db = Db::open(sandbox.dir.path().join("auditor.db")).await?;
    let target = AuditTarget {
        chain_id: d.chain_id,
        agent_nft: d.agent_nft,
        action_log: d.action_log,
        token_id: token,
    };
    let audit = async || -> anyhow::Result<AuditReport> {
        // Index the NFT's and the ActionLog's events (resumes where it stopped), then audit.
        Indexer::new(
            sandbox.reader(),
            d.chain_id,
            d.agent_nft,
            d.action_log,
            d.start_block,
        )
        .sync(&auditor_db)
        .await?;
        Ok(audit_token(&sandbox.reader(), &auditor_db, public.as_ref(), &target).await?)
    };

    let report = audit().await?;
    print_report(token, &report);
    anyhow::ensure!(
        report.is_clean(),
        "the intact history has findings: {:?}",
        report.findings
    );
    anyhow::ensure!(
        report.chain_seq == 3 && report.actions.len() == 3,
        "three actions"
    );
    for (action, step) in report.actions.iter().zip(&run.steps) {
        anyhow::ensure!(
            action.record_hash == step.record_hash,
            "action {} differs",
            action.seq
        );
        anyhow::ensure!(
            action.signer == Some(minted.agent),
            "action {} signer",
            action.seq
        );
    }

    // --- Tamper: someone edits the published record of action 2 (its output). ---
    let path = public.record_path(&report.actions[1].record_hash);
    let original = std::fs::read(&path)?;
    let mut record: serde_json::Value = serde_json::from_slice(&original)?;
    *find_output(&mut record).ok_or_else(|| anyhow::anyhow!("no output field in the record"))? =
        serde_json::Value::String("a better poem, written later".into());
    std::fs::write(&path, serde_json::to_vec(&record)?)?;
    println!("\nedited the published record of action 2");

    let tampered = audit().await?;
    print_report(token, &tampered);
    anyhow::ensure!(
        matches!(
            tampered.findings.as_slice(),
            [Finding::ModifiedRecord { seq: 2, .. }]
        ),
        "the tampered record was not pinned to action 2: {:?}",
        tampered.findings
    );
    println!("the audit pins the tampering to action 2; the other actions still verify");
    Ok(())
}

/// The record's `output` field, wherever the signed envelope keeps it.
fn find_output(value: &mut serde_json::Value) -> Option<&mut serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("output").is_some_and(serde_json::Value::is_string) {
                return map.get_mut("output");
            }
            map.values_mut().find_map(find_output)
        }
        _ => None,
    }
}

fn print_report(token: U256, report: &AuditReport) {
    println!(
        "\naudit of token {token}: {} actions on chain, head {}",
        report.chain_seq, report.chain_head
    );
    for change in &report.history {
        println!(
            "  block {:>3} {:<8} -> {}",
            change.block_number, change.event, change.to
        );
    }
    for a in &report.actions {
        let signer = a.signer.map_or_else(|| "?".to_owned(), |s| s.to_string());
        println!(
            "  action {} {} record {}\n           signed by {signer}, logged in tx {}",
            a.seq,
            if a.ok { "ok " } else { "BAD" },
            a.record_hash,
            a.log_tx,
        );
    }
    if report.is_clean() {
        println!("  verified: hash chain, signatures and receipts all check out");
    }
    for f in &report.findings {
        println!("  FINDING: {f}");
    }
}
