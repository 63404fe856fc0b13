//! Transfer re-encryption benchmark (release): `cargo bench -p agent-runtime --bench reencrypt`.
//!
//! A transfer re-encrypts the model for the receiver: fetch + verify the old blob, decrypt, pipe,
//! seal under a fresh key, store. This prints the wall time of
//! [`agent_runtime::transfer::reencrypt_entry`] on a ≥ 1 GiB model next to the one-thread seal of
//! the same bytes measured in the same run (the reference the issue asks for), with one thread and
//! with all cores.
//!
//! Environment: `INFT_BENCH_BYTES` (default 1 GiB).

use std::io::Read;
use std::time::Instant;

use agent_runtime::blobstore::LocalDirStore;
use agent_runtime::pipeline::{TokenRef, seal_entry};
use agent_runtime::transfer::reencrypt_entry;
use alloy::primitives::{Address, U256};
use anyhow::{Context as _, Result};
use inft_types::config::EntryKind;
use sealing::{SealOptions, SealingSecret};

const GIB: u64 = 1 << 30;

/// `len` bytes of cheap, incompressible-looking data, generated as it is read (never held whole).
struct Generator {
    left: u64,
    state: u64,
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for chunk in buf[..n].chunks_mut(8) {
            // xorshift64*
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn generator(len: u64) -> Box<dyn Read + Send> {
    Box::new(Generator {
        left: len,
        state: 0x9e37_79b9_7f4a_7c15,
    })
}

fn gbps(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e9
}

fn main() -> Result<()> {
    let bytes: u64 = std::env::var("INFT_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(GIB);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let store = LocalDirStore::open(dir.path().join("blobs"))?;
    let token = TokenRef {
        chain_id: 31337,
        nft: Address::repeat_byte(0x11),
        token_id: U256::from(1u64),
    };
    let sender = SealingSecret::generate();
    let receiver = SealingSecret::generate();

    println!(
        "re-encrypting a {:.2} GiB model ({cores} cores)",
        bytes as f64 / GIB as f64
    );
    println!(
        "{:<34} {:>9} {:>9} {:>16}",
        "", "seconds", "GB/s", "vs 1-thread seal"
    );
    runtime.block_on(async {
        let mut reference = None;
        for threads in [1, cores] {
            let opts = SealOptions {
                threads,
                ..SealOptions::default()
            };
            let started = Instant::now();
            let entry = seal_entry(
                &store,
                EntryKind::Model,
                generator(bytes),
                &sender.public_key(),
                &token,
                &opts,
            )
            .await?;
            let seal_s = started.elapsed().as_secs_f64();
            let seal_ref = *reference.get_or_insert(seal_s);
            println!(
                "{:<34} {seal_s:>9.2} {:>9.2} {:>15.2}x",
                format!("seal, {threads} thread(s)"),
                gbps(bytes, seal_s),
                seal_s / seal_ref
            );

            let key = entry
                .sealed_key
                .as_ref()
                .context("sealed key")?
                .open(&sender, &token.key_context(entry.data_hash))?;
            let started = Instant::now();
            let (rotated, _) = reencrypt_entry(
                &store,
                EntryKind::Model,
                &entry,
                key,
                &receiver.public_key(),
                &token,
                &opts,
            )
            .await?;
            let re_s = started.elapsed().as_secs_f64();
            println!(
                "{:<34} {re_s:>9.2} {:>9.2} {:>15.2}x",
                format!("re-encrypt (transfer), {threads} thread(s)"),
                gbps(bytes, re_s),
                re_s / seal_ref
            );
            // Keep the disk use to one model at a time.
            for commitment in [entry.data_hash, rotated.data_hash] {
                let _ = std::fs::remove_file(store.path_of(&commitment));
            }
        }
        anyhow::Ok(())
    })
}
