//! `inft keys`: make and inspect X25519 sealing keys, stored encrypted under a passphrase.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use sealing::{EncryptedKeyFile, KdfParams, SealingSecret};
use serde_json::json;

use super::Run;
use super::common::{AtomicOutput, load_key_file, passphrase};
use crate::cli::Context;

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
        }
        Ok(())
    }
}
