//! `inft serve` end to end, through the real binary: a real anvil chain (`inft dev up`), the real
//! contracts and Uniswap V2, the real instruct model (SmolLM2, fetched by scripts/setup.sh) shared
//! by every agent, real SQLite and a real PostgreSQL (scripts/postgres.sh).
//!
//! - one node hosts two creative and two trading agents for over a minute, beside three more
//!   trading agents that stop for good: one run by an executor whose grant is revoked, one run
//!   by an executor whose grant expires, one whose token is sold away; SIGTERM ends it cleanly
//!   with every action on chain;
//! - three nodes share nine agents on PostgreSQL; one is killed with SIGKILL mid-run and its
//!   agents move to the others within the lease time, with no gap, duplicate or double trade.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use agent_runtime::db::Db;
use agent_runtime::record::LogId;
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use anyhow::{Context as _, bail, ensure};
use inft_contracts::Deployment;
use inft_contracts::bindings::{ActionLog, AgentNFT};
use serde_json::Value;
use strategies::trading::PriceProcess;
use tempfile::TempDir;

const PASS: &str = "serve test passphrase";

/// One test at a time: each runs several agents' inference on every core for a minute, and
/// two at once would starve each other's schedules (what they assert).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A dev chain with everything deployed, its home directory and the real model.
struct Dev {
    home: TempDir,
    model: PathBuf,
    accounts: BTreeMap<String, Address>,
    deployment: Deployment,
    rpc_url: String,
    /// `INFT_DATABASE_URL` for every command (the fleet's PostgreSQL), if not the home's SQLite.
    database_url: Option<String>,
}

/// `inft` acting on `home`, with the test passphrase and, if given, the database URL.
fn inft_command(home: &Path, database_url: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inft"));
    c.env("INFT_HOME", home)
        .env("INFT_PASSPHRASE", PASS)
        .env_remove("INFT_DATABASE_URL")
        .env_remove("INFT_RPC_URL")
        .env_remove("INFT_GATEWAY");
    if let Some(url) = database_url {
        c.env("INFT_DATABASE_URL", url);
    }
    c
}

/// Runs `command`, returning stdout; fails with stderr.
fn output_of(mut command: Command, what: &str) -> anyhow::Result<String> {
    let out = command.output()?;
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

impl Dev {
    fn up(database_url: Option<String>) -> anyhow::Result<Dev> {
        let home = tempfile::tempdir()?;
        let run = |args: &[&str]| {
            let mut c = inft_command(home.path(), database_url.as_deref());
            c.args(args);
            output_of(c, &format!("inft {}", args.join(" ")))
        };
        run(&["dev", "up"])?;
        let model = PathBuf::from(run(&["dev", "model", "--real"])?.trim());
        let dir = home.path();
        let accounts = serde_json::from_str(&std::fs::read_to_string(dir.join("accounts.json"))?)?;
        let deployment = Deployment::read_from(&dir.join("deployment.json"))?;
        let node: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("node.json"))?)?;
        let rpc_url = node["rpc_url"].as_str().context("node.json")?.to_owned();
        Ok(Dev {
            home,
            model,
            accounts,
            deployment,
            rpc_url,
            database_url,
        })
    }

    fn command(&self) -> Command {
        inft_command(self.home.path(), self.database_url.as_deref())
    }

    /// Runs `inft ARGS`, returning stdout; fails with stderr.
    fn inft(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut c = self.command();
        c.args(args);
        output_of(c, &format!("inft {}", args.join(" ")))
    }

    fn account(&self, name: &str) -> String {
        self.accounts[name].to_string()
    }

    /// Mints an agent for alice and returns its token id.
    fn mint(&self, name: &str, kind: &[&str]) -> anyhow::Result<String> {
        let model = self.model.to_string_lossy().into_owned();
        let mut args = vec![
            "--json",
            "mint",
            "--account",
            "alice",
            "--model",
            &model,
            "--name",
            name,
        ];
        args.extend_from_slice(kind);
        let out: Value = serde_json::from_str(&self.inft(&args)?)?;
        Ok(out["token_id"].as_str().context("no token_id")?.to_owned())
    }

    fn mint_creative(&self, name: &str) -> anyhow::Result<String> {
        self.mint(name, &["--prompt", "Write two lines about the sea."])
    }

    /// A momentum trader whose token-bound account is created and funded by one owner's step.
    fn mint_trader(&self, name: &str) -> anyhow::Result<String> {
        let token = self.mint(name, &["--kind", "trading", "--strategy", "momentum"])?;
        self.inft(&[
            "run",
            &token,
            "--account",
            "alice",
            "--steps",
            "1",
            "--fund-from",
            "deployer",
            "--no-memory-update",
        ])?;
        // The owner's policy (written by that first run) bounds spot against the pool's TWAP
        // at 500 bps; the test's noise trader moves the price faster than a real pool, so the
        // owner widens it, as scripts/demo.sh does, or the momentum agents would never trade.
        let policy = self.home.path().join("trading-policy.json");
        let text = std::fs::read_to_string(&policy)?;
        let widened = text.replace(
            "\"max_twap_deviation_bps\": 500",
            "\"max_twap_deviation_bps\": 1500",
        );
        ensure!(
            widened.contains("\"max_twap_deviation_bps\": 1500"),
            "{text}"
        );
        std::fs::write(&policy, widened)?;
        Ok(token)
    }

    fn provider(&self) -> anyhow::Result<DynProvider> {
        Ok(ProviderBuilder::new()
            .connect_http(self.rpc_url.parse()?)
            .erased())
    }

    /// Moves the dev market every `every` with the deployer as noise trader, so momentum agents
    /// see trends and trade. One mover for the whole test: its nonces stay in order.
    async fn move_market(&self, every: Duration) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let keystore = self.home.path().join("keystores/deployer.json");
        let signer = agent_runtime::wallet::load_keystore(
            &keystore,
            &agent_runtime::wallet::Passphrase::new(PASS.to_owned()),
        )?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_http(self.rpc_url.parse()?)
            .erased();
        let mut process = PriceProcess::new(
            provider,
            signer.address(),
            self.deployment.market()?.clone(),
            11,
        );
        process.prepare().await?;
        Ok(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = process.step().await {
                    eprintln!("market mover: {e}");
                }
            }
        }))
    }

    fn log_id(&self, token: &str) -> LogId {
        LogId {
            chain_id: self.deployment.chain_id,
            action_log: self.deployment.action_log,
            token_id: token.parse().unwrap_or_default(),
        }
    }

    /// The chain's last sequence number in the token's action log.
    /// The token's memory entry's data hash on chain (its fourth entry).
    async fn memory_hash(&self, token: &str) -> anyhow::Result<B256> {
        let provider = self.provider()?;
        let hashes = AgentNFT::new(self.deployment.agent_nft, &provider)
            .dataHashesOf(token.parse::<U256>()?)
            .call()
            .await?;
        hashes
            .get(3)
            .copied()
            .with_context(|| format!("token {token} has no memory entry: {hashes:?}"))
    }

    async fn chain_seq(&self, token: &str) -> anyhow::Result<u64> {
        let provider = self.provider()?;
        let chain = ActionLog::new(self.deployment.action_log, &provider)
            .chainOf(token.parse::<U256>()?)
            .call()
            .await?;
        Ok(chain.seq)
    }

    /// Writes a serve config for `agents` (TOML lines of each `[[agent]]`) and returns its path.
    fn serve_config(&self, name: &str, extra: &str, agents: &[String]) -> anyhow::Result<PathBuf> {
        let mut text = format!(
            "[node]\nhome = {:?}\n\n[limits]\nbackoff_secs = 0.5\nmax_backoff_secs = 4\n\n{extra}\n",
            self.home.path()
        );
        for agent in agents {
            text.push_str("[[agent]]\n");
            text.push_str(agent);
            text.push('\n');
        }
        let path = self.home.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.command().args(["dev", "down"]).output();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// One `inft serve` process.
struct Served {
    child: Child,
    listen: SocketAddr,
    log: PathBuf,
    http: reqwest::Client,
}

impl Served {
    fn spawn(dev: &Dev, config: &Path, node_id: &str) -> anyhow::Result<Served> {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dev.home.path().join(format!("{node_id}.log"));
        let child = dev
            .command()
            .args(["serve", "--config"])
            .arg(config)
            .args(["--node-id", node_id, "--listen", &listen.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Served {
            child,
            listen,
            log,
            http: reqwest::Client::new(),
        })
    }

    /// Whether the node's output so far contains `text`.
    fn said(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|out| out.contains(text))
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text[text.ceil_char_boundary(start)..].to_owned()
    }

    async fn get(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("http://{}{path}", self.listen))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        Ok(response.text().await?)
    }

    /// Waits for `/health` to answer.
    async fn ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("inft serve exited early ({status}):\n{}", self.tail());
            }
            if let Ok(body) = self.get("/health").await {
                let health: Value = serde_json::from_str(&body)?;
                ensure!(health["status"] == "ok", "health: {health}");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("inft serve did not answer /health:\n{}", self.tail())
    }

    /// `/agents`, by token id.
    async fn agents(&self) -> anyhow::Result<BTreeMap<String, Value>> {
        let list: Vec<Value> = serde_json::from_str(&self.get("/agents").await?)?;
        Ok(list
            .into_iter()
            .map(|a| (a["token"].as_str().unwrap_or_default().to_owned(), a))
            .collect())
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill {signal} failed");
        Ok(())
    }

    /// SIGTERM, then waits for the exit.
    async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal("-TERM")?;
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("inft serve did not exit after SIGTERM:\n{}", self.tail())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Steps an agent has taken per `/agents`.
fn steps_of(agent: &Value) -> u64 {
    agent["steps"].as_u64().unwrap_or(0)
}

/// One `[[agent]]` body.
fn agent_toml(token: &str, account: &str, every_secs: f64, threads: u32) -> String {
    format!(
        "token = \"{token}\"\naccount = \"{account}\"\nevery_secs = {every_secs}\nthreads = {threads}\n"
    )
}

/// Checks a token's log at the end: the outbox is empty, the database holds every record from
/// seq 1 with no gap, and the chain's sequence number is the last of them.
async fn assert_logged(dev: &Dev, db: &Db, token: &str) -> anyhow::Result<()> {
    assert_logged_but(dev, db, token, 0).await.map(drop)
}

/// [`assert_logged`], but up to `unloggable` records at the end may be left in the outbox: an
/// agent stopped by someone else's transaction (a revoke, a sale) may have been mid-step when it
/// landed, and this wallet can no longer log that step's record. Returns how many are left.
async fn assert_logged_but(
    dev: &Dev,
    db: &Db,
    token: &str,
    unloggable: usize,
) -> anyhow::Result<usize> {
    let log = dev.log_id(token);
    let pending = db.unconfirmed(&log, u32::MAX).await?;
    ensure!(
        pending.len() <= unloggable,
        "token {token}: {} outbox entries left",
        pending.len()
    );
    let records = db.records(&log, 0, u32::MAX).await?;
    let seqs: Vec<u64> = records.iter().map(|r| r.record.record().seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    ensure!(
        seqs == expected,
        "token {token}: records at {seqs:?}, want 1..={}",
        seqs.len()
    );
    let chain = dev.chain_seq(token).await?;
    ensure!(
        chain + pending.len() as u64 == seqs.len() as u64,
        "token {token}: chain seq {chain}, {} records in the database, {} in the outbox",
        seqs.len(),
        pending.len()
    );
    Ok(pending.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_hosts_agents_on_schedules_and_stops_cleanly() -> anyhow::Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dev = Dev::up(None)?;
    let poets = [dev.mint_creative("poet-a")?, dev.mint_creative("poet-b")?];
    let traders = [dev.mint_trader("trader-a")?, dev.mint_trader("trader-b")?];
    // Bob runs this one as alice's authorized executor, until she revokes his grant.
    let lent = dev.mint_trader("lent")?;
    dev.inft(&["transfer", "publish-key", "--account", "bob"])?;
    dev.inft(&[
        "authorize",
        &lent,
        "--user",
        &dev.account("bob"),
        "--scopes",
        "run,trade,log",
        "--account",
        "alice",
    ])?;
    // Alice sells this one to carol while it runs.
    let sold = dev.mint_trader("sold")?;
    dev.inft(&["transfer", "publish-key", "--account", "carol"])?;
    // Carol runs this one under a grant that ends 40 s after it is given.
    let expiring = dev.mint_trader("expiring")?;

    let mut agents: Vec<String> = poets
        .iter()
        .map(|t| agent_toml(t, "alice", 6.0, 2))
        .collect();
    agents.extend(traders.iter().map(|t| agent_toml(t, "alice", 3.0, 2)));
    agents.push(agent_toml(&lent, "bob", 3.0, 2));
    agents.push(agent_toml(&sold, "alice", 3.0, 2));
    agents.push(agent_toml(&expiring, "carol", 3.0, 2));
    let config = dev.serve_config("serve.toml", "", &agents)?;
    let mover = dev.move_market(Duration::from_secs(2)).await?;
    let carol = dev.account("carol");
    dev.inft(&[
        "authorize",
        &expiring,
        "--user",
        &carol,
        "--scopes",
        "run,trade,log",
        "--expires-in",
        "40s",
        "--account",
        "alice",
    ])?;

    let mut node = Served::spawn(&dev, &config, "solo")?;
    node.ready().await?;
    let started = Instant::now();

    // Let everyone act, then end bob's grant and sell `sold` to carol.
    tokio::time::sleep(Duration::from_secs(20)).await;
    dev.inft(&[
        "revoke",
        &lent,
        "--user",
        &dev.account("bob"),
        "--account",
        "alice",
    ])?;
    transfer(&dev, &sold, "carol")?;

    // Stopped agents say why; the others go on.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mid = loop {
        let now = node.agents().await?;
        let stopped = |t: &str| now[t]["state"] == "stopped";
        if stopped(&lent) && stopped(&sold) && stopped(&expiring) {
            break now;
        }
        ensure!(
            Instant::now() < deadline,
            "agents did not stop: {now:?}\n{}",
            node.tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        mid[&lent]["stop_reason"]["reason"], "revoked",
        "{:?}",
        mid[&lent]
    );
    assert_eq!(
        mid[&sold]["stop_reason"]["reason"], "transferred",
        "{:?}",
        mid[&sold]
    );
    assert_eq!(
        mid[&expiring]["stop_reason"]["reason"], "expired",
        "{:?}",
        mid[&expiring]
    );
    ensure!(
        steps_of(&mid[&expiring]) >= 1,
        "carol's agent never ran: {}",
        mid[&expiring]
    );
    ensure!(
        mid[&sold]["stop_reason"]["owner"]
            .as_str()
            .is_some_and(|o| o.eq_ignore_ascii_case(&dev.account("carol"))),
        "{:?}",
        mid[&sold]
    );

    // Run past a minute in all, and until every running agent has stepped again since the
    // others stopped (those can stop as late as a minute in, on a loaded machine): waiting for
    // that, not for a fixed time, is what keeps "went on" from racing the clock.
    let remaining = Duration::from_secs(65).saturating_sub(started.elapsed());
    tokio::time::sleep(remaining).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let end = loop {
        let now = node.agents().await?;
        let went_on = poets
            .iter()
            .chain(&traders)
            .all(|t| steps_of(&now[t]) > steps_of(&mid[t]));
        if went_on || Instant::now() >= deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let metrics = node.get("/metrics").await?;
    for (token, agent) in &end {
        eprintln!(
            "token {token}: {} steps, state {}, last {}",
            steps_of(agent),
            agent["state"],
            agent["last_action"]["summary"]
        );
    }
    for token in poets.iter().chain(&traders) {
        let agent = &end[token];
        ensure!(agent["state"] != "stopped", "{token} stopped: {agent}");
        // Each acted on its schedule and kept going after the others stopped.
        ensure!(
            steps_of(agent) >= 3,
            "{token} took {} steps: {agent}",
            steps_of(agent)
        );
        ensure!(
            steps_of(agent) > steps_of(&mid[token]),
            "{token} did not go on: {agent}"
        );
        ensure!(agent["last_action"]["seq"].as_u64() > Some(1), "{agent}");
        ensure!(agent["last_error"].is_null(), "{token}: {agent}");
        let label = format!("token=\"{token}\"");
        let counted = metrics
            .lines()
            .filter(|l| l.starts_with("inft_steps_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        ensure!(
            counted >= steps_of(agent) as f64,
            "inft_steps_total for {token} is {counted}, /agents says {}:\n{metrics}",
            steps_of(agent)
        );
    }
    for token in &traders {
        ensure!(
            end[token]["status"]["trading"]["pnl_quote"].is_string(),
            "{}",
            end[token]
        );
    }
    // The stopped agents stay stopped: no retries.
    ensure!(
        steps_of(&end[&lent]) == steps_of(&mid[&lent]),
        "{}",
        end[&lent]
    );
    for name in [
        "inft_steps_total",
        "inft_outbox_depth",
        "inft_tokens_per_second",
        "inft_leases_held",
    ] {
        ensure!(metrics.contains(name), "no {name} in /metrics:\n{metrics}");
    }
    mover.abort();
    let mut memory_before = BTreeMap::new();
    for token in poets.iter().chain(&traders) {
        memory_before.insert(token.clone(), dev.memory_hash(token).await?);
    }

    // SIGTERM: the step in progress finishes, the owner's agents leave a note of the run in
    // their memory (as `inft run` does), the outbox is flushed, exit 0.
    let status = node.terminate().await?;
    ensure!(status.success(), "exit {status}:\n{}", node.tail());
    let db = Db::open(dev.home.path().join("inft.db")).await?;
    // An expiring grant is foreseen: the node stops before a step could outlive it.
    for token in poets.iter().chain(&traders).chain([&expiring]) {
        assert_logged(&dev, &db, token).await?;
    }
    for token in [&lent, &sold] {
        if assert_logged_but(&dev, &db, token, 1).await? > 0 {
            ensure!(
                node.said("outbox not flushed"),
                "token {token}: a record was left unlogged without a word:\n{}",
                node.tail()
            );
        }
    }
    for token in poets.iter().chain(&traders) {
        let after = dev.memory_hash(token).await?;
        ensure!(
            after != memory_before[token],
            "token {token}: memory hash unchanged by its hosted run ({after})\n{}",
            node.tail()
        );
        let log = dev.log_id(token);
        let last = db
            .last_record(&log)
            .await?
            .with_context(|| format!("token {token}: no records"))?;
        ensure!(
            last.record.record().kind.as_str() == "memory-update",
            "token {token}: the run's last action is {}, not its memory update",
            last.record.record().kind
        );
    }
    Ok(())
}

/// Sells `token` from alice to `to` with a receiver-verified transfer.
fn transfer(dev: &Dev, token: &str, to: &str) -> anyhow::Result<()> {
    let offer = dev.home.path().join(format!("offer-{token}.json"));
    let acceptance = dev.home.path().join(format!("acceptance-{token}.json"));
    let mut sender = dev
        .command()
        .args([
            "transfer",
            "send",
            token,
            "--to",
            to,
            "--account",
            "alice",
            "--offer",
        ])
        .arg(&offer)
        .arg("--acceptance")
        .arg(&acceptance)
        .args(["--wait", "5m"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !offer.exists() {
        if let Some(status) = sender.try_wait()? {
            bail!("transfer send exited early: {status}");
        }
        ensure!(Instant::now() < deadline, "no offer written");
        std::thread::sleep(Duration::from_millis(200));
    }
    let offer_arg = offer.to_string_lossy().into_owned();
    let acceptance_arg = acceptance.to_string_lossy().into_owned();
    dev.inft(&[
        "transfer",
        "accept",
        &offer_arg,
        "--output",
        &acceptance_arg,
        "--account",
        to,
    ])?;
    let out = sender.wait_with_output()?;
    ensure!(
        out.status.success(),
        "transfer send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Per token: the nodes whose `/agents` show it held (not `elsewhere`), and its steps there.
async fn held_by(
    nodes: &[Served],
) -> anyhow::Result<(BTreeMap<String, BTreeSet<usize>>, BTreeMap<String, u64>)> {
    let mut holders: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut steps: BTreeMap<String, u64> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for (token, agent) in node.agents().await? {
            if !matches!(agent["state"].as_str(), Some("elsewhere") | None) {
                holders.entry(token.clone()).or_default().insert(i);
                *steps.entry(token).or_default() += steps_of(&agent);
            }
        }
    }
    Ok((holders, steps))
}

/// A fresh database on the test PostgreSQL (scripts/postgres.sh starts one if needed).
async fn fresh_postgres() -> anyhow::Result<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let server = match std::env::var("INFT_TEST_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let out = Command::new(root.join("scripts/postgres.sh"))
                .arg("start")
                .output()?;
            ensure!(
                out.status.success(),
                "scripts/postgres.sh start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)?.trim().to_owned()
        }
    };
    Ok(agent_runtime::db::testing::create_database(&server).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_three_survives_a_killed_node() -> anyhow::Result<()> {
    let _alone = ONE_AT_A_TIME.lock().await;
    let url = fresh_postgres().await?;
    let dev = Dev::up(Some(url.clone()))?;
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(dev.mint_creative(&format!("poet-{i}"))?);
    }
    for i in 0..6 {
        tokens.push(dev.mint_trader(&format!("trader-{i}"))?);
    }
    let agents: Vec<String> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| agent_toml(t, "alice", if i < 3 { 8.0 } else { 3.0 }, 1))
        .collect();
    let lease_secs = 6;
    let fleet = format!("[database]\nurl = {url:?}\n\n[fleet]\nlease_secs = {lease_secs}\n");
    let config = dev.serve_config("fleet.toml", &fleet, &agents)?;
    let mover = dev.move_market(Duration::from_secs(2)).await?;

    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        let mut node = Served::spawn(&dev, &config, name)?;
        node.ready().await?;
        nodes.push(node);
    }
    // Every agent is held by one node and steps.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (holders, steps) = held_by(&nodes).await?;
        let balanced = tokens
            .iter()
            .all(|t| holders.get(t).is_some_and(|h| h.len() == 1));
        let stepping = tokens
            .iter()
            .all(|t| steps.get(t).copied().unwrap_or(0) >= 1);
        if balanced && stepping {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "agents not spread and stepping: {holders:?} {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (holders, _) = held_by(&nodes).await?;
    let victims: Vec<String> = tokens
        .iter()
        .filter(|t| holders[*t].contains(&0))
        .cloned()
        .collect();
    ensure!(!victims.is_empty(), "node-a holds no agent: {holders:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;

    // kill -9 node-a mid-run: its agents resume on the others within the lease time.
    nodes[0].signal("-KILL")?;
    let killed = Instant::now();
    let mut survivors: Vec<Served> = nodes.drain(1..).collect();
    let before: BTreeMap<String, u64> = {
        let (_, steps) = held_by(&survivors).await?;
        steps
    };
    // Taken over: each of its agents held by exactly one survivor.
    let takeover = loop {
        let (holders, steps) = held_by(&survivors).await?;
        let moved = victims
            .iter()
            .all(|t| holders.get(t).is_some_and(|h| h.len() == 1));
        if moved {
            break killed.elapsed();
        }
        ensure!(
            killed.elapsed() < Duration::from_secs(lease_secs * 2 + 30),
            "agents of the killed node did not move: {holders:?} {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "takeover of {} agents after SIGKILL: {:.1} s (lease {lease_secs} s)",
        victims.len(),
        takeover.as_secs_f64()
    );
    ensure!(
        takeover < Duration::from_secs(lease_secs + 20),
        "takeover took {takeover:?}"
    );
    // Resumed: each steps on its new node (two nodes now share the CPU of three).
    loop {
        let (_, steps) = held_by(&survivors).await?;
        let resumed = victims
            .iter()
            .all(|t| steps.get(t).copied().unwrap_or(0) > before.get(t).copied().unwrap_or(0));
        if resumed {
            break;
        }
        ensure!(
            killed.elapsed() < Duration::from_secs(180),
            "agents of the killed node did not step again: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    mover.abort();
    for node in &mut survivors {
        let status = node.terminate().await?;
        ensure!(status.success(), "exit {status}:\n{}", node.tail());
    }

    // Per token: on-chain seq == records in the database, no gap, no duplicate; no trade
    // sent twice (one mined trade transaction per action-log position at most).
    let db = Db::connect(&url).await?;
    for token in &tokens {
        assert_logged(&dev, &db, token).await?;
    }
    let provider = dev.provider()?;
    let mut trades = 0;
    for token in &tokens {
        let log = dev.log_id(token);
        for stored in db.records(&log, 0, u32::MAX).await? {
            let record = stored.record.record();
            let reference = log.position_reference(record.seq);
            let mut mined = Vec::new();
            for tx in db
                .txs_by_reference(log.chain_id, "trade", &reference)
                .await?
            {
                if provider
                    .get_transaction_receipt(tx.tx_hash)
                    .await?
                    .is_some()
                {
                    mined.push(tx.tx_hash);
                }
            }
            ensure!(
                mined.len() <= 1,
                "token {token} seq {}: trades {mined:?}",
                record.seq
            );
            if record.kind.as_str() == "trade" {
                ensure!(
                    mined == record.tx_hash.into_iter().collect::<Vec<_>>(),
                    "{record:?}"
                );
                trades += 1;
            }
        }
    }
    ensure!(trades > 0, "no trade was sent");
    Ok(())
}
