//! `inft deploy` end to end, through the real binary, with no `inft dev up`: a bare anvil, a
//! Uniswap V2 (WETH9, Factory, Router02 from the committed npm artifacts) and two ERC-20s with a
//! seeded pool deployed here with plain alloy calls, the inft contracts deployed by
//! `inft deploy` from a keystore, then a momentum trading agent minted and run on that pool
//! through `--router` while a noise trader moves it, and audited.
//!
//! Bad paths: a wrong `--chain-id` and a deployer without funds are refused before any
//! transaction; an existing deployment file is not overwritten; a router whose factory has no
//! pair for the tokens is refused.

use std::path::Path;
use std::process::Command;

use agent_runtime::wallet::{Passphrase, import_keystore};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use anyhow::{Context as _, ensure};
use inft_contracts::bindings::{TestToken, UniswapV2Factory, UniswapV2Router02, WETH9};
use inft_contracts::{Deployment, spawn_anvil};
use serde_json::Value;

const PASS: &str = "deploy test passphrase";

fn e18(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// `inft ARGS` on `home` with the test passphrase; (success, stdout, stderr).
fn inft(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_inft"))
        .env("INFT_HOME", home)
        .env("INFT_PASSPHRASE", PASS)
        .env_remove("INFT_DATABASE_URL")
        .env_remove("INFT_RPC_URL")
        .env_remove("INFT_DEPLOYMENT")
        .env_remove("INFT_GATEWAY")
        .env_remove("INFT_KEYSTORE")
        .env_remove("INFT_ACCOUNT")
        .args(args)
        .output()
        .expect("running inft");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `inft ARGS` that must succeed; its stdout.
fn ok(home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let (success, stdout, stderr) = inft(home, args);
    ensure!(success, "inft {} failed: {stderr}", args.join(" "));
    Ok(stdout)
}

/// `inft ARGS` that must fail with `needle` in its error.
fn refused(home: &Path, args: &[&str], needle: &str) -> anyhow::Result<()> {
    let (success, _, stderr) = inft(home, args);
    ensure!(!success, "inft {} succeeded", args.join(" "));
    ensure!(
        stderr.contains(needle),
        "inft {}: expected {needle:?} in: {stderr}",
        args.join(" ")
    );
    Ok(())
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// An existing Uniswap V2 market, deployed as any third party would.
struct ExternalMarket {
    router: Address,
    base: Address,
    quote: Address,
    /// A token with no pair on this Uniswap.
    lonely: Address,
}

async fn deploy_uniswap<P: Provider>(p: &P, lp: Address) -> anyhow::Result<ExternalMarket> {
    let weth = *WETH9::deploy(p).await?.address();
    let factory = *UniswapV2Factory::deploy(p, lp).await?.address();
    let router = *UniswapV2Router02::deploy(p, factory, weth).await?.address();
    let token =
        |name: &str, symbol: &str| TestToken::deploy(p, name.to_owned(), symbol.to_owned(), 18u8);
    let quote = token("Dollar", "USDX").await?;
    let base = token("Silver", "SLVX").await?;
    let lonely = *token("Lonely", "LONE").await?.address();
    for (t, seed) in [(&quote, e18(1_000_000)), (&base, e18(1_000))] {
        t.mint(lp, seed + e18(1_000_000))
            .send()
            .await?
            .get_receipt()
            .await?;
        t.approve(router, seed).send().await?.get_receipt().await?;
    }
    let r = UniswapV2Router02::new(router, p);
    let added = r
        .addLiquidity(
            *base.address(),
            *quote.address(),
            e18(1_000),
            e18(1_000_000),
            e18(1_000),
            e18(1_000_000),
            lp,
            U256::MAX,
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(added.status(), "addLiquidity reverted");
    Ok(ExternalMarket {
        router,
        base: *base.address(),
        quote: *quote.address(),
        lonely,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_to_a_bare_chain_and_trade_on_an_existing_uniswap() -> anyhow::Result<()> {
    let chain = spawn_anvil(None, &[])?;
    let rpc = chain.endpoint_url().to_string();
    let home = tempfile::tempdir()?;
    let home = home.path();
    let keystores = home.join("keystores");
    let passphrase = Passphrase::new(PASS.to_owned());
    let signer = |i| chain.signer(i).context("anvil dev account");
    let (deployer, alice, lp) = (signer(0)?, signer(1)?, signer(2)?);
    let pauper = alloy::signers::local::PrivateKeySigner::random();
    for (name, s) in [
        ("deployer", &deployer),
        ("alice", &alice),
        ("lp", &lp),
        ("pauper", &pauper),
    ] {
        import_keystore(&keystores, Some(&format!("{name}.json")), s, &passphrase)?;
    }
    let lp_provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(lp.clone()))
        .connect_http(chain.endpoint_url());
    let market = deploy_uniswap(&lp_provider, lp.address()).await?;
    let reader = ProviderBuilder::new().connect_http(chain.endpoint_url());
    let deployment_file = home.join("deployment.json");
    let deployment_arg = deployment_file.to_string_lossy().into_owned();
    let deploy_args = |chain_id: &'static str| {
        vec![
            "--json",
            "deploy",
            "--rpc",
            rpc.as_str(),
            "--account",
            "deployer",
            "--chain-id",
            chain_id,
            "--out",
            deployment_arg.as_str(),
        ]
    };

    // A wrong chain id: refused before anything is signed or sent.
    refused(home, &deploy_args("1"), "is chain 31337, not chain 1")?;
    ensure!(
        reader.get_transaction_count(deployer.address()).await? == 0,
        "a transaction was sent"
    );
    ensure!(!deployment_file.exists());

    // A deployer without the funds for the estimated gas: refused, nothing sent.
    let mut poor = deploy_args("31337");
    poor[5] = "pauper";
    refused(home, &poor, "fund it first, nothing was sent")?;
    ensure!(reader.get_transaction_count(pauper.address()).await? == 0);
    ensure!(!deployment_file.exists());

    // The system, by the real binary from a keystore, its code checked against the artifacts.
    let out: Value = serde_json::from_str(&ok(home, &deploy_args("31337"))?)?;
    ensure!(out["code_verified"] == Value::Bool(true), "{out}");
    let steps = out["steps"].as_array().context("steps")?;
    ensure!(steps.len() == 9, "6 deployments and 3 wiring calls: {out}");
    let deployment = Deployment::read_from(&deployment_file)?;
    ensure!(deployment.market.is_none() && deployment.deployer == deployer.address());
    ensure!(deployment.chain_id == 31337);
    for a in [
        deployment.agent_nft,
        deployment.transfer_verifier,
        deployment.action_log,
        deployment.earnings_splitter,
        deployment.agent_account_factory,
    ] {
        ensure!(!reader.get_code_at(a).await?.is_empty(), "no code at {a}");
    }

    // An existing deployment file is not overwritten (and nothing is sent).
    let before = std::fs::read(&deployment_file)?;
    let nonce = reader.get_transaction_count(deployer.address()).await?;
    refused(home, &deploy_args("31337"), "refusing to overwrite")?;
    ensure!(std::fs::read(&deployment_file)? == before);
    ensure!(reader.get_transaction_count(deployer.address()).await? == nonce);

    // A momentum agent, minted on the new deployment (a generated test model: fast).
    let model = home.join("model.gguf");
    let model_arg = model.to_string_lossy().into_owned();
    ok(
        home,
        &["dev", "make-model", "--size", "2MiB", "-o", &model_arg],
    )?;
    let minted: Value = serde_json::from_str(&ok(
        home,
        &[
            "--json",
            "mint",
            "--rpc-url",
            &rpc,
            "--account",
            "alice",
            "--model",
            &model_arg,
            "--kind",
            "trading",
            "--strategy",
            "momentum",
            "--no-memory",
        ],
    )?)?;
    let token = minted["token_id"].as_str().context("token_id")?.to_owned();

    let (router, base, quote, lonely) = (
        market.router.to_string(),
        market.base.to_string(),
        market.quote.to_string(),
        market.lonely.to_string(),
    );
    let run = |steps: &str, pair_quote: &str, extra: &[&str]| {
        let mut args = vec![
            "--json",
            "run",
            token.as_str(),
            "--rpc-url",
            rpc.as_str(),
            "--account",
            "alice",
            "--steps",
            steps,
            "--router",
            router.as_str(),
            "--base-token",
            base.as_str(),
            "--quote-token",
            pair_quote,
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    // No such pair on this router: refused clearly, before anything is traded.
    refused(home, &strs(&run("1", &lonely, &[])), "has no pair for")?;
    // No market in the deployment and no router: says what to name.
    refused(
        home,
        &[
            "run",
            &token,
            "--rpc-url",
            &rpc,
            "--account",
            "alice",
            "--steps",
            "1",
        ],
        "the deployment has no market",
    )?;

    // Fund the agent's account from the LP (one step; writes the owner's default policy for
    // this market), then widen the TWAP bound for the test's fast noise trader, as the demo does.
    ok(
        home,
        &strs(&run(
            "1",
            &quote,
            &[
                "--fund-from",
                "lp",
                "--fund-base",
                "10",
                "--fund-quote",
                "10000",
            ],
        )),
    )?;
    let policy = home.join("trading-policy.json");
    let text = std::fs::read_to_string(&policy)?;
    ensure!(text.contains(&market.router.to_string().to_lowercase()) || text.contains(&router));
    let widened = text.replace(
        "\"max_twap_deviation_bps\": 500",
        "\"max_twap_deviation_bps\": 1500",
    );
    ensure!(widened != text, "{text}");
    std::fs::write(&policy, widened)?;

    // The pool moves (the LP as noise trader) and the agent trades on it.
    let out: Value = serde_json::from_str(&ok(
        home,
        &strs(&run(
            "12",
            &quote,
            &[
                "--move-market",
                "8",
                "--market-maker",
                "lp",
                "--no-memory-update",
            ],
        )),
    )?)?;
    let trades = out["trading"]["trades"]
        .as_u64()
        .context("trading.trades")?;
    ensure!(trades >= 1, "no trade in 12 steps on a moving pool: {out}");
    eprintln!("trading: {}", out["trading"]);

    // Anyone audits it from chain events and public records.
    let audit: Value =
        serde_json::from_str(&ok(home, &["--json", "audit", &token, "--rpc-url", &rpc])?)?;
    ensure!(audit["clean"] == Value::Bool(true), "{audit}");
    eprintln!(
        "audit: clean, {} actions",
        audit["actions"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}

/// `--confirmations 2` on a chain that mines a block a second: each transaction is sent only
/// after the previous one has a block on top of it.
#[tokio::test(flavor = "multi_thread")]
async fn deploy_waits_for_confirmations() -> anyhow::Result<()> {
    let chain = spawn_anvil(None, &["--block-time", "1"])?;
    let rpc = chain.endpoint_url().to_string();
    let home = tempfile::tempdir()?;
    let home = home.path();
    let deployer = chain.signer(0).context("anvil dev account")?;
    import_keystore(
        home.join("keystores"),
        Some("deployer.json"),
        &deployer,
        &Passphrase::new(PASS.to_owned()),
    )?;
    let out: Value = serde_json::from_str(&ok(
        home,
        &[
            "--json",
            "deploy",
            "--rpc",
            &rpc,
            "--account",
            "deployer",
            "--confirmations",
            "2",
        ],
    )?)?;
    let blocks: Vec<u64> = out["steps"]
        .as_array()
        .context("steps")?
        .iter()
        .map(|s| s["block"].as_u64().context("block"))
        .collect::<anyhow::Result<_>>()?;
    ensure!(blocks.len() == 9, "{out}");
    for w in blocks.windows(2) {
        ensure!(w[1] >= w[0] + 2, "sent before 2 confirmations: {blocks:?}");
    }
    ensure!(
        Deployment::read_from(&home.join("deployment.json"))?
            .market
            .is_none()
    );
    Ok(())
}
