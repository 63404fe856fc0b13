//! Deploy the system onto any EVM chain ([`deploy_system`]), a dev market next to it on anvil
//! ([`deploy_dev_market`]; both: [`deploy_with`]), check what was deployed against the committed
//! artifacts ([`verify_code`]), and find a pair on an existing Uniswap V2 ([`resolve_market`]).

use std::path::Path;

use std::time::Duration;

use alloy::primitives::{Address, Bytes, TxHash, U256};
use alloy::providers::{Provider, WalletProvider};
use serde::{Deserialize, Serialize};

use crate::bindings::{
    ActionLog, AgentAccount, AgentAccountFactory, AgentMarket, AgentMetadata, AgentNFT,
    EarningsSplitter, TestToken, TransferVerifier, UniswapV2Factory, UniswapV2Router02, WETH9,
};

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// A contract call or deployment failed (revert, RPC or transport error).
    #[error("{step}: {source}")]
    Contract {
        /// What was being done.
        step: &'static str,
        /// The alloy error.
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// Waiting for a transaction failed.
    #[error("{step}: {source}")]
    Pending {
        /// What was being done.
        step: &'static str,
        /// The alloy error.
        #[source]
        source: Box<alloy::providers::PendingTransactionError>,
    },
    /// A transaction was mined but reverted.
    #[error("{step}: transaction {tx} reverted")]
    Reverted {
        /// What was being done.
        step: &'static str,
        /// Its hash.
        tx: alloy::primitives::TxHash,
    },
    /// An RPC request failed.
    #[error("{step}: {source}")]
    Rpc {
        /// What was being done.
        step: &'static str,
        /// The alloy error.
        #[source]
        source: Box<alloy::transports::TransportError>,
    },
    /// Reading or writing a deployment file failed.
    #[error("deployment file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The deployment file has no market (deployed by `inft deploy` without one).
    #[error(
        "the deployment has no market: name an existing Uniswap V2 router and the pair's tokens"
    )]
    NoMarket,
    /// No contract answers as a Uniswap V2 router at this address.
    #[error("{address} is not a Uniswap V2 router (factory() / WETH() failed): {source}")]
    NotARouter {
        /// The address given as the router.
        address: Address,
        /// The failed call.
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// The router's factory has no pair for the two tokens.
    #[error("the router's factory {factory} has no pair for {base} / {quote}")]
    NoPair {
        /// The router's factory.
        factory: Address,
        /// The base token.
        base: Address,
        /// The quote token.
        quote: Address,
    },
    /// The base and quote tokens are the same.
    #[error("the base and quote tokens are the same ({0})")]
    SameToken(Address),
    /// The code at an address is not what the committed artifact deploys.
    #[error("{contract} at {address}: {detail}")]
    CodeMismatch {
        /// The contract's name.
        contract: &'static str,
        /// Its address.
        address: Address,
        /// What differs.
        detail: String,
    },
    /// A deployment transaction was mined without creating a contract.
    #[error("{step}: transaction {tx} created no contract")]
    NoContract {
        /// What was being done.
        step: &'static str,
        /// Its hash.
        tx: TxHash,
    },
    /// A deployment file is not valid JSON for [`Deployment`].
    #[error("deployment file {path}: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// Addresses of everything [`deploy_system`] (and [`deploy_with`]) put on the chain.
/// Serialized to the deployment file that `inft deploy` and `inft dev up` write and the other
/// commands read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The chain the contracts live on.
    pub chain_id: u64,
    /// The block before the first deployment transaction: scan events from here.
    pub start_block: u64,
    /// The deployer: admin of the NFT and the verifier, owner of the test tokens.
    pub deployer: Address,
    /// AgentNFT.
    pub agent_nft: Address,
    /// TransferVerifier (installed in the NFT).
    pub transfer_verifier: Address,
    /// ActionLog (deployed by the NFT's constructor).
    pub action_log: Address,
    /// AgentMetadata: renders `tokenURI` (zero in deployment files written before it existed).
    #[serde(default)]
    pub agent_metadata: Address,
    /// EarningsSplitter.
    pub earnings_splitter: Address,
    /// AgentAccountFactory (token-bound agent accounts; installed in the NFT).
    pub agent_account_factory: Address,
    /// AgentMarket: fixed-price sales of agent tokens completed by the key rotation (zero in
    /// deployment files written before it existed: redeploy).
    #[serde(default)]
    pub agent_market: Address,
    /// Re-encryption oracle keys registered in the verifier at deployment.
    pub oracles: Vec<Address>,
    /// The market trading agents use by default: the dev market that `inft dev up` deploys, an
    /// existing Uniswap V2 pair that `inft deploy --router` recorded, or none (`null`; trading
    /// agents then name a router themselves).
    #[serde(default)]
    pub market: Option<Market>,
}

/// A Uniswap V2 pair to trade on: the dev market (Uniswap V2 npm bytecode, deployed as is, and
/// two test tokens), or a pair on an existing Uniswap V2 ([`resolve_market`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Market {
    /// WETH9.
    pub weth: Address,
    /// UniswapV2Factory.
    pub factory: Address,
    /// UniswapV2Router02.
    pub router: Address,
    /// The quote token (dev market: Test USD, `tUSD`, 18 decimals).
    pub quote_token: Address,
    /// The traded asset (dev market: Test Gold, `tGLD`, 18 decimals).
    pub base_token: Address,
    /// The seeded `base_token`/`quote_token` pair.
    pub pair: Address,
}

impl Deployment {
    /// The default market, or [`DeployError::NoMarket`].
    pub fn market(&self) -> Result<&Market, DeployError> {
        self.market.as_ref().ok_or(DeployError::NoMarket)
    }

    /// Read a deployment file.
    pub fn read_from(path: &Path) -> Result<Self, DeployError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeployError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DeployError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Write the deployment file (pretty JSON).
    pub fn write_to(&self, path: &Path) -> Result<(), DeployError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|source| DeployError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| DeployError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// What [`deploy_with`] seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// Oracle keys to register in the verifier.
    pub oracles: Vec<Address>,
    /// Base tokens (wei) put into the pool.
    pub pool_base: U256,
    /// Quote tokens (wei) put into the pool (price = pool_quote / pool_base).
    pub pool_quote: U256,
    /// Of each test token, minted to the deployer on top of the pool seed.
    pub deployer_balance: U256,
}

impl Default for DeployConfig {
    /// 1,000 tGLD against 1,000,000 tUSD (price 1,000), and 10,000,000 of each for the deployer.
    fn default() -> Self {
        let e18 = U256::from(10u64).pow(U256::from(18u64));
        Self {
            oracles: Vec::new(),
            pool_base: U256::from(1_000u64) * e18,
            pool_quote: U256::from(1_000_000u64) * e18,
            deployer_balance: U256::from(10_000_000u64) * e18,
        }
    }
}

/// How [`deploy_system`] sends its transactions and reports on them.
pub struct DeployOptions<'a> {
    /// Blocks each transaction must have on top of it (its own included) before the next one
    /// is sent. 1 on dev chains.
    pub confirmations: u64,
    /// Give up waiting for a transaction after this long (`None`: wait for ever).
    pub timeout: Option<Duration>,
    /// Called once per transaction, after it confirmed.
    pub on_step: Option<&'a (dyn Fn(&DeployStep) + Send + Sync)>,
}

impl Default for DeployOptions<'_> {
    fn default() -> Self {
        Self {
            confirmations: 1,
            timeout: None,
            on_step: None,
        }
    }
}

impl std::fmt::Debug for DeployOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployOptions")
            .field("confirmations", &self.confirmations)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One confirmed deployment transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployStep {
    /// What it did: a contract's name (a deployment) or `Contract.function` (a call).
    pub name: String,
    /// The contract it created, for a deployment.
    pub address: Option<Address>,
    /// The transaction.
    pub tx: TxHash,
    /// Gas it used.
    pub gas_used: u64,
    /// The block it is in.
    pub block: Option<u64>,
}

/// The contracts [`deploy_system`] creates, in order, and the code each must end up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedCode {
    /// The contract's name.
    pub contract: &'static str,
    /// Its address.
    pub address: Address,
    /// Its runtime code as its creation produced it when simulated (`eth_call`) just before it
    /// was sent: immutables included. For the NFT's ActionLog (created in the NFT's
    /// constructor) the simulation is of the same creation with the NFT as argument. `None`
    /// only for the agent account implementation, which the factory's constructor creates and
    /// whose immutables are its own address and chain (nothing a deployer chooses; the factory's
    /// exact check pins that address): only the artifact check applies.
    pub expected: Option<Bytes>,
    /// The committed artifact's creation bytecode.
    pub artifact: &'static [u8],
}

/// What [`deploy_system`] produced: the deployment (without a market) and the code to check.
#[derive(Debug, Clone)]
pub struct SystemDeployment {
    /// The addresses (`market` is `None`).
    pub deployment: Deployment,
    /// Every created contract, for [`verify_code`].
    pub code: Vec<DeployedCode>,
    /// Every transaction, in order.
    pub steps: Vec<DeployStep>,
}

/// Deploy everything with the provider's default signer as deployer and [`DeployConfig::default`].
pub async fn deploy_all<P>(provider: &P) -> Result<Deployment, DeployError>
where
    P: Provider + WalletProvider,
{
    let deployer = provider.default_signer_address();
    deploy_with(provider, deployer, &DeployConfig::default()).await
}

fn rpc_err(step: &'static str) -> impl FnOnce(alloy::transports::TransportError) -> DeployError {
    move |source| DeployError::Rpc {
        step,
        source: Box::new(source),
    }
}

fn contract_err(step: &'static str) -> impl FnOnce(alloy::contract::Error) -> DeployError {
    move |source| DeployError::Contract {
        step,
        source: Box::new(source),
    }
}

/// Send a transaction built by `call`, wait for its confirmations and a successful receipt,
/// and report it.
async fn send_tx<P: Provider, D: alloy::contract::CallDecoder>(
    step: &'static str,
    call: &alloy::contract::CallBuilder<&P, D>,
    opts: &DeployOptions<'_>,
) -> Result<DeployStep, DeployError> {
    let receipt = call
        .send()
        .await
        .map_err(contract_err(step))?
        .with_required_confirmations(opts.confirmations.max(1))
        .with_timeout(opts.timeout)
        .get_receipt()
        .await
        .map_err(|source| DeployError::Pending {
            step,
            source: Box::new(source),
        })?;
    if !receipt.status() {
        return Err(DeployError::Reverted {
            step,
            tx: receipt.transaction_hash,
        });
    }
    let done = DeployStep {
        name: step.to_owned(),
        address: receipt.contract_address,
        tx: receipt.transaction_hash,
        gas_used: receipt.gas_used,
        block: receipt.block_number,
    };
    tracing::info!(step, address = ?done.address, tx = %done.tx, gas = done.gas_used, "confirmed");
    if let Some(f) = opts.on_step {
        f(&done);
    }
    Ok(done)
}

/// Send a contract call (see [`send_tx`]).
async fn send<P: Provider>(
    step: &'static str,
    call: alloy::contract::CallBuilder<
        &P,
        std::marker::PhantomData<impl alloy::sol_types::SolCall>,
    >,
    opts: &DeployOptions<'_>,
) -> Result<DeployStep, DeployError> {
    send_tx(step, &call, opts).await
}

/// Deploy a contract: simulate the creation first (its runtime code, immutables included, is
/// what the address must hold afterwards), send it, wait, report.
async fn create<P: Provider>(
    contract: &'static str,
    artifact: &'static [u8],
    call: alloy::contract::RawCallBuilder<&P>,
    opts: &DeployOptions<'_>,
    code: &mut Vec<DeployedCode>,
    steps: &mut Vec<DeployStep>,
) -> Result<Address, DeployError> {
    let expected = call.call_raw().await.map_err(contract_err(contract))?;
    let step = send_tx(contract, &call, opts).await?;
    let address = step.address.ok_or(DeployError::NoContract {
        step: contract,
        tx: step.tx,
    })?;
    code.push(DeployedCode {
        contract,
        address,
        expected: Some(expected),
        artifact,
    });
    steps.push(step);
    Ok(address)
}

/// Gas a fresh [`deploy_system`] by `deployer` would use, estimated before anything is sent:
/// each creation is estimated by the node (at the addresses they will have, from the deployer's
/// nonce), each wiring call counted at a fixed 100,000 gas (they cannot be estimated before
/// the contracts exist; each uses under 50,000).
pub async fn estimate_system_gas<P: Provider>(
    provider: &P,
    deployer: Address,
    oracles: &[Address],
) -> Result<u64, DeployError> {
    const CALL_GAS: u64 = 100_000;
    let nonce = provider
        .get_transaction_count(deployer)
        .await
        .map_err(rpc_err("eth_getTransactionCount"))?;
    let nft = deployer.create(nonce);
    fn from<P: Provider>(
        b: alloy::contract::RawCallBuilder<&P>,
        deployer: Address,
    ) -> alloy::contract::RawCallBuilder<&P> {
        b.from(deployer)
    }
    let builders = [
        (
            "AgentNFT",
            from(AgentNFT::deploy_builder(provider, deployer), deployer),
        ),
        (
            "TransferVerifier",
            from(
                TransferVerifier::deploy_builder(provider, nft, deployer),
                deployer,
            ),
        ),
        (
            "EarningsSplitter",
            from(EarningsSplitter::deploy_builder(provider, nft), deployer),
        ),
        (
            "AgentAccountFactory",
            from(AgentAccountFactory::deploy_builder(provider, nft), deployer),
        ),
        (
            "AgentMetadata",
            from(AgentMetadata::deploy_builder(provider, nft), deployer),
        ),
        (
            "AgentMarket",
            from(AgentMarket::deploy_builder(provider, nft), deployer),
        ),
    ];
    let mut gas = 0u64;
    for (name, b) in &builders {
        gas += b.estimate_gas().await.map_err(contract_err(name))?;
    }
    Ok(gas + CALL_GAS * (3 + oracles.len() as u64))
}

/// Deploy the system: AgentNFT (admin `deployer`), TransferVerifier (installed in the NFT),
/// its ActionLog, EarningsSplitter, AgentAccountFactory (installed), AgentMetadata (installed as
/// the `tokenURI` renderer), AgentMarket, and register `oracles` in the
/// verifier. Works on any EVM chain; `deployer` must be the address the provider signs with.
/// The returned deployment has no market; check the code with [`verify_code`].
pub async fn deploy_system<P: Provider>(
    provider: &P,
    deployer: Address,
    oracles: &[Address],
    opts: &DeployOptions<'_>,
) -> Result<SystemDeployment, DeployError> {
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(rpc_err("eth_chainId"))?;
    let start_block = provider
        .get_block_number()
        .await
        .map_err(rpc_err("eth_blockNumber"))?;
    let (mut code, mut steps) = (Vec::new(), Vec::new());
    let nft = create(
        "AgentNFT",
        &AgentNFT::BYTECODE,
        AgentNFT::deploy_builder(provider, deployer).from(deployer),
        opts,
        &mut code,
        &mut steps,
    )
    .await?;
    let verifier = create(
        "TransferVerifier",
        &TransferVerifier::BYTECODE,
        TransferVerifier::deploy_builder(provider, nft, deployer).from(deployer),
        opts,
        &mut code,
        &mut steps,
    )
    .await?;
    // The NFT deploys its ActionLog in its constructor (so every append can emit ERC-4906
    // MetadataUpdate from the NFT without a storage read).
    let action_log = AgentNFT::new(nft, provider)
        .actionLog()
        .call()
        .await
        .map_err(contract_err("AgentNFT.actionLog"))?;
    // Its only immutable is the NFT: a creation simulated with that argument produces exactly
    // the code the NFT's constructor deployed.
    let action_log_code = ActionLog::deploy_builder(provider, nft)
        .call_raw()
        .await
        .map_err(contract_err("ActionLog"))?;
    code.push(DeployedCode {
        contract: "ActionLog",
        address: action_log,
        expected: Some(action_log_code),
        artifact: &ActionLog::BYTECODE,
    });
    let splitter = create(
        "EarningsSplitter",
        &EarningsSplitter::BYTECODE,
        EarningsSplitter::deploy_builder(provider, nft).from(deployer),
        opts,
        &mut code,
        &mut steps,
    )
    .await?;
    let accounts = create(
        "AgentAccountFactory",
        &AgentAccountFactory::BYTECODE,
        AgentAccountFactory::deploy_builder(provider, nft).from(deployer),
        opts,
        &mut code,
        &mut steps,
    )
    .await?;

    // Every agent account is a clone of the implementation the factory created: its code is
    // what an account runs.
    let implementation = AgentAccountFactory::new(accounts, provider)
        .implementation()
        .call()
        .await
        .map_err(contract_err("AgentAccountFactory.implementation"))?;
    code.push(DeployedCode {
        contract: "AgentAccount",
        address: implementation,
        expected: None,
        artifact: &AgentAccount::BYTECODE,
    });

    let metadata = create(
        "AgentMetadata",
        &AgentMetadata::BYTECODE,
        AgentMetadata::deploy_builder(provider, nft).from(deployer),
        opts,
        &mut code,
        &mut steps,
    )
    .await?;
    let agent_market = create(
        "AgentMarket",
        &AgentMarket::BYTECODE,
        AgentMarket::deploy_builder(provider, nft).from(deployer),
        opts,
        &mut code,
        &mut steps,
    )
    .await?;

    let nft_i = AgentNFT::new(nft, provider);
    steps.push(send("AgentNFT.setVerifier", nft_i.setVerifier(verifier), opts).await?);
    steps.push(
        send(
            "AgentNFT.setMetadataRenderer",
            nft_i.setMetadataRenderer(metadata),
            opts,
        )
        .await?,
    );
    // The NFT closes the seller's open approvals on the agent account at a sale: it finds the
    // account through this factory (set once).
    steps.push(
        send(
            "AgentNFT.setAccountFactory",
            nft_i.setAccountFactory(accounts),
            opts,
        )
        .await?,
    );
    let verifier_i = TransferVerifier::new(verifier, provider);
    for oracle in oracles {
        steps.push(
            send(
                "TransferVerifier.setOracle",
                verifier_i.setOracle(*oracle, true),
                opts,
            )
            .await?,
        );
    }
    tracing::info!(%nft, %verifier, %action_log, chain_id, "inft contracts deployed");
    Ok(SystemDeployment {
        deployment: Deployment {
            chain_id,
            start_block,
            deployer,
            agent_nft: nft,
            transfer_verifier: verifier,
            action_log,
            agent_metadata: metadata,
            earnings_splitter: splitter,
            agent_account_factory: accounts,
            agent_market,
            oracles: oracles.to_vec(),
            market: None,
        },
        code,
        steps,
    })
}

/// Checks the code now at each address of `code`:
/// - it equals the runtime code that simulating the creation transaction returned just before
///   it was sent (exact, immutables included: same sender, nonce and constructor arguments);
/// - it is the committed artifact's: the artifact's creation bytecode holds the runtime code
///   (solc places it after the constructor), and the two agree on every byte except where the
///   artifact's copy has zeros, which is where solc leaves room for immutables (the artifacts
///   carry no `immutableReferences`; the exact check above covers those bytes).
pub async fn verify_code<P: Provider>(
    provider: &P,
    code: &[DeployedCode],
) -> Result<(), DeployError> {
    for c in code {
        let onchain = provider
            .get_code_at(c.address)
            .await
            .map_err(rpc_err("eth_getCode"))?;
        let mismatch = |detail: String| DeployError::CodeMismatch {
            contract: c.contract,
            address: c.address,
            detail,
        };
        if onchain.is_empty() {
            return Err(mismatch("no code at the address".into()));
        }
        if let Some(expected) = c.expected.as_ref().filter(|e| **e != onchain) {
            return Err(mismatch(format!(
                "runtime code ({} bytes) differs from what its creation transaction produced ({} bytes)",
                onchain.len(),
                expected.len()
            )));
        }
        if runtime_offset_in(c.artifact, &onchain).is_none() {
            return Err(mismatch(format!(
                "runtime code ({} bytes) is not the committed artifact's",
                onchain.len()
            )));
        }
    }
    Ok(())
}

/// Where `runtime` sits in the creation bytecode `creation`. Bytes may differ only inside the
/// artifact copy's `PUSH32 0` placeholders, which is how solc leaves room for immutables (the
/// constructor writes them in when it returns the code). `None`: it is not there.
pub fn runtime_offset_in(creation: &[u8], runtime: &[u8]) -> Option<usize> {
    const PUSH32: u8 = 0x7f;
    if runtime.is_empty() || runtime.len() > creation.len() {
        return None;
    }
    // The runtime's first bytes (the free-memory-pointer prologue) anchor the search.
    let anchor = runtime.len().min(5);
    (0..=creation.len() - runtime.len()).find(|&off| {
        let window = &creation[off..off + runtime.len()];
        if window[..anchor] != runtime[..anchor] {
            return false;
        }
        let mut placeholder = vec![false; window.len()];
        for p in 0..window.len().saturating_sub(32) {
            if window[p] == PUSH32 && window[p + 1..p + 33].iter().all(|&b| b == 0) {
                placeholder[p + 1..p + 33].fill(true);
            }
        }
        window
            .iter()
            .zip(runtime)
            .zip(&placeholder)
            .all(|((&a, &r), &hole)| a == r || hole)
    })
}

/// Deploy the dev market next to a system: WETH9, Uniswap V2 Factory + Router02 (npm bytecode,
/// as is), `tUSD` and `tGLD` (18 decimals) minted to the deployer, and a `tGLD/tUSD` pool
/// seeded through the router. For dev chains.
pub async fn deploy_dev_market<P: Provider>(
    provider: &P,
    deployer: Address,
    config: &DeployConfig,
) -> Result<Market, DeployError> {
    let opts = DeployOptions::default();
    let (mut code, mut steps) = (Vec::new(), Vec::new());
    let mut deploy = async |name, artifact, b: alloy::contract::RawCallBuilder<&P>| {
        create(name, artifact, b, &opts, &mut code, &mut steps).await
    };
    let weth = deploy("WETH9", &WETH9::BYTECODE, WETH9::deploy_builder(provider)).await?;
    let factory = deploy(
        "UniswapV2Factory",
        &UniswapV2Factory::BYTECODE,
        UniswapV2Factory::deploy_builder(provider, deployer),
    )
    .await?;
    let router = deploy(
        "UniswapV2Router02",
        &UniswapV2Router02::BYTECODE,
        UniswapV2Router02::deploy_builder(provider, factory, weth),
    )
    .await?;
    let quote = deploy(
        "tUSD",
        &TestToken::BYTECODE,
        TestToken::deploy_builder(provider, "Test USD".to_string(), "tUSD".to_string(), 18u8),
    )
    .await?;
    let base = deploy(
        "tGLD",
        &TestToken::BYTECODE,
        TestToken::deploy_builder(provider, "Test Gold".to_string(), "tGLD".to_string(), 18u8),
    )
    .await?;

    let quote_i = TestToken::new(quote, provider);
    let base_i = TestToken::new(base, provider);
    send(
        "tUSD.mint",
        quote_i.mint(deployer, config.pool_quote + config.deployer_balance),
        &opts,
    )
    .await?;
    send(
        "tGLD.mint",
        base_i.mint(deployer, config.pool_base + config.deployer_balance),
        &opts,
    )
    .await?;
    send(
        "tUSD.approve",
        quote_i.approve(router, config.pool_quote),
        &opts,
    )
    .await?;
    send(
        "tGLD.approve",
        base_i.approve(router, config.pool_base),
        &opts,
    )
    .await?;
    let router_i = UniswapV2Router02::new(router, provider);
    send(
        "Router02.addLiquidity",
        router_i.addLiquidity(
            base,
            quote,
            config.pool_base,
            config.pool_quote,
            config.pool_base,
            config.pool_quote,
            deployer,
            U256::MAX,
        ),
        &opts,
    )
    .await?;
    let pair = UniswapV2Factory::new(factory, provider)
        .getPair(base, quote)
        .call()
        .await
        .map_err(contract_err("UniswapV2Factory.getPair"))?;
    Ok(Market {
        weth,
        factory,
        router,
        quote_token: quote,
        base_token: base,
        pair,
    })
}

/// Deploy the system ([`deploy_system`], one confirmation) and the dev market
/// ([`deploy_dev_market`]): what `inft dev up` does. `deployer` must be the address the
/// provider signs with.
pub async fn deploy_with<P: Provider>(
    provider: &P,
    deployer: Address,
    config: &DeployConfig,
) -> Result<Deployment, DeployError> {
    let system = deploy_system(
        provider,
        deployer,
        &config.oracles,
        &DeployOptions::default(),
    )
    .await?;
    let market = deploy_dev_market(provider, deployer, config).await?;
    tracing::info!(pair = %market.pair, "dev market deployed");
    Ok(Deployment {
        market: Some(market),
        ..system.deployment
    })
}

/// The `base`/`quote` pair on the Uniswap V2 whose Router02 is at `router`: reads the router's
/// `factory()` and `WETH()`, and the pair from `factory.getPair`. Refused if the router does not
/// answer as one, or its factory has no such pair.
pub async fn resolve_market<P: Provider>(
    provider: &P,
    router: Address,
    base: Address,
    quote: Address,
) -> Result<Market, DeployError> {
    if base == quote {
        return Err(DeployError::SameToken(base));
    }
    let not_router = |source| DeployError::NotARouter {
        address: router,
        source: Box::new(source),
    };
    let router_i = UniswapV2Router02::new(router, provider);
    let factory = router_i.factory().call().await.map_err(not_router)?;
    let weth = router_i.WETH().call().await.map_err(not_router)?;
    let pair = UniswapV2Factory::new(factory, provider)
        .getPair(base, quote)
        .call()
        .await
        .map_err(contract_err("UniswapV2Factory.getPair"))?;
    if pair == Address::ZERO {
        return Err(DeployError::NoPair {
            factory,
            base,
            quote,
        });
    }
    Ok(Market {
        weth,
        factory,
        router,
        quote_token: quote,
        base_token: base,
        pair,
    })
}

#[cfg(test)]
mod tests {
    use super::runtime_offset_in;

    #[test]
    fn runtime_found_in_creation_with_immutable_room() {
        // An immutable: PUSH32 with 32 zero bytes in the template, a value in the runtime.
        let mut runtime = vec![0x60, 0x80, 0x60, 0x40, 0x52, 0x7f];
        runtime.extend_from_slice(&[0x11; 32]);
        runtime.extend_from_slice(&[0x56, 0x00, 0x02]);
        let mut template = runtime.clone();
        template[6..38].fill(0);
        let mut creation = vec![0x60, 0x80, 0x60, 0x40, 0x52, 0x33, 0x34, 0x39];
        creation.extend_from_slice(&template);
        creation.extend_from_slice(&[0xaa, 0xbb]);
        assert_eq!(runtime_offset_in(&creation, &runtime), Some(8));
        // A byte that differs outside a placeholder (even where the template has a zero): not
        // the artifact's code.
        let mut other = runtime.clone();
        other[39] = 0x03;
        assert_eq!(runtime_offset_in(&creation, &other), None);
        assert_eq!(runtime_offset_in(&creation, &[]), None);
    }
}
