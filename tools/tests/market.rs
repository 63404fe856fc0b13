//! `inft market` end to end, through the real binary: a real anvil chain (`inft dev up`), the
//! real contracts, the real instruct model (fetched by scripts/setup.sh) and a real
//! re-encryption oracle (`inft oracle serve`, started once after `dev up`).
//!
//! A sale completes only through the oracle: the seller runs `inft market complete --oracle`,
//! the oracle re-encrypts the agent for the sealing key the buyer committed at `buy` and
//! attests the rotation, bound to the market and the price. The buyer takes no part after
//! paying (there is no `inft transfer accept` step).
//!
//! alice mints and lists; bob buys (escrow), then rotates his sealing key, which does not stop
//! the sale: alice completes through the oracle, the royalty and proceeds are paid, and bob's
//! new keys open with the key he committed (his next `inft keys rotate` re-keys the token from
//! it); an early refund is refused with a clear message; bob relists, carol buys, nobody
//! completes, and carol takes her escrow back after the window; bob relists, carol buys again
//! and bob completes through the oracle.
//!
//! A seller who empties the agent account (sold with the token) after the buy cannot complete:
//! the buyer takes the escrow back at once, before the window ends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder as _};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail, ensure};
use inft_contracts::Deployment;
use inft_contracts::bindings::{AgentAccount, AgentAccountFactory, AgentNFT};
use serde_json::Value;

const PASS: &str = "market test passphrase";

struct Dev {
    home: tempfile::TempDir,
}

impl Dev {
    /// A fresh home with a dev chain up (`inft dev up`), and its deployment.
    fn up() -> anyhow::Result<(Self, Deployment)> {
        let dev = Self {
            home: tempfile::tempdir()?,
        };
        dev.inft(&["dev", "up"])?;
        let deployment = Deployment::read_from(&dev.home.path().join("deployment.json"))?;
        Ok((dev, deployment))
    }

    /// alice mints a poet on the real model (`extra`: more `inft mint` arguments); its token id.
    fn mint_poet(&self, extra: &[&str]) -> anyhow::Result<String> {
        let model = self.inft(&["dev", "model", "--real"])?.trim().to_owned();
        let mut args = vec![
            "mint",
            "--account",
            "alice",
            "--model",
            &model,
            "--name",
            "poet",
            "--prompt",
            "Write two lines about the sea.",
        ];
        args.extend_from_slice(extra);
        let minted = self.json(&args)?;
        Ok(minted["token_id"].as_str().context("token_id")?.to_owned())
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_inft"));
        c.env("INFT_HOME", self.home.path())
            .env("INFT_PASSPHRASE", PASS)
            .env_remove("INFT_DATABASE_URL")
            .env_remove("INFT_RPC_URL")
            .env_remove("INFT_GATEWAY");
        c
    }

    /// Runs `inft ARGS`; stdout on success, stderr as the error otherwise.
    fn inft(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command().args(args).output()?;
        ensure!(
            out.status.success(),
            "inft {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs `inft ARGS` expecting failure; returns stderr.
    fn inft_fails(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command().args(args).output()?;
        ensure!(!out.status.success(), "inft {} succeeded", args.join(" "));
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        Ok(serde_json::from_str(&self.inft(&all)?)?)
    }

    fn account(&self, name: &str) -> anyhow::Result<Address> {
        let text = std::fs::read_to_string(self.home.path().join("accounts.json"))?;
        let accounts: std::collections::BTreeMap<String, Address> = serde_json::from_str(&text)?;
        accounts.get(name).copied().context("no such dev account")
    }

    fn rpc_url(&self) -> anyhow::Result<String> {
        let node: Value = serde_json::from_str(&std::fs::read_to_string(
            self.home.path().join("node.json"),
        )?)?;
        Ok(node["rpc_url"].as_str().context("node.json")?.to_owned())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.command().args(["dev", "down"]).output();
    }
}

/// A running `inft oracle serve --account oracle`, killed (and reaped) when dropped, on failure
/// paths too.
struct Oracle {
    child: Child,
    url: String,
    /// Its stderr, for the error when it exits.
    log: PathBuf,
}

impl Oracle {
    /// Starts the oracle on a free loopback port and waits until it answers `GET /v1/info`.
    async fn start(dev: &Dev) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let log = dev.home.path().join("oracle.log");
        let child = dev
            .command()
            .args([
                "oracle",
                "serve",
                "--account",
                "oracle",
                "--listen",
                &listen,
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut oracle = Self {
            child,
            url: format!("http://{listen}"),
            log,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let info = format!("{}/v1/info", oracle.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            oracle.ensure_running()?;
            let answer = client.get(&info).send().await;
            if matches!(&answer, Ok(r) if r.status().is_success()) {
                return Ok(oracle);
            }
            ensure!(
                Instant::now() < deadline,
                "the oracle did not answer {info} within 60s (last: {answer:?}); its log:\n{}",
                oracle.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fails, with the oracle's log, if it has exited.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the oracle exited ({status}); its log:\n{}",
                self.log_text()
            );
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `seller$ inft --json market complete TOKEN --account SELLER --oracle URL`; its JSON output.
fn complete(dev: &Dev, oracle: &mut Oracle, token: &str, seller: &str) -> anyhow::Result<Value> {
    dev.json(&[
        "market",
        "complete",
        token,
        "--account",
        seller,
        "--oracle",
        &oracle.url,
    ])
    .or_else(|e| {
        // Say so if the oracle died under it.
        oracle.ensure_running().context(format!("{e:#}"))?;
        Err(e)
    })
}

/// A JSON string lowercased, to compare addresses (printed checksummed) and hex keys.
fn lower(v: &Value) -> Option<String> {
    v.as_str().map(str::to_lowercase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inft_market_list_buy_complete_and_refund() -> anyhow::Result<()> {
    let (dev, deployment) = Dev::up()?;
    let market = deployment.agent_market;
    ensure!(market != Address::ZERO, "the deployment records the market");
    // Declared after `dev`, so dropped (killed) before the chain goes down.
    let mut oracle = Oracle::start(&dev).await?;
    let token = dev.mint_poet(&["--royalty-bps", "750"])?;
    let provider = ProviderBuilder::new().connect_http(dev.rpc_url()?.parse()?);

    // alice lists; bob buys at the listed price (a wrong expected price is refused first).
    dev.inft(&[
        "market",
        "list",
        &token,
        "--price",
        "0.25",
        "--window",
        "10m",
        "--account",
        "alice",
    ])?;
    let err = dev.inft_fails(&[
        "market",
        "buy",
        &token,
        "--price",
        "0.3",
        "--account",
        "bob",
    ])?;
    ensure!(err.contains("not the price you expect"), "{err}");
    let err = dev.inft_fails(&[
        "market",
        "buy",
        &token,
        "--window",
        "1d",
        "--account",
        "bob",
    ])?;
    ensure!(err.contains("not the one you expect"), "{err}");
    let bought = dev.json(&[
        "market",
        "buy",
        &token,
        "--price",
        "0.25",
        "--account",
        "bob",
    ])?;
    let bob = dev.account("bob")?.to_string().to_lowercase();
    ensure!(
        lower(&bought["listing"]["buyer"]).as_ref() == Some(&bob),
        "{bought}"
    );
    let committed = lower(&bought["listing"]["sealing_key"]).context("the committed key")?;
    let price = U256::from(250_000_000_000_000_000u64);
    ensure!(provider.get_balance(market).await? == price, "escrowed");
    let shown = dev.inft(&["market", "show", &token])?;
    ensure!(shown.contains("bought by"), "{shown}");

    // bob publishes another sealing key after paying (`inft transfer publish-key` would only
    // republish the current one; `inft keys rotate` publishes the next index). That must not
    // stop the sale: the oracle seals to the key bob committed at the buy.
    let rotated = dev.json(&["keys", "rotate", "--account", "bob"])?;
    ensure!(rotated["key_index"] == 1, "{rotated}");
    let published = dev.json(&["transfer", "publish-key", "--account", "bob"])?;
    let published = lower(&published["sealing_key"]).context("the published key")?;
    ensure!(
        published != committed,
        "bob's published key did not change: {published}"
    );

    // alice completes through the oracle; bob runs nothing.
    let sold = complete(&dev, &mut oracle, &token, "alice")?;
    ensure!(lower(&sold["buyer"]).as_ref() == Some(&bob), "{sold}");
    ensure!(sold["mode"] != Value::Null, "{sold}");
    let royalty = price * U256::from(750u64) / U256::from(10_000u64);
    ensure!(
        sold["royalty_wei"].as_str() == Some(royalty.to_string().as_str()),
        "{sold}"
    );
    ensure!(
        provider.get_balance(market).await? == U256::ZERO,
        "paid out"
    );
    let shown = dev.inft(&["market", "show", &token])?;
    ensure!(shown.contains("is not listed"), "{shown}");
    let err = dev.inft_fails(&["market", "refund", &token, "--account", "bob"])?;
    ensure!(err.contains("not listed"), "{err}");
    // The token's keys came sealed to bob's committed key (index 0), not to his current one:
    // running `inft keys rotate` again finishes his rotation by re-keying the token from
    // index 0, which only works if his index-0 key opens it.
    let finished = dev.json(&["keys", "rotate", "--account", "bob"])?;
    ensure!(finished["key_index"] == 1, "{finished}");
    let rekeyed = finished["tokens"]
        .as_array()
        .context("tokens")?
        .iter()
        .find(|row| row["token_id"].as_str() == Some(token.as_str()))
        .with_context(|| {
            format!("the token was not re-keyed from the committed key: {finished}")
        })?;
    ensure!(rekeyed["update_tx"] != Value::Null, "{finished}");

    // bob relists, carol buys, bob never completes: no refund before the window ends, then
    // carol gets it all back.
    dev.inft(&[
        "market",
        "list",
        &token,
        "--price",
        "0.5",
        "--window",
        "5m",
        "--account",
        "bob",
    ])?;
    dev.inft(&["market", "buy", &token, "--account", "carol"])?;
    let err = dev.inft_fails(&["market", "refund", &token, "--account", "carol"])?;
    ensure!(err.contains("no refund before then"), "{err}");
    let _: Value = provider
        .raw_request("evm_increaseTime".into(), (301u64,))
        .await?;
    let _: Value = provider.raw_request("evm_mine".into(), ()).await?;
    // Refused after the window even with a working oracle.
    let err = dev.inft_fails(&[
        "market",
        "complete",
        &token,
        "--account",
        "bob",
        "--oracle",
        &oracle.url,
    ])?;
    ensure!(err.contains("deadline"), "{err}");
    let refunded = dev.json(&["market", "refund", &token, "--account", "carol"])?;
    ensure!(
        refunded["refunded_wei"].as_str() == Some("500000000000000000"),
        "{refunded}"
    );
    ensure!(provider.get_balance(market).await? == U256::ZERO);

    // bob relists, carol buys again, and bob completes through the oracle.
    dev.inft(&[
        "market",
        "list",
        &token,
        "--price",
        "0.5",
        "--account",
        "bob",
    ])?;
    dev.inft(&["market", "buy", &token, "--account", "carol"])?;
    let sold = complete(&dev, &mut oracle, &token, "bob")?;
    ensure!(sold["mode"] != Value::Null, "{sold}");
    ensure!(
        lower(&sold["buyer"]) == Some(dev.account("carol")?.to_string().to_lowercase()),
        "{sold}"
    );
    ensure!(provider.get_balance(market).await? == U256::ZERO);
    // Every payee here is an EOA: everything was pushed, nothing is left to withdraw.
    let err = dev.inft_fails(&["market", "withdraw", "--account", "bob"])?;
    ensure!(err.contains("owes"), "{err}");
    oracle.ensure_running()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_who_empties_the_agent_account_after_the_buy_is_refused_and_the_buyer_refunded_at_once()
-> anyhow::Result<()> {
    let (dev, deployment) = Dev::up()?;
    let market = deployment.agent_market;
    let mut oracle = Oracle::start(&dev).await?;
    let token = dev.mint_poet(&[])?;
    let token_id: U256 = token.parse()?;

    // alice (from her dev keystore) deploys the token's agent account and puts 1 ETH in it.
    let alice_key = PrivateKeySigner::decrypt_keystore(
        dev.home.path().join("keystores").join("alice.json"),
        PASS,
    )?;
    let alice = alice_key.address();
    ensure!(alice == dev.account("alice")?);
    // The binary sends alice's transactions too: fetch her nonce for each, never cache it.
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(alice_key))
        .connect_http(dev.rpc_url()?.parse()?);
    let factory = AgentAccountFactory::new(deployment.agent_account_factory, &provider);
    let account = factory.accountOf(token_id).call().await?;
    if provider.get_code_at(account).await?.is_empty() {
        factory
            .createAccount_1(token_id)
            .send()
            .await?
            .get_receipt()
            .await?;
    }
    let one_eth = U256::from(1_000_000_000_000_000_000u64);
    let tx = TransactionRequest::default()
        .with_to(account)
        .with_value(one_eth);
    provider.send_transaction(tx).await?.get_receipt().await?;
    ensure!(provider.get_balance(account).await? == one_eth);

    // alice lists, bob buys: 0.25 ETH in escrow.
    dev.inft(&[
        "market",
        "list",
        &token,
        "--price",
        "0.25",
        "--window",
        "10m",
        "--account",
        "alice",
    ])?;
    dev.inft(&["market", "buy", &token, "--account", "bob"])?;
    let price = U256::from(250_000_000_000_000_000u64);
    ensure!(provider.get_balance(market).await? == price, "escrowed");

    // alice, still the owner, empties the account the buyer paid for.
    let receipt = AgentAccount::new(account, &provider)
        .execute(alice, one_eth, Bytes::new(), 0)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(receipt.status(), "emptying the account reverted");
    ensure!(provider.get_balance(account).await? == U256::ZERO);

    // The sale cannot complete, even with a working oracle.
    let err = dev.inft_fails(&[
        "market",
        "complete",
        &token,
        "--account",
        "alice",
        "--oracle",
        &oracle.url,
    ])?;
    println!("complete after emptying the account: {err}");
    ensure!(err.contains("changed since the buy"), "{err}");
    let shown = dev.inft(&["market", "show", &token])?;
    println!("market show: {shown}");
    ensure!(
        shown.contains("agent account changed") && shown.contains("may take a refund now"),
        "{shown}"
    );

    // bob takes his escrow back at once, well inside the 10-minute window.
    let refunded = dev.json(&["market", "refund", &token, "--account", "bob"])?;
    ensure!(
        refunded["refunded_wei"].as_str() == Some(price.to_string().as_str()),
        "{refunded}"
    );
    ensure!(
        provider.get_balance(market).await? == U256::ZERO,
        "refunded"
    );
    let owner = AgentNFT::new(deployment.agent_nft, &provider)
        .ownerOf(token_id)
        .call()
        .await?;
    ensure!(owner == alice, "the token moved to {owner}");
    oracle.ensure_running()?;
    Ok(())
}
