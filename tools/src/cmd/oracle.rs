//! `inft oracle serve`: the re-encryption oracle for oracle-attested transfers.
//!
//! Meant to run inside a TEE. Without one, the operator of this process is trusted with the
//! plaintext of every agent it rotates and with each new agent key (see
//! `agent_runtime::transfer::oracle`). Its address must be registered in the TransferVerifier
//! (`inft dev up` registers its `oracle` account).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use agent_runtime::transfer::oracle::{OracleLimits, OracleService};
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
    /// Address to listen on. Requests must be signed by the token's owner, and bodies,
    /// requests, running rotations, each owner's rotations and store writes are capped (below);
    /// still, keep it on loopback or behind a TLS proxy.
    #[arg(long, default_value = "127.0.0.1:8547")]
    listen: SocketAddr,
    /// Rotations that may run at once (each re-encrypts a whole model); more are answered 503.
    #[arg(long, default_value_t = OracleLimits::default().concurrent)]
    max_running: usize,
    /// Rotations each token owner may ask for per hour; more are answered 429.
    #[arg(long, default_value_t = OracleLimits::default().per_owner_per_hour)]
    per_owner_per_hour: NonZeroU32,
    /// Requests per minute from all clients together, counted before the chain is asked
    /// anything; more are answered 429.
    #[arg(long, default_value_t = OracleLimits::default().requests_per_minute)]
    requests_per_minute: NonZeroU32,
    /// Requests per minute from one client IP address; more are answered 429.
    #[arg(long, default_value_t = OracleLimits::default().per_client_per_minute)]
    per_client_per_minute: NonZeroU32,
    /// KiB the oracle may write to its blob store per hour (re-encrypted models, configs and
    /// memories); a rotation over it is answered 503 and writes nothing.
    #[arg(long, default_value_t = OracleLimits::default().store_kib_per_hour)]
    store_kib_per_hour: NonZeroU32,
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
        let limits = OracleLimits {
            concurrent: self.max_running,
            per_owner_per_hour: self.per_owner_per_hour,
            requests_per_minute: self.requests_per_minute,
            per_client_per_minute: self.per_client_per_minute,
            store_kib_per_hour: self.store_kib_per_hour,
        };
        let service = Arc::new(OracleService::with_limits(
            wallet.clone(),
            node.sealing_secret(&wallet).await?,
            node.nft(&wallet)?,
            node.store()?,
            SealOptions::default(),
            limits,
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
