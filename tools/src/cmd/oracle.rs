//! `inft oracle serve`: the re-encryption oracle for oracle-attested transfers.
//!
//! Meant to run inside a TEE. Without one, the operator of this process is trusted with the
//! plaintext of every agent it rotates and with each new agent key (see
//! `agent_runtime::transfer::oracle`). Its address must be registered in the TransferVerifier
//! (`inft dev up` registers its `oracle` account).

use std::net::SocketAddr;
use std::sync::Arc;

use agent_runtime::transfer::oracle::OracleService;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use sealing::SealOptions;
use serde_json::json;

use super::Run;
use super::node::{NodeOpts, WalletOpts};
use super::transfer::publish_key;
use crate::cli::Context;

/// `inft oracle …`
#[derive(Debug, Args)]
pub(crate) struct OracleArgs {
    #[command(subcommand)]
    command: OracleCommand,
}

#[derive(Debug, Subcommand)]
enum OracleCommand {
    /// Serve re-encryption requests until interrupted (Ctrl-C).
    Serve(ServeArgs),
}

impl Run for OracleArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            OracleCommand::Serve(a) => a.run(ctx).await,
        }
    }
}

/// `inft oracle serve`
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on. The API has no authentication of its own: keep it on loopback or
    /// behind a proxy that has.
    #[arg(long, default_value = "127.0.0.1:8547")]
    listen: SocketAddr,
    #[command(flatten)]
    node: NodeOpts,
    #[command(flatten)]
    wallet: WalletOpts,
}

impl Run for ServeArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let node = self.node.load()?;
        node.check_chain().await?;
        let wallet = self.wallet.signer(&node.home)?;
        publish_key(&node, &wallet).await?;
        let service = Arc::new(OracleService::new(
            wallet.clone(),
            node.sealing_secret(&wallet)?,
            node.nft(&wallet)?,
            node.store()?,
            SealOptions::default(),
        ));
        let handle = service
            .serve(self.listen)
            .await
            .with_context(|| format!("listening on {}", self.listen))?;
        ctx.emit(
            format!(
                "re-encryption oracle {} listening on {}",
                wallet.address(),
                handle.base_url()
            ),
            json!({ "address": wallet.address(), "url": handle.base_url() }),
        );
        tokio::signal::ctrl_c().await?;
        handle.shutdown().await?;
        Ok(())
    }
}
