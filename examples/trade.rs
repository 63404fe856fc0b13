//! Job 3, **run** a trading agent: mint a momentum agent, give it a token-bound account
//! (ERC-6551) holding tGLD and tUSD, and run it on a Uniswap V2 pool that moves between steps.
//!
//! Each step observes the pool, lets the strategy propose an intent, passes it through the
//! owner's policy firewall (which the strategy cannot override), simulates and sends the swap
//! from the agent's account, and records the action: signed by the agent key, committed to the
//! outbox first, then logged on chain in the token's hash chain. Each action is printed as it
//! happens. The strategy here is the classical momentum rule (no model inference, so the run
//! takes seconds); an LLM policy (`strategies::trading::LlmPolicy`) plugs into the same place.
//!
//! ```sh
//! cargo run -p inft-examples --example trade
//! ```

use std::sync::Arc;

use agent_runtime::db::Db;
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::record::{ActionKind, LogId};
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::bindings::{ActionLog, AgentAccountFactory, TestToken};
use inft_contracts::scopes;
use inft_examples::{Sandbox, e18};
use inft_runtime::{AgentSession, run_steps};
use inft_types::config::AgentKind;
use strategies::trading::decision::DECISION_MAX_TOKENS;
use strategies::trading::market::swap_exact_in;
use strategies::trading::{
    Firewall, MarketReader, Momentum, Policy, RuleParams, SendOptions, TradingStrategy,
    shared_key_provider,
};

/// How many steps the agent runs.
const STEPS: u64 = 6;

/// Someone else's swap on the pool before step `step`: the price climbs for three steps, then
/// falls, so the momentum rule (warmed up after two steps) buys and then sells.
fn market_move(step: u64) -> Option<(bool, u64)> {
    // (true: tUSD in, the price of tGLD rises; amount in whole tokens)
    match step {
        0 => None,
        1..=3 => Some((true, 10_000)),
        _ => Some((false, 25)),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let alice = sandbox.actor(1).await?;
    let deployer = sandbox
        .chain
        .signer(0)
        .ok_or_else(|| anyhow::anyhow!("no deployer"))?;
    let market = sandbox.deployment.market()?.clone();

    // 1. Mint a trading agent whose config names its strategy.
    let config = sandbox.config(
        "trader",
        AgentKind::Trading {
            strategy: "momentum".into(),
            instruction: None,
        },
        DECISION_MAX_TOKENS,
    );
    let minted = sandbox.mint(&alice, &config, 1).await?;
    let token = minted.token_id;
    println!("alice minted trading agent {token}");

    // 2. Its ERC-6551 account: the token owns the funds, so they follow the token on a sale.
    //    The agent key may trade from it; the deployer funds it with 10 tGLD and 10,000 tUSD.
    let factory = AgentAccountFactory::new(
        sandbox.deployment.agent_account_factory,
        alice.nft.provider(),
    );
    factory
        .createAccount_1(token)
        .send()
        .await?
        .get_receipt()
        .await?;
    let account = factory.accountOf(token).call().await?;
    let dp = sandbox.provider(&deployer);
    for (t, amount) in [(market.base_token, 10), (market.quote_token, 10_000)] {
        let receipt = TestToken::new(t, &dp)
            .transfer(account, e18(amount))
            .send()
            .await?
            .get_receipt()
            .await?;
        anyhow::ensure!(receipt.status(), "funding the account reverted");
    }
    println!("agent account {account} holds 10 tGLD and 10000 tUSD");

    // 3. Open the agent (owner check, fetch, verify, unseal in memory) and start a session:
    //    it signs records with the agent key and chains them to the token's log.
    let opened = sandbox.open(&alice, token, scopes::RUN).await?;
    let agent_key: PrivateKeySigner = opened
        .agent
        .agent_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner unseals the agent key"))?;
    let log = LogId {
        chain_id: sandbox.deployment.chain_id,
        action_log: sandbox.deployment.action_log,
        token_id: token,
    };
    let context = opened
        .agent
        .model
        .new_context(&opened.agent.config.context)?;
    let mut session = AgentSession::new(
        log,
        sandbox.deployment.agent_nft,
        opened.agent.config.clone(),
        agent_key.clone(),
        context,
    );
    // The outbox: every record is committed to this database before it is logged on chain,
    // so a crash loses no action and logs none twice. The logger and the trade sender share the
    // agent key, so the logger's provider reads nonces fresh from the chain.
    let db = Db::open(sandbox.dir.path().join("trader.db")).await?;
    let chain_log = AlloyChainLog::new(
        shared_key_provider(sandbox.chain.endpoint_url(), agent_key.clone()),
        sandbox.deployment.start_block,
    );
    let outbox = Outbox::new(db.clone(), Arc::new(chain_log), OutboxConfig::default());

    // 4. The owner's policy firewall: only this pair and router, at most 1,000 tUSD a trade,
    //    slippage and drawdown bounds. (The TWAP check is off: this example moves the pool
    //    several percent within seconds of chain time, which a TWAP rightly distrusts.)
    let mut policy = Policy::for_market(&market, e18(1_000));
    policy.max_twap_deviation_bps = strategies::trading::market::BPS;
    // Momentum: buy when the price is 0.5 % above the mean of the last 2 steps, sell when 0.5 %
    // below (it holds while it warms up); trade 8 % of the balance paid in.
    let rules = RuleParams {
        window: 2,
        threshold_bps: 50,
        size_bps: 800,
        slippage_bps: 50,
    };
    let reader = MarketReader::new(
        sandbox.reader(),
        market.clone(),
        sandbox.deployment.agent_nft,
        token,
        account,
    );
    let mut strategy = TradingStrategy::new(Momentum::new(rules), Firewall::new(policy), reader)
        .with_sender(
            db.clone(),
            sandbox.reader(),
            agent_key.clone(),
            sandbox.deployment.chain_id,
            SendOptions::default(),
        );

    // 5. Run, one step at a time, moving the market in between.
    let mut trades = 0;
    for step in 0..STEPS {
        if let Some((up, amount)) = market_move(step) {
            swap(&sandbox, &deployer, up, e18(amount)).await?;
        }
        let report = run_steps(&mut session, &mut strategy, &outbox, 1, |s| {
            // The output is the strategy's intent as JSON; a refusal's details say which
            // firewall rule refused it.
            let intent: serde_json::Value = serde_json::from_str(&s.output).unwrap_or_default();
            println!(
                "step {step}: seq {} {:<7} {:<4} {}",
                s.seq,
                s.kind.as_str(),
                intent["action"].as_str().unwrap_or("?"),
                s.details["reason"]
                    .as_str()
                    .or(intent["reason"].as_str())
                    .unwrap_or_default()
            );
            if let Some(tx) = s.tx_hash {
                println!(
                    "        swap {tx}: {}",
                    describe_fill(&s.details["fill"], &market)
                );
            }
        })
        .await?;
        trades += report
            .steps
            .iter()
            .filter(|s| s.kind == ActionKind::Trade)
            .count();
    }

    // Every action is on chain, in the token's hash chain, and a trade happened.
    let on_chain = ActionLog::new(sandbox.deployment.action_log, sandbox.reader())
        .chainOf(token)
        .call()
        .await?;
    println!(
        "\n{} actions logged on chain (head {}), {trades} trades",
        on_chain.seq, on_chain.head
    );
    anyhow::ensure!(
        on_chain.seq == STEPS,
        "{} of {STEPS} actions logged",
        on_chain.seq
    );
    anyhow::ensure!(trades >= 2, "the moving market made only {trades} trades");
    let records = db.records(&log, 0, 100).await?;
    anyhow::ensure!(records.len() as u64 == STEPS, "every action is recorded");
    let base = TestToken::new(market.base_token, sandbox.reader())
        .balanceOf(account)
        .call()
        .await?;
    let quote = TestToken::new(market.quote_token, sandbox.reader())
        .balanceOf(account)
        .call()
        .await?;
    println!(
        "account now holds {} tGLD and {} tUSD",
        alloy::primitives::utils::format_ether(base),
        alloy::primitives::utils::format_ether(quote)
    );
    Ok(())
}

/// A logged fill, in whole tokens: "800 tUSD in, 0.77 tGLD out".
fn describe_fill(fill: &serde_json::Value, market: &inft_contracts::deploy::Market) -> String {
    let amount = |key: &str| {
        fill[key]
            .as_str()
            .and_then(|v| U256::from_str_radix(v, 10).ok())
            .map(alloy::primitives::utils::format_ether)
            .unwrap_or_default()
    };
    let quote_in = fill["token_in"]
        .as_str()
        .and_then(|t| t.parse::<Address>().ok())
        == Some(market.quote_token);
    let (tin, tout) = if quote_in {
        ("tUSD", "tGLD")
    } else {
        ("tGLD", "tUSD")
    };
    format!(
        "{} {tin} in, {} {tout} out",
        amount("amount_in"),
        amount("amount_out")
    )
}

/// The deployer swaps `amount_in` on the pool: tUSD for tGLD if `up` (the price rises), else
/// tGLD for tUSD.
async fn swap(
    sandbox: &Sandbox,
    deployer: &PrivateKeySigner,
    up: bool,
    amount_in: U256,
) -> anyhow::Result<()> {
    let m = sandbox.deployment.market()?;
    let path = if up {
        [m.quote_token, m.base_token]
    } else {
        [m.base_token, m.quote_token]
    };
    let p = sandbox.provider(deployer);
    TestToken::new(path[0], &p)
        .approve(m.router, amount_in)
        .send()
        .await?
        .get_receipt()
        .await?;
    swap_exact_in(&p, m.router, path, amount_in, deployer.address()).await?;
    Ok(())
}
