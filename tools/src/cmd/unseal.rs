//! `inft unseal`: decrypt a sealed file with your key file. The output is written to a
//! temporary file beside the target and renamed into place only after the whole blob and its
//! commitment verified; on any error nothing is left behind.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use sealing::SealOptions;
use serde_json::json;

use super::Run;
use super::common::{AtomicOutput, SealedKeyFile, interruptible, unlock_key_file, with_suffix};
use crate::cli::Context;

/// `inft unseal IN.sealed -o OUT --key-file KEYFILE`
#[derive(Debug, Args)]
pub(crate) struct UnsealArgs {
    /// The sealed blob.
    input: PathBuf,
    /// Where to write the plaintext.
    #[arg(short, long, value_name = "OUT")]
    out: PathBuf,
    /// Your encrypted sealing key file (passphrase from INFT_PASSPHRASE or a prompt).
    #[arg(long, value_name = "FILE", env = "INFT_KEY_FILE")]
    key_file: PathBuf,
    /// The sealed key file [default: INPUT.key].
    #[arg(long, value_name = "FILE")]
    sealed_key: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

impl Run for UnsealArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let sk_path = self
            .sealed_key
            .clone()
            .unwrap_or_else(|| with_suffix(&self.input, ".key"));
        let (sealed, recipient, key_ctx) = SealedKeyFile::read(&sk_path)?.parts()?;
        let secret = unlock_key_file(&self.key_file)?;
        if secret.public_key() != recipient {
            bail!(
                "{} is sealed to {recipient}, not to this key ({})",
                self.input.display(),
                secret.public_key()
            );
        }
        let data_key = sealed.open(&secret, &key_ctx).with_context(|| {
            format!(
                "opening sealed key {} (altered, or not for this context)",
                sk_path.display()
            )
        })?;

        let input =
            File::open(&self.input).with_context(|| format!("opening {}", self.input.display()))?;
        let len = input.metadata().map(|m| m.len()).unwrap_or(0);
        // Created before decrypting so a missing directory fails fast; deleted on any error.
        let mut out = AtomicOutput::create(&self.out, self.force)?;
        let opts = SealOptions {
            threads: self.threads,
            ..SealOptions::default()
        };
        let pb = ctx.progress(len, "unsealing");
        let what = self.input.display().to_string();
        let temps = vec![out.temp_path()];
        let summary = interruptible(temps, move || {
            let summary = {
                let mut w = BufWriter::with_capacity(1 << 20, out.file());
                let reader = BufReader::with_capacity(1 << 20, pb.wrap_read(input));
                let s =
                    sealing::open_verified(&data_key, &key_ctx.data_hash, reader, &mut w, &opts)
                        .with_context(|| format!("unsealing {what} refused, no output written"))?;
                w.flush()?;
                s
            };
            pb.finish_and_clear();
            out.commit()?;
            Ok(summary)
        })
        .await?;
        ctx.emit(
            format!(
                "unsealed {} -> {} ({} bytes, commitment {})",
                self.input.display(),
                self.out.display(),
                summary.plaintext_len,
                summary.commitment
            ),
            json!({
                "output": self.out,
                "plaintext_len": summary.plaintext_len,
                "commitment": summary.commitment.to_hex(),
            }),
        );
        Ok(())
    }
}
