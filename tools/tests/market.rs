//! `inft market` end to end, through the real binary: a real anvil chain (`inft dev up`), the
//! real contracts and the real instruct model (fetched by scripts/setup.sh).
//!
//! alice mints and lists; bob buys (escrow); alice completes (receiver-verified: bob accepts
//! with `inft transfer accept`) and the royalty and proceeds are paid; a second completion and
//! an early refund are refused with a clear message; bob relists, carol buys, nobody completes,
//! and carol takes her escrow back after the window; bob relists, carol buys again and bob
//! completes through the re-encryption oracle (`inft oracle serve`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

const PASS: &str = "market test passphrase";

struct Dev {
    home: tempfile::TempDir,
}

impl Dev {
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

/// `seller$ inft market complete TOKEN --offer … --acceptance …` in the background, answered by
/// `buyer$ inft transfer accept …`; returns the seller's JSON output.
fn complete_with_acceptance(
    dev: &Dev,
    dir: &Path,
    token: &str,
    seller: &str,
    buyer: &str,
) -> anyhow::Result<Value> {
    let offer = dir.join(format!("offer-{token}.json"));
    let acceptance = dir.join(format!("acceptance-{token}.json"));
    let mut completer = dev
        .command()
        .args([
            "--json",
            "market",
            "complete",
            token,
            "--account",
            seller,
            "--offer",
        ])
        .arg(&offer)
        .arg("--acceptance")
        .arg(&acceptance)
        .args(["--wait", "5m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !offer.exists() {
        if let Some(status) = completer.try_wait()? {
            let out = completer.wait_with_output()?;
            bail!(
                "market complete exited early: {status}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ensure!(Instant::now() < deadline, "no offer written");
        std::thread::sleep(Duration::from_millis(200));
    }
    let offer_arg = offer.to_string_lossy().into_owned();
    let acceptance_arg = acceptance.to_string_lossy().into_owned();
    dev.inft(&[
        "transfer",
        "accept",
        &offer_arg,
        "--output",
        &acceptance_arg,
        "--account",
        buyer,
    ])?;
    let out = completer.wait_with_output()?;
    ensure!(
        out.status.success(),
        "market complete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inft_market_list_buy_complete_and_refund() -> anyhow::Result<()> {
    let dev = Dev {
        home: tempfile::tempdir()?,
    };
    dev.inft(&["dev", "up"])?;
    let deployment: Value = serde_json::from_str(&std::fs::read_to_string(
        dev.home.path().join("deployment.json"),
    )?)?;
    let market: Address = deployment["agent_market"]
        .as_str()
        .context("the deployment records the market")?
        .parse()?;
    ensure!(market != Address::ZERO);
    let model = dev.inft(&["dev", "model", "--real"])?.trim().to_owned();
    let minted = dev.json(&[
        "mint",
        "--account",
        "alice",
        "--model",
        &model,
        "--name",
        "poet",
        "--prompt",
        "Write two lines about the sea.",
        "--royalty-bps",
        "750",
    ])?;
    let token = minted["token_id"].as_str().context("token_id")?.to_owned();
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
    ensure!(
        bought["listing"]["buyer"].as_str().map(str::to_lowercase)
            == Some(dev.account("bob")?.to_string().to_lowercase()),
        "{bought}"
    );
    let price = U256::from(250_000_000_000_000_000u64);
    ensure!(provider.get_balance(market).await? == price, "escrowed");
    let shown = dev.inft(&["market", "show", &token])?;
    ensure!(shown.contains("bought by"), "{shown}");

    // alice completes; bob verifies the offer and accepts.
    let sold = complete_with_acceptance(&dev, dev.home.path(), &token, "alice", "bob")?;
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
    // bob runs nothing here (kept short), but the token is his: he can list it.
    let err = dev.inft_fails(&["market", "refund", &token, "--account", "bob"])?;
    ensure!(err.contains("not listed"), "{err}");

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
    let err = dev.inft_fails(&[
        "market",
        "complete",
        &token,
        "--account",
        "bob",
        "--oracle",
        "http://127.0.0.1:9",
    ])?;
    ensure!(err.contains("deadline"), "{err}");
    let refunded = dev.json(&["market", "refund", &token, "--account", "carol"])?;
    ensure!(
        refunded["refunded_wei"].as_str() == Some("500000000000000000"),
        "{refunded}"
    );
    ensure!(provider.get_balance(market).await? == U256::ZERO);

    // bob relists, carol buys again, and bob completes through the re-encryption oracle.
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut oracle = dev
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
        .stderr(Stdio::null())
        .spawn()?;
    let url = format!("http://{listen}");
    let started = Instant::now();
    let sold = loop {
        match dev.json(&[
            "market",
            "complete",
            &token,
            "--account",
            "bob",
            "--oracle",
            &url,
        ]) {
            Ok(sold) => break sold,
            // The oracle may still be starting.
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                if let Some(status) = oracle.try_wait()? {
                    bail!("the oracle exited: {status}; last error: {e}");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                let _ = oracle.kill();
                return Err(e);
            }
        }
    };
    let _ = oracle.kill();
    let _ = oracle.wait();
    ensure!(sold["mode"] != Value::Null, "{sold}");
    ensure!(
        sold["buyer"].as_str().map(str::to_lowercase)
            == Some(dev.account("carol")?.to_string().to_lowercase()),
        "{sold}"
    );
    ensure!(provider.get_balance(market).await? == U256::ZERO);
    // Every payee here is an EOA: everything was pushed, nothing is left to withdraw.
    let err = dev.inft_fails(&["market", "withdraw", "--account", "bob"])?;
    ensure!(err.contains("owes"), "{err}");
    Ok(())
}
