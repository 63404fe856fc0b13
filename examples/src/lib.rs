//! Shared set-up of the inft examples: a throw-away local chain with the real contracts
//! deployed, a content-addressed blob store in a temporary directory, a small stand-in model and
//! dev accounts with their sealing keys published.
//!
//! Each example (`mint`, `transfer`, `trade`, `audit`) starts its own [`Sandbox`]; everything it
//! creates is gone when the sandbox is dropped (anvil is killed, the directory removed).
//! Against a real deployment you would read a [`Deployment`] from the deployment file the `inft`
//! CLI writes ([`Deployment::read_from`]) and use your own wallets instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_runtime::blobstore::gateway::GatewayHandle;
use agent_runtime::blobstore::{BlobStore, LocalDirStore};
use agent_runtime::lifecycle::{LifecycleError, MintRequest, MintedAgent, mint_agent};
use agent_runtime::token::{AgentNft, Shares};
use agent_runtime::transfer::oracle::OracleService;
use agent_runtime::wallet::derive_sealing_secret;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, U256, utils::parse_ether};
use alloy::providers::{DynProvider, Provider, ProviderBuilder, WalletProvider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::{DeployConfig, Deployment, DevChain, deploy_with, spawn_anvil};
use inft_engine::testmodel::{TestModelParams, llama_gguf_bytes};
use inft_engine::{ContextOptions, SamplerSettings};
use inft_runtime::UnsealOptions;
use inft_runtime::{OpenedAgent, open_agent};
use inft_types::config::{AgentConfig, AgentKind, CONFIG_VERSION};
use sealing::{SealOptions, SealingSecret};
use tempfile::TempDir;

pub use anyhow::Result;

/// The dev account registered as the re-encryption oracle at deploy: a market sale completes
/// only with an oracle's attestation (see [`Sandbox::oracle`]).
pub const ORACLE_ACCOUNT: usize = 9;

/// A local chain with everything deployed, a blob store and a stand-in model.
pub struct Sandbox {
    /// The anvil node (killed on drop).
    pub chain: DevChain,
    /// Addresses of the deployed contracts (AgentNFT, verifier, action log, market, Uniswap V2 …).
    pub deployment: Deployment,
    /// Where sealed blobs (and published action records) are stored, by content hash.
    pub store: LocalDirStore,
    /// The temporary directory holding the store and any database (removed on drop).
    pub dir: TempDir,
    /// The plaintext model: a tiny llama-architecture GGUF with deterministic weights.
    pub model: Vec<u8>,
    /// Its SHA-256, hex: what an agent's config names.
    pub model_sha256: String,
}

/// A dev account: its wallet, its X25519 sealing secret (derived from the wallet) and the NFT
/// client acting through its wallet.
pub struct Actor {
    /// The Ethereum wallet.
    pub wallet: PrivateKeySigner,
    /// The sealing secret: what the token's data keys are sealed to.
    pub secret: SealingSecret,
    /// AgentNFT, sending from this account.
    pub nft: AgentNft,
}

impl Actor {
    /// The account's address.
    pub fn address(&self) -> Address {
        self.wallet.address()
    }
}

/// The workspace root: anvil is found under `inft-contracts/node_modules` (`npm ci` there, or
/// `scripts/setup.sh`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

impl Sandbox {
    /// Spawns anvil on a free loopback port, deploys the system and a dev Uniswap V2 market with
    /// dev account 0, and opens a blob store in a temporary directory.
    pub async fn start() -> Result<Self> {
        let chain = spawn_anvil(Some(&workspace_root()), &[])?;
        let deployer = chain
            .signer(0)
            .ok_or_else(|| anyhow::anyhow!("anvil has no dev account 0"))?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer))
            .connect_http(chain.endpoint_url());
        // The only place the examples deploy: AgentNFT (with its ActionLog), the transfer
        // verifier, the metadata renderer, the earnings splitter, the ERC-6551 account factory,
        // the AgentMarket, and a seeded tGLD/tUSD Uniswap V2 pool.
        let oracle = chain
            .signer(ORACLE_ACCOUNT)
            .ok_or_else(|| anyhow::anyhow!("anvil has no dev account {ORACLE_ACCOUNT}"))?;
        let deployment = deploy_with(
            &provider,
            provider.default_signer_address(),
            &DeployConfig {
                oracles: vec![oracle.address()],
                ..DeployConfig::default()
            },
        )
        .await?;
        let dir = tempfile::tempdir()?;
        let store = LocalDirStore::open(dir.path().join("blobs"))?;
        // A 1 MiB stand-in for a real GGUF (SmolLM2 or your own): it loads and runs in
        // llama.cpp like any model, in milliseconds.
        let model = llama_gguf_bytes(&TestModelParams::for_size(1 << 20), 7)?;
        let model_sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&model));
        Ok(Self {
            chain,
            deployment,
            store,
            dir,
            model,
            model_sha256,
        })
    }

    /// A provider sending from `signer`.
    pub fn provider(&self, signer: &PrivateKeySigner) -> DynProvider {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_http(self.chain.endpoint_url())
            .erased()
    }

    /// A read-only provider, as anyone (an auditor, a market reader) has.
    pub fn reader(&self) -> DynProvider {
        ProviderBuilder::new()
            .connect_http(self.chain.endpoint_url())
            .erased()
    }

    /// Dev account `index` (0 is the deployer), with its sealing key published on chain so
    /// agents can be sealed to it.
    pub async fn actor(&self, index: usize) -> Result<Actor> {
        let wallet = self
            .chain
            .signer(index)
            .ok_or_else(|| anyhow::anyhow!("anvil has no dev account {index}"))?;
        // Derived from an EIP-712 signature of the wallet: the owner needs nothing but it.
        let secret = derive_sealing_secret(&wallet, self.deployment.chain_id, 0)?;
        let nft = AgentNft::new(self.provider(&wallet), &self.deployment);
        nft.publish_sealing_key(wallet.address(), &secret.public_key())
            .await?;
        Ok(Actor {
            wallet,
            secret,
            nft,
        })
    }

    /// Starts the re-encryption oracle (dev account [`ORACLE_ACCOUNT`]) on a free loopback
    /// port, writing to the sandbox's blob store. In real life it runs inside a TEE whose
    /// attestation the verifier's owner checked before registering its key.
    pub async fn oracle(&self) -> Result<GatewayHandle> {
        let oracle = self.actor(ORACLE_ACCOUNT).await?;
        let store: Arc<dyn BlobStore> =
            Arc::new(LocalDirStore::open(self.dir.path().join("blobs"))?);
        let service = Arc::new(OracleService::new(
            oracle.wallet,
            oracle.secret,
            oracle.nft,
            store,
            SealOptions::default(),
        ));
        Ok(service.serve("127.0.0.1:0".parse()?).await?)
    }

    /// The config of an agent of `kind` on this sandbox's model.
    pub fn config(&self, name: &str, kind: AgentKind, max_tokens: u32) -> AgentConfig {
        let mut sampler = SamplerSettings::seeded(11);
        sampler.max_tokens = max_tokens;
        AgentConfig {
            version: CONFIG_VERSION,
            name: name.into(),
            kind,
            model_sha256: self.model_sha256.clone(),
            sampler,
            context: ContextOptions {
                n_ctx: 2048,
                n_batch: 512,
                n_threads: Some(1),
            },
            private_prompts: false,
        }
    }

    /// Seals the model, a fresh agent key and `config` to `owner`, stores the blobs and mints the
    /// token (5 % royalty to the creator, 10 % of earnings), then sends the agent wallet 1 ETH
    /// for gas (it signs and logs every action).
    pub async fn mint(
        &self,
        owner: &Actor,
        config: &AgentConfig,
        salt: u64,
    ) -> Result<MintedAgent> {
        let request = MintRequest {
            model: Box::new(std::io::Cursor::new(self.model.clone())),
            config,
            memory: None,
            salt,
            shares: Shares {
                royalty_bps: 500,
                creator_bps: 1000,
                contributors: vec![],
            },
            seal: SealOptions::default(),
        };
        let minted = mint_agent(
            &owner.nft,
            &self.store,
            owner.address(),
            &owner.secret.public_key(),
            request,
        )
        .await?;
        let fund = TransactionRequest::default()
            .with_to(minted.agent)
            .with_value(parse_ether("1")?);
        // Through the NFT client's provider: it tracks this wallet's nonces.
        let receipt = owner
            .nft
            .provider()
            .send_transaction(fund)
            .await?
            .get_receipt()
            .await?;
        anyhow::ensure!(receipt.status(), "funding the agent wallet reverted");
        Ok(minted)
    }

    /// Opens `token` as `actor` for `scope` (`inft_contracts::scopes`): the ownership or grant
    /// check on chain first, then fetch, verify against the on-chain hashes, unseal in memory.
    pub async fn open(
        &self,
        actor: &Actor,
        token: U256,
        scope: u8,
    ) -> std::result::Result<OpenedAgent, LifecycleError> {
        open_agent(
            &actor.nft,
            &self.store,
            actor.address(),
            &actor.secret,
            token,
            scope,
            &UnsealOptions::default(),
        )
        .await
    }

    /// The latest block's timestamp (deadlines are in chain time).
    pub async fn chain_time(&self) -> Result<u64> {
        let block = self
            .reader()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no latest block"))?;
        Ok(block.header.timestamp)
    }
}

/// `n` whole tokens of 18 decimals, in wei.
pub fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}
