//! `inft dev make-model` and `inft dev model`: the generated test models and the real instruct
//! model, which live in the engine crate (built with the `engine` feature only).

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use inft_engine::models::{REAL_MODEL_BYTES, REAL_MODEL_SHA256, real_model_path};
use inft_engine::testmodel::{TestModelParams, write_llama_gguf};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Run;
use super::dev::parse_size;
use crate::cli::Context;

/// `inft dev make-model`
#[derive(Debug, Args)]
pub(crate) struct MakeModelArgs {
    /// Approximate size: bytes, or with a unit (KiB, MiB, GiB).
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    size: u64,
    /// Seed of the deterministic weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file.
    #[arg(short, long)]
    out: PathBuf,
}

/// Hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Run for MakeModelArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let params = TestModelParams::for_size(self.size);
        let file = std::fs::File::create(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let mut writer = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        };
        let info =
            write_llama_gguf(&mut writer, &params, self.seed).context("writing the model")?;
        writer.flush()?;
        let sha256 = hex::encode(writer.hasher.finalize());
        ctx.emit(
            format!("{}: {} bytes, {} parameters, sha256 {sha256}", self.out.display(), info.bytes, info.n_params),
            json!({ "path": self.out, "bytes": info.bytes, "params": info.n_params, "sha256": sha256 }),
        );
        Ok(())
    }
}

/// `inft dev model`
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// The real instruct model (the only kind for now): fails, pointing to scripts/setup.sh,
    /// when it is missing or has the wrong size.
    #[arg(long, required = true)]
    real: bool,
}

impl Run for ModelArgs {
    async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        anyhow::ensure!(self.real, "say which model: --real");
        let path = real_model_path()?;
        ctx.emit(
            path.display(),
            json!({ "path": path, "sha256": REAL_MODEL_SHA256, "bytes": REAL_MODEL_BYTES }),
        );
        Ok(())
    }
}
