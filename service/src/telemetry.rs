//! Prometheus metrics of one service, through the `metrics` facade.
//!
//! Each [`Telemetry`] owns its own recorder (built with `PrometheusBuilder::build_recorder`,
//! never installed as the process's global one), and every metric is emitted inside
//! [`metrics::with_local_recorder`]. So two services in one process (the fleet tests run two
//! nodes) keep separate metrics, and an embedding program stays free to install a global
//! recorder of its own. `/metrics` renders this recorder's handle.

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::host::StepSummary;

/// Steps run, by token and action kind.
pub const STEPS: &str = "inft_steps_total";
/// Trades sent.
pub const TRADES: &str = "inft_trades_total";
/// Intents the policy firewall refused, by reason.
pub const REFUSALS: &str = "inft_refusals_total";
/// Outbox entries not yet confirmed on chain.
pub const OUTBOX_DEPTH: &str = "inft_outbox_depth";
/// Generation speed of the last step.
pub const TOKENS_PER_SECOND: &str = "inft_tokens_per_second";
/// Gas used by the agents' transactions.
pub const GAS_USED: &str = "inft_gas_used_total";
/// Wei spent on that gas.
pub const GAS_SPENT_WEI: &str = "inft_gas_spent_wei_total";
/// Failures of the chain's RPC endpoint met by an agent.
pub const RPC_ERRORS: &str = "inft_rpc_errors_total";
/// Failed opens and steps (each followed by a backoff).
pub const AGENT_FAILURES: &str = "inft_agent_failures_total";
/// Agents stopped for good, by reason.
pub const AGENTS_STOPPED: &str = "inft_agents_stopped_total";
/// Wall time of a step.
pub const STEP_SECONDS: &str = "inft_step_duration_seconds";
/// Leases this node holds.
pub const LEASES_HELD: &str = "inft_leases_held";
/// Leases this node took over from a node whose lease had expired.
pub const LEASE_TAKEOVERS: &str = "inft_lease_takeovers_total";
/// Leases this node lost (a renewal refused, or a write refused by the fence).
pub const LEASES_LOST: &str = "inft_leases_lost_total";
/// Nodes of the fleet seen alive at the last heartbeat.
pub const LIVE_NODES: &str = "inft_live_nodes";

/// Buckets of [`STEP_SECONDS`]: from a hold decided by a classical strategy to a long
/// generation on a CPU.
const STEP_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// One service's metrics.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A fresh recorder with every metric described.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(STEP_SECONDS.into()), STEP_BUCKETS)
            .expect("the step buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let telemetry = Self { recorder, handle };
        telemetry.with(describe);
        telemetry
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets (the fleet loop calls it each round, so
    /// memory stays bounded between scrapes).
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Makes an agent's counters visible at zero before anything happened to it, so a rate
    /// over them starts from its first scrape.
    pub(crate) fn register_agent(&self, token: &str) {
        self.with(|| {
            for name in [TRADES, GAS_USED, GAS_SPENT_WEI, RPC_ERRORS, AGENT_FAILURES] {
                counter!(name, "token" => token.to_owned()).absolute(0);
            }
        });
    }

    /// Makes the node's own metrics visible before the first lease.
    pub(crate) fn register_node(&self) {
        self.with(|| {
            counter!(LEASE_TAKEOVERS).absolute(0);
            counter!(LEASES_LOST).absolute(0);
            gauge!(LEASES_HELD).set(0.0);
        });
    }

    /// A step that succeeded.
    pub(crate) fn step(&self, token: &str, s: &StepSummary, took: Duration) {
        self.with(|| {
            let token = token.to_owned();
            counter!(STEPS, "token" => token.clone(), "kind" => s.kind.clone()).increment(1);
            histogram!(STEP_SECONDS, "token" => token.clone()).record(took.as_secs_f64());
            if s.kind == "trade" {
                counter!(TRADES, "token" => token.clone()).increment(1);
            }
            if s.refusal.is_some() || s.kind == "refusal" {
                let reason = s.refusal.clone().unwrap_or_else(|| "unknown".into());
                counter!(REFUSALS, "token" => token.clone(), "reason" => reason).increment(1);
            }
            if s.tokens_generated > 0 && s.generation_secs > 0.0 {
                gauge!(TOKENS_PER_SECOND, "token" => token.clone())
                    .set(s.tokens_generated as f64 / s.generation_secs);
            }
            counter!(GAS_USED, "token" => token.clone()).increment(s.gas_used);
            // Counters are u64: a node would have to burn ~18 ETH of gas for one agent to
            // saturate it.
            counter!(GAS_SPENT_WEI, "token" => token)
                .increment(u64::try_from(s.gas_cost_wei).unwrap_or(u64::MAX));
        });
    }

    /// An open or a step that failed (retried after a backoff).
    pub(crate) fn failure(&self, token: &str, rpc: bool) {
        self.with(|| {
            counter!(AGENT_FAILURES, "token" => token.to_owned()).increment(1);
            if rpc {
                counter!(RPC_ERRORS, "token" => token.to_owned()).increment(1);
            }
        });
    }

    /// An agent stopped for good.
    pub(crate) fn stopped(&self, token: &str, reason: &str) {
        self.with(|| {
            counter!(AGENTS_STOPPED, "token" => token.to_owned(), "reason" => reason.to_owned())
                .increment(1);
        });
    }

    pub(crate) fn outbox_depth(&self, token: &str, depth: u64) {
        self.with(|| gauge!(OUTBOX_DEPTH, "token" => token.to_owned()).set(depth as f64));
    }

    pub(crate) fn leases_held(&self, n: usize) {
        self.with(|| gauge!(LEASES_HELD).set(n as f64));
    }

    pub(crate) fn live_nodes(&self, n: u64) {
        self.with(|| gauge!(LIVE_NODES).set(n as f64));
    }

    pub(crate) fn takeover(&self) {
        self.with(|| counter!(LEASE_TAKEOVERS).increment(1));
    }

    pub(crate) fn lease_lost(&self) {
        self.with(|| counter!(LEASES_LOST).increment(1));
    }
}

fn describe() {
    describe_counter!(STEPS, "Steps run, by token and action kind.");
    describe_counter!(TRADES, "Trades sent on chain.");
    describe_counter!(
        REFUSALS,
        "Trade intents the policy firewall refused, by reason."
    );
    describe_gauge!(OUTBOX_DEPTH, "Action records not yet confirmed on chain.");
    describe_gauge!(
        TOKENS_PER_SECOND,
        "Tokens generated per second in the last step."
    );
    describe_counter!(GAS_USED, "Gas used by the agent's transactions.");
    describe_counter!(
        GAS_SPENT_WEI,
        "Wei spent on gas by the agent's transactions."
    );
    describe_counter!(RPC_ERRORS, "Failures of the chain's JSON-RPC endpoint.");
    describe_counter!(
        AGENT_FAILURES,
        "Failed opens and steps, each retried after a backoff."
    );
    describe_counter!(AGENTS_STOPPED, "Agents stopped for good, by reason.");
    describe_histogram!(STEP_SECONDS, Unit::Seconds, "Wall time of a step.");
    describe_gauge!(LEASES_HELD, "Agent leases this node holds.");
    describe_counter!(
        LEASE_TAKEOVERS,
        "Leases taken over from a node whose lease had expired."
    );
    describe_counter!(LEASES_LOST, "Leases this node lost to another node.");
    describe_gauge!(
        LIVE_NODES,
        "Nodes of the fleet alive at the last heartbeat."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_services_keep_separate_described_metrics() {
        let a = Telemetry::new();
        let b = Telemetry::new();
        let s = StepSummary {
            kind: "trade".into(),
            gas_used: 21_000,
            gas_cost_wei: 42,
            tokens_generated: 10,
            generation_secs: 0.5,
            ..Default::default()
        };
        a.step("1", &s, Duration::from_millis(300));
        let text = a.render();
        assert!(text.contains("# HELP inft_steps_total Steps run"), "{text}");
        assert!(
            text.contains(r#"inft_steps_total{token="1",kind="trade"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"inft_trades_total{token="1"} 1"#), "{text}");
        assert!(
            text.contains(r#"inft_gas_used_total{token="1"} 21000"#),
            "{text}"
        );
        assert!(
            text.contains(r#"inft_tokens_per_second{token="1"} 20"#),
            "{text}"
        );
        assert!(text.contains("inft_step_duration_seconds_bucket"), "{text}");
        assert!(!b.render().contains("inft_steps_total{"));
    }
}
