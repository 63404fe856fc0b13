//! `inft provenance`: who made this piece, and is it unchanged? A lookup by content (through
//! the indexed events and the public records, locally or via a gateway), or `verify`: a proof
//! bundle checked against the content and an RPC endpoint, with no inft database at all.

use std::fmt::Write as _;
use std::path::PathBuf;

use agent_runtime::audit::html::utc;
use agent_runtime::provenance::{
    Contracts, ProofBundle, VerifiedCreation, find_by_content, verify_bundle,
};
use agent_runtime::record::content_hash;
use alloy::primitives::B256;
use anyhow::{Context as _, bail};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::Run;
use super::node::{Indexed, NodeOpts, reader_for};
use crate::cli::Context;
use crate::ids::Id;

/// `inft provenance`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("piece").args(["file", "text", "hash"])))]
pub(crate) struct ProvenanceArgs {
    #[command(subcommand)]
    command: Option<ProvenanceCommand>,
    /// A file holding the piece, exactly as the agent wrote it (`inft creations --out` writes
    /// them so): one changed byte is another piece.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// The piece as text, instead of a file.
    #[arg(long, value_name = "TEXT")]
    text: Option<String>,
    /// The piece's content hash (`keccak256` of its bytes, 0x-hex), instead of the piece.
    #[arg(long, value_name = "HASH")]
    hash: Option<B256>,
    #[command(flatten)]
    node: NodeOpts,
}

#[derive(Debug, Subcommand)]
enum ProvenanceCommand {
    /// Check a proof bundle (`inft creations --out`) against the piece, with nothing but an RPC
    /// endpoint (`--rpc-url`): no database, no record store, no wallet. The contracts are
    /// compared with your deployment file when you have one (`--deployment`).
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The proof bundle (JSON).
    bundle: PathBuf,
    /// The piece (its exact bytes).
    content: PathBuf,
}

/// What the lookup is about, from the arguments.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// The content hash of a file or text.
    Content(B256),
    /// A content hash given as such.
    Hash(B256),
}

impl ProvenanceArgs {
    fn piece(&self) -> anyhow::Result<Piece> {
        Ok(match (&self.file, &self.text, self.hash) {
            (Some(file), _, _) => Piece::Content(content_hash(
                &std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
            )),
            (_, Some(text), _) => Piece::Content(content_hash(text.as_bytes())),
            (_, _, Some(hash)) => Piece::Hash(hash),
            _ => bail!("name the piece: FILE, --text TEXT or --hash HASH (or use `verify`)"),
        })
    }
}

impl Run for ProvenanceArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        if let Some(ProvenanceCommand::Verify(args)) = &self.command {
            return verify(ctx, &self.node, args).await;
        }
        let (Piece::Content(hash) | Piece::Hash(hash)) = self.piece()?;
        let node = self.node.load()?;
        node.check_chain().await?;
        let spinner = ctx.spinner("indexing chain events");
        let Indexed { reader, db, .. } = node.indexed().await?;
        spinner.set_message("looking the piece up");
        let store = node.store()?;
        let contracts = Contracts::from(&node.deployment);
        let found = find_by_content(&reader, &db, store.as_ref(), &contracts, hash).await?;
        spinner.finish_and_clear();

        let mut text = String::new();
        let mut matches = Vec::new();
        let mut verified = 0;
        for f in &found {
            match &f.verdict {
                Ok(v) => {
                    verified += 1;
                    if f.text_only {
                        text.push_str(
                            "this is the text of the piece below (its signed output also holds \
                             its title)\n",
                        );
                    }
                    text.push_str(&describe(v));
                    matches
                        .push(json!({ "verified": true, "text_only": f.text_only, "creation": v }));
                }
                Err(e) => {
                    let _ = writeln!(
                        text,
                        "record {} carries this content but does not verify: {e}",
                        f.record_hash
                    );
                    matches.push(json!({
                        "verified": false,
                        "record_hash": f.record_hash,
                        "reason": e.reason(),
                        "error": e.to_string(),
                    }));
                }
            }
        }
        if found.is_empty() {
            let _ = write!(
                text,
                "unknown: no piece of this deployment has content hash {hash}. It was not written \
                 by one of its agents, or it was altered (one changed byte, one edited word, is \
                 another hash)."
            );
        }
        ctx.emit(
            text.trim_end(),
            json!({ "content_hash": hash, "known": verified > 0, "matches": matches }),
        );
        if verified == 0 {
            bail!("no verified piece has content hash {hash}");
        }
        Ok(())
    }
}

async fn verify(ctx: &Context, node: &NodeOpts, args: &VerifyArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let bundle = ProofBundle::from_json(&bytes)
        .with_context(|| format!("reading {}", args.bundle.display()))?;
    let content = std::fs::read(&args.content)
        .with_context(|| format!("reading {}", args.content.display()))?;
    let trusted = node.deployment_if_any()?.as_ref().map(Contracts::from);
    let reader = reader_for(&node.rpc_url()?)?;
    match verify_bundle(&reader, &bundle, content_hash(&content), trusted.as_ref()).await {
        Ok(v) => {
            ctx.emit(
                describe(&v).trim_end(),
                json!({ "verified": true, "creation": v }),
            );
            Ok(())
        }
        Err(e) => {
            ctx.emit(
                format!("NOT VERIFIED: {e}"),
                json!({ "verified": false, "reason": e.reason(), "error": e.to_string() }),
            );
            bail!(
                "{} does not prove {}",
                args.bundle.display(),
                args.content.display()
            )
        }
    }
}

/// The verdict on a verified piece, in words.
fn describe(v: &VerifiedCreation) -> String {
    let title = v
        .title
        .as_deref()
        .map(|t| format!(" {t:?}"))
        .unwrap_or_default();
    let model = if v.model_hash == v.committed_model_hash {
        format!(
            "{} (the model the token committed to at mint)",
            v.model_hash
        )
    } else {
        format!(
            "{} (the token committed to {} at mint)",
            v.model_hash, v.committed_model_hash
        )
    };
    let deployment = if v.deployment_pinned {
        "your deployment"
    } else {
        "as the bundle names them: compare with the deployment you trust"
    };
    format!(
        "VERIFIED: piece{title} (content hash {content}) was written by token {short}'s agent\n\
         \x20 token   {token}\n\
         \x20 agent   {agent} (registered for the token then; signed the piece and its record)\n\
         \x20 owner   {owner} (at that block)\n\
         \x20 logged  action {seq}, block {block} ({time} UTC), transaction {tx}\n\
         \x20 model   {model}\n\
         \x20 chain   {chain}: AgentNFT {nft}, ActionLog {log} ({deployment})\n",
        content = v.content_hash,
        short = Id(v.token_id),
        token = v.token_id,
        agent = v.agent,
        owner = v.owner,
        seq = v.seq,
        block = v.block_number,
        time = utc(v.block_time.saturating_mul(1000)),
        tx = v.log_tx,
        chain = v.chain_id,
        nft = v.agent_nft,
        log = v.action_log,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProvenanceArgs,
    }

    fn parse(args: &[&str]) -> Result<ProvenanceArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("provenance").chain(args.iter().copied()))
            .map(|c| c.args)
    }

    #[test]
    fn a_piece_is_named_by_file_text_or_hash_and_only_one() {
        let text = parse(&["--text", "a poem"]).unwrap();
        assert_eq!(
            text.piece().unwrap(),
            Piece::Content(content_hash(b"a poem"))
        );
        let h = format!("{}", B256::repeat_byte(7));
        assert_eq!(
            parse(&["--hash", &h]).unwrap().piece().unwrap(),
            Piece::Hash(B256::repeat_byte(7))
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("piece.txt");
        std::fs::write(&file, "a poem").unwrap();
        assert_eq!(
            parse(&[file.to_str().unwrap()]).unwrap().piece().unwrap(),
            Piece::Content(content_hash(b"a poem"))
        );
        assert!(parse(&["--text", "a", "--hash", &h]).is_err());
        assert!(parse(&[file.to_str().unwrap(), "--text", "a"]).is_err());
        assert!(parse(&["--hash", "0x12"]).is_err());
        assert!(parse(&[]).unwrap().piece().is_err());
    }

    #[test]
    fn verify_takes_a_bundle_and_the_content_and_an_rpc_url() {
        let args = parse(&[
            "verify",
            "piece-1.proof.json",
            "piece-1.txt",
            "--rpc-url",
            "http://127.0.0.1:8545",
        ])
        .unwrap();
        let Some(ProvenanceCommand::Verify(v)) = &args.command else {
            panic!("verify parsed as {args:?}");
        };
        assert_eq!(v.bundle, PathBuf::from("piece-1.proof.json"));
        assert_eq!(v.content, PathBuf::from("piece-1.txt"));
        assert_eq!(
            args.node.rpc_url().unwrap(),
            "http://127.0.0.1:8545".to_owned()
        );
        assert!(parse(&["verify", "only-a-bundle.json"]).is_err());
    }
}
