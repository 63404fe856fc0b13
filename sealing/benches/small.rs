//! Criterion benchmarks for small inputs: blob seal/open at a few sizes, sealed keys, key
//! derivation from a wallet signature. Large-input throughput is in `throughput.rs`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sealing::{
    Commitment, DataKey, KeyContext, SealOptions, SealedKey, SealingSecret, commitment_of, open,
    seal,
};

fn blobs(c: &mut Criterion) {
    let key = DataKey::from_bytes([1; 32]);
    let mut g = c.benchmark_group("blob");
    for size in [4 << 10, 256 << 10, 4 << 20] {
        let data = vec![0x5au8; size];
        let opts = SealOptions {
            chunk_size: 64 << 10,
            threads: 1,
        };
        let mut blob = Vec::new();
        seal(&key, &data[..], &mut blob, &opts).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal_1t", size), &data, |b, d| {
            b.iter(|| {
                let mut out = Vec::with_capacity(d.len() + 4096);
                seal(&key, &d[..], &mut out, &opts).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("open_1t", size), &blob, |b, bl| {
            b.iter(|| {
                let mut out = Vec::with_capacity(bl.len());
                open(&key, &bl[..], &mut out, &opts).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("commitment_of", size), &blob, |b, bl| {
            b.iter(|| commitment_of(&bl[..]).unwrap())
        });
    }
    g.finish();
}

fn keys(c: &mut Criterion) {
    let owner = SealingSecret::from_bytes([2; 32]);
    let ctx = KeyContext::local(Commitment::from_bytes([3; 32]));
    let dk = DataKey::from_bytes([4; 32]);
    let sk = SealedKey::seal(&dk, &owner.public_key(), &ctx).unwrap();
    c.bench_function("sealed_key/seal", |b| {
        b.iter(|| SealedKey::seal(&dk, &owner.public_key(), &ctx).unwrap())
    });
    c.bench_function("sealed_key/open", |b| {
        b.iter(|| sk.open(&owner, &ctx).unwrap())
    });
    let mut sig = [0x11u8; 65];
    sig[64] = 27;
    c.bench_function("wallet_key/derive", |b| {
        b.iter(|| SealingSecret::from_wallet_signature(&sig).unwrap())
    });
}

criterion_group!(benches, blobs, keys);
criterion_main!(benches);
