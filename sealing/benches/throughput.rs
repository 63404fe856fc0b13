//! Seal/unseal throughput on a large streamed input (default 1 GiB, `INFT_BENCH_BYTES` to
//! change), one thread and all threads, next to `openssl speed -evp aes-256-gcm` measured in the
//! same run. The input is generated on the fly (never on disk); the sealed blob is kept in
//! memory once so that unsealing reads it back.
//!
//! `cargo bench -p sealing --bench throughput`

use std::io::{self, Read, Write};
use std::process::Command;
use std::time::Instant;

use sealing::{DataKey, SealOptions, commitment_of_with, open, seal};

/// An endless-looking reader: `len` bytes cycling through a 1 MiB pseudo-random block.
struct Gen {
    block: Vec<u8>,
    pos: u64,
    len: u64,
}

impl Gen {
    fn new(len: u64) -> Self {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let block = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Self { block, pos: 0, len }
    }
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len - self.pos;
        let off = (self.pos % self.block.len() as u64) as usize;
        let n = buf.len().min(self.block.len() - off).min(left as usize);
        buf[..n].copy_from_slice(&self.block[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Counts bytes and drops them.
struct Count(u64);
impl Write for Count {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

/// CPU time (user + system) this process has used so far, from /proc/self/stat (Linux; 0
/// elsewhere). Clock ticks are 1/100 s on Linux.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// One measurement: best wall-clock GB/s of `reps` runs, and the CPU-time GB/s and average
/// parallelism (CPU seconds / wall seconds) of that best run.
#[derive(Clone, Copy)]
struct M {
    wall: f64,
    cpu: f64,
    par: f64,
}

fn best(reps: usize, bytes: u64, mut f: impl FnMut()) -> M {
    (0..reps)
        .map(|_| {
            let c0 = cpu_secs();
            let t = Instant::now();
            f();
            let wall = t.elapsed().as_secs_f64();
            let cpu = (cpu_secs() - c0).max(1e-9);
            M {
                wall: gbps(bytes, wall),
                cpu: gbps(bytes, cpu),
                par: cpu / wall,
            }
        })
        .fold(
            M {
                wall: 0.0,
                cpu: 0.0,
                par: 0.0,
            },
            |a, m| if m.wall > a.wall { m } else { a },
        )
}

/// `openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 [-multi N]`, in GB/s.
fn openssl(multi: Option<usize>) -> Option<f64> {
    let mut cmd = Command::new("openssl");
    cmd.arg("speed");
    if let Some(m) = multi {
        cmd.args(["-multi", &m.to_string()]);
    }
    cmd.args(["-evp", "aes-256-gcm", "-bytes", "16384", "-seconds", "3"]);
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.to_ascii_lowercase().starts_with("aes-256-gcm"))?;
    let v: f64 = line
        .split_whitespace()
        .last()?
        .trim_end_matches('k')
        .parse()
        .ok()?;
    Some(v * 1000.0 / 1e9)
}

fn main() {
    let bytes: u64 = std::env::var("INFT_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let reps: usize = std::env::var("INFT_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key = DataKey::generate();
    println!(
        "input {:.2} GiB, chunk 1 MiB, {cores} cores, best of {reps}",
        bytes as f64 / (1u64 << 30) as f64
    );

    let one = SealOptions {
        threads: 1,
        ..SealOptions::default()
    };
    let all = SealOptions {
        threads: cores,
        ..SealOptions::default()
    };

    let mut blob = Vec::with_capacity(bytes as usize + (bytes as usize >> 16) + 4096);
    let seal1 = best(reps, bytes, || {
        blob.clear();
        seal(&key, Gen::new(bytes), &mut blob, &one).unwrap();
    });
    let seal_n = best(reps, bytes, || {
        blob.clear();
        seal(&key, Gen::new(bytes), &mut blob, &all).unwrap();
    });
    let open1 = best(reps, bytes, || {
        let mut c = Count(0);
        open(&key, &blob[..], &mut c, &one).unwrap();
        assert_eq!(c.0, bytes);
    });
    let open_n = best(reps, bytes, || {
        open(&key, &blob[..], &mut Count(0), &all).unwrap();
    });
    let commit1 = best(reps, bytes, || {
        commitment_of_with(&blob[..], &one).unwrap();
    });
    let commit_n = best(reps, bytes, || {
        commitment_of_with(&blob[..], &all).unwrap();
    });
    drop(blob);

    // The two halves of unsealing, raw, one thread: AES-256-GCM (ring) and the BLAKE3 leaf
    // hash; SHA-256 (the retired suite 1's leaf hash) for comparison.
    let (aead1, blake1, sha1): (M, M, M) = {
        use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        use sha2::Digest;
        let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
        let mut buf = vec![0u8; 1 << 20];
        let n = (bytes >> 20).min(1024);
        let aead = best(reps, n << 20, || {
            for i in 0..n {
                let mut nonce = [0u8; 12];
                nonce[..8].copy_from_slice(&i.to_be_bytes());
                let _tag = k
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::empty(),
                        &mut buf,
                    )
                    .unwrap();
            }
        });
        let blake = best(reps, n << 20, || {
            for _ in 0..n {
                std::hint::black_box(blake3::hash(&buf));
            }
        });
        let sha = best(reps, n << 20, || {
            for _ in 0..n {
                std::hint::black_box(sha2::Sha256::digest(&buf));
            }
        });
        (aead, blake, sha)
    };

    println!(
        "running openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 (and -multi {cores}) ..."
    );
    let ossl1 = openssl(None);
    let ossl_n = openssl(Some(cores));

    println!();
    println!(
        "{:<44} {:>8} {:>8} {:>6}",
        "GB/s of plaintext", "wall", "per-CPU", "CPUs"
    );
    let row = |name: String, m: M| {
        println!("{name:<44} {:>8.2} {:>8.2} {:>6.2}", m.wall, m.cpu, m.par);
    };
    row("seal, 1 thread".into(), seal1);
    row(format!("seal, {cores} threads"), seal_n);
    row("unseal (open + commitment), 1 thread".into(), open1);
    row(
        format!("unseal (open + commitment), {cores} threads"),
        open_n,
    );
    row("commitment_of (no key), 1 thread".into(), commit1);
    row(format!("commitment_of (no key), {cores} threads"), commit_n);
    row("raw AES-256-GCM (ring), 1 MiB, 1 thread".into(), aead1);
    row("raw BLAKE3 (leaf hash), 1 MiB, 1 thread".into(), blake1);
    row("raw SHA-256 (sha2), 1 MiB, 1 thread".into(), sha1);
    // openssl speed divides by user CPU time unless given -elapsed: compare with per-CPU.
    match ossl1 {
        Some(o) => println!(
            "{:<44} {:>8} {o:>8.2}",
            "openssl speed aes-256-gcm 16 KiB, 1 proc", ""
        ),
        None => println!("openssl speed: not available"),
    }
    if let Some(o) = ossl_n {
        println!(
            "{:<44} {:>8} {o:>8.2}",
            format!("openssl speed ... -multi {cores} (sum)"),
            ""
        );
    }
    println!();
    if let Some(o) = ossl1 {
        println!(
            "unseal 1 thread / openssl 1 proc:    {:.2} wall, {:.2} per-CPU  (goal >= 0.9)",
            open1.wall / o,
            open1.cpu / o
        );
        println!(
            "raw AEAD 1 thread / openssl 1 proc:  {:.2} wall, {:.2} per-CPU",
            aead1.wall / o,
            aead1.cpu / o
        );
        println!(
            "seal 1 thread / openssl 1 proc:      {:.2} wall, {:.2} per-CPU",
            seal1.wall / o,
            seal1.cpu / o
        );
    }
    println!(
        "unseal {cores} threads / 1 thread:        {:.2} wall  (goal >= 1.8 on 2 cores; see the CPUs column)",
        open_n.wall / open1.wall
    );
    println!(
        "seal {cores} threads / 1 thread:          {:.2} wall",
        seal_n.wall / seal1.wall
    );
    if let (Some(o1), Some(on)) = (ossl1, ossl_n) {
        println!(
            "openssl -multi {cores} / 1 proc:           {:.2} (openssl sums per-CPU-second rates)",
            on / o1
        );
    }
    println!(
        "bound per core for decrypt + commitment: 1 / (1/AEAD + 1/BLAKE3) = {:.2} GB/s (per-CPU figures; {:.2} with SHA-256 leaves)",
        1.0 / (1.0 / aead1.cpu + 1.0 / blake1.cpu),
        1.0 / (1.0 / aead1.cpu + 1.0 / sha1.cpu)
    );
}
