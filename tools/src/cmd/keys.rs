//! `inft keys`: make and inspect X25519 sealing keys, stored encrypted under a passphrase.

use std::io::Write as _;
use std::path::PathBuf;

use agent_runtime::pipeline::open_keys;
use agent_runtime::token::AgentNft;
use agent_runtime::transfer::rekey::{AgentKeyRotation, finish_agent_rotation, rekey_token};
use agent_runtime::wallet::{MAX_SEALING_KEY_INDEX, derive_sealing_secret};
use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use sealing::{EncryptedKeyFile, KdfParams, SealOptions, SealingSecret};
use serde_json::json;

use super::Run;
use super::common::{AtomicOutput, load_key_file, passphrase};
use super::node::{NodeOpts, WalletOpts};
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// `inft keys …`
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    /// What to do with keys.
    #[command(subcommand)]
    cmd: KeysCmd,
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Make a new sealing key and store it encrypted under a passphrase (from INFT_PASSPHRASE
    /// or a prompt); prints its public key.
    New(NewArgs),
    /// Print the public key of a key file (no passphrase needed).
    Show(ShowArgs),
    /// Rotate your wallet-derived sealing key (e.g. after signing its message somewhere you
    /// should not have): publish the next key index and re-key every agent token you hold
    /// under it, with fresh data keys, new blobs and a new agent key. Safe to run again: a run
    /// that stopped half-way is finished first.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// Re-key only these tokens [default: every token the wallet holds]: each a full id or the
    /// first hex digits of it as human output shows them.
    #[arg(long = "token", value_parser = parse_token_arg, value_name = "ID")]
    tokens: Vec<TokenArg>,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

#[derive(Debug, Args)]
struct NewArgs {
    /// Where to write the encrypted key file.
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// The key file.
    file: PathBuf,
}

impl Run for KeysArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.cmd {
            KeysCmd::New(a) => {
                let pass = passphrase(true)?;
                let secret = SealingSecret::generate();
                let file =
                    EncryptedKeyFile::encrypt(&secret, pass.as_bytes(), KdfParams::default())
                        .context("encrypting the key")?;
                // The temp file is created 0600 and renamed into place: no readable half-written key.
                let mut out = AtomicOutput::create(&a.out, a.force)?;
                out.file().write_all(file.to_json().as_bytes())?;
                out.commit()?;
                tracing::info!(path = %a.out.display(), "wrote sealing key");
                let pk = secret.public_key();
                ctx.emit(pk, json!({ "public_key": pk.to_hex(), "path": a.out }));
            }
            KeysCmd::Show(a) => {
                let pk = load_key_file(&a.file)?.public_key();
                ctx.emit(pk, json!({ "public_key": pk.to_hex(), "path": a.file }));
            }
            KeysCmd::Rotate(a) => a.run(ctx).await?,
        }
        Ok(())
    }
}

impl RotateArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let wallet = self.wallet.signer(&node.home)?;
        let nft = node.nft(&wallet)?;
        let store = node.store()?;
        let opts = SealOptions::default();
        let chain_id = node.deployment.chain_id;
        let owner = wallet.address();
        let tokens = if self.tokens.is_empty() {
            nft.tokens_of(owner).await?
        } else {
            let mut ids = Vec::with_capacity(self.tokens.len());
            for token in &self.tokens {
                ids.push(token.resolve(&node).await?);
            }
            ids
        };
        let (index, current) = node.sealing_key_index(&wallet).await?;
        if nft.sealing_key_of(owner).await?.is_none() {
            bail!("{owner} has published no sealing key yet: there is nothing to rotate");
        }
        // A rotation that stopped half-way left tokens sealed to an earlier key, or re-keyed
        // with the new agent not registered yet: finish those instead of moving on.
        let mut behind = Vec::new();
        let mut unregistered = Vec::new();
        for &token in &tokens {
            match opening_index(&nft, &wallet, chain_id, index, token).await? {
                Some(earlier) => behind.push((token, earlier)),
                None => {
                    if let Some(tx) =
                        finish_agent_rotation(&nft, store.as_ref(), token, &current, &opts).await?
                    {
                        unregistered
                            .push(json!({ "token_id": token.to_string(), "set_agent_tx": tx }));
                    }
                }
            }
        }
        let resuming = !behind.is_empty() || !unregistered.is_empty();
        let (new_index, new_secret, work) = if resuming {
            (index, current, behind)
        } else {
            let next = index + 1;
            if next >= MAX_SEALING_KEY_INDEX {
                bail!("all {MAX_SEALING_KEY_INDEX} wallet-derived sealing keys are used up");
            }
            let next_secret = derive_sealing_secret(&wallet, chain_id, next)?;
            // Published first: from now on senders seal to the new key, and a stop before the
            // tokens are re-keyed is finished by the next run (above).
            nft.publish_sealing_key(owner, &next_secret.public_key())
                .await
                .context("publishing the new sealing key")?;
            let work: Vec<(U256, u32)> = tokens.iter().map(|&t| (t, index)).collect();
            (next, next_secret, work)
        };

        let mut text = if resuming {
            format!("finished the rotation to sealing key index {new_index} for {owner}")
        } else {
            format!("sealing key index {new_index} is now published for {owner}")
        };
        for row in &unregistered {
            text.push_str(&format!(
                "\ntoken {}: registered its new agent\n  tx {}",
                row["token_id"]
                    .as_str()
                    .and_then(|t| t.parse::<U256>().ok())
                    .map(|t| Id(t).to_string())
                    .unwrap_or_default(),
                row["set_agent_tx"].as_str().unwrap_or_default()
            ));
        }
        let mut rows = unregistered;
        let db = node.db().await?;
        for (token, from_index) in work {
            let id = Id(token);
            let log = agent_runtime::record::LogId {
                chain_id,
                action_log: node.deployment.action_log,
                token_id: token,
            };
            if !db.unconfirmed(&log, 1).await?.is_empty() {
                bail!(
                    "token {id} has actions signed by its current agent key that are not on \
                     chain yet; log them first (`inft run {id} --steps 0`), then run \
                     `inft keys rotate` again"
                );
            }
            let spinner = ctx.spinner(&format!("re-keying token {id}"));
            let old_secret = derive_sealing_secret(&wallet, chain_id, from_index)?;
            let rekeyed = rekey_token(
                &nft,
                store.as_ref(),
                token,
                &old_secret,
                &new_secret,
                AgentKeyRotation::Replace,
                &opts,
            )
            .await
            .with_context(|| format!("re-keying token {id}"))?;
            spinner.finish_and_clear();
            let (agent, agent_tx) = rekeyed.new_agent.unzip();
            text.push_str(&format!(
                "\ntoken {id}: re-keyed; new agent {}\n  tx {}{}",
                agent.map(|a| a.to_string()).unwrap_or_default(),
                rekeyed.update_tx,
                super::authorize::reissued_line(&rekeyed.reissued_grants)
            ));
            rows.push(json!({
                "token_id": token.to_string(),
                "update_tx": rekeyed.update_tx,
                "new_agent": agent,
                "set_agent_tx": agent_tx,
                "reissued_grants": rekeyed.reissued_grants,
            }));
        }
        ctx.emit(
            text,
            json!({ "account": owner, "key_index": new_index, "tokens": rows }),
        );
        Ok(())
    }
}

/// The earlier key index (below `current`) whose key opens `token`'s sealed keys, if its keys
/// are not sealed to the current one.
async fn opening_index(
    nft: &AgentNft,
    wallet: &PrivateKeySigner,
    chain_id: u64,
    current: u32,
    token: U256,
) -> anyhow::Result<Option<u32>> {
    let entries = nft.entries_for(token, wallet.address()).await?;
    let token_ref = nft.token_ref(token);
    let opens = |secret: &SealingSecret| open_keys(&entries, secret, &token_ref).is_ok();
    if opens(&derive_sealing_secret(wallet, chain_id, current)?) {
        return Ok(None);
    }
    for index in (0..current).rev() {
        if opens(&derive_sealing_secret(wallet, chain_id, index)?) {
            return Ok(Some(index));
        }
    }
    bail!(
        "token {} is sealed to none of your wallet's sealing keys 0..={current}",
        Id(token)
    )
}
