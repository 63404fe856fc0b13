//! The contracts on a real anvil: deploy everything, swap on the Uniswap V2 pool, mint, transfer
//! with a proof signed in Rust, log actions, and decode typed reverts.
//!
//! All chain tests live in this one test binary; each test spawns its own anvil.

use alloy::network::EthereumWallet;
use alloy::primitives::aliases::U96;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use anyhow::{Context, Result, ensure};

use inft_contracts::bindings::{
    ActionLog, AgentMarket, AgentNFT, IAgentNFT, TestToken, TransferVerifier, UniswapV2Pair,
    UniswapV2Router02,
};
use inft_contracts::{
    ContractRevert, Deployment, DevChain, ProofMode, Rotation, deploy_all, proof_domain, revert_of,
    spawn_anvil, token_id_for,
};

struct Env {
    chain: DevChain,
    provider: alloy::providers::DynProvider,
    deployment: Deployment,
    deployer: Address,
    alice: PrivateKeySigner,
    bob: PrivateKeySigner,
    trader: Address,
}

async fn setup() -> Result<Env> {
    let chain = spawn_anvil(None, &[])?;
    let deployer = chain.signer(0).context("account 0")?;
    let alice = chain.signer(1).context("account 1")?;
    let bob = chain.signer(2).context("account 2")?;
    let trader = chain.signer(3).context("account 3")?;
    let deployer_addr = deployer.address();
    let trader_addr = trader.address();
    let mut wallet = EthereumWallet::from(deployer);
    wallet.register_signer(alice.clone());
    wallet.register_signer(bob.clone());
    wallet.register_signer(trader);
    let provider = ProviderBuilder::new()
        .wallet(wallet)
        .connect_http(chain.endpoint_url());
    let deployment = deploy_all(&provider).await?;
    Ok(Env {
        provider: provider.erased(),
        chain,
        deployment,
        deployer: deployer_addr,
        alice,
        bob,
        trader: trader_addr,
    })
}

fn data_hash(tag: &str) -> B256 {
    keccak256(tag.as_bytes())
}

fn sealed_key(tag: &str) -> Bytes {
    // 81 bytes, the sealing crate's sealed-key size
    let mut k = vec![1u8];
    k.extend_from_slice(keccak256(format!("{tag}/eph")).as_slice());
    k.extend_from_slice(keccak256(format!("{tag}/ct")).as_slice());
    k.extend_from_slice(&[0u8; 16]);
    Bytes::from(k)
}

fn entries(tag: &str) -> IAgentNFT::DataEntries {
    IAgentNFT::DataEntries {
        dataHashes: vec![data_hash(tag)],
        sealedKeys: vec![sealed_key(tag)],
        uris: vec![format!("inft://blob/{}", data_hash(tag))],
    }
}

/// A plaintext model hash to commit at mint.
const MODEL: B256 = B256::repeat_byte(0x6d);

fn no_shares() -> IAgentNFT::Shares {
    IAgentNFT::Shares {
        royaltyBps: 500,
        creatorBps: 1000,
        contributors: vec![],
        contributorBps: vec![],
    }
}

#[tokio::test]
async fn deploys_everything_and_the_deployment_round_trips() -> Result<()> {
    let env = setup().await?;
    let d = &env.deployment;
    ensure!(d.chain_id == env.chain.chain_id());
    ensure!(d.deployer == env.deployer);
    for (name, addr) in [
        ("nft", d.agent_nft),
        ("verifier", d.transfer_verifier),
        ("log", d.action_log),
        ("splitter", d.earnings_splitter),
        ("accounts", d.agent_account_factory),
        ("agent market", d.agent_market),
        ("metadata", d.agent_metadata),
        ("weth", d.market()?.weth),
        ("factory", d.market()?.factory),
        ("router", d.market()?.router),
        ("tUSD", d.market()?.quote_token),
        ("tGLD", d.market()?.base_token),
        ("pair", d.market()?.pair),
    ] {
        let code = env.provider.get_code_at(addr).await?;
        ensure!(!code.is_empty(), "{name} has no code at {addr}");
    }
    let nft = AgentNFT::new(d.agent_nft, &env.provider);
    ensure!(
        nft.verifier().call().await? == d.transfer_verifier,
        "verifier installed"
    );
    let verifier = TransferVerifier::new(d.transfer_verifier, &env.provider);
    ensure!(verifier.nft().call().await? == d.agent_nft);
    let market = AgentMarket::new(d.agent_market, &env.provider);
    ensure!(
        market.nft().call().await? == d.agent_nft,
        "market sells our NFT"
    );

    let json = serde_json::to_string(d)?;
    let back: Deployment = serde_json::from_str(&json)?;
    ensure!(&back == d, "serde round trip");
    Ok(())
}

/// One swap through Router02 on the seeded pool; the balances move exactly as the constant-product
/// formula with the 0.3% fee says. This also proves the npm Factory's pair bytecode matches the
/// init code hash hard-coded in Router02 (otherwise the router would address a non-existent pair).
/// The code check holds the NFT's ActionLog to the exact code the NFT deploys (its immutable
/// NFT included), and the agent account implementation to its artifact: an ActionLog of
/// another NFT, or another contract in the implementation's place, is refused.
#[tokio::test]
async fn the_code_check_covers_the_nfts_action_log_and_the_account_implementation() -> Result<()> {
    let env = setup().await?;
    let system = inft_contracts::deploy_system(
        &env.provider,
        env.deployer,
        &[],
        &inft_contracts::DeployOptions::default(),
    )
    .await?;
    inft_contracts::verify_code(&env.provider, &system.code).await?;
    let swapped = |contract: &str, address: Address| {
        let mut code = system.code.clone();
        for c in code.iter_mut().filter(|c| c.contract == contract) {
            c.address = address;
        }
        code
    };
    // The artifact's code, logging for another NFT.
    let rogue = ActionLog::deploy(&env.provider, Address::repeat_byte(0x11)).await?;
    let err = inft_contracts::verify_code(&env.provider, &swapped("ActionLog", *rogue.address()))
        .await
        .expect_err("an ActionLog of another NFT");
    ensure!(
        matches!(
            err,
            inft_contracts::DeployError::CodeMismatch {
                contract: "ActionLog",
                ..
            }
        ),
        "{err}"
    );
    let market = system.deployment.agent_market;
    let err = inft_contracts::verify_code(&env.provider, &swapped("AgentAccount", market))
        .await
        .expect_err("not the account implementation");
    ensure!(
        matches!(
            err,
            inft_contracts::DeployError::CodeMismatch {
                contract: "AgentAccount",
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn swaps_on_the_uniswap_pool() -> Result<()> {
    let env = setup().await?;
    let m = env.deployment.market()?;
    let quote = TestToken::new(m.quote_token, &env.provider);
    let base = TestToken::new(m.base_token, &env.provider);
    let pair = UniswapV2Pair::new(m.pair, &env.provider);
    let router = UniswapV2Router02::new(m.router, &env.provider);

    let e18 = U256::from(10u64).pow(U256::from(18u64));
    let amount_in = U256::from(5_000u64) * e18;
    quote
        .transfer(env.trader, amount_in)
        .from(env.deployer)
        .send()
        .await?
        .get_receipt()
        .await?;
    quote
        .approve(m.router, amount_in)
        .from(env.trader)
        .send()
        .await?
        .get_receipt()
        .await?;

    let reserves = pair.getReserves().call().await?;
    let token0 = pair.token0().call().await?;
    let (reserve_in, reserve_out) = if token0 == m.quote_token {
        (
            U256::from(reserves._reserve0),
            U256::from(reserves._reserve1),
        )
    } else {
        (
            U256::from(reserves._reserve1),
            U256::from(reserves._reserve0),
        )
    };
    ensure!(
        reserve_in == U256::from(1_000_000u64) * e18,
        "seeded quote reserve"
    );
    ensure!(
        reserve_out == U256::from(1_000u64) * e18,
        "seeded base reserve"
    );
    let expected_out = amount_in * U256::from(997u64) * reserve_out
        / (reserve_in * U256::from(1000u64) + amount_in * U256::from(997u64));
    let quoted = router
        .getAmountsOut(amount_in, vec![m.quote_token, m.base_token])
        .call()
        .await?;
    ensure!(
        quoted[1] == expected_out,
        "router quote matches the formula"
    );

    let receipt = router
        .swapExactTokensForTokens(
            amount_in,
            expected_out,
            vec![m.quote_token, m.base_token],
            env.trader,
            U256::MAX,
        )
        .from(env.trader)
        // Not the bare estimate: mined a second after the pair's last update, the swap writes
        // the price accumulators the estimate skipped (strategies' `swap_gas_limit`).
        .gas(300_000)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(receipt.status(), "swap succeeded");
    ensure!(
        quote.balanceOf(env.trader).call().await? == U256::ZERO,
        "quote spent"
    );
    ensure!(
        base.balanceOf(env.trader).call().await? == expected_out,
        "base received"
    );
    let after = pair.getReserves().call().await?;
    let (in_after, out_after) = if token0 == m.quote_token {
        (U256::from(after._reserve0), U256::from(after._reserve1))
    } else {
        (U256::from(after._reserve1), U256::from(after._reserve0))
    };
    ensure!(
        in_after == reserve_in + amount_in,
        "pool received the input"
    );
    ensure!(
        out_after == reserve_out - expected_out,
        "pool paid the output"
    );
    Ok(())
}

#[tokio::test]
async fn mints_a_token_with_owner_data_hash_and_events() -> Result<()> {
    let env = setup().await?;
    let nft = AgentNFT::new(env.deployment.agent_nft, &env.provider);
    let alice = env.alice.address();
    let agent = PrivateKeySigner::random();
    let salt = U96::from(42u8);

    let expected_id = token_id_for(alice, salt);
    ensure!(
        nft.tokenIdFor(alice, salt).call().await? == expected_id,
        "token id scheme"
    );

    let data = entries("model");
    let receipt = nft
        .mint(
            alice,
            salt,
            data.clone(),
            agent.address(),
            no_shares(),
            MODEL,
        )
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(receipt.status());
    println!("mint (1 entry) transaction gas used: {}", receipt.gas_used);

    ensure!(nft.ownerOf(expected_id).call().await? == alice, "owner");
    ensure!(
        nft.dataHashesOf(expected_id).call().await? == data.dataHashes,
        "data hash"
    );
    ensure!(
        nft.agentOf(expected_id).call().await? == agent.address(),
        "agent"
    );
    ensure!(nft.creatorOf(expected_id).call().await? == alice, "creator");

    let mut saw_data = false;
    let mut saw_agent = false;
    for log in receipt.inner.logs() {
        if let Ok(ev) = AgentNFT::DataSet::decode_log_data(log.data()) {
            ensure!(ev.tokenId == expected_id && ev.epoch == 0);
            ensure!(
                ev.dataHashes == data.dataHashes
                    && ev.sealedKeys == data.sealedKeys
                    && ev.uris == data.uris
            );
            saw_data = true;
        }
        if let Ok(ev) = AgentNFT::AgentSet::decode_log_data(log.data()) {
            ensure!(ev.tokenId == expected_id && ev.agent == agent.address());
            saw_agent = true;
        }
    }
    ensure!(saw_data && saw_agent, "DataSet and AgentSet emitted");

    // the same id again is refused with a typed error
    let err = nft
        .mint(
            alice,
            salt,
            entries("other"),
            agent.address(),
            no_shares(),
            MODEL,
        )
        .from(alice)
        .call()
        .await
        .expect_err("taken id");
    ensure!(
        matches!(
            revert_of(&err),
            Some(ContractRevert::AgentNft(
                AgentNFT::AgentNFTErrors::TokenIdTaken(_)
            ))
        ),
        "typed TokenIdTaken, got {err}"
    );
    Ok(())
}

/// A receiver acceptance signed in Rust (alloy's EIP-712) verifies on chain; plain transfers,
/// wrong signers and strangers' logs are refused with typed errors.
#[tokio::test]
async fn transfers_with_a_rust_signed_proof_and_logs_actions() -> Result<()> {
    let env = setup().await?;
    let d = &env.deployment;
    let nft = AgentNFT::new(d.agent_nft, &env.provider);
    let log = ActionLog::new(d.action_log, &env.provider);
    let (alice, bob) = (env.alice.address(), env.bob.address());
    let agent1 = PrivateKeySigner::random();
    let agent2 = PrivateKeySigner::random();
    let id = token_id_for(alice, U96::from(1u8));
    nft.mint(
        alice,
        U96::from(1u8),
        entries("v1"),
        agent1.address(),
        no_shares(),
        MODEL,
    )
    .from(alice)
    .send()
    .await?
    .get_receipt()
    .await?;
    let bob_key = B256::repeat_byte(0xb0);
    nft.setSealingKey(bob_key)
        .from(bob)
        .send()
        .await?
        .get_receipt()
        .await?;

    // plain transfer: refused
    let err = nft
        .transferFrom(alice, bob, id)
        .from(alice)
        .call()
        .await
        .expect_err("plain transfer");
    ensure!(
        matches!(
            revert_of(&err),
            Some(ContractRevert::AgentNft(
                AgentNFT::AgentNFTErrors::PrivateTokenTransfer(_)
            ))
        ),
        "typed PrivateTokenTransfer, got {err}"
    );

    let new = entries("v2");
    let block = env
        .provider
        .get_block_by_number(Default::default())
        .await?
        .context("latest block")?;
    let rotation = Rotation {
        nft: d.agent_nft,
        token_id: id,
        new_token_id: id,
        from: alice,
        to: bob,
        old_data_hashes: nft.dataHashesOf(id).call().await?,
        new_data_hashes: new.dataHashes.clone(),
        sealed_keys: new.sealedKeys.clone(),
        uris: new.uris.clone(),
        sealing_key: nft.sealingKeyOf(bob).call().await?,
        new_agent: agent2.address(),
        market: Address::ZERO,
        price: U256::ZERO,
        nonce: U256::from(7u8),
        deadline: U256::from(block.header.timestamp + 3600),
    };
    let domain = proof_domain(d.chain_id, d.transfer_verifier);
    let hash = rotation.signing_hash(ProofMode::Receiver, &domain);

    // signed by someone else: typed InvalidSignature from the verifier
    let wrong = PrivateKeySigner::random().sign_hash_sync(&hash)?;
    let err = nft
        .transferWithProof(
            bob,
            id,
            rotation.data_entries(),
            agent2.address(),
            rotation.proof(ProofMode::Receiver, wrong.as_bytes().into()),
        )
        .from(alice)
        .call()
        .await
        .expect_err("wrong signer");
    ensure!(
        matches!(
            revert_of(&err),
            Some(ContractRevert::Verifier(
                TransferVerifier::TransferVerifierErrors::InvalidSignature(_)
            ))
        ),
        "typed InvalidSignature, got {err}"
    );

    let sig = env.bob.sign_hash_sync(&hash)?;
    let receipt = nft
        .transferWithProof(
            bob,
            id,
            rotation.data_entries(),
            agent2.address(),
            rotation.proof(ProofMode::Receiver, sig.as_bytes().into()),
        )
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(receipt.status(), "transfer with proof");
    println!(
        "transferWithProof (1 entry) transaction gas used: {}",
        receipt.gas_used
    );
    ensure!(nft.ownerOf(id).call().await? == bob);
    ensure!(nft.agentOf(id).call().await? == agent2.address());
    ensure!(nft.dataHashesOf(id).call().await? == new.dataHashes);

    // the old agent key is out, the new one logs; a retried batch is refused
    let fund = |to: Address| {
        let p = env.provider.clone();
        let from = env.deployer;
        async move {
            let tx = alloy::rpc::types::TransactionRequest::default()
                .from(from)
                .to(to)
                .value(U256::from(10u64).pow(U256::from(18u64)));
            p.send_transaction(tx).await?.get_receipt().await?;
            anyhow::Ok(())
        }
    };
    fund(agent1.address()).await?;
    fund(agent2.address()).await?;
    let agents = ProviderBuilder::new()
        .wallet({
            let mut w = EthereumWallet::from(agent1.clone());
            w.register_signer(agent2.clone());
            w
        })
        .connect_http(env.chain.endpoint_url());
    let log_agents = ActionLog::new(d.action_log, &agents);
    let batch = vec![keccak256("a1"), keccak256("a2"), keccak256("a3")];
    let err = log_agents
        .logActions(id, 1, batch.clone())
        .from(agent1.address())
        .call()
        .await
        .expect_err("old agent");
    ensure!(
        matches!(
            revert_of(&err),
            Some(ContractRevert::ActionLog(
                ActionLog::ActionLogErrors::NotAgentOrExecutor(_)
            ))
        ),
        "typed NotAgentOrExecutor, got {err}"
    );
    let receipt = log_agents
        .logActions(id, 1, batch.clone())
        .from(agent2.address())
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(receipt.status());
    println!(
        "logActions (3 actions) transaction gas used: {}",
        receipt.gas_used
    );
    let mut head = B256::ZERO;
    for h in &batch {
        head = keccak256([head.as_slice(), h.as_slice()].concat());
    }
    let chain = log.chainOf(id).call().await?;
    ensure!(
        chain.head == head && chain.seq == 3,
        "head and seq follow the rule"
    );
    let err = log_agents
        .logActions(id, 1, batch)
        .from(agent2.address())
        .call()
        .await
        .expect_err("retry");
    ensure!(
        matches!(
            revert_of(&err),
            Some(ContractRevert::ActionLog(
                ActionLog::ActionLogErrors::SequenceMismatch(_)
            ))
        ),
        "typed SequenceMismatch, got {err}"
    );
    Ok(())
}

/// ERC-721 metadata and ERC-4906: `tokenURI` is a base64 JSON document whose every field agrees
/// with the chain's views, before and after changes; each change (agent, pause, data update,
/// logged actions) emits `MetadataUpdate` from the NFT, where indexers listen.
#[tokio::test]
async fn token_uri_json_agrees_with_the_chain_and_changes_emit_metadata_update() -> Result<()> {
    use base64::Engine as _;
    let env = setup().await?;
    let d = &env.deployment;
    let nft = AgentNFT::new(d.agent_nft, &env.provider);
    let alice = env.alice.address();
    let agent = env.deployer;
    let id = token_id_for(alice, U96::from(5u8));
    let shares = IAgentNFT::Shares {
        royaltyBps: 750,
        ..no_shares()
    };
    nft.mint(alice, U96::from(5u8), entries("v1"), agent, shares, MODEL)
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;

    let document = |uri: String| -> Result<serde_json::Value> {
        let b64 = uri
            .strip_prefix("data:application/json;base64,")
            .context("a base64 JSON data URI")?;
        let json = base64::engine::general_purpose::STANDARD.decode(b64)?;
        Ok(serde_json::from_slice(&json)?)
    };
    let hex32 = |b: B256| format!("{b:#x}");
    let addr = |a: Address| format!("{a:#x}");
    let check = |doc: &serde_json::Value, head: B256, count: u64, paused: bool| -> Result<()> {
        ensure!(doc["name"] == format!("inft agent {id}"), "name: {doc}");
        ensure!(doc["token_id"] == id.to_string());
        ensure!(doc["model_sha256"] == hex32(MODEL), "model: {doc}");
        ensure!(doc["owner"] == addr(alice) && doc["creator"] == addr(alice));
        ensure!(doc["royalty_bps"] == 750 && doc["epoch"] == 0);
        ensure!(doc["paused"] == paused, "paused: {doc}");
        ensure!(doc["action_log"]["address"] == addr(d.action_log));
        ensure!(doc["action_log"]["head"] == hex32(head), "head: {doc}");
        ensure!(doc["action_log"]["count"] == count, "count: {doc}");
        ensure!(doc["attributes"].as_array().is_some_and(|a| a.len() == 4));
        Ok(())
    };
    let doc = document(nft.tokenURI(id).call().await?)?;
    check(&doc, B256::ZERO, 0, false)?;
    let hashes: Vec<String> = nft
        .dataHashesOf(id)
        .call()
        .await?
        .into_iter()
        .map(hex32)
        .collect();
    ensure!(
        doc["data_hashes"] == serde_json::json!(hashes),
        "hashes: {doc}"
    );
    ensure!(doc["agent"] == addr(agent));

    // Every change emits MetadataUpdate(id) from the NFT.
    let updates = |receipt: &alloy::rpc::types::TransactionReceipt| {
        receipt
            .inner
            .logs()
            .iter()
            .filter(|l| l.address() == d.agent_nft)
            .filter_map(|l| AgentNFT::MetadataUpdate::decode_log_data(l.data()).ok())
            .filter(|e| e._tokenId == id)
            .count()
    };
    let receipt = nft
        .setPaused(id, true)
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(updates(&receipt) == 1, "pause: one MetadataUpdate");
    check(
        &document(nft.tokenURI(id).call().await?)?,
        B256::ZERO,
        0,
        true,
    )?;
    let receipt = nft
        .setPaused(id, false)
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(updates(&receipt) == 1, "unpause");
    let receipt = nft
        .updateData(id, entries("v2"))
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(updates(&receipt) == 1, "updateData");

    let batch = vec![keccak256("a1"), keccak256("a2")];
    let receipt = ActionLog::new(d.action_log, &env.provider)
        .logActions(id, 1, batch.clone())
        .from(agent)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(
        updates(&receipt) == 1,
        "logActions: one MetadataUpdate per batch"
    );
    let head = batch.iter().fold(B256::ZERO, |head, h| {
        keccak256([head.as_slice(), h.as_slice()].concat())
    });
    let doc = document(nft.tokenURI(id).call().await?)?;
    check(&doc, head, 2, false)?;
    let hashes: Vec<String> = entries("v2").dataHashes.into_iter().map(hex32).collect();
    ensure!(
        doc["data_hashes"] == serde_json::json!(hashes),
        "new hashes: {doc}"
    );

    let receipt = nft
        .setAgent(id, alice)
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(updates(&receipt) == 1, "setAgent");
    ensure!(document(nft.tokenURI(id).call().await?)?["agent"] == addr(alice));
    Ok(())
}

/// The agent account on the real Uniswap V2 router: the runtime's trade (approve exactly
/// `amountIn`, swap it, in one `executeBatch`) goes through and leaves no allowance; approving
/// more than the swap uses reverts with a typed `AllowanceLeftOpen`; the owner's open approval
/// is tracked and the NFT knows; a pause stops the agent's logging with a typed `TokenPaused`;
/// an ERC-1271 signature made with `account_message_hash` is accepted by that account only.
#[tokio::test]
async fn agent_account_trades_exactly_and_refuses_open_allowances() -> Result<()> {
    use inft_contracts::account_message_hash;
    use inft_contracts::bindings::{AgentAccount, AgentAccountFactory, IAgentAccount};

    let env = setup().await?;
    let d = &env.deployment;
    let m = d.market()?;
    let nft = AgentNFT::new(d.agent_nft, &env.provider);
    let factory = AgentAccountFactory::new(d.agent_account_factory, &env.provider);
    ensure!(
        nft.accountFactory().call().await? == d.agent_account_factory,
        "factory installed"
    );
    let alice = env.alice.address();
    let agent = env.trader; // a key the provider signs with
    let id = token_id_for(alice, U96::from(1u8));
    nft.mint(
        alice,
        U96::from(1u8),
        entries("v1"),
        agent,
        no_shares(),
        MODEL,
    )
    .from(alice)
    .send()
    .await?
    .get_receipt()
    .await?;
    factory
        .createAccount_1(id)
        .send()
        .await?
        .get_receipt()
        .await?;
    let account_addr = factory.accountOf(id).call().await?;
    let account = AgentAccount::new(account_addr, &env.provider);
    let quote = TestToken::new(m.quote_token, &env.provider);
    let base = TestToken::new(m.base_token, &env.provider);
    let e18 = U256::from(10u64).pow(U256::from(18u64));
    quote
        .transfer(account_addr, U256::from(10_000u64) * e18)
        .from(env.deployer)
        .send()
        .await?
        .get_receipt()
        .await?;

    let amount_in = U256::from(1_000u64) * e18;
    let batch = |approve: U256| {
        use alloy::sol_types::SolCall;
        vec![
            IAgentAccount::Call {
                target: m.quote_token,
                value: U256::ZERO,
                data: TestToken::approveCall {
                    spender: m.router,
                    value: approve,
                }
                .abi_encode()
                .into(),
            },
            IAgentAccount::Call {
                target: m.router,
                value: U256::ZERO,
                data: UniswapV2Router02::swapExactTokensForTokensCall {
                    amountIn: amount_in,
                    amountOutMin: U256::ZERO,
                    path: vec![m.quote_token, m.base_token],
                    to: account_addr,
                    deadline: U256::MAX,
                }
                .abi_encode()
                .into(),
            },
        ]
    };

    let err = account
        .executeBatch(batch(amount_in + U256::from(1u8)))
        .from(agent)
        .call()
        .await
        .expect_err("allowance left open");
    match revert_of(&err) {
        Some(ContractRevert::Account(AgentAccount::AgentAccountErrors::AllowanceLeftOpen(e))) => {
            ensure!(e.target == m.quote_token && e.spender == m.router, "{e:?}");
        }
        other => anyhow::bail!("typed AllowanceLeftOpen, got {other:?} ({err})"),
    }

    let receipt = account
        .executeBatch(batch(amount_in))
        .from(agent)
        .send()
        .await?
        .get_receipt()
        .await?;
    ensure!(receipt.status(), "exact approve + swap");
    ensure!(
        quote.allowance(account_addr, m.router).call().await? == U256::ZERO,
        "no allowance left"
    );
    ensure!(
        base.balanceOf(account_addr).call().await? > U256::ZERO,
        "swapped"
    );
    ensure!(
        account.openApprovals().call().await?.is_empty(),
        "nothing tracked"
    );

    // The owner may leave an approval open: it is tracked, and the NFT will close it at a sale.
    let spender = Address::repeat_byte(0x55);
    account
        .execute(
            m.quote_token,
            U256::ZERO,
            {
                use alloy::sol_types::SolCall;
                TestToken::approveCall {
                    spender,
                    value: U256::MAX,
                }
                .abi_encode()
                .into()
            },
            0,
        )
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    let open = account.openApprovals().call().await?;
    ensure!(open.len() == 1 && open[0].spender == spender, "{open:?}");
    ensure!(nft.approvalsOpenOf(id).call().await?, "the NFT knows");

    // ERC-1271, bound to the account: Rust's wrapper equals the contract's.
    let h = keccak256("message");
    let digest = account_message_hash(d.chain_id, account_addr, h);
    ensure!(account.messageHash(h).call().await? == digest, "digest");
    let sig = env.alice.sign_hash_sync(&digest)?;
    let magic = account
        .isValidSignature(h, sig.as_bytes().into())
        .call()
        .await?;
    ensure!(
        magic.0 == [0x16, 0x26, 0xba, 0x7e],
        "owner signature accepted"
    );
    let other = account_message_hash(d.chain_id, Address::repeat_byte(1), h);
    let sig = env.alice.sign_hash_sync(&other)?;
    let magic = account
        .isValidSignature(h, sig.as_bytes().into())
        .call()
        .await?;
    ensure!(magic.0 == [0xff; 4], "another account's signature refused");

    // Paused: the agent may not log, with a typed error the outbox can tell apart.
    nft.setPaused(id, true)
        .from(alice)
        .send()
        .await?
        .get_receipt()
        .await?;
    let err = ActionLog::new(d.action_log, &env.provider)
        .logActions(id, 1, vec![keccak256("a1")])
        .from(agent)
        .call()
        .await
        .expect_err("paused");
    ensure!(
        matches!(
            revert_of(&err),
            Some(ContractRevert::ActionLog(
                ActionLog::ActionLogErrors::TokenPaused(_)
            ))
        ),
        "typed TokenPaused, got {err}"
    );
    Ok(())
}
