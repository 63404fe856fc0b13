//! What the service knows about each configured agent, as `/agents` shows it: the board the
//! supervisors and the fleet loop write and the HTTP handlers read.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::B256;
use serde::Serialize;

use crate::host::StopReason;

/// Where an agent stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AgentState {
    /// Not running yet: waiting for its lease, or being opened (unsealed, model loaded).
    Starting,
    /// Opened, waiting for its next step.
    Idle,
    /// A step is running.
    Stepping,
    /// The last attempt failed; retrying at `next_step_at`.
    Backoff,
    /// The day's step budget is spent; steps resume at the next UTC midnight (`next_step_at`).
    BudgetExhausted,
    /// Stopped for good (`stop_reason` says why); not retried.
    Stopped,
    /// Leased to another node (`node`).
    Elsewhere,
    /// Finishing its step and flushing its outbox before the service exits or hands the agent
    /// to another node.
    ShuttingDown,
}

/// Why an agent stopped: the [`StopReason`] fields plus a sentence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StopInfo {
    /// The reason, serialized (`{"reason": "transferred", "owner": "0x…"}`).
    #[serde(flatten)]
    pub reason: StopReason,
    /// The reason in words.
    pub message: String,
}

impl From<StopReason> for StopInfo {
    fn from(reason: StopReason) -> Self {
        Self {
            message: reason.to_string(),
            reason,
        }
    }
}

/// The agent's last recorded action.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastAction {
    /// Its position in the token's action log.
    pub seq: u64,
    /// Its kind (`creative`, `trade`, `refusal`, …).
    pub kind: String,
    /// One line for people (empty for a record found in the database at start).
    pub summary: String,
    /// The record hash logged on chain.
    pub record_hash: B256,
    /// When it was recorded (RFC 3339, UTC).
    pub at: String,
}

/// One configured agent as `/agents` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentView {
    /// The token id (decimal).
    pub token: String,
    /// The node holding the agent's lease, if any node does.
    pub node: Option<String>,
    /// Where it stands.
    pub state: AgentState,
    /// Why it stopped (state `stopped`).
    pub stop_reason: Option<StopInfo>,
    /// The last sequence number recorded in its action log.
    pub seq: Option<u64>,
    /// Steps this node ran since it started.
    pub steps: u64,
    /// The last recorded action.
    pub last_action: Option<LastAction>,
    /// The last failure, until a step succeeds.
    pub last_error: Option<String>,
    /// When the next step (or retry) is due (RFC 3339, UTC), when known.
    pub next_step_at: Option<String>,
    /// Records not yet confirmed on chain.
    pub outbox_depth: Option<u64>,
    /// What the agent reports of itself (a trading agent's PnL and balances, …).
    pub status: serde_json::Value,
}

impl AgentView {
    fn new(token: String) -> Self {
        Self {
            token,
            node: None,
            state: AgentState::Starting,
            stop_reason: None,
            seq: None,
            steps: 0,
            last_action: None,
            last_error: None,
            next_step_at: None,
            outbox_depth: None,
            status: serde_json::Value::Null,
        }
    }
}

struct Entry {
    view: AgentView,
    /// Bumped whenever the fleet loop gives the agent to a new supervisor or takes it away, so
    /// a supervisor that was aborted cannot overwrite what came after it.
    generation: u64,
}

/// Every configured agent's view, in config order.
pub(crate) struct Board {
    entries: Mutex<Vec<Entry>>,
}

impl Board {
    pub(crate) fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Self {
            entries: Mutex::new(
                tokens
                    .into_iter()
                    .map(|t| Entry {
                        view: AgentView::new(t),
                        generation: 0,
                    })
                    .collect(),
            ),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panicking writer leaves a view half-updated at worst: still worth showing.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every view.
    pub(crate) fn snapshot(&self) -> Vec<AgentView> {
        self.lock().iter().map(|e| e.view.clone()).collect()
    }

    /// Changes agent `index`'s view from the fleet loop, fencing off older supervisors.
    pub(crate) fn take_over(&self, index: usize, f: impl FnOnce(&mut AgentView)) -> u64 {
        let mut entries = self.lock();
        let e = &mut entries[index];
        e.generation += 1;
        f(&mut e.view);
        e.generation
    }

    /// Changes agent `index`'s view from the fleet loop without fencing off its supervisor.
    pub(crate) fn update(&self, index: usize, f: impl FnOnce(&mut AgentView)) {
        f(&mut self.lock()[index].view);
    }

    /// Agent `index`'s view.
    #[cfg(test)]
    pub(crate) fn view(&self, index: usize) -> AgentView {
        self.lock()[index].view.clone()
    }
}

/// A supervisor's pen on its agent's view; writes nothing once the fleet loop took over.
#[derive(Clone)]
pub(crate) struct AgentCell {
    board: Arc<Board>,
    index: usize,
    generation: u64,
}

impl AgentCell {
    pub(crate) fn new(board: Arc<Board>, index: usize, generation: u64) -> Self {
        Self {
            board,
            index,
            generation,
        }
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut AgentView)) {
        let mut entries = self.board.lock();
        let e = &mut entries[self.index];
        if e.generation == self.generation {
            f(&mut e.view);
        }
    }

    /// Sets the state and when the next step is due.
    pub(crate) fn set(&self, state: AgentState, next_step_at: Option<SystemTime>) {
        self.update(|v| {
            v.state = state;
            v.next_step_at = next_step_at.map(rfc3339);
        });
    }
}

/// The wall-clock time `d` from now.
pub(crate) fn wall_in(d: Duration) -> SystemTime {
    SystemTime::now() + d
}

/// The wall-clock time at `ms` since the Unix epoch.
pub(crate) fn wall_at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// RFC 3339 UTC with milliseconds (`2024-03-01T13:45:00.000Z`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    };
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_supervisor_cannot_overwrite_the_fleets_view() {
        let board = Arc::new(Board::new(["1".to_owned()]));
        let g = board.take_over(0, |v| v.node = Some("a".into()));
        let cell = AgentCell::new(board.clone(), 0, g);
        cell.set(AgentState::Idle, None);
        assert_eq!(board.view(0).state, AgentState::Idle);
        board.take_over(0, |v| v.state = AgentState::Elsewhere);
        cell.set(AgentState::Stepping, None);
        assert_eq!(board.view(0).state, AgentState::Elsewhere);
    }

    #[test]
    fn views_serialize_as_agents_documents_them() {
        let mut v = AgentView::new("7".into());
        v.state = AgentState::BudgetExhausted;
        v.stop_reason = Some(
            StopReason::Transferred {
                owner: "0xab".into(),
            }
            .into(),
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["state"], "budget-exhausted");
        assert_eq!(json["stop_reason"]["reason"], "transferred");
        assert_eq!(json["stop_reason"]["owner"], "0xab");
        assert_eq!(
            json["stop_reason"]["message"],
            "the token was transferred to 0xab"
        );
        assert_eq!(
            rfc3339(wall_at_ms(1_709_300_700_000)),
            "2024-03-01T13:45:00.000Z"
        );
    }
}
