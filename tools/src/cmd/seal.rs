//! `inft seal`: encrypt a file under a fresh data key and wrap the key for a recipient.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use sealing::{DEFAULT_CHUNK_SIZE, DataKey, SealOptions, SealedKey, SealingPublicKey};
use serde_json::json;

use super::Run;
use super::common::{
    AtomicOutput, ContextOpts, SealedKeyFile, interruptible, load_key_file, with_suffix,
};
use crate::cli::Context;

/// `inft seal IN [-o OUT] (--to PUBKEY | --key-file FILE)`: writes the sealed blob to OUT
/// (default IN.sealed) and the sealed data key, with its context, to OUT.key.
#[derive(Debug, Args)]
pub(crate) struct SealArgs {
    /// The file to seal.
    input: PathBuf,
    /// Where to write the sealed blob [default: INPUT.sealed]; the sealed key goes to OUT.key.
    #[arg(short, long, value_name = "OUT")]
    out: Option<PathBuf>,
    /// Recipient X25519 public key (64 hex digits) to seal the data key to.
    #[arg(
        long = "to",
        value_name = "PUBKEY",
        required_unless_present = "key_file"
    )]
    to: Option<SealingPublicKey>,
    /// Seal to the public key of this key file instead (no passphrase needed).
    #[arg(long, value_name = "FILE", conflicts_with = "to")]
    key_file: Option<PathBuf>,
    /// The on-chain context the sealed key is bound to.
    #[command(flatten)]
    context: ContextOpts,
    /// Plaintext bytes per chunk.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE, value_name = "BYTES")]
    chunk_size: u32,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Overwrite existing outputs.
    #[arg(long)]
    force: bool,
}

impl Run for SealArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let recipient = match (&self.to, &self.key_file) {
            (Some(pk), _) => *pk,
            (None, Some(f)) => load_key_file(f)?.public_key(),
            (None, None) => anyhow::bail!("give --to PUBKEY or --key-file FILE"),
        };
        let blob_path = self
            .out
            .clone()
            .unwrap_or_else(|| with_suffix(&self.input, ".sealed"));
        let key_path = with_suffix(&blob_path, ".key");
        let input =
            File::open(&self.input).with_context(|| format!("opening {}", self.input.display()))?;
        let len = input.metadata().map(|m| m.len()).unwrap_or(0);

        let mut blob = AtomicOutput::create(&blob_path, self.force)?;
        let mut key_out = AtomicOutput::create(&key_path, self.force)?;
        let opts = SealOptions {
            chunk_size: self.chunk_size,
            threads: self.threads,
        };
        let pb = ctx.progress(len, "sealing");
        let started = std::time::Instant::now();
        let what = self.input.display().to_string();
        let context = self.context.clone();
        let temps = vec![blob.temp_path(), key_out.temp_path()];
        let (summary, sealed, key_ctx) = interruptible(temps, move || {
            let data_key = DataKey::generate();
            let summary = {
                let mut w = BufWriter::with_capacity(1 << 20, blob.file());
                let s = sealing::seal(&data_key, pb.wrap_read(input), &mut w, &opts)
                    .with_context(|| format!("sealing {what}"))?;
                w.flush()?;
                s
            };
            pb.finish_and_clear();
            let key_ctx = context.context(summary.commitment);
            let sealed =
                SealedKey::seal(&data_key, &recipient, &key_ctx).context("sealing the data key")?;
            let key_json =
                serde_json::to_string_pretty(&SealedKeyFile::new(&sealed, &recipient, &key_ctx))?;
            key_out.file().write_all(key_json.as_bytes())?;
            key_out.file().write_all(b"\n")?;
            blob.commit()?;
            key_out.commit()?;
            Ok((summary, sealed, key_ctx))
        })
        .await?;
        tracing::info!(secs = started.elapsed().as_secs_f64(), "sealed");
        ctx.emit(
            format!(
                "sealed {} -> {} ({} bytes)\nsealed key -> {}\ncommitment {}",
                self.input.display(),
                blob_path.display(),
                summary.ciphertext_len,
                key_path.display(),
                summary.commitment
            ),
            json!({
                "blob": blob_path,
                "sealed_key_file": key_path,
                "commitment": summary.commitment.to_hex(),
                "plaintext_len": summary.plaintext_len,
                "ciphertext_len": summary.ciphertext_len,
                "recipient": recipient.to_hex(),
                "sealed_key": sealed.to_hex(),
                "chain_id": key_ctx.chain_id,
            }),
        );
        Ok(())
    }
}
