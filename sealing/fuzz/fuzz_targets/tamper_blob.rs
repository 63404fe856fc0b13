//! Structure-aware: seal a plaintext, apply arbitrary edits to the blob, open it. An unchanged
//! blob must open to the same plaintext and commitment; any changed blob must be refused.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sealing::{DataKey, SealOptions};

#[derive(Debug, Arbitrary)]
enum Edit {
    Flip { at: u16, mask: u8 },
    Truncate { len: u16 },
    Append { bytes: Vec<u8> },
    Swap { a: u16, b: u16, len: u8 },
    Duplicate { at: u16, len: u8 },
    Remove { at: u16, len: u8 },
}

#[derive(Debug, Arbitrary)]
struct Case {
    plaintext: Vec<u8>,
    chunk_size: u8,
    threads: u8,
    edits: Vec<Edit>,
}

fuzz_target!(|c: Case| {
    let key = DataKey::from_bytes([0x24; 32]);
    let opts = SealOptions {
        chunk_size: 16 + u32::from(c.chunk_size),
        threads: 1 + usize::from(c.threads % 3),
    };
    let mut blob = Vec::new();
    let sealed = sealing::seal(&key, &c.plaintext[..], &mut blob, &opts).unwrap();
    let original = blob.clone();
    for e in &c.edits {
        let n = blob.len();
        match *e {
            Edit::Flip { at, mask } if n > 0 => blob[usize::from(at) % n] ^= mask,
            Edit::Truncate { len } => blob.truncate(usize::from(len)),
            Edit::Append { ref bytes } => blob.extend_from_slice(bytes),
            Edit::Swap { a, b, len } if n > 0 => {
                let len = usize::from(len).min(n / 2);
                let (a, b) = (usize::from(a) % (n - len + 1), usize::from(b) % (n - len + 1));
                let (lo, hi) = (a.min(b), a.max(b));
                if hi >= lo + len {
                    let tmp = blob[lo..lo + len].to_vec();
                    blob.copy_within(hi..hi + len, lo);
                    blob[hi..hi + len].copy_from_slice(&tmp);
                }
            }
            Edit::Duplicate { at, len } if n > 0 => {
                let at = usize::from(at) % n;
                let end = (at + usize::from(len)).min(n);
                let piece = blob[at..end].to_vec();
                blob.splice(end..end, piece);
            }
            Edit::Remove { at, len } if n > 0 => {
                let at = usize::from(at) % n;
                let end = (at + usize::from(len)).min(n);
                blob.drain(at..end);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let res = sealing::open(&key, &blob[..], &mut out, &opts);
    if blob == original {
        let s = res.unwrap();
        assert_eq!(out, c.plaintext);
        assert_eq!(s.commitment, sealed.commitment);
    } else {
        assert!(res.is_err(), "an altered blob opened");
        if let Ok(cm) = sealing::commitment_of(&blob[..]) {
            assert_ne!(cm, sealed.commitment, "an altered blob kept its commitment");
        }
    }
});
