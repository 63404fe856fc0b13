//! Deploy the whole system and a dev market onto a chain (anvil in development).

use std::path::Path;

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, WalletProvider};
use serde::{Deserialize, Serialize};

use crate::bindings::{
    AgentAccountFactory, AgentMarket, AgentMetadata, AgentNFT, EarningsSplitter, TestToken,
    TransferVerifier, UniswapV2Factory, UniswapV2Router02, WETH9,
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

/// Addresses of everything [`deploy_all`] put on the chain. Serialized to the deployment file
/// that `inft dev up` writes and the other commands read.
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
    /// deployment files written before it existed: redeploy with `inft dev up`).
    #[serde(default)]
    pub agent_market: Address,
    /// Re-encryption oracle keys registered in the verifier at deployment.
    pub oracles: Vec<Address>,
    /// The dev market.
    pub market: Market,
}

/// The dev market: Uniswap V2 (npm bytecode, deployed as is) and two test tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Market {
    /// WETH9.
    pub weth: Address,
    /// UniswapV2Factory.
    pub factory: Address,
    /// UniswapV2Router02.
    pub router: Address,
    /// Test USD (`tUSD`, 18 decimals): the quote token.
    pub quote_token: Address,
    /// Test Gold (`tGLD`, 18 decimals): the traded asset.
    pub base_token: Address,
    /// The seeded `base_token`/`quote_token` pair.
    pub pair: Address,
}

impl Deployment {
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

/// Deploy everything with the provider's default signer as deployer and [`DeployConfig::default`].
pub async fn deploy_all<P>(provider: &P) -> Result<Deployment, DeployError>
where
    P: Provider + WalletProvider,
{
    let deployer = provider.default_signer_address();
    deploy_with(provider, deployer, &DeployConfig::default()).await
}

macro_rules! deploy {
    ($step:literal, $fut:expr) => {
        *$fut
            .await
            .map_err(|source| DeployError::Contract {
                step: $step,
                source: Box::new(source),
            })?
            .address()
    };
}

/// Send a contract call and wait for a successful receipt.
async fn send<P: Provider>(
    step: &'static str,
    call: alloy::contract::CallBuilder<
        &P,
        std::marker::PhantomData<impl alloy::sol_types::SolCall>,
    >,
) -> Result<(), DeployError> {
    let receipt = call
        .send()
        .await
        .map_err(|source| DeployError::Contract {
            step,
            source: Box::new(source),
        })?
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
    Ok(())
}

/// Deploy the NFT, verifier, action log, splitter, agent-account factory, agent market, WETH9, Uniswap V2
/// Factory + Router02, two test tokens, and a seeded pool (liquidity added through the router).
/// `deployer` must be the address the provider signs with.
pub async fn deploy_with<P: Provider>(
    provider: &P,
    deployer: Address,
    config: &DeployConfig,
) -> Result<Deployment, DeployError> {
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|source| DeployError::Rpc {
            step: "eth_chainId",
            source: Box::new(source),
        })?;
    let start_block = provider
        .get_block_number()
        .await
        .map_err(|source| DeployError::Rpc {
            step: "eth_blockNumber",
            source: Box::new(source),
        })?;

    let nft = deploy!("deploy AgentNFT", AgentNFT::deploy(provider, deployer));
    let verifier = deploy!(
        "deploy TransferVerifier",
        TransferVerifier::deploy(provider, nft, deployer)
    );
    // The NFT deploys its ActionLog in its constructor (so every append can emit ERC-4906
    // MetadataUpdate from the NFT without a storage read).
    let action_log = AgentNFT::new(nft, provider)
        .actionLog()
        .call()
        .await
        .map_err(|source| DeployError::Contract {
            step: "AgentNFT.actionLog",
            source: Box::new(source),
        })?;
    let metadata = deploy!("deploy AgentMetadata", AgentMetadata::deploy(provider, nft));
    let splitter = deploy!(
        "deploy EarningsSplitter",
        EarningsSplitter::deploy(provider, nft)
    );
    let accounts = deploy!(
        "deploy AgentAccountFactory",
        AgentAccountFactory::deploy(provider, nft)
    );
    let agent_market = deploy!("deploy AgentMarket", AgentMarket::deploy(provider, nft));

    let nft_i = AgentNFT::new(nft, provider);
    send("AgentNFT.setVerifier", nft_i.setVerifier(verifier)).await?;
    // The NFT closes the seller's open approvals on the agent account at a sale: it finds the
    // account through this factory (set once).
    send(
        "AgentNFT.setAccountFactory",
        nft_i.setAccountFactory(accounts),
    )
    .await?;
    send(
        "AgentNFT.setMetadataRenderer",
        nft_i.setMetadataRenderer(metadata),
    )
    .await?;
    let verifier_i = TransferVerifier::new(verifier, provider);
    for oracle in &config.oracles {
        send(
            "TransferVerifier.setOracle",
            verifier_i.setOracle(*oracle, true),
        )
        .await?;
    }

    // The dev market: Uniswap V2 exactly as published on npm.
    let weth = deploy!("deploy WETH9", WETH9::deploy(provider));
    let factory = deploy!(
        "deploy UniswapV2Factory",
        UniswapV2Factory::deploy(provider, deployer)
    );
    let router = deploy!(
        "deploy UniswapV2Router02",
        UniswapV2Router02::deploy(provider, factory, weth)
    );
    let quote = deploy!(
        "deploy tUSD",
        TestToken::deploy(provider, "Test USD".to_string(), "tUSD".to_string(), 18u8)
    );
    let base = deploy!(
        "deploy tGLD",
        TestToken::deploy(provider, "Test Gold".to_string(), "tGLD".to_string(), 18u8)
    );

    let quote_i = TestToken::new(quote, provider);
    let base_i = TestToken::new(base, provider);
    send(
        "tUSD.mint",
        quote_i.mint(deployer, config.pool_quote + config.deployer_balance),
    )
    .await?;
    send(
        "tGLD.mint",
        base_i.mint(deployer, config.pool_base + config.deployer_balance),
    )
    .await?;
    send("tUSD.approve", quote_i.approve(router, config.pool_quote)).await?;
    send("tGLD.approve", base_i.approve(router, config.pool_base)).await?;
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
    )
    .await?;
    let pair = UniswapV2Factory::new(factory, provider)
        .getPair(base, quote)
        .call()
        .await
        .map_err(|source| DeployError::Contract {
            step: "UniswapV2Factory.getPair",
            source: Box::new(source),
        })?;

    tracing::info!(%nft, %verifier, %action_log, %pair, chain_id, "inft contracts deployed");
    Ok(Deployment {
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
        oracles: config.oracles.clone(),
        market: Market {
            weth,
            factory,
            router,
            quote_token: quote,
            base_token: base,
            pair,
        },
    })
}
