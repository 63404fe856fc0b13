//! Job 2, **transfer**: sell an agent to a buyer through the `AgentMarket`, with its keys
//! rotated to the buyer in the same transaction that pays the seller and the creator's royalty.
//!
//! A private token cannot move by plain `transferFrom`: it moves only with a proof that its data
//! was re-encrypted for the receiver. A sale's proof is an **oracle attestation**: a registered
//! re-encryption oracle (meant to run in a TEE) re-seals every entry under a fresh data key to
//! the key the buyer committed when it paid, makes a new agent key, and signs the rotation for
//! this market and price. The new keys reach the buyer only in the completion that pays the
//! seller, and nothing the buyer does after paying can stop it. Afterwards the buyer opens the
//! agent and the seller is locked out of the new data.
//!
//! A gift with no payment can use a receiver-verified proof instead (the receiver checks the
//! offer and signs, `make_offer` / `accept_offer` / `complete_transfer`, what `inft transfer
//! send` / `inft transfer accept` do); a sale cannot, since the buyer would sign after seeing keys
//! it could keep.
//!
//! ```sh
//! cargo run -p inft-examples --example transfer
//! ```

use agent_runtime::pipeline::open_keys;
use agent_runtime::transfer::market;
use agent_runtime::transfer::oracle::request_sale_rotation;
use alloy::primitives::U256;
use alloy::primitives::utils::format_ether;
use alloy::providers::Provider;
use inft_contracts::scopes;
use inft_engine::grammar::CREATIVE_MAX_TOKENS;
use inft_examples::Sandbox;
use inft_types::config::AgentKind;
use sealing::SealOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sandbox = Sandbox::start().await?;
    let alice = sandbox.actor(1).await?; // creator and seller
    let bob = sandbox.actor(2).await?; // buyer; `actor` published his sealing key
    let store = &sandbox.store;
    let opts = SealOptions::default();
    let agent_market = sandbox.deployment.agent_market;

    // Alice mints an agent (5 % ERC-2981 royalty to her as creator).
    let config = sandbox.config(
        "poet",
        AgentKind::Creative {
            prompt: "Write a short poem about the sea.".into(),
        },
        CREATIVE_MAX_TOKENS,
    );
    let minted = sandbox.mint(&alice, &config, 1).await?;
    let token = minted.token_id;
    println!("alice minted token {token}, agent wallet {}", minted.agent);

    // 1. Alice lists it for 0.5 ETH; bob has 600 s after buying for her to complete.
    let price = U256::from(5u64) * U256::from(10u64).pow(U256::from(17u64));
    market::list(&alice.nft, agent_market, token, price, 600).await?;
    println!("listed for {} ETH", format_ether(price));

    // 2. Bob buys: the market escrows his payment and records the sealing key he committed.
    //    Stating the terms he saw makes the buy fail if alice changed them meanwhile.
    let terms = market::Terms {
        price: Some(price),
        window: Some(600),
    };
    let (_, bought) = market::buy(&bob.nft, agent_market, token, bob.address(), terms).await?;
    let deadline = bought
        .deadline
        .ok_or_else(|| anyhow::anyhow!("the buy left no pending sale"))?;
    println!(
        "bob escrowed {} ETH; alice must complete by {deadline}",
        format_ether(price)
    );

    // 3. Alice asks the oracle for the rotation. She seals the current data keys to the
    //    oracle and signs the request as the owner; the oracle re-encrypts for the key bob
    //    committed at the buy and attests the rotation for this market and price. Alice checks
    //    the answer (a registered oracle, the rotation she asked for) before sending anything.
    let oracle = sandbox.oracle().await?;
    let answer = request_sale_rotation(
        &alice.nft,
        &oracle.base_url(),
        token,
        &alice.wallet,
        &alice.secret,
        agent_market,
        deadline,
    )
    .await?;
    let offer = &answer.offer;
    println!(
        "oracle attested the rotation to {}: replaces data hashes {:?}",
        offer.to, offer.old_data_hashes
    );

    // 5. Alice submits the rotation through the market: one transaction swaps data, agent and
    //    owner, pays the creator's royalty and the seller, and empties the escrow. The old agent
    //    wallet's ETH is then swept to the new agent wallet.
    let alice_before = sandbox.reader().get_balance(alice.address()).await?;
    let sale = market::complete_sale(
        &alice.nft,
        store,
        &alice.secret,
        agent_market,
        offer,
        &answer.signed,
        &opts,
    )
    .await?;
    oracle.shutdown().await?;
    let tx = &sale.completed.transfer;
    println!(
        "sold in tx {} (gas {}): royalty {} ETH to {}, the rest to seller {}",
        tx.tx_hash,
        tx.gas_used,
        format_ether(sale.royalty),
        sale.royalty_receiver,
        sale.seller
    );
    assert_eq!(
        sale.royalty,
        price * U256::from(500u64) / U256::from(10_000u64)
    );
    assert_eq!(sale.royalty_receiver, alice.address());
    assert_eq!(
        sandbox.reader().get_balance(agent_market).await?,
        U256::ZERO,
        "escrow paid out"
    );
    let received = sandbox.reader().get_balance(alice.address()).await? - alice_before;
    println!("alice received {} ETH net of gas", format_ether(received));

    // The chain: bob owns the token, with rotated data and a new agent wallet.
    let state = bob.nft.state(token).await?;
    assert_eq!(state.owner, bob.address());
    assert_ne!(state.agent, minted.agent, "the agent key was rotated");
    println!(
        "owner now {}, agent wallet now {}",
        state.owner, state.agent
    );
    println!("data hashes now {:?}", state.data_hashes);
    assert!(
        state
            .data_hashes
            .iter()
            .all(|h| !offer.old_data_hashes.contains(h)),
        "every entry was re-encrypted"
    );

    // Bob opens the agent, and gets the new agent key.
    let opened = sandbox.open(&bob, token, scopes::RUN).await?;
    let agent_key = opened
        .agent
        .agent_key
        .ok_or_else(|| anyhow::anyhow!("the owner gets the agent key"))?;
    assert_eq!(agent_key.address(), state.agent);
    println!("bob opens the agent: {:?}", opened.agent.config.name);

    // Alice is locked out twice over: the chain refuses her before any fetch, and even with
    // the blobs in hand her sealing key opens none of the new data keys.
    let refused = sandbox
        .open(&alice, token, scopes::RUN)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("the seller still opens the sold agent"))?;
    println!("alice is refused: {refused}");
    let entries = bob.nft.entries_for(token, bob.address()).await?;
    let token_ref = bob.nft.token_ref(token);
    anyhow::ensure!(
        open_keys(&entries, &alice.secret, &token_ref).is_err(),
        "the seller's key opens the rotated data"
    );
    println!("alice's sealing key opens none of the rotated data keys");
    Ok(())
}
