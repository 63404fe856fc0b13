//! `inft market`: sell an agent for ETH through the AgentMarket, royalty included.
//!
//! A private agent cannot simply be handed over against payment: its data must be re-encrypted
//! for the buyer. So a sale has three steps, and the last one is a transfer re-encrypted by a
//! registered oracle and submitted through the market, which pays the creator's ERC-2981
//! royalty and the seller in the same transaction:
//!
//! ```text
//! alice$ inft market list TOKEN --price 0.5 --window 1h --account alice
//! bob$   inft market buy TOKEN --price 0.5 --window 1h --account bob   # escrows 0.5 ETH
//! alice$ inft market complete TOKEN --oracle URL --account alice
//! ```
//!
//! The buyer takes no part after paying, and cannot open the new keys before the completion
//! that pays the seller (a receiver-signed transfer, as `inft transfer` makes, would show the
//! buyer keys it could keep without signing). If the seller never completes, the buyer takes
//! the escrow back after the window:
//! `inft market refund TOKEN`. `inft market show TOKEN` prints the listing. A payee the market
//! could not pay (a contract refusing the payment) collects with `inft market withdraw`.

use agent_runtime::token::{AgentNft, TokenError};
use agent_runtime::transfer::TransferError;
use agent_runtime::transfer::market::{self, Listing};
use agent_runtime::transfer::oracle::{RotateAnswer, request_sale_rotation};
use alloy::primitives::utils::{format_ether, parse_ether};
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use inft_contracts::ContractRevert;
use inft_contracts::bindings::AgentMarket::AgentMarketErrors;
use sealing::SealOptions;
use serde_json::json;

use super::Run;
use super::authorize::parse_duration;
use super::node::{Node, NodeOpts, WalletOpts};
use super::transfer::publish_key;
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// `inft market …`
#[derive(Debug, Args)]
pub(crate) struct MarketArgs {
    #[command(subcommand)]
    command: MarketCommand,
}

#[derive(Debug, Subcommand)]
enum MarketCommand {
    /// Seller: list a token you own at a price (approves the market on the NFT if needed).
    List(ListArgs),
    /// Buyer: escrow the listed price; the seller then has the listing's window to deliver.
    Buy(BuyArgs),
    /// Seller: re-encrypt the agent for the buyer and complete the sale (the royalty and your
    /// proceeds are paid in the same transaction).
    Complete(CompleteArgs),
    /// Seller: withdraw a listing (a buyer who escrowed is refunded at once).
    Cancel(TokenArgs),
    /// Buyer (or anyone): take back the escrow of a sale the seller did not complete in time.
    Refund(TokenArgs),
    /// Print a token's listing and pending sale.
    Show(ShowArgs),
    /// Payee: withdraw payments the market could not push to you (credited instead).
    Withdraw(WithdrawArgs),
}

impl Run for MarketArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            MarketCommand::List(a) => a.run(ctx).await,
            MarketCommand::Buy(a) => a.run(ctx).await,
            MarketCommand::Complete(a) => a.run(ctx).await,
            MarketCommand::Cancel(a) => a.cancel(ctx).await,
            MarketCommand::Refund(a) => a.refund(ctx).await,
            MarketCommand::Show(a) => a.run(ctx).await,
            MarketCommand::Withdraw(a) => a.run(ctx).await,
        }
    }
}

/// The deployment's AgentMarket.
/// What the `inft market` commands that send a transaction start from: the node (its chain
/// checked), the market's address, the wallet and the NFT acting through it.
struct Seat {
    node: Node,
    market: Address,
    wallet: PrivateKeySigner,
    nft: AgentNft,
}

impl Seat {
    async fn take(node: &NodeOpts, wallet: &WalletOpts) -> anyhow::Result<Self> {
        let node = node.load()?;
        node.check_chain().await?;
        let market = market_of(&node)?;
        let wallet = wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        Ok(Self {
            node,
            market,
            wallet,
            nft,
        })
    }
}

fn market_of(node: &Node) -> anyhow::Result<Address> {
    let market = node.deployment.agent_market;
    if market == Address::ZERO {
        bail!(
            "this deployment has no AgentMarket (written before it existed): run `inft dev up` again"
        );
    }
    Ok(market)
}

/// Parses an amount of ETH (`0.5`, `2`, `0.000000000000000001`).
fn parse_eth(s: &str) -> Result<U256, String> {
    parse_ether(s.trim()).map_err(|e| format!("invalid ETH amount {s:?}: {e}"))
}

/// Turns the market's typed reverts into sentences; other errors pass through.
fn explain(err: TransferError) -> anyhow::Error {
    use AgentMarketErrors as E;
    let TransferError::Token(TokenError::Revert(ContractRevert::Market(e))) = &err else {
        return err.into();
    };
    let text = match e {
        E::NotSeller(x) => format!("{} is not the seller of token {}", x.caller, Id(x.tokenId)),
        E::MarketNotApproved(_) => "the market is not approved to move the token".into(),
        E::ZeroPrice(_) => "the price must not be zero".into(),
        E::BadWindow(x) => format!(
            "a completion window of {}s is outside the market's bounds (5 minutes to 30 days)",
            x.window
        ),
        E::NotListed(x) => format!("token {} is not listed", Id(x.tokenId)),
        E::ListingVoid(x) => format!(
            "the listing of token {} is void: the token moved or the market lost its approval",
            Id(x.tokenId)
        ),
        E::SalePending(x) => format!(
            "{} has already bought token {}: the sale must complete, be cancelled or refunded first",
            x.buyer,
            Id(x.tokenId)
        ),
        E::NoPendingSale(x) => format!(
            "token {} has no pending sale (never bought, already completed or refunded)",
            Id(x.tokenId)
        ),
        E::WrongPayment(x) => format!(
            "the listed price is {} ETH, not {} ETH",
            format_ether(x.price),
            format_ether(x.value)
        ),
        E::WrongWindow(x) => format!(
            "the listing's completion window is {}s, not {}s",
            x.window, x.expected
        ),
        E::NothingToWithdraw(x) => format!("the market owes {} nothing", x.payee),
        E::SellerIsBuyer(_) => "the seller cannot buy its own listing".into(),
        E::SealingKeyMismatch(x) => format!(
            "the sealing key {} is not the one the buyer published ({})",
            x.committed, x.published
        ),
        E::SaleExpired(x) => format!(
            "the sale's deadline {} has passed (now {}): the buyer may take a refund",
            x.deadline, x.nowTs
        ),
        E::RefundNotDue(x) => format!(
            "the seller may still complete until {} (now {}); no refund before then",
            x.deadline, x.nowTs
        ),
        E::AccountChanged(x) => format!(
            "the agent's account {} changed since the buy (state {} then, {} now): the sale \
             cannot complete, and the buyer may take a refund at once",
            x.account, x.expected, x.actual
        ),
        E::AccountApprovalsOpen(x) => format!(
            "the agent's account {} has {} open approval(s): its owner must close them before \
             anyone can buy it",
            x.account, x.count
        ),
        other => format!("the market refused: {other:?}"),
    };
    anyhow::anyhow!(text)
}

fn listing_json(l: &Listing) -> serde_json::Value {
    json!({
        "token_id": l.token_id.to_string(),
        "seller": l.seller,
        "price_wei": l.price.to_string(),
        "window_s": l.window,
        "buyer": l.buyer,
        "deadline": l.deadline,
        "sealing_key": l.sealing_key,
        "live": l.live,
    })
}

/// `inft market list`
#[derive(Debug, Args)]
struct ListArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    /// The price in ETH (e.g. `0.5`).
    #[arg(long, value_parser = parse_eth)]
    price: U256,
    /// How long you have to deliver (complete) after someone buys (`30m`, `2h`, `7d`); the buyer
    /// can take the escrow back after it.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    window: u64,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for ListArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let Seat {
            node, market, nft, ..
        } = Seat::take(&self.node, &self.wallet).await?;
        let token_id = self.token.resolve(&node).await?;
        let window = u32::try_from(self.window).context("the window is too long")?;
        let tx = market::list(&nft, market, token_id, self.price, window)
            .await
            .map_err(explain)?;
        ctx.emit(
            format!(
                "token {} listed at {} ETH; after a buy you have {}s to complete\n  tx {tx}",
                Id(token_id),
                format_ether(self.price),
                window
            ),
            json!({
                "token_id": token_id.to_string(),
                "price_wei": self.price.to_string(),
                "window_s": window,
                "tx_hash": tx,
            }),
        );
        Ok(())
    }
}

/// `inft market buy`
#[derive(Debug, Args)]
struct BuyArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    /// The price in ETH you agree to pay; refused if the listing asks anything else. Without
    /// it, the listed price is paid.
    #[arg(long, value_parser = parse_eth)]
    price: Option<U256>,
    /// The completion window you agree to wait at most (`1h`, `2d`); refused if the listing
    /// gives the seller anything else. Without it, the listed window.
    #[arg(long, value_parser = parse_duration)]
    window: Option<u64>,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for BuyArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let market = market_of(&node)?;
        let wallet = self.wallet.signer(&node.home)?;
        // The seller seals the agent to the key published on chain: publish it (no transaction
        // if it already is), and the market records it with the escrow.
        publish_key(&node, &wallet).await?;
        let nft = node.nft(&wallet)?;
        let terms = market::Terms {
            price: self.price,
            window: self
                .window
                .map(u32::try_from)
                .transpose()
                .context("the window is too long")?,
        };
        let (tx, bought) = market::buy(&nft, market, token_id, wallet.address(), terms)
            .await
            .map_err(explain)?;
        let deadline = bought.deadline.unwrap_or_default();
        ctx.emit(
            format!(
                "escrowed {} ETH for token {}; the seller must complete by {deadline} (unix), else `inft market refund {}`\n  tx {tx}",
                format_ether(bought.price),
                Id(token_id),
                Id(token_id)
            ),
            json!({ "tx_hash": tx, "listing": listing_json(&bought) }),
        );
        Ok(())
    }
}

/// `inft market complete`
#[derive(Debug, Args)]
struct CompleteArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    /// Base URL of a registered re-encryption oracle (`inft oracle serve`): it re-encrypts the
    /// agent for the key the buyer committed and attests the rotation for this sale.
    #[arg(long, value_name = "URL")]
    oracle: String,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for CompleteArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let Seat {
            node,
            market,
            wallet,
            nft,
        } = Seat::take(&self.node, &self.wallet).await?;
        let token_id = self.token.resolve(&node).await?;
        let listing = market::listing(&nft, market, token_id)
            .await?
            .with_context(|| format!("token {} is not listed", Id(token_id)))?;
        let (Some(_), Some(deadline)) = (listing.buyer, listing.deadline) else {
            bail!(
                "nobody has bought token {} yet (`inft market show {}`)",
                Id(token_id),
                Id(token_id)
            );
        };
        if listing.seller != wallet.address() {
            bail!(
                "{} is not the seller of token {} ({} is)",
                wallet.address(),
                Id(token_id),
                listing.seller
            );
        }
        let now = node.chain_time().await?;
        if now > deadline {
            bail!(
                "the sale's deadline {deadline} has passed (now {now}); the buyer may take a refund"
            );
        }
        let store = node.store()?;
        let secret = node.sealing_secret(&wallet).await?;
        // The proof is valid until the sale's deadline: after it the market refuses anyway.
        let spinner = ctx.spinner("asking the oracle to re-encrypt the agent for the buyer");
        let RotateAnswer { offer, signed } = request_sale_rotation(
            &nft,
            &self.oracle,
            token_id,
            &wallet,
            &secret,
            market,
            deadline,
        )
        .await
        .map_err(explain)?;
        spinner.finish_and_clear();
        let spinner = ctx.spinner("completing the sale");
        let sale = market::complete_sale(
            &nft,
            store.as_ref(),
            &secret,
            market,
            &offer,
            &signed,
            &SealOptions::default(),
        )
        .await
        .map_err(explain)?;
        spinner.finish_and_clear();
        let tx = sale.completed.transfer;
        ctx.emit(
            format!(
                "token {} sold to {} for {} ETH: royalty {} ETH to {}, {} ETH to you (new agent {}, gas {})\n  tx {}",
                Id(token_id),
                sale.buyer,
                format_ether(sale.price),
                format_ether(sale.royalty),
                sale.royalty_receiver,
                format_ether(sale.price - sale.royalty),
                signed.new_agent,
                tx.gas_used,
                tx.tx_hash
            ),
            json!({
                "token_id": token_id.to_string(),
                "buyer": sale.buyer,
                "seller": sale.seller,
                "price_wei": sale.price.to_string(),
                "royalty_receiver": sale.royalty_receiver,
                "royalty_wei": sale.royalty.to_string(),
                "mode": signed.mode,
                "new_agent": signed.new_agent,
                "tx_hash": tx.tx_hash,
                "gas_used": tx.gas_used,
                "swept_wei": sale.completed.swept.map(|(wei, _)| wei.to_string()),
            }),
        );
        Ok(())
    }
}

/// `inft market cancel` / `inft market refund`
#[derive(Debug, Args)]
struct TokenArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl TokenArgs {
    async fn cancel(self, ctx: &Context) -> anyhow::Result<()> {
        let Seat {
            node, market, nft, ..
        } = Seat::take(&self.node, &self.wallet).await?;
        let token_id = self.token.resolve(&node).await?;
        let before = market::listing(&nft, market, token_id).await?;
        let tx = market::cancel(&nft, market, token_id)
            .await
            .map_err(explain)?;
        let refunded = before.and_then(|l| l.buyer.map(|b| (b, l.price)));
        let note = match refunded {
            Some((buyer, price)) => format!("; {} ETH refunded to {buyer}", format_ether(price)),
            None => String::new(),
        };
        ctx.emit(
            format!(
                "listing of token {} cancelled{note}\n  tx {tx}",
                Id(token_id)
            ),
            json!({
                "token_id": token_id.to_string(),
                "tx_hash": tx,
                "refunded_to": refunded.map(|(b, _)| b),
                "refunded_wei": refunded.map(|(_, p)| p.to_string()),
            }),
        );
        Ok(())
    }

    async fn refund(self, ctx: &Context) -> anyhow::Result<()> {
        let Seat {
            node, market, nft, ..
        } = Seat::take(&self.node, &self.wallet).await?;
        let token_id = self.token.resolve(&node).await?;
        let before = market::listing(&nft, market, token_id)
            .await?
            .with_context(|| format!("token {} is not listed", Id(token_id)))?;
        let tx = market::refund(&nft, market, token_id)
            .await
            .map_err(explain)?;
        let buyer = before.buyer.unwrap_or_default();
        ctx.emit(
            format!(
                "{} ETH refunded to {buyer} for token {}\n  tx {tx}",
                format_ether(before.price),
                Id(token_id)
            ),
            json!({
                "token_id": token_id.to_string(),
                "buyer": buyer,
                "refunded_wei": before.price.to_string(),
                "tx_hash": tx,
            }),
        );
        Ok(())
    }
}

/// `inft market show`
#[derive(Debug, Args)]
struct ShowArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    #[command(flatten)]
    node: NodeOpts,
}

impl Run for ShowArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let market = market_of(&node)?;
        let nft = agent_runtime::token::AgentNft::new(node.reader()?, &node.deployment);
        let Some(l) = market::listing(&nft, market, token_id).await? else {
            ctx.emit(
                format!("token {} is not listed", Id(token_id)),
                json!({ "token_id": token_id.to_string(), "listing": null }),
            );
            return Ok(());
        };
        let status = match (l.buyer, l.live) {
            (None, false) => "void (the token moved or the market lost its approval)".to_string(),
            (Some(b), false) => format!(
                "void (the token moved, the market lost its approval, or the agent account \
                 changed since the buy): {b} may take a refund now (`inft market refund {}`)",
                Id(token_id)
            ),
            (None, true) => "for sale".to_string(),
            (Some(b), true) => format!(
                "bought by {b}; the seller must complete by {} (unix)",
                l.deadline.unwrap_or_default()
            ),
        };
        ctx.emit(
            format!(
                "token {}: {} ETH, seller {}, window {}s\n  {status}",
                Id(token_id),
                format_ether(l.price),
                l.seller,
                l.window
            ),
            json!({ "listing": listing_json(&l) }),
        );
        Ok(())
    }
}

/// `inft market withdraw`
#[derive(Debug, Args)]
struct WithdrawArgs {
    /// Where to send the money: an address or a dev account name [default: your own address].
    #[arg(long, value_name = "ACCOUNT")]
    to: Option<String>,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for WithdrawArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let Seat {
            node,
            market,
            wallet,
            nft,
        } = Seat::take(&self.node, &self.wallet).await?;
        let to = match &self.to {
            Some(to) => node.resolve_account(to)?,
            None => wallet.address(),
        };
        let amount = market::owed(&nft, market, wallet.address()).await?;
        let tx = market::withdraw(&nft, market, to).await.map_err(explain)?;
        ctx.emit(
            format!("withdrew {} ETH to {to}\n  tx {tx}", format_ether(amount)),
            json!({ "to": to, "amount_wei": amount.to_string(), "tx_hash": tx }),
        );
        Ok(())
    }
}
