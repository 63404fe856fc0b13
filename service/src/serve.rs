//! The service as a whole: bind the listener, run the node loop, serve `/health`, `/agents`
//! and `/metrics`, and report when it is over.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agent_runtime::db::{Db, DbError};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::config::ServeConfig;
use crate::fleet::{Fleet, Slot, holder_name};
use crate::host::AgentHost;
use crate::http::{HttpState, router};
use crate::shutdown::Shutdown;
use crate::state::{AgentView, Board};
use crate::supervisor::Shared;
use crate::telemetry::Telemetry;

/// How long the HTTP listener may take to close its connections once the agents are done.
const HTTP_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The config cannot be served as it is.
    #[error("config: {0}")]
    Config(String),
    /// The observability listener could not bind its address.
    #[error("binding {addr} for /health, /agents and /metrics: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database did not answer the node's first heartbeat.
    #[error("joining the fleet: {0}")]
    Db(#[from] DbError),
}

/// What a service did, once it shut down.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServeReport {
    /// This node's id.
    pub node: String,
    /// Every configured agent's last view.
    pub agents: Vec<AgentView>,
}

impl ServeReport {
    /// Steps this node ran, all agents together.
    pub fn steps(&self) -> u64 {
        self.agents.iter().map(|a| a.steps).sum()
    }
}

/// A read-only view of the service's agents while it runs (what `/agents` serves).
#[derive(Clone)]
pub struct Observer {
    board: Arc<Board>,
    telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

impl Observer {
    /// Every configured agent's view, in config order.
    pub fn agents(&self) -> Vec<AgentView> {
        self.board.snapshot()
    }

    /// The metrics in the Prometheus text format (what `/metrics` serves).
    pub fn metrics(&self) -> String {
        self.telemetry.render()
    }
}

/// A service bound to its listener, ready to [`run`](Service::run).
pub struct Service<H: AgentHost> {
    config: ServeConfig,
    db: Db,
    host: Arc<H>,
    shutdown: Shutdown,
    node: Arc<str>,
    listener: TcpListener,
    local_addr: SocketAddr,
    slots: Vec<Slot>,
    board: Arc<Board>,
    telemetry: Arc<Telemetry>,
}

impl<H: AgentHost> std::fmt::Debug for Service<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("node", &self.node)
            .field("local_addr", &self.local_addr)
            .field("agents", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<H: AgentHost> Service<H> {
    /// Checks the config against the host (schedules, distinct lease keys) and binds the
    /// `[http] listen` address (port 0 picks a free one: see [`local_addr`](Self::local_addr)).
    /// `db` is shared by every node of a fleet; `shutdown` ends [`run`](Self::run).
    pub async fn bind(
        config: ServeConfig,
        db: Db,
        host: Arc<H>,
        shutdown: Shutdown,
    ) -> Result<Self, ServeError> {
        if config.agents.is_empty() {
            return Err(ServeError::Config("no [[agent]] to host".into()));
        }
        if config.fleet.lease_secs < 2 {
            return Err(ServeError::Config(
                "[fleet] lease_secs must be at least 2".into(),
            ));
        }
        if config.limits.parallel_steps == 0 {
            return Err(ServeError::Config(
                "[limits] parallel_steps must be at least 1".into(),
            ));
        }
        let mut slots = Vec::with_capacity(config.agents.len());
        let mut keys = HashMap::new();
        for (i, spec) in config.agents.iter().enumerate() {
            let at = |m: String| {
                ServeError::Config(format!("agent #{} (token {}): {m}", i + 1, spec.token))
            };
            let token = spec.token_id().map_err(at)?.to_string();
            let schedule = spec.schedule().map_err(at)?;
            let key = host.lease_key(spec);
            if let Some(other) = keys.insert(key.clone(), i) {
                return Err(at(format!(
                    "its lease key {key:?} is agent #{}'s too: one agent would run twice",
                    other + 1
                )));
            }
            slots.push(Slot::new(spec.clone(), token, key, schedule));
        }
        let node: Arc<str> = config
            .fleet
            .node_id
            .clone()
            .unwrap_or_else(default_node_id)
            .into();
        let addr = config.http.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let board = Arc::new(Board::new(slots.iter().map(|s| s.token.clone())));
        Ok(Self {
            config,
            db,
            host,
            shutdown,
            node,
            listener,
            local_addr,
            slots,
            board,
            telemetry: Arc::new(Telemetry::new()),
        })
    }

    /// The address `/health`, `/agents` and `/metrics` are served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id in the fleet (`[fleet] node_id`, else `HOSTNAME-PID`).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// A view of the agents that stays valid while the service runs.
    pub fn observer(&self) -> Observer {
        Observer {
            board: self.board.clone(),
            telemetry: self.telemetry.clone(),
        }
    }

    /// Hosts the agents until the shutdown is triggered, then lets the steps in progress
    /// finish, flushes every outbox, releases the leases and leaves the fleet.
    pub async fn run(self) -> Result<ServeReport, ServeError> {
        let Self {
            config,
            db,
            host,
            shutdown,
            node,
            listener,
            local_addr,
            slots,
            board,
            telemetry,
        } = self;
        let ttl = Duration::from_secs(config.fleet.lease_secs);
        // Joining the fleet: fail now if the database does not answer, rather than retry
        // forever with nothing running.
        let holder: Arc<str> = holder_name(&node).into();
        let live = db.heartbeat_node(&holder, ttl).await?;
        let agents = slots.len();
        tracing::info!(
            %node,
            %holder,
            listen = %local_addr,
            agents,
            live_nodes = live,
            "node {node} serving {agents} agent(s) with {live} node(s) live; /health /agents \
             /metrics on http://{local_addr}"
        );

        let http_stop = CancellationToken::new();
        let app = router(HttpState {
            node: node.clone(),
            started: Instant::now(),
            board: board.clone(),
            telemetry: telemetry.clone(),
            shutdown: shutdown.clone(),
        });
        let server =
            axum::serve(listener, app).with_graceful_shutdown(http_stop.clone().cancelled_owned());
        let http = AbortOnDropHandle::new(tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "the HTTP listener failed: {e}");
            }
        }));

        let shared = Arc::new(Shared {
            telemetry,
            permits: Semaphore::new(config.limits.parallel_steps),
            limits: config.limits.clone(),
        });
        Fleet::new(
            node.clone(),
            holder,
            ttl,
            db,
            host,
            shared,
            board.clone(),
            shutdown,
            slots,
        )
        .run()
        .await;

        http_stop.cancel();
        if tokio::time::timeout(HTTP_CLOSE_GRACE, http).await.is_err() {
            tracing::debug!("HTTP connections still open at exit: closed");
        }
        tracing::info!(%node, "node {node} stopped");
        Ok(ServeReport {
            node: node.to_string(),
            agents: board.snapshot(),
        })
    }
}

/// Hosts every `[[agent]]` of `config` until `shutdown` is triggered: [`Service::bind`], then
/// [`Service::run`].
pub async fn serve<H: AgentHost>(
    config: ServeConfig,
    db: Db,
    host: Arc<H>,
    shutdown: Shutdown,
) -> anyhow::Result<ServeReport> {
    Ok(Service::bind(config, db, host, shutdown)
        .await?
        .run()
        .await?)
}

/// `HOSTNAME-PID`: unique among the nodes of a fleet as long as hosts are named apart.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}
