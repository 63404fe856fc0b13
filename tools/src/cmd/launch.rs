//! What `inft run` and `inft serve` share: open an agent from the chain for a wallet, and build
//! its session, outbox and strategy.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agent_runtime::blobstore::BlobStore;
use agent_runtime::db::Db;
use agent_runtime::memory::AgentMemory;
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::record::{ActionDraft, LogId};
use agent_runtime::token::{Access, AgentNft};
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail};
use inft_contracts::bindings::{AgentAccountFactory, TestToken};
use inft_contracts::{Market, resolve_market, scopes};
use inft_engine::{ContextOptions, ModelOptions};
use inft_runtime::UnsealOptions;
use inft_runtime::{AgentSession, Strategy, StrategyError};
use inft_runtime::{OpenedAgent, open_agent};
use inft_types::config::AgentKind;
use sealing::{SealOptions, SealingSecret};
use strategies::creative::CreativeStrategy;
use strategies::trading::policies::FOLLOW_THE_TREND;
use strategies::trading::{
    Firewall, LlmPolicy, MarketReader, PairSymbols, Policy, PriceProcess, SendOptions,
    TradingPolicy, TradingStatus, TradingStrategy, policy_by_name, shared_key_provider,
};

use super::node::{Node, WalletOpts};

/// How a trading agent trades, beyond what its sealed config says.
#[derive(Clone, Debug, Default)]
pub(crate) struct TradingSetup {
    /// The owner's policy file [default: HOME/trading-policy.json, written on first use].
    pub(crate) policy: Option<PathBuf>,
    /// Simulate trades, send nothing.
    pub(crate) dry_run: bool,
    /// Fund the token-bound account first: (keystore name, whole base units, whole quote units).
    pub(crate) fund: Option<(String, u64, u64)>,
    /// Move the market before each step: (seed, keystore name of the noise trader).
    pub(crate) move_market: Option<(u64, String)>,
    /// Which pair to trade [default: the deployment's market].
    pub(crate) market: MarketChoice,
}

/// The pair a trading agent trades: each part given overrides the deployment file's market.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MarketChoice {
    /// An existing Uniswap V2 Router02 (its factory and WETH are read from it).
    pub(crate) router: Option<Address>,
    /// The token bought and sold.
    pub(crate) base_token: Option<Address>,
    /// The token prices are counted in.
    pub(crate) quote_token: Option<Address>,
}

impl MarketChoice {
    /// The market: the deployment's when nothing is chosen, else the chosen router (or the
    /// deployment's) and tokens (or the deployment's), its pair found through the router's
    /// factory (refused if there is none).
    pub(crate) async fn resolve(&self, node: &Node) -> anyhow::Result<Market> {
        let default = node.deployment.market.as_ref();
        if self.router.is_none() && self.base_token.is_none() && self.quote_token.is_none() {
            return default.cloned().context(
                "the deployment has no market: name a Uniswap V2 router and the pair's tokens \
                 (--router, --base-token, --quote-token; `router`, `base_token`, `quote_token` \
                 in a serve config)",
            );
        }
        let pick = |chosen: Option<Address>, what: &str, of: fn(&Market) -> Address| {
            chosen.or_else(|| default.map(of)).with_context(|| {
                format!("the deployment has no market to take the {what} from: name it")
            })
        };
        let router = pick(self.router, "router", |m| m.router)?;
        let base = pick(self.base_token, "base token", |m| m.base_token)?;
        let quote = pick(self.quote_token, "quote token", |m| m.quote_token)?;
        resolve_market(&node.reader()?, router, base, quote)
            .await
            .with_context(|| format!("the market on router {router}"))
    }
}

/// An agent's behaviour: the strategy its sealed config names.
pub(crate) enum AgentStrategy {
    /// Writes pieces.
    Creative(CreativeStrategy),
    /// Trades the deployment's pair.
    Trading(Box<TradingStrategy<Box<dyn TradingPolicy>>>),
}

impl Strategy for AgentStrategy {
    fn name(&self) -> &str {
        match self {
            Self::Creative(s) => s.name(),
            Self::Trading(s) => s.name(),
        }
    }

    async fn step(
        &mut self,
        session: &mut AgentSession,
        step: u64,
    ) -> Result<ActionDraft, StrategyError> {
        match self {
            Self::Creative(s) => s.step(session, step).await,
            Self::Trading(s) => s.step(session, step).await,
        }
    }

    fn memory_note(&self) -> Option<String> {
        match self {
            Self::Creative(s) => s.memory_note(),
            Self::Trading(s) => s.memory_note(),
        }
    }
}

/// How to open an agent.
pub(crate) struct LaunchOptions<'a> {
    /// The token.
    pub(crate) token: U256,
    /// Inference threads [default: the config's, else all cores].
    pub(crate) threads: Option<u32>,
    /// Model layers offloaded to the GPU.
    pub(crate) gpu_layers: u32,
    /// Trading settings.
    pub(crate) trading: &'a TradingSetup,
    /// The database the outbox and the nonce manager write to.
    pub(crate) db: Db,
}

/// An opened agent, ready to step.
pub(crate) struct Launched {
    /// The chain's answer on how the wallet may use the token, and the unsealed agent.
    pub(crate) opened: OpenedAgent,
    /// The AgentNFT as the wallet.
    pub(crate) nft: AgentNft,
    /// The blob store the agent was fetched from (and its records are published to).
    pub(crate) store: Arc<dyn BlobStore>,
    /// The wallet's current sealing secret.
    pub(crate) secret: SealingSecret,
    /// The session (model context, signer, log).
    pub(crate) session: AgentSession,
    /// The outbox the records go through.
    pub(crate) outbox: Outbox,
    /// `agent` (the owner runs as the agent key) or `executor` (an authorized user logs with
    /// its own wallet).
    pub(crate) role: &'static str,
    /// The key that signs records (and sends trades).
    pub(crate) record_signer: PrivateKeySigner,
    /// The strategy.
    pub(crate) strategy: AgentStrategy,
    /// A trading agent's live status and its pair's symbols.
    pub(crate) trading: Option<(Arc<Mutex<TradingStatus>>, PairSymbols)>,
}

/// Opens token `opts.token` for `wallet`: checks access, unseals the agent into memory (sharing
/// an already loaded model), and builds what steps it.
pub(crate) async fn launch(
    node: &Node,
    wallet: &PrivateKeySigner,
    opts: LaunchOptions<'_>,
) -> anyhow::Result<Launched> {
    let nft = node.nft(wallet)?;
    let store = node.store()?;
    let secret = node.sealing_secret(wallet).await?;
    let opened = open_agent(
        &nft,
        store.as_ref(),
        wallet.address(),
        &secret,
        opts.token,
        scopes::RUN,
        &UnsealOptions {
            model: ModelOptions {
                gpu_layers: opts.gpu_layers,
                ..ModelOptions::default()
            },
            seal: SealOptions::default(),
        },
    )
    .await?;
    let agent = &opened.agent;
    // The owner runs as the agent (its unsealed key signs and logs); an authorized user is
    // never given the agent key and acts as an executor with its own wallet.
    let (record_signer, role) = match (&agent.agent_key, opened.access) {
        (Some(key), _) => (key.clone(), "agent"),
        (None, Access::Authorized { scopes: s, .. }) if s & scopes::LOG != 0 => {
            (wallet.clone(), "executor")
        }
        (None, _) => bail!(
            "this authorization does not include the log scope, so its actions cannot be logged"
        ),
    };

    let context = agent.model.new_context(&ContextOptions {
        n_threads: opts.threads.or(agent.config.context.n_threads),
        ..agent.config.context
    })?;
    let log = LogId {
        chain_id: node.deployment.chain_id,
        action_log: node.deployment.action_log,
        token_id: opts.token,
    };
    let mut session = AgentSession::new(
        log,
        nft.address(),
        agent.config.clone(),
        record_signer.clone(),
        context,
    );
    session.set_memory(agent.memory.as_ref().and_then(AgentMemory::prompt_text));

    let trading = matches!(agent.config.kind, AgentKind::Trading { .. });
    // A trading agent's key also sends trades (through the nonce manager): the logger must
    // not cache nonces.
    let log_provider = if trading {
        shared_key_provider(node.rpc_url.parse()?, record_signer.clone())
    } else {
        node.provider(&record_signer)?
    };
    let chain = AlloyChainLog::new(log_provider, node.deployment.start_block);
    // Every record is published to the blob store before its hash goes on chain, so anyone
    // can `inft audit` the agent.
    let outbox = Outbox::publishing(
        opts.db.clone(),
        Arc::new(chain),
        store.clone(),
        OutboxConfig::default(),
    );

    let (strategy, trading) = match &agent.config.kind {
        AgentKind::Creative { prompt } => (
            AgentStrategy::Creative(CreativeStrategy::new(prompt.clone())),
            None,
        ),
        AgentKind::Trading {
            strategy,
            instruction,
        } => {
            let market = opts.trading.market.resolve(node).await?;
            let symbols = pair_symbols(node, &market).await?;
            let strategy = opts
                .trading
                .strategy(
                    node,
                    wallet,
                    &PolicyChoice {
                        name: strategy,
                        instruction: instruction.as_deref(),
                        symbols: &symbols,
                        market: &market,
                    },
                    opts.token,
                    &record_signer,
                    opts.db,
                )
                .await?;
            let status = strategy.status();
            (
                AgentStrategy::Trading(Box::new(strategy)),
                Some((status, symbols)),
            )
        }
        other => bail!("unsupported agent kind {other:?}"),
    };
    Ok(Launched {
        opened,
        nft,
        store,
        secret,
        session,
        outbox,
        role,
        record_signer,
        strategy,
        trading,
    })
}

/// Which policy proposes a trading agent's intents, as its sealed config names it.
#[derive(Clone, Copy)]
struct PolicyChoice<'a> {
    /// `llm`, `momentum` or `mean-reversion`.
    name: &'a str,
    /// The owner's standing instruction to a model policy.
    instruction: Option<&'a str>,
    /// The pair's token symbols, as a model sees them.
    symbols: &'a PairSymbols,
    /// The pair it trades.
    market: &'a Market,
}

impl TradingSetup {
    /// The trading strategy for token `token`: the owner's policy, the token-bound account
    /// (created if missing, funded if asked), the market mover if asked, and the nonce manager
    /// unless this is a dry run.
    async fn strategy(
        &self,
        node: &Node,
        wallet: &PrivateKeySigner,
        choice: &PolicyChoice<'_>,
        token: U256,
        signer: &PrivateKeySigner,
        db: Db,
    ) -> anyhow::Result<TradingStrategy<Box<dyn TradingPolicy>>> {
        let market = choice.market;
        let path = self
            .policy
            .clone()
            .unwrap_or_else(|| node.home.join("trading-policy.json"));
        let policy = if path.is_file() {
            Policy::load(&path)?
        } else {
            let e18 = U256::from(10u64).pow(U256::from(18u64));
            let policy = Policy::for_market(market, U256::from(1_000u64) * e18);
            policy.save(&path)?;
            tracing::info!(path = %path.display(), "wrote a default trading policy");
            policy
        };
        let PolicyChoice {
            name,
            instruction,
            symbols,
            market: _,
        } = *choice;
        let instruction = instruction.unwrap_or(FOLLOW_THE_TREND);
        let policy_impl: Box<dyn TradingPolicy> = if name == "llm" {
            Box::new(LlmPolicy::new(instruction).with_symbols(symbols.clone())?)
        } else {
            policy_by_name(name, instruction).with_context(|| {
                format!("unknown trading strategy {name:?} (llm, momentum, mean-reversion)")
            })?
        };

        let owner_provider = node.provider(wallet)?;
        let factory =
            AgentAccountFactory::new(node.deployment.agent_account_factory, &owner_provider);
        let account = factory.accountOf(token).call().await?;
        if owner_provider.get_code_at(account).await?.is_empty() {
            factory
                .createAccount_1(token)
                .send()
                .await?
                .get_receipt()
                .await?;
        }
        let e18 = U256::from(10u64).pow(U256::from(18u64));
        if let Some((from, base, quote)) = &self.fund {
            let funder = keystore_signer(node, from)?;
            let p = node.provider(&funder)?;
            for (t, n) in [(market.base_token, *base), (market.quote_token, *quote)] {
                if n > 0 {
                    TestToken::new(t, &p)
                        .transfer(account, U256::from(n) * e18)
                        .send()
                        .await?
                        .get_receipt()
                        .await?;
                }
            }
        }
        let reader = MarketReader::new(
            node.reader()?,
            market.clone(),
            node.deployment.agent_nft,
            token,
            account,
        );
        let mut strategy = TradingStrategy::new(policy_impl, Firewall::new(policy), reader);
        if !self.dry_run {
            strategy = strategy.with_sender(
                db,
                node.reader()?,
                signer.clone(),
                node.deployment.chain_id,
                SendOptions::default(),
            );
        }
        if let Some((seed, maker)) = &self.move_market {
            let maker = keystore_signer(node, maker)?;
            let process = PriceProcess::new(
                node.provider(&maker)?,
                maker.address(),
                market.clone(),
                *seed,
            );
            process.prepare().await?;
            strategy = strategy.with_market_mover(process);
        }
        Ok(strategy)
    }
}

/// The keystore HOME/keystores/NAME.json, unlocked.
fn keystore_signer(node: &Node, name: &str) -> anyhow::Result<PrivateKeySigner> {
    WalletOpts {
        keystore: None,
        account: Some(name.to_owned()),
    }
    .signer(&node.home)
}

/// The traded pair's token symbols, read from the tokens (ERC-20 `symbol()`).
async fn pair_symbols(node: &Node, market: &Market) -> anyhow::Result<PairSymbols> {
    let provider = node.reader()?;
    let symbol = |token| {
        let provider = provider.clone();
        async move {
            TestToken::new(token, &provider)
                .symbol()
                .call()
                .await
                .with_context(|| format!("reading the symbol of token {token}"))
        }
    };
    Ok(PairSymbols {
        base: symbol(market.base_token).await?,
        quote: symbol(market.quote_token).await?,
    })
}
