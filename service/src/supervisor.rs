//! One agent's supervisor: opens the agent, steps it on its schedule within its daily budget,
//! backs off after failures, and stops it for good when the host says so.
//!
//! A supervisor runs only while its node holds the agent's lease (the fleet loop spawns it and,
//! when the lease is lost, aborts it at once). It is asked to finish through `release`: it
//! then lets the step in progress finish, flushes the outbox and returns. Failures never leave
//! the supervisor: one agent failing does not disturb the others.

use std::sync::Arc;
use std::time::Duration;

use agent_runtime::db::Db;
use agent_runtime::record::LogId;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::{AgentSpec, LimitsSection, Schedule};
use crate::host::{AgentError, AgentHost, HostedAgent, StepSummary, StopReason};
use crate::lines::AgentLines;
use crate::redact::redact_urls;
use crate::schedule::{Backoff, next_due, next_utc_midnight_ms, utc_day_start_ms};
use crate::state::{AgentCell, AgentState, LastAction, rfc3339, wall_at_ms, wall_in};
use crate::telemetry::Telemetry;

/// How often an idle agent's status and outbox depth are refreshed for `/agents` and the
/// `inft_outbox_depth` gauge.
const REFRESH: Duration = Duration::from_secs(5);

/// What every supervisor of a node shares.
pub(crate) struct Shared {
    pub(crate) telemetry: Arc<Telemetry>,
    /// Steps running at once on this node (`[limits] parallel_steps`).
    pub(crate) permits: Semaphore,
    pub(crate) limits: LimitsSection,
}

/// Why a supervisor returned.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Asked to finish (shutdown or rebalancing): the step in progress finished and the outbox
    /// was flushed; the lease can be released.
    Released,
    /// The agent stopped for good.
    Stopped(StopReason),
    /// The fence refused a write: another node holds the lease now.
    LeaseLost,
}

/// What to do after an error.
enum Next {
    /// Retry after this delay.
    Retry(Duration),
    /// Return.
    Exit(Exit),
}

pub(crate) struct Supervisor<H: AgentHost> {
    pub(crate) spec: AgentSpec,
    /// The token id, decimal (labels, logs).
    pub(crate) token: String,
    pub(crate) schedule: Schedule,
    pub(crate) host: Arc<H>,
    /// Fenced by the agent's lease.
    pub(crate) db: Db,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cell: AgentCell,
    /// Cancelled to ask the supervisor to finish between steps.
    pub(crate) release: CancellationToken,
    /// The agent's name, once it is open (for the log lines).
    pub(crate) name: std::sync::OnceLock<String>,
}

impl<H: AgentHost> Supervisor<H> {
    /// This agent's log lines.
    fn lines(&self) -> AgentLines<'_> {
        AgentLines {
            token: &self.token,
            name: self.name.get().map(String::as_str),
        }
    }

    pub(crate) async fn run(self) -> Exit {
        let mut backoff = Backoff::new(&self.shared.limits);
        let mut agent = loop {
            self.cell.set(AgentState::Starting, None);
            // Opening (unsealing, loading a model) is not a step: a shutdown does not wait for it.
            let opened = tokio::select! {
                _ = self.release.cancelled() => return Exit::Released,
                opened = self.host.open(&self.spec, self.db.clone()) => opened,
            };
            match opened {
                Ok(agent) => break agent,
                Err(e) => match self.on_error(e, &mut backoff, "open").await {
                    Next::Retry(delay) => {
                        if self.pause(delay).await.is_err() {
                            return Exit::Released;
                        }
                    }
                    Next::Exit(exit) => return exit,
                },
            }
        };
        backoff.reset();
        let log = agent.log();
        if let Some(name) = agent.name() {
            let _ = self.name.set(name.to_owned());
        }
        let last_seq = self.show_last_record(&log).await;
        self.lines().started(last_seq);
        self.show_agent(&mut agent).await;

        match self.drive(&mut agent, &log, &mut backoff).await {
            Exit::Released => {
                self.cell.set(AgentState::ShuttingDown, None);
                match agent.finish_run().await {
                    Ok(Some(done)) => self.lines().finished_run(&done),
                    Ok(None) => {}
                    Err(e) => self.lines().run_not_finished(&redact_urls(&e.to_string())),
                }
                let flushed = self.flush(&mut agent).await;
                self.lines()
                    .released(flushed.as_ref().map_err(String::as_str).copied());
                Exit::Released
            }
            Exit::Stopped(reason) => {
                // Records committed before the stop still belong in the log.
                if let Err(e) = self.flush(&mut agent).await {
                    self.lines().not_flushed(&e);
                }
                Exit::Stopped(reason)
            }
            Exit::LeaseLost => Exit::LeaseLost,
        }
    }

    /// Steps the opened agent until asked to finish or stopped.
    async fn drive(&self, agent: &mut H::Agent, log: &LogId, backoff: &mut Backoff) -> Exit {
        // When the next step is due: at once for the first one.
        let mut due = Instant::now();
        // Every-N-blocks: the block seen before the last step.
        let mut last_block: Option<u64> = None;
        // After a failure: retry at this moment, whatever the schedule says.
        let mut retry_at: Option<Instant> = None;
        loop {
            let retrying = retry_at.take();
            if let Some(at) = retrying
                && self.sleep_until(at).await.is_err()
            {
                return Exit::Released;
            }
            let block = match self.schedule {
                Schedule::Every(_) => {
                    if retrying.is_none() {
                        self.cell
                            .set(AgentState::Idle, Some(wall_in(due - Instant::now())));
                        if self.idle_until(agent, due).await.is_err() {
                            return Exit::Released;
                        }
                    }
                    None
                }
                // A retry goes at once; it only needs the block it is based on.
                Schedule::Blocks(n) => {
                    let since = if retrying.is_some() { None } else { last_block };
                    match self.wait_blocks(agent, since, n).await {
                        Ok(Some(b)) => Some(b),
                        Ok(None) => return Exit::Released,
                        Err(e) => match self.on_error(e, backoff, "block number").await {
                            Next::Retry(d) => {
                                retry_at = Some(Instant::now() + d);
                                continue;
                            }
                            Next::Exit(exit) => return exit,
                        },
                    }
                }
            };
            if self.release.is_cancelled() {
                return Exit::Released;
            }
            // The moment this step was due, from which the cadence goes on (no drift).
            let base = if retrying.is_some() {
                Instant::now()
            } else {
                due
            };

            // The day's budget, counted in the (shared) database.
            if let Some(limit) = self.spec.daily_steps {
                let now = agent_now_ms();
                match self
                    .db
                    .count_records_since(log, utc_day_start_ms(now))
                    .await
                {
                    Ok(done) if done >= limit => {
                        let midnight = next_utc_midnight_ms(now);
                        self.lines()
                            .budget_spent(done, limit, &rfc3339(wall_at_ms(midnight)));
                        self.cell
                            .set(AgentState::BudgetExhausted, Some(wall_at_ms(midnight)));
                        let wait = Duration::from_millis(midnight.saturating_sub(now));
                        if self.idle_until(agent, Instant::now() + wait).await.is_err() {
                            return Exit::Released;
                        }
                        // A new day: step at once, then on the schedule.
                        due = Instant::now();
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let e = AgentError::failed(
                            anyhow::Error::new(e).context("counting the day's steps"),
                        );
                        match self.on_error(e, backoff, "budget").await {
                            Next::Retry(d) => {
                                retry_at = Some(Instant::now() + d);
                                continue;
                            }
                            Next::Exit(exit) => return exit,
                        }
                    }
                }
            }

            let permit = tokio::select! {
                _ = self.release.cancelled() => return Exit::Released,
                permit = self.shared.permits.acquire() => permit,
            };
            self.cell.set(AgentState::Stepping, None);
            let step_started = Instant::now();
            // A step in progress is never interrupted by a shutdown: it finishes (the fleet
            // loop aborts the whole task if the lease is lost).
            let result = agent.step().await;
            drop(permit);
            match result {
                Ok(summary) => {
                    backoff.reset();
                    self.stepped(&summary, step_started.elapsed());
                    self.show_agent(agent).await;
                    if let Schedule::Every(period) = self.schedule {
                        due = next_due(base, period, Instant::now());
                    }
                    last_block = block.or(last_block);
                }
                Err(e) => match self.on_error(e, backoff, "step").await {
                    // The retry replaces the step that failed; the cadence goes on from it.
                    Next::Retry(d) => retry_at = Some(Instant::now() + d),
                    Next::Exit(exit) => return exit,
                },
            }
        }
    }

    /// Waits until `n` blocks have passed since `last` (or not at all before the first step)
    /// and returns the block number seen; `None` if asked to finish meanwhile.
    async fn wait_blocks(
        &self,
        agent: &mut H::Agent,
        last: Option<u64>,
        n: u64,
    ) -> Result<Option<u64>, AgentError> {
        let poll = self.host.block_poll_interval();
        self.cell.set(AgentState::Idle, None);
        let mut refreshed = Instant::now();
        loop {
            if refreshed.elapsed() >= REFRESH {
                self.show_agent(agent).await;
                refreshed = Instant::now();
            }
            let block = self.host.block_number().await?;
            match last {
                Some(last) if block < last.saturating_add(n) => {}
                _ => return Ok(Some(block)),
            }
            if self.pause(poll).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Accounts for an error and says what follows.
    async fn on_error(&self, e: AgentError, backoff: &mut Backoff, during: &str) -> Next {
        match e {
            AgentError::Stopped(reason) => {
                self.lines().stopped(&reason);
                let label = serde_json::to_value(&reason)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                self.shared.telemetry.stopped(&self.token, &label);
                self.cell.update(|v| {
                    v.state = AgentState::Stopped;
                    v.next_step_at = None;
                    v.stop_reason = Some(reason.clone().into());
                });
                Next::Exit(Exit::Stopped(reason))
            }
            AgentError::LeaseLost => {
                self.lines().lease_lost(during);
                Next::Exit(Exit::LeaseLost)
            }
            AgentError::Failed { error, rpc } => {
                self.shared.telemetry.failure(&self.token, rpc);
                let delay = backoff.next_delay();
                // RPC URLs in errors may carry API keys: neither the log nor the board shows them.
                let error = redact_urls(&format!("{error:#}"));
                self.lines()
                    .failed(during, &error, backoff.failures(), delay);
                self.cell.update(|v| {
                    v.state = AgentState::Backoff;
                    v.last_error = Some(format!("{during}: {error}"));
                    v.next_step_at = Some(rfc3339(wall_in(delay)));
                });
                Next::Retry(delay)
            }
        }
    }

    /// Books a successful step: metrics, the progress line, the view.
    fn stepped(&self, s: &StepSummary, took: Duration) {
        self.shared.telemetry.step(&self.token, s, took);
        self.lines().action(s);
        self.cell.update(|v| {
            v.steps += 1;
            v.seq = Some(s.seq);
            v.last_error = None;
            v.last_action = Some(LastAction {
                seq: s.seq,
                kind: s.kind.clone(),
                summary: s.summary.clone(),
                record_hash: s.record_hash,
                at: rfc3339(std::time::SystemTime::now()),
            });
        });
    }

    /// Shows the log's last record (from before this start) until the first step; returns
    /// its seq.
    async fn show_last_record(&self, log: &LogId) -> Option<u64> {
        match self.db.last_record(log).await {
            Ok(Some(stored)) => {
                let r = stored.record.record();
                let action = LastAction {
                    seq: r.seq,
                    kind: r.kind.as_str().to_owned(),
                    summary: String::new(),
                    record_hash: stored.record.record_hash(),
                    at: rfc3339(wall_at_ms(stored.created_at_ms)),
                };
                let seq = action.seq;
                self.cell.update(|v| {
                    v.seq = Some(action.seq);
                    v.last_action = Some(action);
                });
                Some(seq)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(token = %self.token, error = %e, "last record unreadable: {e}");
                None
            }
        }
    }

    /// Refreshes what the agent reports of itself and its outbox depth.
    async fn show_agent(&self, agent: &mut H::Agent) {
        let status = agent.status();
        let depth = match agent.outbox_depth().await {
            Ok(d) => {
                self.shared.telemetry.outbox_depth(&self.token, d);
                Some(d)
            }
            Err(e) => {
                tracing::debug!(token = %self.token, error = %e, "outbox depth unknown: {e}");
                None
            }
        };
        self.cell.update(|v| {
            v.status = status;
            if depth.is_some() {
                v.outbox_depth = depth;
            }
        });
    }

    /// Flushes the outbox; `Err` says why it was not (redacted).
    async fn flush(&self, agent: &mut H::Agent) -> Result<(), String> {
        let flushed = agent.flush().await.map_err(|e| redact_urls(&e.to_string()));
        self.show_agent(agent).await;
        flushed
    }

    /// Waits until `at`, refreshing the agent's status and outbox depth every [`REFRESH`]
    /// (its outbox drains in the background between steps); `Err` if asked to finish.
    async fn idle_until(&self, agent: &mut H::Agent, at: Instant) -> Result<(), Released> {
        loop {
            let next = at.min(Instant::now() + REFRESH);
            self.sleep_until(next).await?;
            if next >= at {
                return Ok(());
            }
            self.show_agent(agent).await;
        }
    }

    /// Sleeps `d`; `Err` if asked to finish meanwhile.
    async fn pause(&self, d: Duration) -> Result<(), Released> {
        self.sleep_until(Instant::now() + d).await
    }

    async fn sleep_until(&self, at: Instant) -> Result<(), Released> {
        tokio::select! {
            _ = self.release.cancelled() => Err(Released),
            _ = sleep_until(at) => Ok(()),
        }
    }
}

/// Asked to finish while waiting.
struct Released;

fn agent_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
