//! A test double of the `inft` program's host: agents whose steps the test scripts (succeed,
//! fail N times, stop for good, take long) and which write real, signed action records through
//! the runtime's outbox into the (fenced) database, so budgets, last records and lease fencing
//! are the real ones. No chain: records stay pending, and a flush only notes that it ran.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use agent_runtime::db::Db;
use agent_runtime::outbox::{
    ChainHead, ChainLog, ChainLogError, LoggedAction, Outbox, OutboxConfig, TxConfirmation,
};
use agent_runtime::record::{ActionDraft, ActionKind, ActionRecord, LogId};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use inft_service::{
    AgentError, AgentHost, AgentSpec, HostedAgent, ServeConfig, StepSummary, StopReason,
};
use tokio::time::Instant;

pub const CHAIN_ID: u64 = 31337;
pub const ACTION_LOG: Address = Address::repeat_byte(0xa1);

/// What happened to an agent, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Opened,
    OpenFailed,
    StepStarted,
    StepDone(u64),
    StepFailed,
    Stopped,
    Flushed,
}

/// One agent's script and what it saw.
pub struct Script {
    /// Opens still to fail.
    pub fail_opens: AtomicU32,
    /// Steps still to fail (an RPC error), after `fail_after` successful ones.
    pub fail_steps: AtomicU32,
    /// Successful steps before the failures start.
    pub fail_after: u64,
    /// Steps after which every step stops the agent for good (revoked).
    pub stop_after: Option<u64>,
    /// How long a step takes.
    pub step_time: Duration,
    /// The kind of action a step records.
    pub kind: &'static str,
    pub opens: AtomicU32,
    pub succeeded: AtomicU64,
    pub events: Mutex<Vec<(Instant, Event)>>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            fail_opens: AtomicU32::new(0),
            fail_steps: AtomicU32::new(0),
            fail_after: 0,
            stop_after: None,
            step_time: Duration::ZERO,
            kind: "creative",
            opens: AtomicU32::new(0),
            succeeded: AtomicU64::new(0),
            events: Mutex::new(Vec::new()),
        }
    }
}

impl Script {
    pub fn note(&self, e: Event) {
        self.events.lock().unwrap().push((Instant::now(), e));
    }

    pub fn events(&self) -> Vec<(Instant, Event)> {
        self.events.lock().unwrap().clone()
    }

    pub fn starts(&self) -> Vec<Instant> {
        self.events()
            .into_iter()
            .filter(|(_, e)| *e == Event::StepStarted)
            .map(|(t, _)| t)
            .collect()
    }

    pub fn count(&self, what: &Event) -> usize {
        self.events().iter().filter(|(_, e)| e == what).count()
    }
}

/// The host: one script per token id (decimal).
pub struct FakeHost {
    pub scripts: HashMap<String, Arc<Script>>,
    pub block: Arc<AtomicU64>,
    pub block_poll: Duration,
    /// Steps running at once, across agents.
    pub concurrency: Arc<Concurrency>,
}

/// Steps running now, and the most seen at once.
#[derive(Default)]
pub struct Concurrency {
    pub now: AtomicUsize,
    pub most: AtomicUsize,
}

impl FakeHost {
    pub fn new(scripts: impl IntoIterator<Item = (u64, Script)>) -> Arc<Self> {
        Arc::new(Self {
            scripts: scripts
                .into_iter()
                .map(|(t, s)| (t.to_string(), Arc::new(s)))
                .collect(),
            block: Arc::new(AtomicU64::new(100)),
            block_poll: Duration::from_millis(20),
            concurrency: Arc::default(),
        })
    }

    pub fn script(&self, token: u64) -> Arc<Script> {
        self.scripts[&token.to_string()].clone()
    }
}

pub fn log_of(token: u64) -> LogId {
    LogId {
        chain_id: CHAIN_ID,
        action_log: ACTION_LOG,
        token_id: U256::from(token),
    }
}

impl AgentHost for FakeHost {
    type Agent = FakeAgent;

    async fn open(&self, spec: &AgentSpec, db: Db) -> Result<FakeAgent, AgentError> {
        let id = spec
            .token_id()
            .map_err(|e| AgentError::failed(anyhow::anyhow!(e)))?;
        let script = self.scripts[&id.to_string()].clone();
        script.opens.fetch_add(1, Ordering::SeqCst);
        if script
            .fail_opens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            script.note(Event::OpenFailed);
            return Err(AgentError::failed(anyhow::anyhow!("unsealing failed")));
        }
        let log = log_of(id.to::<u64>());
        let mut key = [0u8; 32];
        key[24..].copy_from_slice(&(id.to::<u64>() + 1).to_be_bytes());
        let signer = PrivateKeySigner::from_bytes(&B256::from(key)).unwrap();
        let outbox = Outbox::new(db, Arc::new(NoChain), OutboxConfig::default());
        script.note(Event::Opened);
        Ok(FakeAgent {
            script,
            log,
            outbox,
            signer,
            concurrency: self.concurrency.clone(),
        })
    }

    async fn block_number(&self) -> Result<u64, AgentError> {
        Ok(self.block.load(Ordering::SeqCst))
    }

    fn block_poll_interval(&self) -> Duration {
        self.block_poll
    }
}

pub struct FakeAgent {
    script: Arc<Script>,
    log: LogId,
    outbox: Outbox,
    signer: PrivateKeySigner,
    concurrency: Arc<Concurrency>,
}

impl HostedAgent for FakeAgent {
    fn log(&self) -> LogId {
        self.log
    }

    async fn step(&mut self) -> Result<StepSummary, AgentError> {
        let s = self.script.clone();
        s.note(Event::StepStarted);
        let now = self.concurrency.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.concurrency.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(s.step_time).await;
        self.concurrency.now.fetch_sub(1, Ordering::SeqCst);
        let done = s.succeeded.load(Ordering::SeqCst);
        if let Some(n) = s.stop_after
            && done >= n
        {
            s.note(Event::Stopped);
            return Err(AgentError::Stopped(StopReason::Revoked));
        }
        if done >= s.fail_after
            && s.fail_steps
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            s.note(Event::StepFailed);
            // What reqwest says when an RPC endpoint is down: the URL, with the provider's API key in
            // its path.
            return Err(AgentError::rpc(anyhow::anyhow!(
                "error sending request for url (https://rpc.example/v2/SECRETKEY): connection refused"
            )));
        }
        // The next record of the log, as the database holds it.
        let db = self.outbox.db();
        let (seq, prev) = match db.last_record(&self.log).await {
            Ok(Some(r)) => (r.record.record().seq + 1, r.record.record_hash()),
            Ok(None) => (1, B256::ZERO),
            Err(e) => return Err(AgentError::failed(e)),
        };
        let draft = ActionDraft {
            kind: ActionKind::parse(s.kind).unwrap(),
            model_hash: B256::repeat_byte(7),
            prompt: format!("step {seq}"),
            keep_prompt: true,
            output: format!("output {seq}"),
            sampler: serde_json::json!({"temperature": 0.0}),
            seed: seq,
            llama_build: "fake".into(),
            tx_hash: None,
            details: serde_json::Value::Null,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let signed = ActionRecord::new(&self.log, seq, prev, draft, now)
            .sign(&self.signer)
            .map_err(AgentError::failed)?;
        match self.outbox.append_signed(&signed).await {
            Ok(()) => {}
            Err(e) if e.is_lease_lost() => return Err(AgentError::LeaseLost),
            Err(e) => return Err(AgentError::failed(e)),
        }
        s.succeeded.fetch_add(1, Ordering::SeqCst);
        s.note(Event::StepDone(seq));
        Ok(StepSummary {
            seq,
            kind: s.kind.into(),
            summary: format!("{} #{seq}", s.kind),
            record_hash: signed.record_hash(),
            refusal: (s.kind == "refusal").then(|| "max-slippage".into()),
            tokens_generated: 32,
            generation_secs: 0.5,
            gas_used: if s.kind == "trade" { 150_000 } else { 0 },
            gas_cost_wei: if s.kind == "trade" { 3_000_000 } else { 0 },
        })
    }

    async fn flush(&mut self) -> Result<(), AgentError> {
        self.script.note(Event::Flushed);
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<u64, AgentError> {
        let pending = self
            .outbox
            .db()
            .unconfirmed(&self.log, 10_000)
            .await
            .map_err(AgentError::failed)?;
        Ok(pending.len() as u64)
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.script.kind,
            "steps": self.script.succeeded.load(Ordering::SeqCst),
        })
    }
}

/// A chain that is never reached (records are appended, never sent).
struct NoChain;

#[async_trait::async_trait]
impl ChainLog for NoChain {
    async fn head(&self, _: &LogId) -> Result<ChainHead, ChainLogError> {
        Err(ChainLogError::transient("no chain in these tests"))
    }
    async fn logged_hashes(&self, _: &LogId, _: u64, _: u64) -> Result<Vec<B256>, ChainLogError> {
        Err(ChainLogError::transient("no chain in these tests"))
    }
    async fn logged_actions(
        &self,
        _: &LogId,
        _: u64,
        _: u64,
    ) -> Result<Vec<LoggedAction>, ChainLogError> {
        Err(ChainLogError::transient("no chain in these tests"))
    }
    async fn log_actions(&self, _: &LogId, _: u64, _: &[B256]) -> Result<B256, ChainLogError> {
        Err(ChainLogError::transient("no chain in these tests"))
    }
    async fn confirm(&self, _: B256) -> Result<TxConfirmation, ChainLogError> {
        Err(ChainLogError::transient("no chain in these tests"))
    }
}

/// A config file for `agents` (TOML lines of each `[[agent]]` after its token), written to
/// `dir` and loaded like `inft serve --config` does.
pub fn config(dir: &Path, node: &str, extra: &str, agents: &[(u64, &str)]) -> ServeConfig {
    let mut text = format!(
        "[node]\nhome = \".\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[fleet]\nnode_id = \"{node}\"\nlease_secs = 2\n\n{extra}\n"
    );
    for (token, lines) in agents {
        text.push_str(&format!(
            "\n[[agent]]\ntoken = \"{token}\"\naccount = \"alice\"\n{lines}\n"
        ));
    }
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, text).unwrap();
    ServeConfig::load(&path).unwrap()
}

/// Logs to the test's output (`RUST_LOG=inft_service=debug cargo test` to see them).
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// Polls `cond` every 20 ms until it holds or `within` passes; whether it held.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
