//! Arbitrary bytes as a sealed blob (seeded with valid blobs): opening and key-less commitment
//! never panic, and whatever opens has the commitment that `commitment_of` computes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealing::{DataKey, SealOptions};

fuzz_target!(|data: &[u8]| {
    let key = DataKey::from_bytes([0x42; 32]);
    let opts = SealOptions { chunk_size: 64, threads: 1 };
    let mut out = Vec::new();
    let opened = sealing::open(&key, data, &mut out, &opts);
    let keyless = sealing::commitment_of_with(data, &opts);
    if let Ok(s) = opened {
        assert_eq!(keyless.unwrap(), s.commitment);
        assert_eq!(s.plaintext_len as usize, out.len());
    }
});
