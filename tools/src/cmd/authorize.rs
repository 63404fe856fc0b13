//! `inft authorize` / `inft revoke`: let another account use your agent, with scopes and an
//! expiry, and take it back.

use std::time::{SystemTime, UNIX_EPOCH};

use agent_runtime::pipeline::open_keys;
use agent_runtime::transfer::rekey::{AgentKeyRotation, grant_keys, rekey_token};
use alloy::primitives::Address;
use anyhow::{Context as _, bail};
use clap::Args;
use inft_contracts::scopes;
use sealing::SealOptions;
use serde_json::json;

use super::Run;
use super::node::{NodeOpts, WalletOpts};
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// Parses `run,log` into scope bits.
fn parse_scopes(s: &str) -> Result<u8, String> {
    s.split(',').try_fold(0u8, |acc, name| {
        Ok(acc
            | match name.trim() {
                "run" => scopes::RUN,
                "trade" => scopes::TRADE,
                "create" => scopes::CREATE,
                "log" => scopes::LOG,
                "all" => scopes::ALL,
                other => {
                    return Err(format!(
                        "unknown scope {other:?} (run, trade, create, log, all)"
                    ));
                }
            })
    })
}

/// Parses `90s`, `15m`, `2h`, `7d` into seconds.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown duration unit {other:?} (s, m, h, d)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| "duration too large".to_owned())
}

/// `inft authorize`
#[derive(Debug, Args)]
pub(crate) struct AuthorizeArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    /// The account to authorize. It must have published its sealing key (any `inft mint`, or
    /// `inft keys publish`, does that).
    #[arg(long)]
    user: Address,
    /// Scopes: comma-separated run, trade, create, log (log lets it append the agent's actions).
    #[arg(long, default_value = "run,log", value_parser = parse_scopes)]
    scopes: u8,
    /// How long the grant lasts (s, m, h, d).
    #[arg(long, default_value = "1d", value_parser = parse_duration)]
    expires_in: u64,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for AuthorizeArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let Some(user_key) = nft.sealing_key_of(self.user).await? else {
            bail!(
                "{} has not published a sealing key, so nothing can be sealed to it",
                self.user
            );
        };
        // Only what the scopes need: the model and config keys for a grant that runs the
        // agent, nothing for one that only logs or trades (see `rekey::grant_keys`).
        let entries = nft.entries_for(token_id, wallet.address()).await?;
        let token = nft.token_ref(token_id);
        let keys = open_keys(&entries, &node.sealing_secret(&wallet).await?, &token)?;
        let sealed = grant_keys(&entries, &keys, &user_key, &token, self.scopes)
            .context("sealing the data keys to the user's key")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs();
        let expiry = now + self.expires_in;
        let tx = nft
            .authorize(token_id, self.user, self.scopes, expiry, &sealed)
            .await?;
        ctx.emit(
            format!("authorized {} on token {} (scopes {:#06b}) until unix time {expiry}\n  tx {tx}", self.user, Id(token_id), self.scopes),
            json!({ "token_id": token_id.to_string(), "user": self.user, "scopes": self.scopes, "expiry": expiry, "tx_hash": tx }),
        );
        Ok(())
    }
}

/// `inft revoke`
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    /// The account whose grant ends.
    #[arg(long)]
    user: Address,
    /// Also re-key the agent's data: the user was given the model and config keys, and the
    /// blobs are public, so without this they can still decrypt today's model and config.
    /// Re-encrypts them (and the memory) under fresh keys and re-issues the other live grants.
    #[arg(long)]
    rotate: bool,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for RevokeArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let tx = nft.revoke(token_id, self.user).await?;
        let mut text = format!("revoked {} on token {}\n  tx {tx}", self.user, Id(token_id));
        let mut value =
            json!({ "token_id": token_id.to_string(), "user": self.user, "tx_hash": tx });
        if self.rotate {
            let spinner = ctx.spinner("re-encrypting the agent under fresh keys");
            let secret = node.sealing_secret(&wallet).await?;
            let store = node.store()?;
            let rekeyed = rekey_token(
                &nft,
                store.as_ref(),
                token_id,
                &secret,
                &secret,
                AgentKeyRotation::Keep,
                &SealOptions::default(),
            )
            .await
            .context("re-keying the agent (the revoke itself is done)")?;
            spinner.finish_and_clear();
            text.push_str(&format!(
                "\nre-keyed the model, config and memory: the revoked keys open none of them\n  tx {}{}",
                rekeyed.update_tx,
                reissued_line(&rekeyed.reissued_grants)
            ));
            value["rekey_tx"] = json!(rekeyed.update_tx);
            value["reissued_grants"] = json!(rekeyed.reissued_grants);
        }
        ctx.emit(text, value);
        Ok(())
    }
}

/// "re-issued the grants of …" for a re-keying that re-issued some.
pub(crate) fn reissued_line(users: &[Address]) -> String {
    if users.is_empty() {
        return String::new();
    }
    let users: Vec<String> = users.iter().map(ToString::to_string).collect();
    format!("\nre-issued the live grants of {}", users.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_durations_parse() {
        assert_eq!(parse_scopes("run,log"), Ok(scopes::RUN | scopes::LOG));
        assert_eq!(parse_scopes("all"), Ok(scopes::ALL));
        assert!(parse_scopes("run,fly").is_err());
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert!(parse_duration("1y").is_err());
    }
}
