//! `inft creations`: list what an agent created (from the chain's events and the public
//! records), and export each piece with its proof bundle.

use std::fmt::Write as _;
use std::path::PathBuf;

use agent_runtime::audit::html::{short, utc};
use agent_runtime::provenance::{CreativePiece, creations, write_piece};
use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::Run;
use super::audit::index_and_audit;
use super::node::NodeOpts;
use crate::cli::Context;
use crate::ids::{Id, TokenArg, parse_token_arg};

/// `inft creations`
#[derive(Debug, Args)]
pub(crate) struct CreationsArgs {
    /// The token id: decimal, 0x-hex, or the first hex digits of it as human output shows
    /// them (`1a2b3c4d`; a unique start is enough).
    #[arg(value_parser = parse_token_arg)]
    token: TokenArg,
    #[command(flatten)]
    node: NodeOpts,
    /// Export each piece into DIR: `piece-SEQ.txt` (the exact bytes the agent signed) and its
    /// proof bundle `piece-SEQ.proof.json`, which `inft provenance verify` checks with nothing
    /// but an RPC endpoint. Use one directory per token.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl Run for CreationsArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let token_id = self.token.resolve(&node).await?;
        let spinner = ctx.spinner("indexing chain events and verifying records");
        let (_, store, report) = index_and_audit(&node, token_id).await?;
        let pieces = creations(&report, store.as_ref()).await?;
        spinner.finish_and_clear();

        let mut rows = Vec::new();
        let mut text = format!(
            "token {}: {} creative piece(s)\n",
            Id(token_id),
            pieces.len()
        );
        for piece in &pieces {
            let mut files = Vec::new();
            if let Some(dir) = &self.out {
                files = write_piece(dir, piece).with_context(|| {
                    format!("writing piece {} into {}", piece.seq, dir.display())
                })?;
            }
            let _ = writeln!(text, "{}", line(piece));
            if let Some(problem) = &piece.problem {
                let _ = writeln!(text, "      not exported with a bundle: {problem}");
            }
            let mut row = serde_json::to_value(piece)?;
            row["files"] = json!(files);
            rows.push(row);
        }
        if let Some(dir) = &self.out {
            let _ = write!(text, "exported to {}", dir.display());
        }
        ctx.emit(
            text.trim_end(),
            json!({ "token_id": token_id.to_string(), "pieces": rows }),
        );
        Ok(())
    }
}

/// One piece in the listing: seq, time, title, content hash and block.
fn line(piece: &CreativePiece) -> String {
    format!(
        "  #{:<4} {}  {:<32}  {}  block {}{}",
        piece.seq,
        utc(piece.timestamp_ms),
        piece
            .title
            .as_deref()
            // Debug form: quoted, control characters escaped (titles are the model's text).
            .map(|t| format!("{t:?}"))
            .unwrap_or_else(|| "(untitled)".into()),
        short(&piece.content_hash),
        piece.block_number,
        if piece.audited_ok {
            ""
        } else {
            "  (audit findings)"
        }
    )
}
