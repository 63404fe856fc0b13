//! The lines a person follows in the service's log: one per action, one per change of an
//! agent's state (started, failed, stopped, released, …).
//!
//! Each line says everything in its message, so a log formatter may print the message alone
//! (`inft serve` does by default: time, short token id, agent name, message). The fields are
//! for machines (`inft serve --log-format json`): `token` (the id in decimal), `agent` (its
//! name, once opened), `state` (the state it entered) and the values the message cites.

use std::time::Duration;

use crate::host::{StepSummary, StopReason};

/// The lines of one agent.
#[derive(Clone, Copy, Debug)]
pub struct AgentLines<'a> {
    /// The token id, decimal.
    pub token: &'a str,
    /// The agent's name (from its sealed config), once it is open.
    pub name: Option<&'a str>,
}

impl AgentLines<'_> {
    /// The agent opened and is about to step; `last_seq`: its log's last record before this
    /// start, if any.
    pub fn started(self, last_seq: Option<u64>) {
        let after = last_seq.map_or_else(String::new, |s| format!(" (last logged seq {s})"));
        tracing::info!(
            token = self.token,
            agent = self.name,
            state = "started",
            last_seq,
            "started{after}"
        );
    }

    /// One action, in the words `inft run` prints it with.
    pub fn action(self, step: &StepSummary) {
        tracing::info!(
            token = self.token,
            agent = self.name,
            seq = step.seq,
            kind = %step.kind,
            record_hash = %step.record_hash,
            "{}",
            step.summary.trim_start()
        );
    }

    /// An attempt failed; retried after `retry_in`. `error` must be redacted already.
    pub fn failed(self, during: &str, error: &str, failures: u32, retry_in: Duration) {
        let secs = retry_in.as_secs_f64();
        tracing::warn!(
            token = self.token,
            agent = self.name,
            state = "backoff",
            during,
            failures,
            retry_in_secs = secs,
            "{during} failed (failure {failures}, retrying in {secs:.1}s): {error}"
        );
    }

    /// Stopped for good.
    pub fn stopped(self, reason: &StopReason) {
        tracing::warn!(token = self.token, agent = self.name, state = "stopped", %reason, "stopped for good: {reason}");
    }

    /// Another node holds the agent now.
    pub fn lease_lost(self, during: &str) {
        tracing::warn!(
            token = self.token,
            agent = self.name,
            state = "elsewhere",
            during,
            "lease lost during {during}: another node holds the agent now"
        );
    }

    /// The daily step budget is spent until `resumes_at`.
    pub fn budget_spent(self, done: u64, limit: u64, resumes_at: &str) {
        tracing::info!(
            token = self.token,
            agent = self.name,
            state = "budget-exhausted",
            done,
            limit,
            resumes_at,
            "daily step budget spent ({done} of {limit}): resumes at {resumes_at}"
        );
    }

    /// What the end of the run did (the owner's memory update).
    pub fn finished_run(self, done: &str) {
        tracing::info!(token = self.token, agent = self.name, "{done}");
    }

    /// The end of the run failed (its actions are logged all the same). `error` redacted.
    pub fn run_not_finished(self, error: &str) {
        tracing::warn!(
            token = self.token,
            agent = self.name,
            "run not finished: {error}"
        );
    }

    /// The agent was let go (shutdown or rebalancing), its outbox flushed or not.
    pub fn released(self, flushed: Result<(), &str>) {
        match flushed {
            Ok(()) => tracing::info!(
                token = self.token,
                agent = self.name,
                state = "released",
                "released: every record logged on chain"
            ),
            Err(e) => tracing::warn!(
                token = self.token,
                agent = self.name,
                state = "released",
                "released with its outbox not flushed ({e}): its records stay in the database \
                 and are logged by the next holder of the agent"
            ),
        }
    }

    /// The outbox could not be flushed after a stop for good.
    pub fn not_flushed(self, error: &str) {
        tracing::warn!(
            token = self.token,
            agent = self.name,
            "outbox not flushed ({error}): its records stay in the database and are logged by \
             the next holder of the agent"
        );
    }

    /// This node took the agent's lease.
    pub fn lease_taken(self, node: &str, fence: u64) {
        tracing::info!(
            token = self.token,
            agent = self.name,
            state = "starting",
            node,
            fence,
            "leased to this node ({node}): opening"
        );
    }

    /// This node took the agent over from a node whose lease expired.
    pub fn taken_over(self, from: &str, fence: u64) {
        tracing::warn!(
            token = self.token,
            agent = self.name,
            state = "starting",
            from,
            fence,
            "taken over from {from}, whose lease expired: opening"
        );
    }

    /// The node hosts more than its share: the agent goes to another node.
    pub fn handing_over(self) {
        tracing::info!(
            token = self.token,
            agent = self.name,
            "handing over to another node (this one hosts more than its fair share)"
        );
    }

    /// The lease is gone: the agent is dropped here at once.
    pub fn dropped(self, why: &str) {
        tracing::warn!(
            token = self.token,
            agent = self.name,
            state = "elsewhere",
            "{why}: agent dropped here"
        );
    }

    /// The agent's supervisor panicked; it starts again.
    pub fn panicked(self, error: &str) {
        tracing::error!(
            token = self.token,
            agent = self.name,
            state = "backoff",
            "supervisor panicked ({error}): restarting it"
        );
    }

    /// A lease operation failed (`what`: renewing, releasing); the lease expires on its own.
    pub fn lease_trouble(self, what: &str, error: &str) {
        tracing::warn!(
            token = self.token,
            agent = self.name,
            "{what} the lease failed: {error}"
        );
    }
}
