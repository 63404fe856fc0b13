//! The option groups of commands that talk to a chain: where local state lives, which RPC and
//! deployment to use, and which wallet to act as.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_runtime::blobstore::{BlobStore, HttpGatewayStore, LocalDirStore};
use agent_runtime::db::Db;
use agent_runtime::indexer::{Indexer, SyncReport};
use agent_runtime::token::AgentNft;
use agent_runtime::wallet::{
    Passphrase, derive_sealing_secret, find_sealing_secret, load_keystore,
};
use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail};
use clap::Args;
use inft_contracts::Deployment;
use sealing::SealingSecret;
use serde::{Deserialize, Serialize};

/// The environment variable naming the database (`sqlite://FILE` or `postgres://…`).
pub(crate) const DATABASE_URL_ENV: &str = "INFT_DATABASE_URL";

/// Local state and chain selection, shared by every chain command.
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeOpts {
    /// Directory of local state: deployment file, blob store, database and dev keystores.
    #[arg(
        long,
        env = "INFT_HOME",
        default_value = ".inft",
        value_name = "DIR",
        global = true
    )]
    pub(crate) home: PathBuf,
    /// JSON-RPC endpoint [default: the one `inft dev up` recorded in the home directory].
    #[arg(
        long,
        visible_alias = "rpc",
        env = "INFT_RPC_URL",
        value_name = "URL",
        global = true
    )]
    pub(crate) rpc_url: Option<String>,
    /// Deployment file with the contract addresses [default: HOME/deployment.json].
    #[arg(long, env = "INFT_DEPLOYMENT", value_name = "FILE", global = true)]
    pub(crate) deployment: Option<PathBuf>,
    /// Blob gateway base URL (IPFS-style, `GET/PUT BASE/blob/HEX`) instead of the local store.
    #[arg(long, env = "INFT_GATEWAY", value_name = "URL", global = true)]
    pub(crate) gateway: Option<String>,
    /// Largest blob taken from or sent to the gateway (`8GiB`, `512MiB`, …; `0`: no limit). A
    /// token's sender chooses its blobs: without a cap, `transfer accept` could fill the disk.
    #[arg(
        long,
        env = "INFT_MAX_BLOB_SIZE",
        value_name = "SIZE",
        default_value = "8GiB",
        value_parser = super::dev::parse_size,
        global = true
    )]
    pub(crate) max_blob_size: u64,
}

/// The account to act as. Private keys are never taken as arguments: only encrypted keystores,
/// whose passphrase comes from `INFT_PASSPHRASE` (or `INFT_PASSPHRASE_FILE`) or a prompt.
#[derive(Debug, Clone, Args)]
pub(crate) struct WalletOpts {
    /// Encrypted keystore file (Ethereum V3 JSON) of the account to act as.
    #[arg(
        long,
        env = "INFT_KEYSTORE",
        value_name = "FILE",
        conflicts_with = "account"
    )]
    pub(crate) keystore: Option<PathBuf>,
    /// Name of a keystore in HOME/keystores (e.g. `alice` after `inft dev up`).
    #[arg(long, env = "INFT_ACCOUNT", value_name = "NAME")]
    pub(crate) account: Option<String>,
}

/// What `inft dev up` records about the node it started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NodeFile {
    /// The RPC endpoint.
    pub(crate) rpc_url: String,
    /// The anvil process, if `dev up` started one in the background.
    pub(crate) anvil_pid: Option<u32>,
}

impl NodeFile {
    pub(crate) fn path(home: &Path) -> PathBuf {
        home.join("node.json")
    }
}

/// A resolved chain environment.
pub(crate) struct Node {
    pub(crate) home: PathBuf,
    pub(crate) rpc_url: String,
    pub(crate) deployment: Deployment,
    gateway: Option<String>,
    max_blob_size: u64,
}

impl NodeOpts {
    /// Resolves the RPC URL and reads the deployment.
    pub(crate) fn load(&self) -> anyhow::Result<Node> {
        let deployment_path = self
            .deployment
            .clone()
            .unwrap_or_else(|| self.home.join("deployment.json"));
        let deployment = Deployment::read_from(&deployment_path).with_context(|| {
            format!(
                "reading deployment {} (run `inft dev up` or pass --deployment)",
                deployment_path.display()
            )
        })?;
        Ok(Node {
            home: self.home.clone(),
            rpc_url: self.rpc_url()?,
            deployment,
            gateway: self.gateway.clone(),
            max_blob_size: self.max_blob_size,
        })
    }

    /// The RPC URL: `--rpc-url`, else the one `inft dev up` recorded in the home directory.
    pub(crate) fn rpc_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.rpc_url {
            return Ok(url.clone());
        }
        let path = NodeFile::path(&self.home);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("no --rpc-url and no {} (run `inft dev up`)", path.display())
        })?;
        Ok(serde_json::from_str::<NodeFile>(&text)
            .with_context(|| format!("parsing {}", path.display()))?
            .rpc_url)
    }

    /// The deployment named by `--deployment`, else HOME/deployment.json if there is one, else
    /// `None` (a home with nothing but an RPC URL).
    pub(crate) fn deployment_if_any(&self) -> anyhow::Result<Option<Deployment>> {
        let path = match &self.deployment {
            Some(path) => path.clone(),
            None => {
                let path = self.home.join("deployment.json");
                if !path.exists() {
                    return Ok(None);
                }
                path
            }
        };
        Deployment::read_from(&path)
            .map(Some)
            .with_context(|| format!("reading deployment {}", path.display()))
    }
}

/// A read-only provider for `rpc_url`.
pub(crate) fn reader_for(rpc_url: &str) -> anyhow::Result<DynProvider> {
    let url = rpc_url
        .parse()
        .with_context(|| format!("invalid RPC URL {rpc_url}"))?;
    Ok(ProviderBuilder::new().connect_http(url).erased())
}

/// A node's database, brought up to date with the deployment's chain events.
pub(crate) struct Indexed {
    /// A read-only provider.
    pub(crate) reader: DynProvider,
    /// The database (HOME/inft.db).
    pub(crate) db: Db,
    /// What the sync did.
    pub(crate) synced: SyncReport,
}

impl WalletOpts {
    /// The keystore path these options name.
    pub(crate) fn path(&self, home: &Path) -> anyhow::Result<PathBuf> {
        match (&self.keystore, &self.account) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(name)) => Ok(home.join("keystores").join(format!("{name}.json"))),
            (None, None) => {
                bail!("no wallet: pass --keystore FILE or --account NAME (or set INFT_KEYSTORE)")
            }
        }
    }

    /// Decrypts the wallet.
    pub(crate) fn signer(&self, home: &Path) -> anyhow::Result<PrivateKeySigner> {
        let path = self.path(home)?;
        let passphrase =
            Passphrase::from_env_or_prompt(&format!("Passphrase for {}: ", path.display()))?;
        load_keystore(&path, &passphrase)
            .with_context(|| format!("unlocking keystore {}", path.display()))
    }
}

impl Node {
    /// A provider whose wallet signs with `signer`.
    pub(crate) fn provider(&self, signer: &PrivateKeySigner) -> anyhow::Result<DynProvider> {
        let url = self
            .rpc_url
            .parse()
            .with_context(|| format!("invalid RPC URL {}", self.rpc_url))?;
        Ok(ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_http(url)
            .erased())
    }

    /// A read-only provider.
    pub(crate) fn reader(&self) -> anyhow::Result<DynProvider> {
        reader_for(&self.rpc_url)
    }

    /// The database with the deployment's `ActionLog` and `AgentNFT` events indexed up to the
    /// chain's latest block (what audits and lookups read).
    pub(crate) async fn indexed(&self) -> anyhow::Result<Indexed> {
        let d = &self.deployment;
        let reader = self.reader()?;
        let db = self.db().await?;
        let synced = Indexer::new(
            reader.clone(),
            d.chain_id,
            d.agent_nft,
            d.action_log,
            d.start_block,
        )
        .sync(&db)
        .await
        .context("indexing chain events")?;
        Ok(Indexed { reader, db, synced })
    }

    /// The AgentNFT, acting as `signer`.
    pub(crate) fn nft(&self, signer: &PrivateKeySigner) -> anyhow::Result<AgentNft> {
        Ok(AgentNft::new(self.provider(signer)?, &self.deployment))
    }

    /// The account's current sealing secret, derived from its wallet for this chain: the key
    /// index whose public key the AgentNFT holds for it (index 0 before anything is published;
    /// `inft keys rotate` moves on to the next).
    pub(crate) async fn sealing_secret(
        &self,
        signer: &PrivateKeySigner,
    ) -> anyhow::Result<SealingSecret> {
        Ok(self.sealing_key_index(signer).await?.1)
    }

    /// [`sealing_secret`](Self::sealing_secret) with its key index.
    pub(crate) async fn sealing_key_index(
        &self,
        signer: &PrivateKeySigner,
    ) -> anyhow::Result<(u32, SealingSecret)> {
        let chain_id = self.deployment.chain_id;
        let published = AgentNft::new(self.reader()?, &self.deployment)
            .sealing_key_of(signer.address())
            .await
            .context("reading your published sealing key")?;
        Ok(match published {
            None => (0, derive_sealing_secret(signer, chain_id, 0)?),
            Some(key) => find_sealing_secret(signer, chain_id, &key)?,
        })
    }

    /// The blob store: the gateway if one is configured, else HOME/blobs.
    pub(crate) fn store(&self) -> anyhow::Result<Arc<dyn BlobStore>> {
        Ok(match &self.gateway {
            Some(url) => Arc::new(
                HttpGatewayStore::new(url, self.home.join("cache"))?
                    .max_blob_len((self.max_blob_size > 0).then_some(self.max_blob_size)),
            ),
            None => Arc::new(LocalDirStore::open(self.home.join("blobs"))?),
        })
    }

    /// The database: `INFT_DATABASE_URL` (`sqlite://FILE` or `postgres://…`) if set, else
    /// HOME/inft.db; created and migrated on first use.
    pub(crate) async fn db(&self) -> anyhow::Result<Db> {
        if let Some(url) = std::env::var_os(DATABASE_URL_ENV) {
            let url = url
                .into_string()
                .map_err(|_| anyhow::anyhow!("{DATABASE_URL_ENV} is not UTF-8"))?;
            return Db::connect(&url)
                .await
                .with_context(|| format!("opening the database {DATABASE_URL_ENV}"));
        }
        std::fs::create_dir_all(&self.home)?;
        Ok(Db::open(self.home.join("inft.db")).await?)
    }

    /// Checks the RPC answers with the deployment's chain id.
    /// An account given as an address, or by name from the home's `accounts.json` (written by
    /// `inft dev up`).
    pub(crate) fn resolve_account(&self, name_or_address: &str) -> anyhow::Result<Address> {
        if let Ok(address) = name_or_address.parse::<Address>() {
            return Ok(address);
        }
        let path = self.home.join(super::dev::ACCOUNTS_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{name_or_address:?} is not an address, and there is no {} to look names up in",
                path.display()
            )
        })?;
        let accounts: std::collections::BTreeMap<String, Address> =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        accounts.get(name_or_address).copied().with_context(|| {
            format!(
                "{name_or_address:?} is neither an address nor an account in {}",
                path.display()
            )
        })
    }

    /// The latest block's timestamp: deadlines are checked against it, not the local clock.
    pub(crate) async fn chain_time(&self) -> anyhow::Result<u64> {
        let block = self
            .reader()?
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .context("the node has no latest block")?;
        Ok(block.header.timestamp)
    }

    pub(crate) async fn check_chain(&self) -> anyhow::Result<()> {
        let id = self
            .reader()?
            .get_chain_id()
            .await
            .with_context(|| format!("RPC {} does not answer", self.rpc_url))?;
        if id != self.deployment.chain_id {
            bail!(
                "RPC {} is chain {id}, but the deployment is on chain {}",
                self.rpc_url,
                self.deployment.chain_id
            );
        }
        Ok(())
    }
}
