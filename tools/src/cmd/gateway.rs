//! `inft gateway`: serve the home directory's blob store over HTTP (sealed blobs and public
//! action records), so other parties can fetch an agent's data, audit its actions and look
//! pieces up by content (`GET /by-content/<hex>`). Records are write-once: a `PUT` cannot
//! replace a stored record's signature (`409`).

use std::net::SocketAddr;

use agent_runtime::blobstore::{LocalDirStore, gateway};
use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::Run;
use crate::cli::Context;

/// `inft gateway`
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Directory of local state; its `blobs` store is served.
    #[arg(long, env = "INFT_HOME", default_value = ".inft", value_name = "DIR")]
    home: std::path::PathBuf,
    /// Address to listen on. The gateway has no authentication: keep it on loopback or behind
    /// something that has.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,
    /// Largest blob accepted for upload (`8GiB`, `512MiB`, …; `0`: no limit).
    #[arg(
        long,
        env = "INFT_MAX_BLOB_SIZE",
        value_name = "SIZE",
        default_value = "8GiB",
        value_parser = super::dev::parse_size
    )]
    max_blob_size: u64,
}

impl Run for GatewayArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let store = LocalDirStore::open(self.home.join("blobs"))
            .with_context(|| format!("opening {}", self.home.join("blobs").display()))?
            .max_blob_len((self.max_blob_size > 0).then_some(self.max_blob_size));
        let handle = gateway::serve(store, self.listen).await?;
        ctx.emit(
            format!(
                "serving {} at {} (GET /blob/<hex>, GET /record/<hex>, GET /by-content/<hex>); Ctrl-C stops",
                self.home.join("blobs").display(),
                handle.base_url()
            ),
            json!({ "url": handle.base_url() }),
        );
        tokio::signal::ctrl_c().await?;
        handle.shutdown().await?;
        Ok(())
    }
}
