//! `serve` end to end against a real database (SQLite in a temporary directory, or the
//! PostgreSQL server of `INFT_TEST_DATABASE_URL`), with scripted agents (tests/support).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agent_runtime::db::Db;
use agent_runtime::db::testing::TestDb;
use inft_service::{
    AgentState, AgentView, Observer, ServeConfig, ServeError, ServeReport, Service, Shutdown,
};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use support::{Event, FakeHost, Script, config, eventually, init_logs, log_of};

/// A service running in a task.
struct Node {
    name: String,
    addr: SocketAddr,
    observer: Observer,
    shutdown: Shutdown,
    task: JoinHandle<Result<ServeReport, ServeError>>,
}

impl Node {
    async fn start(config: ServeConfig, db: Db, host: Arc<FakeHost>) -> Self {
        init_logs();
        let shutdown = Shutdown::new();
        let service = Service::bind(config, db, host, shutdown.clone())
            .await
            .unwrap();
        Self {
            name: service.node_id().to_owned(),
            addr: service.local_addr(),
            observer: service.observer(),
            shutdown,
            task: tokio::spawn(service.run()),
        }
    }

    fn agent(&self, token: u64) -> AgentView {
        let token = token.to_string();
        self.observer
            .agents()
            .into_iter()
            .find(|a| a.token == token)
            .unwrap()
    }

    /// Agents this node runs (leased here, whatever their state).
    fn holds(&self) -> usize {
        self.observer
            .agents()
            .iter()
            .filter(|a| a.node.as_deref() == Some(&self.name) && a.state != AgentState::Elsewhere)
            .count()
    }

    async fn stop(self) -> ServeReport {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the service shuts down")
            .unwrap()
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap()
    }
}

const SECS: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_follow_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([(1, Script::default())]);
    let cfg = config(dir.path(), "n1", "", &[(1, "every_secs = 0.2")]);
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    let script = host.script(1);

    assert!(eventually(4 * SECS, || script.succeeded.load(Ordering::SeqCst) >= 6).await);
    let starts = script.starts();
    for gap in starts.windows(2).map(|w| w[1] - w[0]) {
        assert!(
            gap >= Duration::from_millis(170) && gap <= Duration::from_millis(400),
            "steps every 0.2 s, got a gap of {gap:?}"
        );
    }
    let view = node.agent(1);
    assert_eq!(view.node.as_deref(), Some("n1"));
    assert!(view.steps >= 6);
    assert_eq!(view.seq, Some(view.steps));
    let last = view.last_action.unwrap();
    assert_eq!((last.seq, last.kind.as_str()), (view.steps, "creative"));
    assert!(matches!(
        view.state,
        AgentState::Idle | AgentState::Stepping
    ));

    let report = node.stop().await;
    assert_eq!(report.node, "n1");
    assert_eq!(report.steps(), script.succeeded.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_and_recover_without_stopping_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([
        (
            1,
            Script {
                fail_after: 1,
                fail_steps: 4.into(),
                ..Default::default()
            },
        ),
        (2, Script::default()),
        (
            3,
            Script {
                fail_opens: 2.into(),
                ..Default::default()
            },
        ),
    ]);
    let limits = "[limits]\nparallel_steps = 3\nbackoff_secs = 0.05\nmax_backoff_secs = 0.2";
    let every = "every_secs = 0.1";
    let cfg = config(
        dir.path(),
        "n1",
        limits,
        &[(1, every), (2, every), (3, every)],
    );
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    let (flaky, steady, unsealing) = (host.script(1), host.script(2), host.script(3));

    assert!(eventually(5 * SECS, || flaky.succeeded.load(Ordering::SeqCst) >= 3).await);
    assert!(eventually(2 * SECS, || unsealing.succeeded.load(Ordering::SeqCst) >= 1).await);

    // The retries of the flaky agent waited longer and longer: failure n waits at least half
    // of min(0.05 · 2ⁿ⁻¹, 0.2) s.
    let events = flaky.events();
    let attempts: Vec<(Instant, bool)> = events
        .windows(2)
        .filter(|w| w[0].1 == Event::StepStarted)
        .map(|w| (w[0].0, w[1].1 == Event::StepFailed))
        .collect();
    let failed_at: Vec<usize> = (0..attempts.len()).filter(|&k| attempts[k].1).collect();
    assert_eq!(failed_at.len(), 4, "{events:?}");
    let minimum = [25, 50, 100, 100];
    for (n, &k) in failed_at.iter().enumerate() {
        let gap = attempts[k + 1].0 - attempts[k].0;
        assert!(
            gap >= Duration::from_millis(minimum[n]),
            "failure {} retried after {gap:?}",
            n + 1
        );
    }
    // Meanwhile the steady agent went on stepping.
    let (first_failure, recovery) = (attempts[failed_at[0]].0, attempts[failed_at[3] + 1].0);
    let steady_meanwhile = steady
        .events()
        .iter()
        .filter(|(t, e)| matches!(e, Event::StepDone(_)) && *t > first_failure && *t < recovery)
        .count();
    assert!(
        steady_meanwhile >= 2,
        "steady agent stepped {steady_meanwhile} times meanwhile"
    );

    // The agent whose opening failed was opened again, and runs.
    assert_eq!(unsealing.opens.load(Ordering::SeqCst), 3);
    assert_eq!(unsealing.count(&Event::OpenFailed), 2);

    let view = node.agent(1);
    assert_eq!(view.last_error, None, "a success clears the error");
    let metrics = node.observer.metrics();
    for line in [
        r#"inft_agent_failures_total{token="1"} 4"#,
        r#"inft_rpc_errors_total{token="1"} 4"#,
        r#"inft_agent_failures_total{token="2"} 0"#,
        r#"inft_agent_failures_total{token="3"} 2"#,
        r#"inft_rpc_errors_total{token="3"} 0"#,
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_shows_without_the_api_key_in_its_rpc_url() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([(
        1,
        Script {
            fail_steps: u32::MAX.into(),
            ..Default::default()
        },
    )]);
    let limits = "[limits]\nbackoff_secs = 0.05\nmax_backoff_secs = 0.2";
    let cfg = config(dir.path(), "n1", limits, &[(1, "every_secs = 0.1")]);
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    assert!(eventually(10 * SECS, || node.agent(1).last_error.is_some()).await);
    let shown = node.agent(1).last_error.unwrap();
    assert!(
        shown.contains("https://rpc.example/…") && !shown.contains("SECRETKEY"),
        "{shown}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_stays_stopped_with_its_reason_while_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([
        (
            1,
            Script {
                stop_after: Some(1),
                ..Default::default()
            },
        ),
        (2, Script::default()),
    ]);
    let every = "every_secs = 0.05";
    let cfg = config(dir.path(), "n1", "", &[(1, every), (2, every)]);
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    let (revoked, other) = (host.script(1), host.script(2));

    assert!(eventually(3 * SECS, || node.agent(1).state == AgentState::Stopped).await);
    let before = other.succeeded.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(other.succeeded.load(Ordering::SeqCst) >= before + 3);
    // Never retried, never reopened; its outbox was flushed once.
    assert_eq!(revoked.count(&Event::Stopped), 1);
    assert_eq!(revoked.opens.load(Ordering::SeqCst), 1);
    assert_eq!(revoked.count(&Event::Flushed), 1);
    assert_eq!(revoked.succeeded.load(Ordering::SeqCst), 1);

    let agents: Value = node.get("/agents").await.json().await.unwrap();
    let stopped = &agents[0];
    assert_eq!(stopped["token"], "1");
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(stopped["stop_reason"]["reason"], "revoked");
    assert_eq!(
        stopped["stop_reason"]["message"],
        "the authorization was revoked"
    );
    assert_eq!(stopped["seq"], 1);
    assert_eq!(
        agents[1]["state"].as_str().map(|s| s != "stopped"),
        Some(true)
    );
    let health: Value = node.get("/health").await.json().await.unwrap();
    assert_eq!(health["agents"], 1, "{health}");
    assert!(
        node.observer
            .metrics()
            .contains(r#"inft_agents_stopped_total{token="1",reason="revoked"} 1"#)
    );

    let report = node.stop().await;
    assert_eq!(report.agents[0].state, AgentState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_holds_steps_until_the_next_utc_day() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([(1, Script::default())]);
    let agent = "every_secs = 0.05\ndaily_steps = 3";
    let cfg = config(dir.path(), "n1", "", &[(1, agent)]);
    let node = Node::start(cfg.clone(), test_db.open().await.unwrap(), host.clone()).await;
    let script = host.script(1);

    assert!(
        eventually(3 * SECS, || node.agent(1).state
            == AgentState::BudgetExhausted)
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(script.succeeded.load(Ordering::SeqCst), 3);
    let view = node.agent(1);
    assert_eq!(view.state, AgentState::BudgetExhausted);
    let resumes = view.next_step_at.unwrap();
    assert!(resumes.ends_with("T00:00:00.000Z"), "{resumes}");
    node.stop().await;

    // The budget is the database's: a restart (or another node) does not get a fresh one, and
    // shows the last record from before.
    let db = test_db.open().await.unwrap();
    assert_eq!(db.count_records_since(&log_of(1), 0).await.unwrap(), 3);
    let node = Node::start(cfg, db, host.clone()).await;
    assert!(
        eventually(3 * SECS, || node.agent(1).state
            == AgentState::BudgetExhausted)
        .await
    );
    let view = node.agent(1);
    assert_eq!(view.seq, Some(3));
    assert_eq!(view.last_action.unwrap().seq, 3);
    assert_eq!(view.steps, 0);
    assert_eq!(script.succeeded.load(Ordering::SeqCst), 3);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_step_flushes_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([
        (
            1,
            Script {
                step_time: Duration::from_millis(600),
                ..Default::default()
            },
        ),
        (2, Script::default()),
    ]);
    let every = "every_secs = 0.1";
    let cfg = config(
        dir.path(),
        "n1",
        "[limits]\nparallel_steps = 2",
        &[(1, every), (2, every)],
    );
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    let (slow, quick) = (host.script(1), host.script(2));

    // Wait for a slow step in progress (after a finished one, so the outbox is not empty).
    assert!(
        eventually(5 * SECS, || {
            let done = slow.succeeded.load(Ordering::SeqCst) as usize;
            done >= 1 && slow.count(&Event::StepStarted) > done
        })
        .await
    );
    let triggered = Instant::now();
    node.shutdown.trigger();
    // While the slow step finishes, the idle agent is already shutting down.
    assert!(
        eventually(SECS, || node.agent(2).state == AgentState::ShuttingDown).await,
        "{:?}",
        node.agent(2)
    );
    let health: Value = node.get("/health").await.json().await.unwrap();
    assert_eq!(health["status"], "shutting-down");
    let report = tokio::time::timeout(10 * SECS, node.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let returned = Instant::now();

    let events = slow.events();
    let tail: Vec<&Event> = events.iter().rev().take(3).rev().map(|(_, e)| e).collect();
    assert!(
        matches!(
            tail[..],
            [Event::StepStarted, Event::StepDone(_), Event::Flushed]
        ),
        "the step in progress finished, then the outbox was flushed: {events:?}"
    );
    let (done_at, _) = events[events.len() - 2];
    assert!(done_at > triggered && done_at < returned);
    for script in [&slow, &quick] {
        assert_eq!(script.count(&Event::Flushed), 1);
        let late = script
            .starts()
            .into_iter()
            .filter(|t| *t > triggered + Duration::from_millis(50))
            .count();
        assert_eq!(late, 0, "no step starts after the shutdown");
    }
    assert_eq!(report.agents[0].state, AgentState::ShuttingDown);

    // Leases released, node gone: another node would take the agents at once.
    let db = test_db.open().await.unwrap();
    let leases = db.leases().await.unwrap();
    assert_eq!(leases.len(), 2);
    assert!(leases.iter().all(|l| l.expires_at_ms == 0), "{leases:?}");
    assert_eq!(db.heartbeat_node("other", 2 * SECS).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_agents_and_one_takes_over_a_crashed_one() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let tokens = [1u64, 2, 3, 4];
    let host = FakeHost::new(tokens.map(|t| (t, Script::default())));
    let agents: Vec<(u64, &str)> = tokens.iter().map(|&t| (t, "every_secs = 0.1")).collect();
    let limits = "[limits]\nparallel_steps = 4";

    // Alone, a node takes every agent.
    let a = Node::start(
        config(dir.path(), "node-a", limits, &agents),
        test_db.open().await.unwrap(),
        host.clone(),
    )
    .await;
    assert!(eventually(5 * SECS, || a.holds() == 4).await);

    // A second node joins: the first hands over its excess between steps.
    let b = Node::start(
        config(dir.path(), "node-b", limits, &agents),
        test_db.open().await.unwrap(),
        host.clone(),
    )
    .await;
    assert!(
        eventually(8 * SECS, || a.holds() == 2 && b.holds() == 2).await,
        "a: {:?}\nb: {:?}",
        a.observer.agents(),
        b.observer.agents()
    );
    let handed_over: usize = tokens
        .iter()
        .map(|&t| host.script(t).count(&Event::Flushed))
        .sum();
    assert_eq!(handed_over, 2, "each agent handed over was flushed first");
    // Each node sees the other's agents as elsewhere.
    let elsewhere = b
        .observer
        .agents()
        .into_iter()
        .filter(|v| v.state == AgentState::Elsewhere)
        .collect::<Vec<_>>();
    assert!(
        eventually(2 * SECS, || b
            .observer
            .agents()
            .iter()
            .filter(|v| v.state == AgentState::Elsewhere && v.node.as_deref() == Some("node-a"))
            .count()
            == 2)
        .await,
        "{elsewhere:?}"
    );
    let steps_before = |t: u64| host.script(t).succeeded.load(Ordering::SeqCst);
    let before: Vec<u64> = tokens.iter().map(|&t| steps_before(t)).collect();

    // Node a crashes: no release, no goodbye. Within the lease time, b has all four.
    let crashed = Instant::now();
    a.task.abort();
    assert!(
        eventually(6 * SECS, || b.holds() == 4).await,
        "{:?}",
        b.observer.agents()
    );
    let took = crashed.elapsed();
    assert!(
        took < Duration::from_millis(2000 + 700 + 800),
        "takeover after {took:?} (lease 2 s, rounds every 0.67 s)"
    );
    // And steps them all.
    assert!(
        eventually(3 * SECS, || tokens
            .iter()
            .zip(&before)
            .all(|(&t, &n)| steps_before(t) > n))
        .await
    );
    let metrics = b.observer.metrics();
    assert!(
        metrics.contains("inft_lease_takeovers_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("inft_leases_held 4"), "{metrics}");
    for t in tokens {
        // No double run: every step appended right after the last record (a second runner
        // would have failed its append or its fence).
        assert!(
            metrics.contains(&format!("inft_agent_failures_total{{token=\"{t}\"}} 0")),
            "{metrics}"
        );
    }
    b.stop().await;
    let db = test_db.open().await.unwrap();
    for t in tokens {
        let records = db.records(&log_of(t), 1, 10_000).await;
        let seqs: Vec<u64> = records
            .unwrap()
            .iter()
            .map(|r| r.record.record().seq)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_n_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([(1, Script::default())]);
    let cfg = config(dir.path(), "n1", "", &[(1, "every_blocks = 3")]);
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    let script = host.script(1);
    // The first step goes at once (block 100).
    assert!(eventually(2 * SECS, || script.succeeded.load(Ordering::SeqCst) == 1).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        script.succeeded.load(Ordering::SeqCst),
        1,
        "no new block, no step"
    );
    // 30 blocks later: ten more steps.
    for _ in 0..30 {
        host.block.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let steps = script.succeeded.load(Ordering::SeqCst);
    assert!((9..=11).contains(&steps), "{steps} steps");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(script.succeeded.load(Ordering::SeqCst), steps);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_at_most_parallel_steps_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let slow = || Script {
        step_time: Duration::from_millis(100),
        ..Default::default()
    };
    let host = FakeHost::new([(1, slow()), (2, slow()), (3, slow())]);
    let every = "every_secs = 0.05";
    let cfg = config(dir.path(), "n1", "", &[(1, every), (2, every), (3, every)]);
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    assert!(
        eventually(5 * SECS, || (1..=3).all(|t| host
            .script(t)
            .succeeded
            .load(Ordering::SeqCst)
            >= 2))
        .await
    );
    assert_eq!(host.concurrency.most.load(Ordering::SeqCst), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_agents_and_metrics_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([
        (
            1,
            Script {
                kind: "trade",
                ..Default::default()
            },
        ),
        (
            2,
            Script {
                kind: "refusal",
                ..Default::default()
            },
        ),
    ]);
    let every = "every_secs = 0.1";
    let cfg = config(dir.path(), "n1", "", &[(1, every), (2, every)]);
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    assert!(eventually(3 * SECS, || (1..=2).all(|t| node.agent(t).steps >= 2)).await);

    let health = node.get("/health").await;
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["node"], "n1");
    assert!(health["uptime_secs"].is_u64());
    assert_eq!(health["agents"], 2);

    let agents: Value = node.get("/agents").await.json().await.unwrap();
    let agents = agents.as_array().unwrap();
    assert_eq!(agents.len(), 2);
    let trade = &agents[0];
    let mut keys: Vec<&str> = trade
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "last_action",
            "last_error",
            "next_step_at",
            "node",
            "outbox_depth",
            "seq",
            "state",
            "status",
            "steps",
            "stop_reason",
            "token"
        ]
    );
    assert_eq!(trade["token"], "1");
    assert_eq!(trade["node"], "n1");
    assert!(["idle", "stepping"].contains(&trade["state"].as_str().unwrap()));
    assert!(trade["stop_reason"].is_null());
    let last = &trade["last_action"];
    assert_eq!(last["kind"], "trade");
    assert_eq!(last["seq"], trade["seq"]);
    assert!(last["summary"].as_str().unwrap().starts_with("trade #"));
    assert_eq!(last["record_hash"].as_str().unwrap().len(), 66);
    assert!(last["at"].as_str().unwrap().ends_with('Z'));
    // No chain here: every record is still in the outbox.
    assert!(trade["outbox_depth"].as_u64().unwrap() >= 1);
    assert_eq!(trade["status"]["kind"], "trade");

    let metrics = node.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let content_type = metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = metrics.text().await.unwrap();
    for needle in [
        "# HELP inft_steps_total",
        "# TYPE inft_steps_total counter",
        r#"inft_steps_total{token="1",kind="trade"}"#,
        r#"inft_steps_total{token="2",kind="refusal"}"#,
        r#"inft_trades_total{token="1"}"#,
        r#"inft_trades_total{token="2"} 0"#,
        r#"inft_refusals_total{token="2",reason="max-slippage"}"#,
        r#"inft_outbox_depth{token="1"}"#,
        r#"inft_tokens_per_second{token="1"} 64"#,
        r#"inft_gas_used_total{token="2"} 0"#,
        r#"inft_gas_spent_wei_total{token="1"}"#,
        r#"inft_rpc_errors_total{token="1"} 0"#,
        r#"inft_agent_failures_total{token="1"} 0"#,
        r#"inft_step_duration_seconds_bucket{token="1","#,
        "# TYPE inft_leases_held gauge",
        "inft_leases_held 2",
        "inft_lease_takeovers_total 0",
    ] {
        assert!(text.contains(needle), "no {needle} in\n{text}");
    }
    let gas: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"inft_gas_used_total{token="1"} "#))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(gas % 150_000, 0);
    assert!(gas >= 300_000);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_stops_the_agent_here_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new().await.unwrap();
    let host = FakeHost::new([
        (
            1,
            Script {
                step_time: Duration::from_millis(150),
                ..Default::default()
            },
        ),
        (2, Script::default()),
    ]);
    let every = "every_secs = 0.05";
    let cfg = config(dir.path(), "n1", "", &[(1, every), (2, every)]);
    let node = Node::start(cfg, test_db.open().await.unwrap(), host.clone()).await;
    let (victim, other) = (host.script(1), host.script(2));
    assert!(eventually(3 * SECS, || victim.succeeded.load(Ordering::SeqCst) >= 2).await);

    // Another holder takes the lease (as after this node was paused past its expiry).
    let db = test_db.open().await.unwrap();
    agent_runtime::db::testing::execute(
        &db,
        "UPDATE leases SET holder = 'thief#1', fence = fence + 1, expires_at = expires_at + 600000
         WHERE key = 'agent/1'",
    )
    .await
    .unwrap();
    let stolen = Instant::now();
    assert!(
        eventually(2 * SECS, || {
            let v = node.agent(1);
            v.state == AgentState::Elsewhere && v.node.as_deref() == Some("thief")
        })
        .await,
        "{:?}",
        node.agent(1)
    );
    // Within one round (0.67 s) plus a step no record was added under the old fence.
    let records = db.count_records_since(&log_of(1), 0).await.unwrap();
    let before = other.succeeded.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        db.count_records_since(&log_of(1), 0).await.unwrap(),
        records
    );
    assert!(
        other.succeeded.load(Ordering::SeqCst) > before,
        "the other agent goes on"
    );
    assert!(stolen.elapsed() < 3 * SECS);
    let metrics = node.observer.metrics();
    assert!(metrics.contains("inft_leases_lost_total 1"), "{metrics}");
    assert!(metrics.contains("inft_leases_held 1"), "{metrics}");
    node.stop().await;
}
