//! The agent loop: strategy step → signed record in the outbox → batched on-chain logging.

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;

use crate::strategy::{AgentSession, Strategy, StrategyError};
use agent_runtime::outbox::{FlushReport, Outbox, OutboxError};
use agent_runtime::record::{ActionDraft, ActionKind, LogId, SignedRecord};

/// What one step recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    /// The step number (from 0).
    pub step: u64,
    /// The record's position in the token's log.
    pub seq: u64,
    /// The record hash that goes on chain.
    pub record_hash: B256,
    /// The transaction the action sent (a trade), if any.
    pub tx_hash: Option<B256>,
    /// What kind of action it was.
    pub kind: ActionKind,
    /// The model's output (or a classical rule's proposal), as recorded.
    pub output: String,
    /// The record's kind-specific details (trade fill, refusal reason, piece title, …).
    pub details: serde_json::Value,
}

/// What a run recorded and logged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Each step, in order.
    pub steps: Vec<StepReport>,
    /// The final flush of the outbox (everything logged and confirmed).
    pub flush: FlushReport,
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A strategy step failed; the steps before it are recorded and logged.
    #[error("step {step} failed: {source}")]
    Step {
        /// The step that failed.
        step: u64,
        /// Why.
        #[source]
        source: StrategyError,
    },
    /// Recording or logging failed; recorded actions stay in the outbox and are logged by the
    /// next run.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Runs `steps` steps of `strategy`. Each action is signed and committed to the outbox before
/// the next step starts; a background logger sends batches to the chain meanwhile, and the run
/// ends by flushing the outbox until every record is confirmed on chain.
///
/// Crash safety comes from the outbox: records committed before a crash are logged by the next
/// run (or `Outbox::flush`), none twice.
///
/// The final flush holds the session's key, so it also re-signs records whose sequence numbers
/// another account (a LOG grantee) took ([`Outbox::flush_rebasing`]); the background logger
/// cannot, and leaves them to it. The step reports then give each record's final position.
pub async fn run_steps<S: Strategy>(
    session: &mut AgentSession,
    strategy: &mut S,
    outbox: &Outbox,
    steps: u64,
    mut on_step: impl FnMut(&StepReport),
) -> Result<RunReport, RunError> {
    let log = *session.log();
    // Records left from an interrupted run go first, and the local position catches up with the
    // chain (e.g. actions a previous owner logged).
    outbox.sync_position(&log).await?;
    // This run's key logs this token only.
    let logger = outbox.spawn_for(log);
    let mut report = RunReport::default();
    let mut failure = None;
    for step in 0..steps {
        match run_step(session, strategy, outbox, step).await {
            Ok(step_report) => {
                on_step(&step_report);
                report.steps.push(step_report);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    logger.shutdown().await;
    // Whatever happened, log what was recorded.
    report.flush = outbox.flush_rebasing(&log, session.signer()).await?;
    for s in &mut report.steps {
        (s.seq, s.record_hash) = report.flush.position_of(s.seq, s.record_hash);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Runs one step of `strategy` and commits the signed record with its outbox entry (the
/// logger sends it). The loop of [`run_steps`], for callers that schedule steps themselves (a
/// service): they start a logger with [`Outbox::spawn_for`] and flush with
/// [`Outbox::flush_rebasing`] as `run_steps` does.
pub async fn run_step<S: Strategy>(
    session: &mut AgentSession,
    strategy: &mut S,
    outbox: &Outbox,
    step: u64,
) -> Result<StepReport, RunError> {
    let log = *session.log();
    let draft = strategy
        .step(session, step)
        .await
        .map_err(|source| RunError::Step { step, source })?;
    let kind = draft.kind.clone();
    let signed = outbox.append(&log, draft, session.signer()).await?;
    let record = signed.record();
    let report = StepReport {
        step,
        seq: record.seq,
        record_hash: signed.record_hash(),
        tx_hash: record.tx_hash,
        kind,
        output: record.output.clone(),
        details: record.details.clone(),
    };
    tracing::info!(step, seq = report.seq, kind = %report.kind, "action recorded");
    Ok(report)
}

/// Records one action outside the step loop (e.g. the memory update after a run): signs `draft`
/// with the session's key, commits it to the outbox and flushes until it is confirmed on chain
/// (re-signing displaced records, as [`run_steps`] does). The record continues the same hash
/// chain as the steps before it; the one returned is as logged (moved, if it was).
pub async fn record_action(
    session: &AgentSession,
    outbox: &Outbox,
    draft: ActionDraft,
) -> Result<(SignedRecord, FlushReport), OutboxError> {
    record_signed(session.log(), session.signer(), outbox, draft).await
}

/// [`record_action`] with the log and the signing key rather than the session (whose inference
/// context may not be shared across threads), for callers that must stay `Send`.
pub async fn record_signed(
    log: &LogId,
    signer: &PrivateKeySigner,
    outbox: &Outbox,
    draft: ActionDraft,
) -> Result<(SignedRecord, FlushReport), OutboxError> {
    let signed = outbox.append(log, draft, signer).await?;
    let record = signed.record();
    tracing::info!(seq = record.seq, kind = %record.kind, "action recorded");
    let flush = outbox.flush_rebasing(log, signer).await?;
    let (seq, hash) = flush.position_of(record.seq, signed.record_hash());
    if hash != signed.record_hash()
        && let Some(stored) = outbox.db().record(log, seq).await?
    {
        return Ok((stored.record, flush));
    }
    Ok((signed, flush))
}
