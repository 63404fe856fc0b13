//! Selling a private agent through the AgentMarket on anvil — list → buy (escrow) → a registered
//! oracle attests the rotation to the buyer and the seller's completion pays the creator exactly
//! the ERC-2981 royalty and the seller the rest, to the wei; the buyer unseals the agent, the
//! seller is locked out; a second completion is refused; an abandoned sale refunds the buyer
//! after its deadline; a rotation to anyone but the buyer is refused. Fair exchange: a buyer
//! that changes its published key after paying still gets the agent (sealed to the key it
//! committed), and a receiver's acceptance — which the buyer would sign after seeing keys it
//! could keep — cannot complete a sale, so the buyer's cooperation is never needed.

use std::sync::Arc;

use agent_runtime::blobstore::gateway::GatewayHandle;
use agent_runtime::lifecycle::{MintRequest, MintedAgent, mint_agent};
use agent_runtime::pipeline::open_keys;
use agent_runtime::token::{Shares, TokenError};
use agent_runtime::transfer::market::{self, Sale};
use agent_runtime::transfer::oracle::{
    OracleService, RotateAnswer, request_rotation, request_sale_rotation,
};
use agent_runtime::transfer::{Offer, SignedRotation, TransferError, accept_offer, make_offer};
use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use inft_contracts::bindings::AgentAccount;
use inft_contracts::bindings::AgentMarket::{self, AgentMarketErrors};
use inft_contracts::bindings::AgentNFT::AgentNFTErrors;
use inft_contracts::bindings::market::IAgentNFT;
use inft_contracts::{ContractRevert, revert_of, scopes};
use sealing::{SealOptions, SealingSecret};

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

/// A fresh chain with a sale's cast: a creator (5 % royalty) who minted a token and handed it to
/// the seller, a buyer, and a running oracle.
struct Stage {
    world: World,
    creator: Actor,
    seller: Actor,
    buyer: Actor,
    token: U256,
    oracle: GatewayHandle,
}

impl Stage {
    async fn set(salt: u64) -> anyhow::Result<Self> {
        let world = World::start().await?;
        let creator = world.actor(1).await?;
        let seller = world.actor(2).await?;
        let buyer = world.actor(3).await?;
        let token = mint_for(&world, &creator, &seller, salt).await?.token_id;
        let oracle = start_oracle(&world).await?;
        Ok(Self {
            world,
            creator,
            seller,
            buyer,
            token,
            oracle,
        })
    }
}

/// A registered re-encryption oracle for the world's NFT: sales complete only through one.
async fn start_oracle(world: &World) -> anyhow::Result<GatewayHandle> {
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let service = Arc::new(OracleService::new(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        SealOptions::default(),
    ));
    Ok(service.serve("127.0.0.1:0".parse()?).await?)
}

/// The oracle's attested rotation for the pending sale of `token`, valid until the sale's
/// deadline.
async fn attest(
    world: &World,
    seller: &Actor,
    oracle: &GatewayHandle,
    token: U256,
) -> Result<RotateAnswer, TransferError> {
    let m = world.deployment.agent_market;
    let deadline = market::pending_sale(&seller.nft, m, token)
        .await?
        .listing
        .deadline
        .unwrap_or_default();
    request_sale_rotation(
        &seller.nft,
        &oracle.base_url(),
        token,
        &seller.wallet,
        &seller.secret,
        m,
        deadline,
    )
    .await
}

/// The seller submits `offer` with its proof `signed` through the market, after the runtime's
/// own checks.
async fn submit(
    world: &World,
    seller: &Actor,
    offer: &Offer,
    signed: &SignedRotation,
) -> Result<Sale, TransferError> {
    market::complete_sale(
        &seller.nft,
        world.store.as_ref(),
        &seller.secret,
        world.deployment.agent_market,
        offer,
        signed,
        &SealOptions::default(),
    )
    .await
}

/// How the market's `complete` refuses `offer` with `signed` when it is sent straight to the
/// chain, past the runtime's checks (simulated; an error if the chain accepts it).
async fn chain_refusal(
    world: &World,
    seller: &Actor,
    offer: &Offer,
    signed: &SignedRotation,
) -> anyhow::Result<Option<ContractRevert>> {
    let rotation = offer.rotation(&signed.agent_key, signed.new_agent);
    let accepted = AgentMarket::new(world.deployment.agent_market, seller.nft.provider())
        .complete(
            offer.token_id,
            rotation.data_entries().into(),
            signed.new_agent,
            rotation.proof(signed.mode, signed.signature.clone()).into(),
        )
        .call()
        .await;
    match accepted {
        Ok(_) => anyhow::bail!("the market accepted the completion"),
        Err(err) => Ok(revert_of(&err)),
    }
}

/// `buyer` escrows the listed price of `token`.
async fn buy(world: &World, buyer: &Actor, token: U256) -> anyhow::Result<market::Listing> {
    let m = world.deployment.agent_market;
    let (_, bought) = market::buy(
        &buyer.nft,
        m,
        token,
        buyer.address(),
        market::Terms::default(),
    )
    .await?;
    Ok(bought)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_sale_pays_creator_royalty_and_seller_and_hands_the_agent_to_the_buyer()
-> anyhow::Result<()> {
    let Stage {
        world,
        creator,
        seller,
        buyer,
        token,
        oracle,
    } = Stage::set(1).await?;
    let m = world.deployment.agent_market;
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
    let answer = attest(&world, &seller, &oracle, token).await?;
    let sale = submit(&world, &seller, &answer.offer, &answer.signed).await?;
    let royalty = price * U256::from(ROYALTY_BPS) / U256::from(10_000u64);
    println!(
        "market complete (3 entries, oracle-attested): gas {}",
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
    oracle.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_market_sale_refunds_the_buyer_after_the_deadline() -> anyhow::Result<()> {
    let Stage {
        world,
        creator: _,
        seller,
        buyer,
        token,
        oracle,
    } = Stage::set(2).await?;
    let m = world.deployment.agent_market;
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

    // The seller has the rotation but lets the window pass: a late completion is refused, and
    // the oracle attests no more; the buyer is refunded.
    let answer = attest(&world, &seller, &oracle, token).await?;
    world.advance_time(301).await?;
    assert!(seller.nft.chain_time().await? > deadline);
    let err = attest(&world, &seller, &oracle, token)
        .await
        .expect_err("the oracle attests no sale past its deadline");
    assert!(err.to_string().contains("deadline"), "{err}");
    let err = submit(&world, &seller, &answer.offer, &answer.signed)
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
    oracle.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_cannot_keep_both_the_escrow_and_keys_it_could_open() -> anyhow::Result<()> {
    let Stage {
        world,
        creator,
        seller,
        buyer,
        token,
        oracle,
    } = Stage::set(3).await?;
    let m = world.deployment.agent_market;
    let provider = seller.nft.provider();
    let opts = SealOptions::default();
    let price = U256::from(3u64) * U256::from(10u64).pow(U256::from(17u64));
    market::list(&seller.nft, m, token, price, 600).await?;
    let deadline = buy(&world, &buyer, token).await?.deadline.expect("pending");

    // A rotation to anyone but the buyer is refused before anything is sent.
    let to_creator = request_rotation(
        &seller.nft,
        &oracle.base_url(),
        token,
        &seller.wallet,
        &seller.secret,
        creator.address(),
        deadline,
    )
    .await?;
    let err = submit(&world, &seller, &to_creator.offer, &to_creator.signed)
        .await
        .expect_err("not the buyer");
    assert!(matches!(err, TransferError::Mismatch(_)), "{err}");

    // Receiver mode would show the buyer an offer it can open before it signs: it could keep
    // the keys, withhold its acceptance and take a refund. Even signed, an acceptance does not
    // complete a sale: the runtime refuses it, and so does the chain.
    let now = seller.nft.chain_time().await?;
    let offer = make_offer(
        &seller.nft,
        world.store.as_ref(),
        token,
        &seller.secret,
        buyer.address(),
        now + 600,
        &opts,
    )
    .await?;
    let accepted = accept_offer(
        &buyer.nft,
        world.store.as_ref(),
        &offer,
        &buyer.wallet,
        &buyer.secret,
        now,
        &opts,
    )
    .await?;
    let err = submit(&world, &seller, &offer, &accepted)
        .await
        .expect_err("an acceptance does not complete a sale");
    assert!(matches!(err, TransferError::Mismatch(_)), "{err}");
    let refusal = chain_refusal(&world, &seller, &offer, &accepted).await?;
    assert!(
        matches!(
            refusal,
            Some(ContractRevert::AgentNft(
                AgentNFTErrors::SaleNeedsAttestation(_)
            ))
        ),
        "{refusal:?}"
    );

    // The oracle's completion needs nothing from the buyer, and the buyer cannot make it fail:
    // a new published key after the attestation changes nothing, the agent is sealed to the
    // key committed at the buy.
    let answer = attest(&world, &seller, &oracle, token).await?;
    buyer
        .nft
        .publish_sealing_key(buyer.address(), &SealingSecret::generate().public_key())
        .await?;
    let creator_before = provider.get_balance(creator.address()).await?;
    let sale = submit(&world, &seller, &answer.offer, &answer.signed).await?;
    let royalty = price * U256::from(ROYALTY_BPS) / U256::from(10_000u64);
    assert_eq!(sale.royalty, royalty);
    assert_eq!(
        provider.get_balance(creator.address()).await? - creator_before,
        royalty
    );
    assert_eq!(buyer.nft.state(token).await?.owner, buyer.address());
    world.open(&buyer, token, scopes::RUN).await?;
    assert!(world.open(&seller, token, scopes::RUN).await.is_err());
    let err = market::refund(&buyer.nft, m, token)
        .await
        .expect_err("nothing left to refund");
    assert!(
        matches!(
            market_error(&err),
            Some(AgentMarketErrors::NoPendingSale(_))
        ),
        "{err}"
    );
    oracle.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_who_empties_the_agent_account_after_the_buy_is_not_paid_and_the_buyer_is_refunded()
-> anyhow::Result<()> {
    let Stage {
        world,
        creator: _,
        seller,
        buyer,
        token,
        oracle,
    } = Stage::set(4).await?;
    let m = world.deployment.agent_market;
    let provider = seller.nft.provider();

    // The agent's account holds 2 ETH: part of what the buyer pays for.
    let account = world.create_account(token).await?;
    let funds = U256::from(2u64) * U256::from(10u64).pow(U256::from(18u64));
    let fund = alloy::rpc::types::TransactionRequest::default()
        .to(account)
        .value(funds);
    provider.send_transaction(fund).await?.get_receipt().await?;

    let price = U256::from(10u64).pow(U256::from(18u64));
    market::list(&seller.nft, m, token, price, 600).await?;
    buy(&world, &buyer, token).await?;
    // The seller gets its attestation, then takes the funds out through the account.
    let answer = attest(&world, &seller, &oracle, token).await?;
    AgentAccount::new(account, provider)
        .execute(seller.address(), funds, Bytes::new(), 0)
        .send()
        .await?
        .get_receipt()
        .await?;
    assert_eq!(provider.get_balance(account).await?, U256::ZERO);

    // The runtime refuses to complete, the oracle attests nothing more, and so does the market.
    let err = submit(&world, &seller, &answer.offer, &answer.signed)
        .await
        .expect_err("the account changed");
    assert!(err.to_string().contains("account changed"), "{err}");
    let err = attest(&world, &seller, &oracle, token)
        .await
        .expect_err("no attestation for a void sale");
    assert!(err.to_string().contains("account changed"), "{err}");
    let refusal = chain_refusal(&world, &seller, &answer.offer, &answer.signed).await?;
    assert!(
        matches!(
            refusal,
            Some(ContractRevert::Market(AgentMarketErrors::AccountChanged(_)))
        ),
        "{refusal:?}"
    );

    // The buyer need not wait for the deadline: the whole escrow comes back at once.
    let before = buyer.nft.provider().get_balance(buyer.address()).await?;
    let tx = market::refund(&buyer.nft, m, token).await?;
    assert_eq!(
        provider.get_balance(buyer.address()).await? + fee(provider, tx).await? - before,
        price
    );
    assert_eq!(seller.nft.state(token).await?.owner, seller.address());
    oracle.shutdown().await?;
    Ok(())
}
