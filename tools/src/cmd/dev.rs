//! `inft dev`: a local chain with everything deployed, generated test models, and where the real
//! instruct model is.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_runtime::wallet::{Passphrase, import_keystore};
use alloy::network::EthereumWallet;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use inft_contracts::{DeployConfig, deploy_with};
use serde_json::json;

use super::Run;
use super::node::{NodeFile, NodeOpts};
use crate::cli::Context;

/// File in the home directory mapping account names to addresses.
pub(crate) const ACCOUNTS_FILE: &str = "accounts.json";

/// Named dev accounts, in anvil's account order (account 0 deploys; `oracle` is registered as a
/// re-encryption oracle in the verifier).
pub(crate) const DEV_ACCOUNTS: [&str; 5] = ["deployer", "alice", "bob", "carol", "oracle"];

/// `inft dev …`
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Start anvil on a free loopback port, deploy every contract and the Uniswap V2 dev
    /// market, and write HOME/deployment.json, HOME/node.json and dev keystores
    /// (deployer, alice, bob, carol, oracle), encrypted with INFT_PASSPHRASE.
    Up(UpArgs),
    /// Stop the anvil that `dev up` started.
    Down(DownArgs),
    /// Write a deterministic llama-architecture GGUF test model of about the given size.
    #[cfg(feature = "engine")]
    MakeModel(super::dev_models::MakeModelArgs),
    /// Print the path of the real instruct model (SmolLM2-135M-Instruct Q4_1) that
    /// scripts/setup.sh fetched: INFT_REAL_MODEL, else
    /// ${INFT_MODEL_DIR:-$HOME/.cache/inft/models}/SmolLM2-135M-Instruct.Q4_1.gguf.
    #[cfg(feature = "engine")]
    Model(super::dev_models::ModelArgs),
}

impl Run for DevArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            DevCommand::Up(a) => a.run(ctx).await,
            DevCommand::Down(a) => a.run(ctx).await,
            #[cfg(feature = "engine")]
            DevCommand::MakeModel(a) => a.run(ctx).await,
            #[cfg(feature = "engine")]
            DevCommand::Model(a) => a.run(ctx).await,
        }
    }
}

/// `inft dev up`
#[derive(Debug, Args)]
struct UpArgs {
    #[command(flatten)]
    node: NodeOpts,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_rpc(url: &str, timeout: Duration) -> anyhow::Result<u64> {
    let provider = ProviderBuilder::new().connect_http(url.parse()?);
    let start = Instant::now();
    loop {
        match provider.get_chain_id().await {
            Ok(id) => return Ok(id),
            Err(e) if start.elapsed() > timeout => bail!("anvil did not answer on {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

impl UpArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let home = &self.node.home;
        std::fs::create_dir_all(home)?;
        let node_path = NodeFile::path(home);
        if let Ok(text) = std::fs::read_to_string(&node_path)
            && let Ok(node) = serde_json::from_str::<NodeFile>(&text)
            && wait_for_rpc(&node.rpc_url, Duration::from_millis(500))
                .await
                .is_ok()
            && home.join("deployment.json").is_file()
        {
            ctx.emit(
                format!("dev chain already up at {}", node.rpc_url),
                json!({ "rpc_url": node.rpc_url, "already_up": true }),
            );
            return Ok(());
        }
        let passphrase = Passphrase::from_env_or_prompt("Passphrase for the dev keystores: ")?;

        let anvil = inft_contracts::anvil_binary(None)?;
        let port = if self.port == 0 {
            free_port()?
        } else {
            self.port
        };
        let config_out = home.join("anvil-accounts.json");
        let log = std::fs::File::create(home.join("anvil.log"))?;
        let mut command = Command::new(&anvil);
        command
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--accounts",
                "10",
            ])
            .arg("--config-out")
            .arg(&config_out)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group: the chain outlives this command and the terminal's Ctrl-C.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", anvil.display()))?;
        let rpc_url = format!("http://127.0.0.1:{port}");
        let chain_id = wait_for_rpc(&rpc_url, Duration::from_secs(30)).await?;

        // anvil writes its (well-known, test-only) dev keys to --config-out; they go straight into
        // encrypted keystores and the file is removed.
        let accounts: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_out)?)?;
        std::fs::remove_file(&config_out)?;
        let keys = accounts["private_keys"]
            .as_array()
            .context("anvil --config-out has no private_keys")?;
        let mut signers = Vec::new();
        for (name, key) in DEV_ACCOUNTS.iter().zip(keys) {
            let key = key.as_str().context("private key is not a string")?;
            let mut signer: PrivateKeySigner = key.parse().context("anvil private key")?;
            signer.set_chain_id(Some(chain_id));
            import_keystore(
                home.join("keystores"),
                Some(&format!("{name}.json")),
                &signer,
                &passphrase,
            )?;
            signers.push(signer);
        }
        let deployer = signers[0].clone();
        let oracle = signers[4].address();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer.clone()))
            .connect_http(rpc_url.parse()?);
        let config = DeployConfig {
            oracles: vec![oracle],
            ..DeployConfig::default()
        };
        let deployment = deploy_with(&provider, deployer.address(), &config)
            .await
            .context("deploying contracts")?;
        deployment.write_to(&home.join("deployment.json"))?;
        std::fs::write(
            &node_path,
            serde_json::to_vec_pretty(&NodeFile {
                rpc_url: rpc_url.clone(),
                anvil_pid: Some(child.id()),
            })?,
        )?;

        let accounts_json: serde_json::Value = DEV_ACCOUNTS
            .iter()
            .zip(&signers)
            .map(|(n, s)| (n.to_string(), json!(s.address())))
            .collect();
        // Names → addresses, so commands can take `--to bob` (keystores do not record addresses).
        std::fs::write(
            home.join(ACCOUNTS_FILE),
            serde_json::to_vec_pretty(&accounts_json)?,
        )?;
        ctx.emit(
            format!(
                "dev chain {chain_id} at {rpc_url} (anvil pid {})\nAgentNFT {}\nActionLog {}\nAgentMarket {}\nkeystores in {}",
                child.id(),
                deployment.agent_nft,
                deployment.action_log,
                deployment.agent_market,
                home.join("keystores").display()
            ),
            json!({ "rpc_url": rpc_url, "chain_id": chain_id, "anvil_pid": child.id(), "deployment": deployment, "accounts": accounts_json }),
        );
        Ok(())
    }
}

/// `inft dev down`
#[derive(Debug, Args)]
struct DownArgs {
    #[command(flatten)]
    node: NodeOpts,
}

impl DownArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let path = NodeFile::path(&self.node.home);
        let Ok(text) = std::fs::read_to_string(&path) else {
            ctx.emit("no dev chain recorded", json!({ "stopped": false }));
            return Ok(());
        };
        let node: NodeFile = serde_json::from_str(&text)?;
        let mut stopped = false;
        if let Some(pid) = node.anvil_pid {
            // `kill` keeps this crate free of unsafe code; a pid that is gone is fine.
            stopped = Command::new("kill")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status()?
                .success();
        }
        std::fs::remove_file(&path)?;
        ctx.emit(
            format!("dev chain at {} stopped", node.rpc_url),
            json!({ "stopped": stopped, "rpc_url": node.rpc_url }),
        );
        Ok(())
    }
}

/// Parses `123`, `4KiB`, `8MiB`, `1GiB` (also `K`/`M`/`G`, binary units).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }
}
