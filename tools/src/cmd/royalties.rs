//! `inft royalties`: show a token's earnings split and what each party is owed, settle earnings
//! into the splitter, and claim what you are owed.

use agent_runtime::royalties::{self, EarningsSplit, Payer, credits, owed, split_of};
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use inft_contracts::bindings::AgentAccountFactory;
use serde_json::json;

use super::Run;
use super::node::{NodeOpts, WalletOpts};
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// `inft royalties`
#[derive(Debug, Args)]
pub(crate) struct RoyaltiesArgs {
    #[command(subcommand)]
    command: RoyaltiesCommand,
}

#[derive(Debug, Subcommand)]
enum RoyaltiesCommand {
    /// A token's split (creator, contributors, holder, ERC-2981 royalty) and what each party
    /// can claim now. Needs no wallet.
    Show(ShowArgs),
    /// Deposit an agent's earnings: the splitter credits creator, contributors and holder.
    Settle(SettleArgs),
    /// Withdraw everything your wallet is owed.
    Claim(ClaimArgs),
}

/// `inft royalties show`
#[derive(Debug, Args)]
struct ShowArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    #[command(flatten)]
    node: NodeOpts,
    /// ERC-20 earnings token [default: ETH].
    #[arg(long, value_name = "ADDRESS")]
    erc20: Option<Address>,
    /// Also show the ERC-2981 royalty on a sale at this price (wei).
    #[arg(long, value_name = "WEI")]
    sale_price: Option<U256>,
}

/// `inft royalties settle`
#[derive(Debug, Args)]
struct SettleArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    /// Amount of earnings to deposit, in wei (or the ERC-20's base units).
    #[arg(long, value_name = "WEI", required_unless_present = "realized")]
    amount: Option<U256>,
    /// Deposit the agent's realized earnings not settled yet: its latest audited PnL (in the
    /// dev market's quote token unless --erc20 says otherwise) minus earlier deposits. The PnL
    /// is net of money moved in or out of the agent's account (top-ups, withdrawals, earlier
    /// settlements paid from it), so each settlement pays on the profit made since the last.
    #[arg(long, conflicts_with = "amount")]
    realized: bool,
    /// ERC-20 earnings token [default: ETH].
    #[arg(long, value_name = "ADDRESS")]
    erc20: Option<Address>,
    /// Pay from the token's agent account (the token-bound wallet a trading agent trades
    /// from) instead of your wallet, so an agent's earnings leave the account that earned
    /// them. Needs the owner's wallet.
    #[arg(long)]
    from_agent_account: bool,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

/// `inft royalties claim`
#[derive(Debug, Args)]
struct ClaimArgs {
    /// ERC-20 to claim [default: ETH].
    #[arg(long, value_name = "ADDRESS")]
    erc20: Option<Address>,
    /// Where to send it [default: your wallet].
    #[arg(long, value_name = "ADDRESS")]
    to: Option<Address>,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for RoyaltiesArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            RoyaltiesCommand::Show(a) => a.run(ctx).await,
            RoyaltiesCommand::Settle(a) => a.run(ctx).await,
            RoyaltiesCommand::Claim(a) => a.run(ctx).await,
        }
    }
}

fn parties(split: &EarningsSplit) -> Vec<(&'static str, Address, u16)> {
    let mut v = vec![("creator", split.creator, split.creator_bps)];
    v.extend(
        split
            .contributors
            .iter()
            .map(|&(a, bps)| ("contributor", a, bps)),
    );
    let taken: u16 = v.iter().map(|p| p.2).sum();
    v.push((
        "holder",
        split.holder,
        (royalties::BPS as u16).saturating_sub(taken),
    ));
    v
}

fn currency_name(c: Address) -> String {
    if c == Address::ZERO {
        "wei".into()
    } else {
        format!("units of {c}")
    }
}

impl ShowArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let d = &node.deployment;
        let reader = node.reader()?;
        let split = split_of(&reader, d.agent_nft, token_id, d.start_block).await?;
        let currency = self.erc20.unwrap_or(Address::ZERO);
        let mut lines = vec![format!(
            "token {}: earnings split (ERC-2981 royalty on sales: {} bps to the creator)",
            Id(token_id),
            split.royalty_bps
        )];
        let mut rows = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (role, account, bps) in parties(&split) {
            // The splitter keeps one balance per account (all tokens, all roles).
            let owed_now = owed(&reader, d.earnings_splitter, account, currency).await?;
            let claimable = if seen.insert(account) {
                format!("can claim {owed_now} {}", currency_name(currency))
            } else {
                "(same account as above)".to_owned()
            };
            lines.push(format!("  {role:<11} {account}  {bps:>5} bps  {claimable}"));
            rows.push(json!({ "role": role, "account": account, "bps": bps, "owed": owed_now.to_string() }));
        }
        let mut value = json!({
            "token_id": token_id.to_string(),
            "currency": currency,
            "royalty_bps": split.royalty_bps,
            "parties": rows,
        });
        if let Some(price) = self.sale_price {
            let (receiver, royalty) =
                royalties::royalty_on_sale(&reader, d.agent_nft, token_id, price).await?;
            lines.push(format!(
                "  ERC-2981: a sale at {price} wei pays {royalty} wei royalty to {receiver}"
            ));
            value["sale_royalty"] = json!(royalty.to_string());
        }
        ctx.emit(lines.join("\n"), value);
        Ok(())
    }
}

impl SettleArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let d = &node.deployment;
        let wallet = self.wallet.signer(&node.home)?;
        let provider = node.provider(&wallet)?;
        let split = split_of(&provider, d.agent_nft, token_id, d.start_block).await?;
        let (currency, amount) = match self.amount {
            Some(amount) => (self.erc20.unwrap_or(Address::ZERO), amount),
            None => {
                let currency = match (self.erc20, &d.market) {
                    (Some(token), _) => token,
                    (None, Some(market)) => market.quote_token,
                    (None, None) => anyhow::bail!(
                        "the deployment has no market, so no default quote token: pass --erc20"
                    ),
                };
                let report = audited(&node, token_id).await?;
                let before = royalties::deposited(
                    &provider,
                    d.earnings_splitter,
                    token_id,
                    currency,
                    d.start_block,
                )
                .await?;
                let due = royalties::unsettled_earnings(&report, before)
                    .with_context(|| format!("token {} records no PnL to settle", Id(token_id)))?;
                if due.is_zero() {
                    ctx.emit(
                        format!(
                            "token {}: nothing to settle ({before} already deposited)",
                            Id(token_id)
                        ),
                        json!({ "token_id": token_id.to_string(), "amount": "0", "deposited": before.to_string() }),
                    );
                    return Ok(());
                }
                (currency, due)
            }
        };
        let payer = if self.from_agent_account {
            let account = AgentAccountFactory::new(d.agent_account_factory, &provider)
                .accountOf(token_id)
                .call()
                .await?;
            // A call to an address without code "succeeds" and does nothing.
            if provider.get_code_at(account).await?.is_empty() {
                anyhow::bail!(
                    "token {} has no agent account yet ({account})",
                    Id(token_id)
                );
            }
            Payer::AgentAccount(account)
        } else {
            Payer::Wallet
        };
        let expected = credits(&split, amount);
        let settled = royalties::settle(
            &provider,
            d.earnings_splitter,
            &split,
            currency,
            amount,
            payer,
        )
        .await
        .context("settling earnings")?;
        if self.erc20.is_none() && settled.credits != expected {
            // ETH arrives whole: anything else means the contract and this tool disagree.
            anyhow::bail!(
                "the splitter credited {:?}, expected {:?}",
                settled.credits,
                expected
            );
        }
        let human = std::iter::once(format!(
            "deposited {} {} for token {} in {}",
            amount,
            currency_name(currency),
            Id(token_id),
            settled.tx_hash
        ))
        .chain(settled.credits.iter().map(|c| {
            format!(
                "  {:<11} {}  +{}",
                format!("{:?}", c.role).to_lowercase(),
                c.account,
                c.amount
            )
        }))
        .collect::<Vec<_>>()
        .join("\n");
        ctx.emit(human, serde_json::to_value(&settled)?);
        Ok(())
    }
}

/// Indexes the chain and audits `token`, refusing a history with findings: earnings are only
/// settled from a verified record of them.
async fn audited(
    node: &super::node::Node,
    token: U256,
) -> anyhow::Result<agent_runtime::audit::AuditReport> {
    let (_, _, report) = super::audit::index_and_audit(node, token).await?;
    if !report.is_clean() {
        anyhow::bail!(
            "token {id}'s history has {} finding(s) (see `inft audit {id}`): not settling from it",
            report.findings.len(),
            id = Id(token)
        );
    }
    Ok(report)
}

impl ClaimArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let wallet = self.wallet.signer(&node.home)?;
        let provider = node.provider(&wallet)?;
        let currency = self.erc20.unwrap_or(Address::ZERO);
        let to = self.to.unwrap_or(wallet.address());
        let (tx, amount) = royalties::claim(
            &provider,
            node.deployment.earnings_splitter,
            wallet.address(),
            currency,
            to,
        )
        .await
        .context("claiming earnings")?;
        ctx.emit(
            format!(
                "claimed {amount} {} to {to} in {tx}",
                currency_name(currency)
            ),
            json!({ "amount": amount.to_string(), "currency": currency, "to": to, "tx_hash": tx }),
        );
        Ok(())
    }
}
