//! `inft transfer`: move an agent to another account, rotating its keys.
//!
//! Receiver-verified mode is one command per side, exchanging two JSON files (they hold no
//! secret, so any channel works; both sides must reach the same blob store):
//!
//! ```text
//! bob$   inft transfer publish-key --account bob            # once, so senders can seal to bob
//! alice$ inft transfer send TOKEN --to BOB --offer o.json --acceptance a.json   # waits for a.json
//! bob$   inft transfer accept o.json --output a.json --account bob
//! ```
//!
//! Oracle-attested mode is one command for the sender, none for the receiver:
//! `inft transfer send TOKEN --to BOB --oracle http://127.0.0.1:8547`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_runtime::transfer::oracle::request_rotation;
use agent_runtime::transfer::{
    Completed, Offer, SignedRotation, accept_offer, check_signer, complete_transfer, make_offer,
};
use alloy::primitives::U256;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sealing::SealOptions;
use serde_json::json;

use super::Run;
use super::authorize::parse_duration;
use super::node::{Node, NodeOpts, WalletOpts};
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// `inft transfer …`
#[derive(Debug, Args)]
pub(crate) struct TransferArgs {
    #[command(subcommand)]
    command: TransferCommand,
}

#[derive(Debug, Subcommand)]
enum TransferCommand {
    /// Sender: move a token to `--to`, through an oracle or with the receiver's acceptance.
    Send(SendArgs),
    /// Receiver: check an offer's new data opens with your key, make the new agent key, sign.
    Accept(AcceptArgs),
    /// Receiver: publish your wallet-derived sealing key, so senders can seal agents to you.
    PublishKey(PublishKeyArgs),
}

impl Run for TransferArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            TransferCommand::Send(a) => a.run(ctx).await,
            TransferCommand::Accept(a) => a.run(ctx).await,
            TransferCommand::PublishKey(a) => a.run(ctx).await,
        }
    }
}

/// `inft transfer send`
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").required(true).args(["oracle", "offer"]))]
struct SendArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    /// The receiver: an address, or an account name from `inft dev up` (e.g. `bob`). It must
    /// have published its sealing key (`inft transfer publish-key`).
    #[arg(long, value_name = "ACCOUNT")]
    to: String,
    /// Oracle mode: base URL of a registered re-encryption oracle (`inft oracle serve`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["offer", "acceptance"])]
    oracle: Option<String>,
    /// Receiver mode: where to write the offer for the receiver (an existing offer that still
    /// matches the token is reused, so an interrupted send can simply be run again).
    #[arg(long, value_name = "FILE", requires = "acceptance")]
    offer: Option<PathBuf>,
    /// Receiver mode: where the receiver's acceptance will appear.
    #[arg(long, value_name = "FILE")]
    acceptance: Option<PathBuf>,
    /// Receiver mode: how long to wait for the acceptance (`90s`, `15m`, `2h`).
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    wait: u64,
    /// How long the proof stays valid (`90s`, `15m`, `2h`, `7d`).
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    valid_for: u64,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for SendArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let store = node.store()?;
        let secret = node.sealing_secret(&wallet).await?;
        let opts = SealOptions::default();
        let deadline = node.chain_time().await? + self.valid_for;
        let to = node.resolve_account(&self.to)?;

        let (offer, signed) = obtain_rotation(
            ctx,
            &RotationSource {
                oracle: self.oracle.as_deref(),
                offer: self.offer.as_deref(),
                acceptance: self.acceptance.as_deref(),
                wait: self.wait,
            },
            &nft,
            store.as_ref(),
            &wallet,
            &secret,
            token_id,
            to,
            deadline,
        )
        .await?;

        let Completed { transfer, swept } =
            complete_transfer(&nft, store.as_ref(), &secret, &offer, &signed, &opts).await?;
        let swept_text = match swept {
            Some((wei, _)) => format!(
                "; {} ETH moved from the old agent wallet to the new one",
                alloy::primitives::utils::format_ether(wei)
            ),
            None => String::new(),
        };
        ctx.emit(
            format!(
                "token {} transferred to {} (new agent {}, gas {}){swept_text}\n  tx {}",
                Id(token_id),
                to,
                signed.new_agent,
                transfer.gas_used,
                transfer.tx_hash
            ),
            json!({
                "token_id": token_id.to_string(),
                "to": to,
                "mode": signed.mode,
                "new_agent": signed.new_agent,
                "tx_hash": transfer.tx_hash,
                "gas_used": transfer.gas_used,
                "swept_wei": swept.map(|(wei, _)| wei.to_string()),
            }),
        );
        Ok(())
    }
}

/// Where the proof of a rotation comes from: a re-encryption oracle, or the receiver's
/// acceptance of an offer exchanged as files (see the module docs).
pub(crate) struct RotationSource<'a> {
    /// Oracle mode: the oracle's base URL.
    pub(crate) oracle: Option<&'a str>,
    /// Receiver mode: where to write the offer.
    pub(crate) offer: Option<&'a Path>,
    /// Receiver mode: where the acceptance will appear.
    pub(crate) acceptance: Option<&'a Path>,
    /// Receiver mode: seconds to wait for the acceptance.
    pub(crate) wait: u64,
}

/// Sender: re-encrypts `token` for `to` and obtains the proof, from the oracle or from the
/// receiver's acceptance (an existing offer that still matches is reused, so an interrupted
/// command can be run again). Nothing is sent on chain.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn obtain_rotation(
    ctx: &Context,
    source: &RotationSource<'_>,
    nft: &agent_runtime::token::AgentNft,
    store: &dyn agent_runtime::blobstore::BlobStore,
    wallet: &alloy::signers::local::PrivateKeySigner,
    secret: &sealing::SealingSecret,
    token: U256,
    to: alloy::primitives::Address,
    deadline: u64,
) -> anyhow::Result<(Offer, SignedRotation)> {
    let opts = SealOptions::default();
    Ok(match (source.oracle, source.offer, source.acceptance) {
        (Some(url), _, _) => {
            let spinner = ctx.spinner("the oracle is re-encrypting the agent");
            let answer = request_rotation(nft, url, token, wallet, secret, to, deadline).await?;
            spinner.finish_and_clear();
            (answer.offer, answer.signed)
        }
        (None, Some(offer_path), Some(acceptance_path)) => {
            let now = nft.chain_time().await?;
            let reusable = match read_json::<Offer>(offer_path) {
                Ok(old) if old.token_id == token && old.to == to => {
                    old.check_current(nft, now).await.map(|()| old).ok()
                }
                _ => None,
            };
            let offer = match reusable {
                Some(offer) => {
                    eprintln!("reusing the offer in {}", offer_path.display());
                    offer
                }
                None => {
                    // An acceptance of an older offer must not be picked up.
                    let _ = std::fs::remove_file(acceptance_path);
                    let spinner = ctx.spinner("re-encrypting the model and config");
                    let offer = make_offer(nft, store, token, secret, to, deadline, &opts).await?;
                    spinner.finish_and_clear();
                    write_json_atomic(offer_path, &offer)?;
                    offer
                }
            };
            eprintln!(
                "offer written to {}; waiting up to {}s for {}'s acceptance at {}",
                offer_path.display(),
                source.wait,
                to,
                acceptance_path.display()
            );
            let signed = wait_for_acceptance(
                nft,
                &offer,
                acceptance_path,
                Duration::from_secs(source.wait),
            )
            .await?;
            (offer, signed)
        }
        _ => bail!("pass --oracle URL, or --offer FILE with --acceptance FILE"),
    })
}

/// Polls `path` until a well-formed acceptance signed by the receiver appears. One signed by
/// anybody else is refused at once rather than submitted.
async fn wait_for_acceptance(
    nft: &agent_runtime::token::AgentNft,
    offer: &Offer,
    path: &Path,
    wait: Duration,
) -> anyhow::Result<SignedRotation> {
    let started = Instant::now();
    loop {
        // The receiver writes atomically (rename), so a file that exists is complete.
        if path.exists() {
            let signed: SignedRotation = read_json(path)?;
            check_signer(nft, offer, &signed, offer.to)
                .await
                .with_context(|| format!("checking {}", path.display()))?;
            return Ok(signed);
        }
        if started.elapsed() >= wait {
            bail!(
                "no acceptance at {} after {}s; nothing changed on chain (run the same command again to keep waiting)",
                path.display(),
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Writes `value` as JSON next to `path` and renames it into place, so a reader polling for
/// `path` never sees half a file.
fn write_json_atomic(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `inft transfer accept`
#[derive(Debug, Args)]
struct AcceptArgs {
    /// The sender's offer file.
    offer: PathBuf,
    /// Where to write the acceptance for the sender.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for AcceptArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let store = node.store()?;
        let offer: Offer = read_json(&self.offer)?;
        let secret = node.sealing_secret(&wallet).await?;
        let spinner = ctx.spinner("verifying the offered model and config");
        let signed = accept_offer(
            &nft,
            store.as_ref(),
            &offer,
            &wallet,
            &secret,
            node.chain_time().await?,
            &SealOptions::default(),
        )
        .await?;
        spinner.finish_and_clear();
        write_json_atomic(&self.output, &signed)?;
        ctx.emit(
            format!(
                "verified the offer for token {}: the new data opens with your key\n  new agent {}; acceptance written to {}",
                Id(offer.token_id),
                signed.new_agent,
                self.output.display()
            ),
            json!({
                "token_id": offer.token_id.to_string(),
                "new_agent": signed.new_agent,
                "acceptance": self.output,
            }),
        );
        Ok(())
    }
}

/// `inft transfer publish-key`
#[derive(Debug, Args)]
struct PublishKeyArgs {
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for PublishKeyArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let wallet = self.wallet.signer(&node.home)?;
        let key = publish_key(&node, &wallet).await?;
        ctx.emit(
            format!("{} publishes sealing key {}", wallet.address(), key),
            json!({ "account": wallet.address(), "sealing_key": key }),
        );
        Ok(())
    }
}

/// Publishes `wallet`'s derived sealing key on the AgentNFT (no transaction if it already is).
pub(crate) async fn publish_key(
    node: &Node,
    wallet: &alloy::signers::local::PrivateKeySigner,
) -> anyhow::Result<String> {
    let public = node.sealing_secret(wallet).await?.public_key();
    node.nft(wallet)?
        .publish_sealing_key(wallet.address(), &public)
        .await
        .context("publishing the sealing key")?;
    Ok(format!("0x{}", hex::encode(public.as_bytes())))
}
