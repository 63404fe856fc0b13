//! The observability listener: `GET /health`, `GET /agents`, `GET /metrics`.
//!
//! Read-only and unauthenticated, so it listens on loopback unless the config says otherwise;
//! it shows no secret (token ids, states, record hashes, what the agents report of themselves).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio::time::Instant;

use crate::shutdown::Shutdown;
use crate::state::{AgentState, AgentView, Board};
use crate::telemetry::Telemetry;

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) node: Arc<str>,
    pub(crate) started: Instant,
    pub(crate) board: Arc<Board>,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) shutdown: Shutdown,
}

/// `GET /health`.
#[derive(Debug, Serialize)]
struct Health {
    /// `ok`, or `shutting-down` once a shutdown was requested.
    status: &'static str,
    node: Arc<str>,
    uptime_secs: u64,
    /// Agents hosted on this node (leased here and not stopped).
    agents: usize,
    /// Agents in the config (the fleet's, across all nodes).
    configured: usize,
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/agents", get(agents))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(State(s): State<HttpState>) -> Json<Health> {
    let views = s.board.snapshot();
    let here = views
        .iter()
        .filter(|v| v.node.as_deref() == Some(&*s.node))
        .filter(|v| !matches!(v.state, AgentState::Stopped | AgentState::Elsewhere))
        .count();
    Json(Health {
        status: if s.shutdown.is_triggered() {
            "shutting-down"
        } else {
            "ok"
        },
        node: s.node.clone(),
        uptime_secs: s.started.elapsed().as_secs(),
        agents: here,
        configured: views.len(),
    })
}

async fn agents(State(s): State<HttpState>) -> Json<Vec<AgentView>> {
    Json(s.board.snapshot())
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        s.telemetry.render(),
    )
}
