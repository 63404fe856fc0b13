//! `inft deploy`: deploy the inft contracts onto any EVM chain with a keystore wallet.

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use anyhow::{Context as _, bail};
use clap::Args;
use inft_contracts::{
    DeployOptions, DeployStep, deploy_system, estimate_system_gas, resolve_market, verify_code,
};
use serde_json::json;

use super::Run;
use super::node::{NodeOpts, WalletOpts, reader_for};
use crate::cli::Context;

/// `inft deploy`
#[derive(Debug, Args)]
#[command(after_long_help = "\
Deploys AgentNFT, TransferVerifier, ActionLog, EarningsSplitter and AgentAccountFactory, \
installs the verifier and the factory in the NFT and registers the --oracle keys, with the \
keystore's account as admin. Before any transaction: the endpoint's chain id is checked against \
--chain-id and the account's balance against the estimated cost. Each transaction waits for \
--confirmations blocks. Afterwards the code at every address is checked against the committed \
artifacts, and the deployment file is written (never over an existing one without --force).

Example (an Ethereum V3 keystore, e.g. from `cast wallet import`; the passphrase from \
INFT_PASSPHRASE, INFT_PASSPHRASE_FILE or a prompt):
  inft deploy --rpc https://rpc.example --keystore deployer.json --chain-id 11155111 \\
      --confirmations 2 --out sepolia.json
  inft mint --deployment sepolia.json --rpc-url https://rpc.example …")]
pub(crate) struct DeployArgs {
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
    /// Refuse to deploy unless the endpoint's chain id is this one (checked before anything
    /// is signed or sent).
    #[arg(long, value_name = "N")]
    chain_id: Option<u64>,
    /// Blocks each transaction must have on top of it, its own included, before the next is
    /// sent (1: mined).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    confirmations: u64,
    /// Give up waiting for one transaction after this many seconds (0: wait for ever).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    tx_timeout: u64,
    /// A re-encryption oracle key to register in the verifier (repeat for several).
    #[arg(long = "oracle", value_name = "ADDRESS")]
    oracles: Vec<Address>,
    /// Where to write the deployment file [default: --deployment, else HOME/deployment.json].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite an existing deployment file.
    #[arg(long)]
    force: bool,
    /// Record a pair on this existing Uniswap V2 Router02 as the deployment's market (the
    /// default for trading agents; needs --base-token and --quote-token). Without it the
    /// deployment has no market and trading agents name a router themselves.
    #[arg(long, value_name = "ADDRESS", requires_all = ["base_token", "quote_token"])]
    router: Option<Address>,
    /// With --router: the token trading agents buy and sell.
    #[arg(long, value_name = "ADDRESS", requires = "router")]
    base_token: Option<Address>,
    /// With --router: the token prices are counted in.
    #[arg(long, value_name = "ADDRESS", requires = "router")]
    quote_token: Option<Address>,
}

/// Wei as ETH with 6 decimals (for messages).
fn eth(wei: U256) -> String {
    let micro = wei / U256::from(1_000_000_000_000u64);
    let micro: u128 = micro.try_into().unwrap_or(u128::MAX);
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

impl Run for DeployArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let out = self
            .out
            .clone()
            .or_else(|| self.node.deployment.clone())
            .unwrap_or_else(|| self.node.home.join("deployment.json"));
        if out.exists() && !self.force {
            bail!(
                "{} exists: refusing to overwrite a deployment (pass --force, or --out another file)",
                out.display()
            );
        }
        let rpc_url = self.node.rpc_url()?;
        let reader = reader_for(&rpc_url)?;
        let chain_id = reader
            .get_chain_id()
            .await
            .with_context(|| format!("RPC {rpc_url} does not answer"))?;
        if let Some(expected) = self.chain_id
            && expected != chain_id
        {
            bail!(
                "RPC {rpc_url} is chain {chain_id}, not chain {expected} (--chain-id): nothing was sent"
            );
        }
        let market = match (self.router, self.base_token, self.quote_token) {
            (Some(router), Some(base), Some(quote)) => Some(
                resolve_market(&reader, router, base, quote)
                    .await
                    .context("--router")?,
            ),
            _ => None,
        };

        let signer = self.wallet.signer(&self.node.home)?;
        let deployer = signer.address();
        let gas = estimate_system_gas(&reader, deployer, &self.oracles)
            .await
            .context("estimating the deployment's gas")?;
        let price = match reader.estimate_eip1559_fees().await {
            Ok(fees) => fees.max_fee_per_gas,
            Err(_) => reader.get_gas_price().await.context("eth_gasPrice")?,
        };
        let cost = U256::from(gas) * U256::from(price);
        let balance = reader
            .get_balance(deployer)
            .await
            .context("reading the deployer's balance")?;
        if balance < cost {
            bail!(
                "deployer {deployer} has {} ETH on chain {chain_id}; the deployment needs about {} ETH \
                 ({gas} gas at up to {} gwei): fund it first, nothing was sent",
                eth(balance),
                eth(cost),
                price / 1_000_000_000
            );
        }
        if !ctx.json {
            eprintln!(
                "deploying to chain {chain_id} at {rpc_url} as {deployer} (balance {} ETH, about {gas} gas, {} ETH at most)",
                eth(balance),
                eth(cost)
            );
        }

        let provider = alloy::providers::ProviderBuilder::new()
            .wallet(alloy::network::EthereumWallet::from(signer))
            .connect_http(rpc_url.parse()?);
        let json_mode = ctx.json;
        let show = move |s: &DeployStep| {
            if json_mode {
                return;
            }
            let address = s.address.map(|a| a.to_string()).unwrap_or_default();
            println!(
                "{:<28} {address:42}  tx {}  gas {}",
                s.name, s.tx, s.gas_used
            );
        };
        let opts = DeployOptions {
            confirmations: self.confirmations,
            timeout: (self.tx_timeout > 0).then(|| Duration::from_secs(self.tx_timeout)),
            on_step: Some(&show),
        };
        let system = deploy_system(&provider, deployer, &self.oracles, &opts)
            .await
            .context("deploying")?;
        verify_code(&provider, &system.code)
            .await
            .context("checking the deployed code against the committed artifacts")?;
        let mut deployment = system.deployment;
        deployment.market = market;

        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        if out.exists() && !self.force {
            bail!(
                "{} appeared while deploying: not overwritten; the deployment is {}",
                out.display(),
                serde_json::to_string(&deployment)?
            );
        }
        deployment.write_to(&out)?;
        let gas_used: u64 = system.steps.iter().map(|s| s.gas_used).sum();
        ctx.emit(
            format!(
                "code checked against the committed artifacts ({} contracts)\n\
                 deployed on chain {chain_id} in {} transactions, {gas_used} gas; wrote {}",
                system.code.len(),
                system.steps.len(),
                out.display()
            ),
            json!({
                "deployment": deployment,
                "file": out,
                "steps": system.steps,
                "gas_used": gas_used,
                "code_verified": true,
            }),
        );
        Ok(())
    }
}
