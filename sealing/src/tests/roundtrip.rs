//! Round trips at the edge sizes and random sizes, chunk sizes and thread counts.

use proptest::prelude::*;

use crate::*;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn round_trip(len: usize, chunk_size: u32, threads: usize) {
    let opts = SealOptions {
        chunk_size,
        threads,
    };
    let key = DataKey::generate();
    let pt = data(len, len as u8);
    let mut blob = Vec::new();
    let s = seal(&key, &pt[..], &mut blob, &opts).unwrap();
    let cs = chunk_size as usize;
    let chunks = len.div_ceil(cs).max(1);
    assert_eq!(
        blob.len(),
        HEADER_LEN + len + chunks * TAG_LEN,
        "len {len} cs {cs}"
    );
    assert_eq!(s.ciphertext_len as usize, blob.len());
    assert_eq!(s.plaintext_len as usize, len);
    let mut out = Vec::new();
    let o = open_verified(&key, &s.commitment, &blob[..], &mut out, &opts).unwrap();
    assert_eq!(out, pt);
    assert_eq!(o.plaintext_len as usize, len);
    assert_eq!(o.commitment, s.commitment);
    assert_eq!(commitment_of_with(&blob[..], &opts).unwrap(), s.commitment);
}

#[test]
fn edge_sizes() {
    for cs in [16u32, 64, 1000] {
        let c = cs as usize;
        for len in [0, 1, c - 1, c, c + 1, 2 * c, 7 * c + 3, 300 * c] {
            for threads in [0, 1, 2, 4] {
                round_trip(len, cs, threads);
            }
        }
    }
}

#[test]
fn default_options_multi_chunk() {
    // A few real 1 MiB chunks through the default path (all cores).
    round_trip(3 * (1 << 20) + 17, DEFAULT_CHUNK_SIZE, 0);
}

#[test]
fn many_batches() {
    // 16-byte chunks: 64 Ki chunks (1 MiB) per batch, so this spans two batches.
    for threads in [0, 1, 3] {
        round_trip((1 << 20) + 5000, 16, threads);
    }
}

#[test]
fn threads_do_not_change_the_blob() {
    // Same key and nonce prefix: the bytes must not depend on the thread count or batching.
    let key = DataKey::from_bytes([9; 32]);
    let pt = data(5000, 1);
    let mut blobs = Vec::new();
    for threads in [1, 2, 3, 8] {
        let mut b = Vec::new();
        let o = SealOptions {
            chunk_size: 16,
            threads,
        };
        crate::stream::seal_with(&key, [0; 7], 0, &pt[..], &mut b, &o).unwrap();
        blobs.push(b);
    }
    assert!(blobs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn fresh_nonce_prefix_per_seal() {
    let key = DataKey::from_bytes([9; 32]);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    seal(&key, &b"same"[..], &mut a, &SealOptions::default()).unwrap();
    seal(&key, &b"same"[..], &mut b, &SealOptions::default()).unwrap();
    assert_ne!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip(len in 0usize..4000, cs in 16u32..300, threads in 1usize..4) {
        round_trip(len, cs, threads);
    }

    #[test]
    fn prop_open_never_panics_on_garbage(tail in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..800) {
        // A valid header followed by garbage, or a valid blob cut anywhere: always an error, never a panic.
        let key = DataKey::from_bytes([3; 32]);
        let mut blob = Vec::new();
        seal(&key, &data(500, 3)[..], &mut blob, &SealOptions { chunk_size: 32, threads: 2 }).unwrap();
        let mut g = blob[..HEADER_LEN].to_vec();
        g.extend_from_slice(&tail);
        prop_assert!(open(&key, &g[..], &mut Vec::new(), &SealOptions::default()).is_err());
        let cut = cut.min(blob.len() - 1);
        prop_assert!(open(&key, &blob[..cut], &mut Vec::new(), &SealOptions::default()).is_err());
        let _ = commitment_of(&g[..]);
    }
}
