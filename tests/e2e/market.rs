//! Issue 13: selling a private agent through the AgentMarket on anvil — list → buy (escrow) →
//! the seller's rotation completes the sale and pays the creator exactly the ERC-2981 royalty
//! and the seller the rest, to the wei; the buyer unseals the agent, the seller is locked out;
//! a second completion is refused; an abandoned sale refunds the buyer after its deadline; the
//! oracle mode completes a sale too, and a rotation to anyone but the buyer is refused.

use std::sync::Arc;

use agent_runtime::lifecycle::{MintRequest, MintedAgent, mint_agent};
use agent_runtime::pipeline::open_keys;
use agent_runtime::token::{Shares, TokenError};
use agent_runtime::transfer::market::{self, Sale};
use agent_runtime::transfer::oracle::{OracleService, request_rotation};
use agent_runtime::transfer::{TransferError, accept_offer, make_offer};
use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use inft_contracts::bindings::AgentMarket::{self, AgentMarketErrors};
use inft_contracts::bindings::market::IAgentNFT;
use inft_contracts::{ContractRevert, revert_of, scopes};
use sealing::SealOptions;

use crate::world::{Actor, ORACLE_ACCOUNT, World};

const ROYALTY_BPS: u64 = 500;

fn market_error(err: &TransferError) -> Option<&AgentMarketErrors> {
    match err {
        TransferError::Token(TokenError::Revert(ContractRevert::Market(e))) => Some(e),
        _ => None,
    }
}

/// What `tx` cost its sender.
async fn fee(provider: &DynProvider, tx: B256) -> anyhow::Result<U256> {
    let receipt = provider
        .get_transaction_receipt(tx)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no receipt for {tx}"))?;
    Ok(U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price))
}

/// `creator` mints a creative agent (royalty 5 %) and hands it to `owner` (a receiver-verified
/// transfer), so creator and seller differ.
async fn mint_for(
    world: &World,
    creator: &Actor,
    owner: &Actor,
    salt: u64,
) -> anyhow::Result<MintedAgent> {
    let config = world.creative_config("Write a short poem about the sea.");
    let request = MintRequest {
        model: Box::new(std::io::Cursor::new(world.model.as_ref().clone())),
        config: &config,
        memory: None,
        salt,
        shares: Shares {
            royalty_bps: ROYALTY_BPS as u16,
            creator_bps: 0,
            contributors: vec![],
        },
        seal: SealOptions::default(),
    };
    let minted = mint_agent(
        &creator.nft,
        world.store.as_ref(),
        creator.address(),
        &creator.secret.public_key(),
        request,
    )
    .await?;
    world.transfer(creator, owner, minted.token_id).await?;
    Ok(minted)
}

/// The seller's rotation for the pending sale (receiver-verified: the buyer checks and signs),
/// submitted through the market.
async fn complete(
    world: &World,
    seller: &Actor,
    buyer: &Actor,
    token: U256,
) -> Result<Sale, TransferError> {
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let now = seller.nft.chain_time().await?;
    let offer = make_offer(
        &seller.nft,
        store,
        token,
        &seller.secret,
        buyer.address(),
        now + 600,
        &opts,
    )
    .await?;
    let signed = accept_offer(
        &buyer.nft,
        store,
        &offer,
        &buyer.wallet,
        &buyer.secret,
        now,
        &opts,
    )
    .await?;
    market::complete_sale(
        &seller.nft,
        store,
        &seller.secret,
        world.deployment.agent_market,
        &offer,
        &signed,
        &opts,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_sale_pays_creator_royalty_and_seller_and_hands_the_agent_to_the_buyer()
-> anyhow::Result<()> {
    let world = World::start().await?;
    let creator = world.actor(1).await?;
    let seller = world.actor(2).await?;
    let buyer = world.actor(3).await?;
    let m = world.deployment.agent_market;
    let token = mint_for(&world, &creator, &seller, 1).await?.token_id;
    let provider = seller.nft.provider();

    // 1 ETH and 7 wei: the royalty rounds down, the seller gets the remainder.
    let price = U256::from(10u64).pow(U256::from(18u64)) + U256::from(7u64);
    market::list(&seller.nft, m, token, price, 600).await?;
    let (_, bought) = market::buy(
        &buyer.nft,
        m,
        token,
        buyer.address(),
        market::Terms {
            price: Some(price),
            window: Some(600),
        },
    )
    .await?;
    assert_eq!(bought.buyer, Some(buyer.address()));
    assert_eq!(provider.get_balance(m).await?, price, "escrowed");

    let creator_before = provider.get_balance(creator.address()).await?;
    let seller_before = provider.get_balance(seller.address()).await?;
    let sale = complete(&world, &seller, &buyer, token).await?;
    let royalty = price * U256::from(ROYALTY_BPS) / U256::from(10_000u64);
    println!(
        "market complete (3 entries, receiver-verified): gas {}",
        sale.completed.transfer.gas_used
    );

    assert_eq!(sale.royalty, royalty);
    assert_eq!(sale.royalty_receiver, creator.address());
    assert_eq!(
        provider.get_balance(creator.address()).await? - creator_before,
        royalty,
        "the creator receives exactly the royalty"
    );
    let seller_fee = fee(provider, sale.completed.transfer.tx_hash).await?;
    assert_eq!(
        provider.get_balance(seller.address()).await? + seller_fee - seller_before,
        price - royalty,
        "the seller receives the rest, to the wei"
    );
    assert_eq!(provider.get_balance(m).await?, U256::ZERO, "escrow spent");

    // The buyer holds the token with rotated data and opens the agent with the new agent key;
    // the seller can open none of the new keys.
    let state = buyer.nft.state(token).await?;
    assert_eq!(state.owner, buyer.address());
    let opened = world.open(&buyer, token, scopes::RUN).await?;
    let agent_key = opened
        .agent
        .agent_key
        .ok_or_else(|| anyhow::anyhow!("the owner gets the agent key"))?;
    assert_eq!(agent_key.address(), state.agent);
    let entries = buyer.nft.entries_for(token, buyer.address()).await?;
    let token_ref = buyer.nft.token_ref(token);
    assert!(open_keys(&entries, &seller.secret, &token_ref).is_err());
    assert!(world.open(&seller, token, scopes::RUN).await.is_err());

    // A second completion is refused by the market (nothing is pending any more).
    let err = AgentMarket::new(m, provider)
        .complete(
            token,
            IAgentNFT::DataEntries {
                dataHashes: vec![],
                sealedKeys: vec![],
                uris: vec![],
            },
            state.agent,
            IAgentNFT::Proof {
                mode: 0,
                nonce: U256::ZERO,
                deadline: U256::ZERO,
                signature: Bytes::new(),
            },
        )
        .call()
        .await
        .expect_err("second completion");
    assert!(
        matches!(
            revert_of(&err),
            Some(ContractRevert::Market(AgentMarketErrors::NoPendingSale(_)))
        ),
        "{err}"
    );
    assert!(market::listing(&seller.nft, m, token).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_market_sale_refunds_the_buyer_after_the_deadline() -> anyhow::Result<()> {
    let world = World::start().await?;
    let creator = world.actor(1).await?;
    let seller = world.actor(2).await?;
    let buyer = world.actor(3).await?;
    let m = world.deployment.agent_market;
    let token = mint_for(&world, &creator, &seller, 2).await?.token_id;
    let provider = buyer.nft.provider();
    let price = U256::from(10u64).pow(U256::from(17u64));

    market::list(&seller.nft, m, token, price, 300).await?;
    let (_, bought) = market::buy(
        &buyer.nft,
        m,
        token,
        buyer.address(),
        market::Terms::default(),
    )
    .await?;
    let deadline = bought.deadline.expect("pending");

    // Not before the deadline.
    let err = market::refund(&buyer.nft, m, token)
        .await
        .expect_err("not due");
    assert!(
        matches!(market_error(&err), Some(AgentMarketErrors::RefundNotDue(_))),
        "{err}"
    );

    // The seller lets the window pass: a late rotation is refused, the buyer is refunded.
    world.advance_time(301).await?;
    assert!(seller.nft.chain_time().await? > deadline);
    let err = complete(&world, &seller, &buyer, token)
        .await
        .expect_err("too late");
    assert!(
        matches!(market_error(&err), Some(AgentMarketErrors::SaleExpired(_))),
        "{err}"
    );
    let before = provider.get_balance(buyer.address()).await?;
    let tx = market::refund(&buyer.nft, m, token).await?;
    assert_eq!(
        provider.get_balance(buyer.address()).await? + fee(provider, tx).await? - before,
        price,
        "the whole escrow comes back"
    );
    assert_eq!(provider.get_balance(m).await?, U256::ZERO);
    assert_eq!(seller.nft.state(token).await?.owner, seller.address());
    // Seller keeps the agent and can still open it.
    world.open(&seller, token, scopes::RUN).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_sale_completes_with_an_oracle_attestation() -> anyhow::Result<()> {
    let world = World::start().await?;
    let creator = world.actor(1).await?;
    let seller = world.actor(2).await?;
    let buyer = world.actor(3).await?;
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let m = world.deployment.agent_market;
    let token = mint_for(&world, &creator, &seller, 3).await?.token_id;
    let provider = seller.nft.provider();
    let opts = SealOptions::default();
    let service = Arc::new(OracleService::new(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        opts,
    ));
    let server = service.serve("127.0.0.1:0".parse()?).await?;

    let price = U256::from(3u64) * U256::from(10u64).pow(U256::from(17u64));
    market::list(&seller.nft, m, token, price, 600).await?;
    let (_, bought) = market::buy(
        &buyer.nft,
        m,
        token,
        buyer.address(),
        market::Terms {
            price: Some(price),
            window: Some(600),
        },
    )
    .await?;
    let deadline = bought.deadline.expect("pending");

    // A rotation to anyone but the buyer is refused before anything is sent.
    let to_creator = request_rotation(
        &seller.nft,
        &server.base_url(),
        token,
        &seller.wallet,
        &seller.secret,
        creator.address(),
        deadline,
    )
    .await?;
    let err = market::complete_sale(
        &seller.nft,
        world.store.as_ref(),
        &seller.secret,
        m,
        &to_creator.offer,
        &to_creator.signed,
        &opts,
    )
    .await
    .expect_err("not the buyer");
    assert!(matches!(err, TransferError::Mismatch(_)), "{err}");

    let answer = request_rotation(
        &seller.nft,
        &server.base_url(),
        token,
        &seller.wallet,
        &seller.secret,
        buyer.address(),
        deadline,
    )
    .await?;
    let creator_before = provider.get_balance(creator.address()).await?;
    let sale = market::complete_sale(
        &seller.nft,
        world.store.as_ref(),
        &seller.secret,
        m,
        &answer.offer,
        &answer.signed,
        &opts,
    )
    .await?;
    let royalty = price * U256::from(ROYALTY_BPS) / U256::from(10_000u64);
    assert_eq!(sale.royalty, royalty);
    assert_eq!(
        provider.get_balance(creator.address()).await? - creator_before,
        royalty
    );
    assert_eq!(buyer.nft.state(token).await?.owner, buyer.address());
    world.open(&buyer, token, scopes::RUN).await?;
    assert!(world.open(&seller, token, scopes::RUN).await.is_err());
    server.shutdown().await?;
    Ok(())
}
