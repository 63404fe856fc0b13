//! The node loop: heartbeats, leases, and the supervisors they allow.
//!
//! Every `lease_secs / 3` the loop
//! 1. heartbeats this node and counts the live nodes of the fleet;
//! 2. renews every lease it holds: a refused renewal (the lease expired and another node may
//!    have it) aborts that agent's supervisor at once; a renewal that errs is retried at the
//!    next round until the lease would have expired, then treated as lost;
//! 3. computes its fair share, `ceil(agents / live nodes)`; holding more (a node joined), it
//!    asks the excess supervisors to finish between steps, flush and release their leases;
//!    holding fewer, it takes free or expired leases, trying the agents in an order rotated by
//!    a hash of the node id so that nodes starting together do not all race for the same ones;
//! 4. shows who holds the agents it does not (`elsewhere`).
//!
//! Supervisors live in a [`JoinSet`] owned by the loop: when `serve` returns or is dropped (a
//! crash, a test aborting a node), they go with it.
//!
//! An agent stopped for good keeps its lease (renewed like the others, no supervisor running):
//! handing it over would only make another node open it, see the same stop, and hand it on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent_runtime::db::{Db, Lease};
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::{AgentSpec, Schedule};
use crate::host::AgentHost;
use crate::lines::AgentLines;
use crate::shutdown::Shutdown;
use crate::state::{AgentCell, AgentState, Board};
use crate::supervisor::{Exit, Shared, Supervisor};

/// One configured agent, as the node loop tracks it.
pub(crate) struct Slot {
    pub(crate) spec: AgentSpec,
    /// The token id, decimal.
    pub(crate) token: String,
    /// Its lease key ([`AgentHost::lease_key`]).
    pub(crate) key: String,
    pub(crate) schedule: Schedule,
    held: Option<Held>,
}

/// A lease this node holds.
struct Held {
    lease: Lease,
    /// When the lease expires at the latest, by this node's monotonic clock: the moment the
    /// last successful renewal was *sent*, plus the TTL (the database set the expiry later
    /// than that, on its own clock).
    deadline: Instant,
    /// The running supervisor, if any (none once the agent stopped for good, or after a panic
    /// until the next round respawns it).
    task: Option<(tokio::task::Id, AbortHandle)>,
    /// Asks the supervisor to finish between steps (a child of the shutdown token).
    release: CancellationToken,
    /// Whether `release` was cancelled to rebalance.
    releasing: bool,
    /// Whether the agent stopped for good here.
    stopped: bool,
}

pub(crate) struct Fleet<H: AgentHost> {
    /// This node's id (`[fleet] node_id`), as shown.
    pub(crate) node: Arc<str>,
    /// This process's name in leases and heartbeats: [`holder_name`] of the node id.
    pub(crate) holder: Arc<str>,
    pub(crate) ttl: Duration,
    pub(crate) db: Db,
    pub(crate) host: Arc<H>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) board: Arc<Board>,
    pub(crate) shutdown: Shutdown,
    pub(crate) slots: Vec<Slot>,
    /// Slot indices in this node's preferred order.
    order: Vec<usize>,
    tasks: JoinSet<(usize, Exit)>,
    live_nodes: u64,
    draining: bool,
}

impl Slot {
    pub(crate) fn new(spec: AgentSpec, token: String, key: String, schedule: Schedule) -> Self {
        Self {
            spec,
            token,
            key,
            schedule,
            held: None,
        }
    }
}

impl<H: AgentHost> Fleet<H> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        node: Arc<str>,
        holder: Arc<str>,
        ttl: Duration,
        db: Db,
        host: Arc<H>,
        shared: Arc<Shared>,
        board: Arc<Board>,
        shutdown: Shutdown,
        slots: Vec<Slot>,
    ) -> Self {
        let order = rotated_order(&node, slots.len());
        Self {
            node,
            holder,
            ttl,
            db,
            host,
            shared,
            board,
            shutdown,
            slots,
            order,
            tasks: JoinSet::new(),
            live_nodes: 1,
            draining: false,
        }
    }

    /// Runs until a shutdown was requested and every supervisor finished; then releases every
    /// lease and removes the node's heartbeat.
    pub(crate) async fn run(mut self) {
        let telemetry = self.shared.telemetry.clone();
        telemetry.register_node();
        for s in &self.slots {
            telemetry.register_agent(&s.token);
        }
        let mut round = tokio::time::interval(self.ttl / 3);
        round.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.triggered(), if !self.draining => {
                    let running = self.tasks.len();
                    tracing::info!(node = %self.node, running, "shutting down: finishing the steps in progress of {running} agent(s)");
                    // Every supervisor's release token is a child of the shutdown's: all are
                    // asked to finish already.
                    self.draining = true;
                }
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.reap(joined).await;
                }
                _ = round.tick() => self.maintain().await,
            }
            if self.draining && self.tasks.is_empty() {
                break;
            }
        }
        self.finish().await;
    }

    /// One round: heartbeat, renew, balance, acquire, show.
    async fn maintain(&mut self) {
        match self.db.heartbeat_node(&self.holder, self.ttl).await {
            Ok(n) => self.live_nodes = n.max(1),
            Err(e) => tracing::warn!(node = %self.node, error = %e, "heartbeat failed: {e}"),
        }
        self.shared.telemetry.live_nodes(self.live_nodes);
        let share = fair_share(self.slots.len(), self.live_nodes);

        for i in 0..self.slots.len() {
            self.renew(i).await;
        }
        let leases: HashMap<String, Lease> = match self.db.leases().await {
            Ok(all) => all.into_iter().map(|l| (l.key.clone(), l)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the leases failed: {e}");
                HashMap::new()
            }
        };

        if !self.draining {
            // Supervisors that panicked run again, a round later.
            for i in 0..self.slots.len() {
                if let Some(h) = &self.slots[i].held
                    && h.task.is_none()
                    && !h.stopped
                {
                    self.spawn(i);
                }
            }
            let mut keeping = self.keeping();
            if keeping > share {
                self.shed(keeping - share).await;
            }
            keeping = self.keeping();
            if keeping < share {
                self.acquire(share - keeping, &leases).await;
            }
        }
        self.show_unheld(&leases);
        let held = self.slots.iter().filter(|s| s.held.is_some()).count();
        self.shared.telemetry.leases_held(held);
        self.shared.telemetry.upkeep();
    }

    /// The log lines of agent `i` (its name is known to its supervisor only).
    fn lines(&self, i: usize) -> AgentLines<'_> {
        AgentLines {
            token: &self.slots[i].token,
            name: None,
        }
    }

    /// Leases held and not being handed over.
    fn keeping(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.held.as_ref().is_some_and(|h| !h.releasing))
            .count()
    }

    async fn renew(&mut self, i: usize) {
        let Some(held) = &self.slots[i].held else {
            return;
        };
        let sent = Instant::now();
        match self.db.renew_lease(&held.lease, self.ttl).await {
            Ok(Some(lease)) => {
                if let Some(held) = &mut self.slots[i].held {
                    held.lease = lease;
                    held.deadline = sent + self.ttl;
                }
            }
            Ok(None) => self.lose(
                i,
                "the lease was lost (it expired, or another node took it)",
            ),
            Err(e) if Instant::now() >= held.deadline => {
                self.lose(i, &format!("the lease expired while renewals failed ({e})"));
            }
            Err(e) => self
                .lines(i)
                .lease_trouble("renewing (retried next round)", &e.to_string()),
        }
    }

    /// The lease of agent `i` is gone: abort its supervisor at once (a step in progress would
    /// fail its fenced writes anyway).
    fn lose(&mut self, i: usize, why: &str) {
        let slot = &mut self.slots[i];
        let Some(held) = slot.held.take() else {
            return;
        };
        if let Some((_, task)) = held.task {
            task.abort();
        }
        AgentLines {
            token: &slot.token,
            name: None,
        }
        .dropped(why);
        self.shared.telemetry.lease_lost();
        self.gone(i);
    }

    /// Agent `i` is no longer hosted here: its view waits for the next round to say where it
    /// went, and its outbox gauge stops counting here.
    fn gone(&self, i: usize) {
        self.board.take_over(i, |v| {
            v.node = None;
            v.state = AgentState::Starting;
            v.next_step_at = None;
        });
        self.shared.telemetry.outbox_depth(&self.slots[i].token, 0);
    }

    /// Asks `n` supervisors to finish and hand their agents over (between steps).
    async fn shed(&mut self, n: usize) {
        let candidates: Vec<usize> = self
            .order
            .iter()
            .rev()
            .copied()
            .filter(|&i| self.slots[i].held.as_ref().is_some_and(|h| !h.releasing))
            .take(n)
            .collect();
        for i in candidates {
            self.lines(i).handing_over();
            let Some(held) = &mut self.slots[i].held else {
                continue;
            };
            if held.task.is_some() {
                held.release.cancel();
                held.releasing = true;
            } else if let Some(held) = self.slots[i].held.take() {
                // No supervisor (stopped, or respawning): release at once.
                self.release(i, &held.lease).await;
            }
        }
    }

    /// Takes up to `n` free or expired leases.
    async fn acquire(&mut self, n: usize, leases: &HashMap<String, Lease>) {
        let mut taken = 0;
        for k in 0..self.order.len() {
            if taken == n {
                break;
            }
            let i = self.order[k];
            if self.slots[i].held.is_some() {
                continue;
            }
            let key = self.slots[i].key.clone();
            let sent = Instant::now();
            match self
                .db
                .try_acquire_lease(&key, &self.holder, self.ttl)
                .await
            {
                Ok(Some(lease)) => {
                    match leases.get(&key) {
                        // The previous holder neither renewed nor released it: a takeover.
                        Some(prev) if prev.holder != *self.holder && prev.expires_at_ms != 0 => {
                            self.lines(i).taken_over(&prev.holder, lease.fence);
                            self.shared.telemetry.takeover();
                        }
                        _ => self.lines(i).lease_taken(&self.node, lease.fence),
                    }
                    self.slots[i].held = Some(Held {
                        lease,
                        deadline: sent + self.ttl,
                        task: None,
                        release: CancellationToken::new(),
                        releasing: false,
                        stopped: false,
                    });
                    self.spawn(i);
                    taken += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%key, error = %e, "taking the lease {key} failed: {e}");
                    break;
                }
            }
        }
    }

    /// Starts the supervisor of held agent `i`.
    fn spawn(&mut self, i: usize) {
        let node = self.node.clone();
        let generation = self.board.take_over(i, |v| {
            v.node = Some(node.to_string());
            v.state = AgentState::Starting;
            v.stop_reason = None;
            v.next_step_at = None;
        });
        let release = self.shutdown.token().child_token();
        let slot = &mut self.slots[i];
        let Some(held) = &mut slot.held else {
            return;
        };
        let supervisor = Supervisor {
            spec: slot.spec.clone(),
            token: slot.token.clone(),
            schedule: slot.schedule,
            host: self.host.clone(),
            db: self.db.fenced(&held.lease),
            shared: self.shared.clone(),
            cell: AgentCell::new(self.board.clone(), i, generation),
            release: release.clone(),
            name: std::sync::OnceLock::new(),
        };
        let task = self.tasks.spawn(async move { (i, supervisor.run().await) });
        held.task = Some((task.id(), task));
        held.release = release;
        held.releasing = false;
    }

    /// A supervisor returned (or panicked, or was aborted).
    async fn reap(&mut self, joined: Result<(tokio::task::Id, (usize, Exit)), JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, (i, exit))) => (id, Ok((i, exit))),
            Err(e) => (e.id(), Err(e)),
        };
        // Only the slot's current supervisor counts: an aborted one was already accounted for.
        let Some(i) = self.slots.iter().position(|s| {
            s.held
                .as_ref()
                .and_then(|h| h.task.as_ref())
                .is_some_and(|(t, _)| *t == id)
        }) else {
            return;
        };
        let token = self.slots[i].token.clone();
        if let Some(held) = &mut self.slots[i].held {
            held.task = None;
        }
        match outcome {
            Ok((_, Exit::Released)) => {
                let Some(held) = self.slots[i].held.take() else {
                    return;
                };
                self.release(i, &held.lease).await;
                if !self.draining {
                    self.gone(i);
                }
            }
            Ok((_, Exit::Stopped(_))) => {
                if let Some(held) = &mut self.slots[i].held {
                    held.stopped = true;
                }
            }
            Ok((_, Exit::LeaseLost)) => {
                // The fence refused a write: the lease is someone else's; nothing to release.
                self.slots[i].held = None;
                self.shared.telemetry.lease_lost();
                self.gone(i);
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                self.lines(i).panicked(&e.to_string());
                self.shared.telemetry.failure(&token, false);
                self.board.update(i, |v| {
                    v.state = AgentState::Backoff;
                    v.last_error = Some(format!("supervisor panicked: {e}"));
                });
            }
        }
    }

    async fn release(&self, i: usize, lease: &Lease) {
        match self.db.release_lease(lease).await {
            Ok(()) => tracing::debug!(token = %self.slots[i].token, "lease released"),
            // It expires on its own within the TTL.
            Err(e) => self
                .lines(i)
                .lease_trouble("releasing (it expires on its own)", &e.to_string()),
        }
    }

    /// Shows who holds the agents this node does not.
    fn show_unheld(&self, leases: &HashMap<String, Lease>) {
        if self.draining {
            // The agents handed back show `shutting-down` until the service exits.
            return;
        }
        let now = now_ms();
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.held.is_some() {
                continue;
            }
            // Expiry is on the database's clock: close enough to ours for a display.
            let holder = leases
                .get(&slot.key)
                .filter(|l| l.holder != *self.holder && l.expires_at_ms > now)
                .map(|l| node_of(&l.holder).to_owned());
            self.board.take_over(i, |v| {
                v.next_step_at = None;
                match holder {
                    Some(h) => {
                        v.node = Some(h);
                        v.state = AgentState::Elsewhere;
                        v.stop_reason = None;
                    }
                    None => {
                        v.node = None;
                        v.state = AgentState::Starting;
                    }
                }
            });
        }
    }

    /// After the last supervisor finished: release every lease, leave the fleet.
    async fn finish(&mut self) {
        for i in 0..self.slots.len() {
            if let Some(held) = self.slots[i].held.take() {
                self.release(i, &held.lease).await;
            }
        }
        if let Err(e) = self.db.remove_node(&self.holder).await {
            tracing::warn!(node = %self.node, error = %e, "removing the node's heartbeat failed: {e}");
        }
        self.shared.telemetry.leases_held(0);
        tracing::info!(node = %self.node, "every lease of node {} released", self.node);
    }
}

/// The name a process holds leases and heartbeats under: its node id and a random instance
/// number, `NODE#INSTANCE`.
///
/// Two processes must never share a holder name: the database would renew one's leases for
/// the other (same holder, same fence), and fencing would tell them apart no more. The
/// instance number keeps them apart even when node ids collide: a fixed `node_id` in a config
/// shared by the whole fleet, or a container restarted with the same hostname and PID, which
/// then waits for its previous incarnation's leases to expire instead of taking them back
/// while that incarnation might still be writing.
pub(crate) fn holder_name(node: &str) -> String {
    format!("{node}#{:016x}", rand::random::<u64>())
}

/// The node id of a holder name (what `/agents` shows).
pub(crate) fn node_of(holder: &str) -> &str {
    holder.rsplit_once('#').map_or(holder, |(node, _)| node)
}

/// The most agents one of `live` nodes should hold.
pub(crate) fn fair_share(agents: usize, live: u64) -> usize {
    let live = usize::try_from(live.max(1)).unwrap_or(usize::MAX);
    agents.div_ceil(live)
}

/// `0..n` rotated by a hash of the node id (FNV-1a: stable across builds and platforms).
pub(crate) fn rotated_order(node: &str, n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let offset = (hash % n as u64) as usize;
    (0..n).map(|k| (k + offset) % n).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_names_differ_per_process_and_show_the_node() {
        let (a, b) = (holder_name("n#1"), holder_name("n#1"));
        assert_ne!(a, b);
        assert_eq!(node_of(&a), "n#1");
        assert_eq!(node_of("plain"), "plain");
    }

    #[test]
    fn fair_shares_cover_every_agent() {
        assert_eq!(fair_share(4, 1), 4);
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(5, 2), 3);
        assert_eq!(fair_share(3, 5), 1);
        assert_eq!(fair_share(3, 0), 3);
        assert_eq!(fair_share(0, 3), 0);
    }

    #[test]
    fn orders_are_rotations_that_differ_between_nodes() {
        let a = rotated_order("node-a", 7);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..7).collect::<Vec<_>>());
        assert!(a.windows(2).all(|w| w[1] == (w[0] + 1) % 7));
        let starts: std::collections::HashSet<usize> = (0..20)
            .map(|k| rotated_order(&format!("node-{k}"), 7)[0])
            .collect();
        assert!(starts.len() > 1);
        assert!(rotated_order("x", 0).is_empty());
    }
}
