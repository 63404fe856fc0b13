//! Selling an agent through the `AgentMarket` contract: a transfer settled against a payment.
//!
//! The sale is a transfer (see the parent module) whose submission goes through the market:
//!
//! 1. the seller [`list`]s the token at a price (approving the market on the NFT if needed);
//! 2. a buyer [`buy`]s: escrows exactly the price and commits the sealing key it published;
//! 3. the seller has a re-encryption oracle attest the rotation to the buyer
//!    ([`super::oracle::request_rotation`] with the market): sealed to the key the buyer
//!    committed, bound to the market and the price; [`complete_sale`] submits it through the
//!    market, which moves the token and pays the ERC-2981 royalty and the seller in that
//!    transaction. A receiver's acceptance is refused for a sale: the buyer would sign it after
//!    seeing keys it could open, and could keep them without signing (see
//!    inft-contracts/README.md, "Selling an agent");
//! 4. a sale that does not complete by its deadline is [`refund`]ed to the buyer; the seller can
//!    [`cancel`] (refunding a pending buyer at once);
//! 5. a payee the market could not pay (a contract that refused the payment) [`withdraw`]s it.
//!
//! Every transaction is simulated first, so a refused step costs no gas and surfaces as the
//! market's (or the NFT's) typed revert.

use std::marker::PhantomData;

use alloy::contract::CallBuilder;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolCall;
use inft_contracts::bindings::AgentNFT;
use inft_contracts::bindings::market::AgentMarket;
use inft_contracts::{ProofMode, Rotation};
use sealing::{SealOptions, SealingSecret};
use serde::Serialize;

use super::{
    Completed, Offer, SaleTerms, SignedRotation, TransferError, Transferred, simulate_and_send,
    sweep_agent_wallet,
};
use crate::blobstore::BlobStore;
use crate::pipeline::unseal_agent_key;
use crate::token::{AgentNft, TokenError};

/// A token's listing as the market holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// The token.
    pub token_id: U256,
    /// Who listed it.
    pub seller: Address,
    /// The token's epoch when listed.
    pub epoch: u64,
    /// Asked (and once bought, escrowed) wei.
    pub price: U256,
    /// Seconds the seller has to complete after a buy.
    pub window: u32,
    /// The buyer, once someone has escrowed.
    pub buyer: Option<Address>,
    /// Last timestamp at which the pending sale may complete.
    pub deadline: Option<u64>,
    /// The sealing key the buyer committed to.
    pub sealing_key: Option<B256>,
    /// Whether the listing stands (seller still owns the token in the listed epoch, market approved).
    pub live: bool,
}

/// A confirmed sale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sale {
    /// The `complete` transaction (the transfer) and the old agent wallet's sweep.
    pub completed: Completed,
    /// The price paid.
    pub price: U256,
    /// Who received the royalty.
    pub royalty_receiver: Address,
    /// The royalty.
    pub royalty: U256,
    /// The seller.
    pub seller: Address,
    /// The buyer.
    pub buyer: Address,
}

fn contract(nft: &AgentNft, market: Address) -> AgentMarket::AgentMarketInstance<&DynProvider> {
    AgentMarket::new(market, nft.provider())
}

/// Simulates `call`, then sends it and waits for a successful receipt.
async fn send<P: Provider, C: SolCall>(
    what: &'static str,
    call: CallBuilder<P, PhantomData<C>>,
) -> Result<TransactionReceipt, TransferError> {
    let receipt = simulate_and_send(call).await?;
    if !receipt.status() {
        return Err(TransferError::Token(TokenError::Rpc(format!(
            "{what} transaction {} reverted",
            receipt.transaction_hash
        ))));
    }
    Ok(receipt)
}

/// The listing of `token_id` on `market`, `None` if it is not listed.
pub async fn listing(
    nft: &AgentNft,
    market: Address,
    token_id: U256,
) -> Result<Option<Listing>, TransferError> {
    let m = contract(nft, market);
    let l = m
        .listingOf(token_id)
        .call()
        .await
        .map_err(TokenError::from)?;
    if l.seller == Address::ZERO {
        return Ok(None);
    }
    let live = m.isLive(token_id).call().await.map_err(TokenError::from)?;
    let pending = l.buyer != Address::ZERO;
    Ok(Some(Listing {
        token_id,
        seller: l.seller,
        epoch: l.epoch,
        price: l.price,
        window: l.window,
        buyer: pending.then_some(l.buyer),
        deadline: pending.then_some(l.deadline),
        sealing_key: pending.then_some(l.sealingKey),
        live,
    }))
}

/// Seller: lists `token_id` at `price` wei with a completion `window` (seconds), first
/// approving the market on the NFT for the token if it may not move it yet. Returns the
/// listing transaction.
pub async fn list(
    nft: &AgentNft,
    market: Address,
    token_id: U256,
    price: U256,
    window: u32,
) -> Result<B256, TransferError> {
    let token = AgentNFT::new(nft.address(), nft.provider());
    let owner = token
        .ownerOf(token_id)
        .call()
        .await
        .map_err(TokenError::from)?;
    let approved = token
        .getApproved(token_id)
        .call()
        .await
        .map_err(TokenError::from)?
        == market
        || token
            .isApprovedForAll(owner, market)
            .call()
            .await
            .map_err(TokenError::from)?;
    if !approved {
        send("approve", token.approve(market, token_id)).await?;
    }
    let receipt = send("list", contract(nft, market).list(token_id, price, window)).await?;
    tracing::info!(token = %token_id, %price, window, "agent listed");
    Ok(receipt.transaction_hash)
}

/// The terms a buyer agrees to; `None` takes what the listing says when it is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Terms {
    /// The price in wei.
    pub price: Option<U256>,
    /// The completion window in seconds.
    pub window: Option<u32>,
}

/// Buyer: escrows the listed price for `token_id` and commits the sealing key the signer
/// published (publish it first: `publish_sealing_key`). Each of `expected`'s terms, if given,
/// must be the listing's; the contract itself refuses a buy whose value or window is not the
/// listing's at the time it lands. Returns the transaction and the listing as bought.
pub async fn buy(
    nft: &AgentNft,
    market: Address,
    token_id: U256,
    buyer: Address,
    expected: Terms,
) -> Result<(B256, Listing), TransferError> {
    let current = listing(nft, market, token_id)
        .await?
        .ok_or(TransferError::Mismatch("the token is not listed"))?;
    if expected.price.is_some_and(|p| p != current.price) {
        return Err(TransferError::Mismatch(
            "the listed price is not the price you expect",
        ));
    }
    if expected.window.is_some_and(|w| w != current.window) {
        return Err(TransferError::Mismatch(
            "the listing's completion window is not the one you expect",
        ));
    }
    let key = nft
        .sealing_key_of(buyer)
        .await?
        .ok_or(TransferError::NoSealingKey(buyer))?;
    let receipt = send(
        "buy",
        contract(nft, market)
            .buy(token_id, B256::from(*key.as_bytes()), current.window)
            .value(current.price),
    )
    .await?;
    let bought = listing(nft, market, token_id)
        .await?
        .ok_or(TransferError::Mismatch("the listing vanished"))?;
    tracing::info!(token = %token_id, price = %current.price, "agent bought; waiting for the seller's rotation");
    Ok((receipt.transaction_hash, bought))
}

/// Seller: withdraws the listing (a pending buyer is refunded in the same transaction).
pub async fn cancel(
    nft: &AgentNft,
    market: Address,
    token_id: U256,
) -> Result<B256, TransferError> {
    Ok(send("cancel", contract(nft, market).cancel(token_id))
        .await?
        .transaction_hash)
}

/// Anyone (usually the buyer): refunds the escrow of a sale past its deadline, or of a void
/// listing.
pub async fn refund(
    nft: &AgentNft,
    market: Address,
    token_id: U256,
) -> Result<B256, TransferError> {
    Ok(send("refund", contract(nft, market).refund(token_id))
        .await?
        .transaction_hash)
}

/// Payments the market could not push to `payee` (a contract that refused them), credited for
/// [`withdraw`].
pub async fn owed(nft: &AgentNft, market: Address, payee: Address) -> Result<U256, TransferError> {
    Ok(contract(nft, market)
        .owed(payee)
        .call()
        .await
        .map_err(TokenError::from)?)
}

/// Payee: withdraws its credited payments to `to`.
pub async fn withdraw(nft: &AgentNft, market: Address, to: Address) -> Result<B256, TransferError> {
    Ok(send("withdraw", contract(nft, market).withdraw(to))
        .await?
        .transaction_hash)
}

/// A sale waiting for its rotation: who bought, the key it committed, and the terms a proof
/// must bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSale {
    /// The listing.
    pub listing: Listing,
    /// The buyer.
    pub buyer: Address,
    /// The sealing key the buyer committed at the buy: the rotation is sealed to it.
    pub sealing_key: B256,
    /// The market and price the rotation's proof binds.
    pub terms: SaleTerms,
}

/// The pending sale of `token_id` on `market`: listed, bought, and still live.
pub async fn pending_sale(
    nft: &AgentNft,
    market: Address,
    token_id: U256,
) -> Result<PendingSale, TransferError> {
    let l = listing(nft, market, token_id)
        .await?
        .ok_or(TransferError::Mismatch(
            "the token is not listed on that market",
        ))?;
    let (Some(buyer), Some(sealing_key)) = (l.buyer, l.sealing_key) else {
        return Err(TransferError::Mismatch("nobody has bought the token yet"));
    };
    if !l.live {
        return Err(TransferError::Mismatch(
            "the listing is void (the token moved, the market lost its approval, or the agent \
             account changed since the buy)",
        ));
    }
    let terms = SaleTerms {
        market,
        price: l.price,
    };
    Ok(PendingSale {
        listing: l,
        buyer,
        sealing_key,
        terms,
    })
}

/// Checks that `offer` is the rotation for the pending sale of its token: to the buyer, sealed
/// to the key the buyer committed, bound to this market and the listed price.
pub async fn check_offer_for_sale(
    nft: &AgentNft,
    market: Address,
    offer: &Offer,
) -> Result<PendingSale, TransferError> {
    let sale = pending_sale(nft, market, offer.token_id).await?;
    if offer.to != sale.buyer {
        return Err(TransferError::Mismatch("the rotation is not to the buyer"));
    }
    if offer.sealing_key != sale.sealing_key {
        return Err(TransferError::Mismatch(
            "the rotation is not sealed to the key the buyer committed",
        ));
    }
    if offer.sale != Some(sale.terms) {
        return Err(TransferError::Mismatch(
            "the rotation is not bound to this market and the listed price",
        ));
    }
    Ok(sale)
}

/// Seller, last step: like `complete_transfer`, but the oracle-attested rotation is submitted
/// through the market's `complete`, which moves the token to the buyer and pays the royalty and
/// the seller in the same transaction. The old agent key is unsealed first (the seller needs it
/// for the sweep of the old agent wallet after the sale).
pub async fn complete_sale(
    nft: &AgentNft,
    store: &dyn BlobStore,
    secret: &SealingSecret,
    market: Address,
    offer: &Offer,
    signed: &SignedRotation,
    opts: &SealOptions,
) -> Result<Sale, TransferError> {
    if signed.mode != ProofMode::Oracle {
        return Err(TransferError::Mismatch(
            "a sale completes only with an oracle's attestation",
        ));
    }
    let sale = check_offer_for_sale(nft, market, offer).await?;
    let token = nft.token_ref(offer.token_id);
    let entries = nft.entries_for(offer.token_id, offer.from).await?;
    let old_agent = unseal_agent_key(store, &entries, secret, &token, opts).await?;

    let rotation: Rotation = offer.rotation(&signed.agent_key, signed.new_agent);
    let m = contract(nft, market);
    let call = m.complete(
        offer.token_id,
        rotation.data_entries().into(),
        signed.new_agent,
        rotation.proof(signed.mode, signed.signature.clone()).into(),
    );
    let receipt = simulate_and_send(call).await?;
    if !receipt.status() {
        return Err(TransferError::Reverted(receipt.transaction_hash));
    }
    let sold = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<AgentMarket::Sold>().ok())
        .ok_or_else(|| TokenError::Rpc("the complete transaction emitted no Sold event".into()))?
        .inner
        .data;
    tracing::info!(token = %offer.token_id, buyer = %offer.to, price = %sale.terms.price, royalty = %sold.royalty, tx = %receipt.transaction_hash, "agent sold");
    let transfer = Transferred {
        tx_hash: receipt.transaction_hash,
        gas_used: receipt.gas_used,
    };
    let swept = match sweep_agent_wallet(nft.provider(), &old_agent, signed.new_agent).await {
        Ok(swept) => swept,
        Err(e) => {
            tracing::warn!(error = %e, old_agent = %old_agent.address(), "the sale is done, but sweeping the old agent wallet failed");
            None
        }
    };
    Ok(Sale {
        completed: Completed { transfer, swept },
        price: sold.price,
        royalty_receiver: sold.royaltyReceiver,
        royalty: sold.royalty,
        seller: sold.seller,
        buyer: sold.buyer,
    })
}
