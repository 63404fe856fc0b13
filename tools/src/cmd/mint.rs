//! `inft mint`: seal a model, a fresh agent key and a config to your wallet and mint the INFT.

use std::io::Read;
use std::path::PathBuf;

use agent_runtime::db::{Agent, AgentStatus};
use agent_runtime::lifecycle::{MintRequest, mint_agent};
use agent_runtime::memory::AgentMemory;
use agent_runtime::token::Shares;
use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256, utils::parse_ether};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use inft_engine::grammar::CREATIVE_MAX_TOKENS;
use inft_engine::{ContextOptions, SamplerSettings};
use inft_types::config::{AgentConfig, AgentKind, CONFIG_VERSION};
use sealing::SealOptions;
use serde_json::json;
use sha2::{Digest, Sha256};
use strategies::trading::decision::decision_sampler;

use super::Run;
use super::node::{NodeOpts, WalletOpts};
use crate::cli::Context;
use crate::ids::Id;

/// What kind of agent to mint.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// Writes signed text from a prompt.
    Creative,
    /// Trades on the DEX under the owner's policy firewall.
    Trading,
}

/// `inft mint`
#[derive(Debug, Args)]
pub(crate) struct MintArgs {
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
    /// The GGUF model to seal into the agent.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// A name for the agent.
    #[arg(long, default_value = "agent")]
    name: String,
    /// What the agent does.
    #[arg(long, value_enum, default_value_t = Kind::Creative)]
    kind: Kind,
    /// The agent's standing instruction: what a creative agent writes about, or how an `llm`
    /// trading agent should trade [default: "Write a short poem about the sea." for creative
    /// agents; for trading agents, follow the trend with small fractions].
    #[arg(long)]
    prompt: Option<String>,
    /// The trading agent's strategy (llm, momentum, mean-reversion).
    #[arg(long, default_value = "llm")]
    strategy: String,
    /// Base seed of the agent's sampler (each step advances it by the step number).
    #[arg(long, default_value_t = 42)]
    seed: u32,
    /// Sampling temperature (0 = greedy) [default: 0.3 for creative agents, greedy for trading
    /// agents, whose decisions should follow their instruction rather than vary].
    #[arg(long)]
    temperature: Option<f32>,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// Drop tokens less likely than this fraction of the best one.
    #[arg(long, default_value_t = 0.1)]
    min_p: f32,
    /// Penalty on tokens repeated within the last 64 (1 = none); small models loop without it.
    #[arg(long, default_value_t = 1.1)]
    repeat_penalty: f32,
    /// Token-id salt (the id is `minter << 96 | salt`) [default: random].
    #[arg(long)]
    salt: Option<u64>,
    /// ERC-2981 royalty on sales, in basis points, paid to you as creator.
    #[arg(long, default_value_t = 500)]
    royalty_bps: u16,
    /// Your share as creator of the agent's earnings, in basis points.
    #[arg(long, default_value_t = 1000)]
    creator_bps: u16,
    /// A data contributor's share of earnings, as ADDRESS=BPS (repeatable).
    #[arg(long = "contributor", value_parser = parse_contributor, value_name = "ADDRESS=BPS")]
    contributors: Vec<(Address, u16)>,
    /// Mint the classic three entries (model, agent key, config) without a memory entry: the
    /// agent then keeps no notes between runs. By default it gets an empty memory that each of
    /// your runs appends to.
    #[arg(long)]
    no_memory: bool,
    /// Publish only the hash of each prompt in the agent's public action records, not its text
    /// (the text carries your instruction and the agent's memory notes). Auditors can still
    /// check every record, signature and output; replaying an action then needs its prompt,
    /// which your runtime keeps in its database (`inft audit --replay` finds it there).
    #[arg(long)]
    private_prompts: bool,
    /// ETH sent to the agent's wallet for gas (it signs and sends its own action logs).
    #[arg(long, default_value = "0.5", value_name = "ETH")]
    fund_agent: String,
}

fn parse_contributor(s: &str) -> Result<(Address, u16), String> {
    let (addr, bps) = s.split_once('=').ok_or("expected ADDRESS=BPS")?;
    Ok((
        addr.parse().map_err(|e| format!("{e}"))?,
        bps.parse().map_err(|e| format!("{e}"))?,
    ))
}

/// SHA-256 of a file, streamed.
fn sha256_file(
    path: &std::path::Path,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.inc(n as u64);
    }
    Ok(hex::encode(hasher.finalize()))
}

impl Run for MintArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let signer = self.wallet.signer(&node.home)?;
        let owner = signer.address();
        let nft = node.nft(&signer)?;
        let store = node.store()?;

        // The owner's sealing key comes from the wallet; publishing it lets others (transfer
        // senders, oracles) seal to it.
        let secret = node.sealing_secret(&signer).await?;
        let public = secret.public_key();
        nft.publish_sealing_key(owner, &public)
            .await
            .context("publishing your sealing key")?;

        let len = std::fs::metadata(&self.model)
            .with_context(|| format!("reading {}", self.model.display()))?
            .len();
        let hashing = ctx.progress(len, "hashing");
        let model_sha256 = sha256_file(&self.model, &hashing)?;
        hashing.finish_and_clear();

        let (kind, max_tokens, temperature) = match self.kind {
            Kind::Creative => (
                AgentKind::Creative {
                    prompt: self
                        .prompt
                        .clone()
                        .unwrap_or_else(|| "Write a short poem about the sea.".to_owned()),
                },
                CREATIVE_MAX_TOKENS,
                0.3,
            ),
            Kind::Trading => (
                AgentKind::Trading {
                    strategy: self.strategy.clone(),
                    instruction: self.prompt.clone(),
                },
                decision_sampler(self.seed).max_tokens,
                decision_sampler(self.seed).temperature,
            ),
        };
        let sampler = SamplerSettings {
            temperature: self.temperature.unwrap_or(temperature),
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            max_tokens,
            ..SamplerSettings::instruct(self.seed)
        };
        let config = AgentConfig {
            version: CONFIG_VERSION,
            name: self.name.clone(),
            kind,
            model_sha256,
            sampler,
            context: ContextOptions::default(),
            private_prompts: self.private_prompts,
        };

        let sealing = ctx.progress(len, "sealing");
        let model = sealing.wrap_read(std::fs::File::open(&self.model)?);
        let salt = self.salt.unwrap_or_else(rand::random::<u64>);
        let shares = Shares {
            royalty_bps: self.royalty_bps,
            creator_bps: self.creator_bps,
            contributors: self.contributors.clone(),
        };
        let request = MintRequest {
            model: Box::new(model),
            config: &config,
            memory: (!self.no_memory).then(AgentMemory::new),
            salt,
            shares,
            seal: SealOptions::default(),
        };
        let minted = mint_agent(&nft, store.as_ref(), owner, &public, request).await?;
        sealing.finish_and_clear();

        let fund = parse_ether(&self.fund_agent)
            .with_context(|| format!("invalid --fund-agent {}", self.fund_agent))?;
        if fund > U256::ZERO {
            let tx = TransactionRequest::default()
                .with_to(minted.agent)
                .with_value(fund);
            // Through the NFT client's provider: it tracks this wallet's nonces.
            let receipt = nft
                .provider()
                .send_transaction(tx)
                .await?
                .get_receipt()
                .await?;
            if !receipt.status() {
                bail!(
                    "funding the agent wallet failed (tx {})",
                    receipt.transaction_hash
                );
            }
        }

        let db = node.db().await?;
        db.upsert_agent(&Agent {
            chain_id: node.deployment.chain_id,
            inft_contract: node.deployment.agent_nft,
            token_id: minted.token_id,
            action_log: node.deployment.action_log,
            agent_address: minted.agent,
            model_hash: config.model_sha256.parse().unwrap_or_default(),
            config: serde_json::to_value(&config)?,
            status: AgentStatus::Active,
        })
        .await?;

        ctx.emit(
            format!(
                "minted token {}\n  id    {}\n  owner {owner}\n  agent {}\n  model sha256 {}\n  tx {}",
                Id(minted.token_id),
                minted.token_id,
                minted.agent,
                config.model_sha256,
                minted.tx_hash
            ),
            json!({
                "token_id": minted.token_id.to_string(),
                "owner": owner,
                "agent": minted.agent,
                "model_sha256": config.model_sha256,
                "tx_hash": minted.tx_hash,
                "data_hashes": minted.entries.iter().map(|e| e.data_hash.to_hex()).collect::<Vec<_>>(),
                "memory": !self.no_memory,
            }),
        );
        Ok(())
    }
}
