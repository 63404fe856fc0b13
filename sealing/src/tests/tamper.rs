//! The tamper matrix: every kind of damage is refused, each with its own error.

use crate::stream::{open_from, seal_with};
use crate::*;

const CS: u32 = 64;
const REC: usize = CS as usize + TAG_LEN;
const PREFIX: [u8; 7] = [1, 2, 3, 4, 5, 6, 7];

fn key() -> DataKey {
    DataKey::from_bytes([0x42; 32])
}

fn opts() -> SealOptions {
    SealOptions {
        chunk_size: CS,
        threads: 2,
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 256) as u8).collect()
}

/// Six chunks: five full, the final one 10 bytes.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let pt = data(CS as usize * 5 + 10);
    let mut blob = Vec::new();
    seal_with(&key(), PREFIX, 0, &pt[..], &mut blob, &opts()).unwrap();
    (pt, blob)
}

fn record(i: usize) -> std::ops::Range<usize> {
    HEADER_LEN + i * REC..HEADER_LEN + (i + 1) * REC
}

fn open_err(blob: &[u8]) -> OpenError {
    for threads in [1, 2] {
        let o = SealOptions { threads, ..opts() };
        let mut out = Vec::new();
        if let Ok(s) = open(&key(), blob, &mut out, &o) {
            panic!("tampered blob opened ({threads} threads): {s:?}");
        }
    }
    let mut out = Vec::new();
    open(&key(), blob, &mut out, &opts()).unwrap_err()
}

#[test]
fn intact_sample_opens() {
    let (pt, blob) = sample();
    assert_eq!(blob.len(), HEADER_LEN + 5 * REC + 10 + TAG_LEN);
    let mut out = Vec::new();
    open(&key(), &blob[..], &mut out, &opts()).unwrap();
    assert_eq!(out, pt);
}

#[test]
fn every_header_byte() {
    let (_, blob) = sample();
    for off in 0..HEADER_LEN {
        let mut b = blob.clone();
        b[off] ^= 0x01;
        let e = open_err(&b);
        let ok = match off {
            0..8 => matches!(e, OpenError::BadMagic),
            8 => matches!(e, OpenError::Version(0)),
            9 => matches!(e, OpenError::Suite(3)),
            // chunk size 64 -> 65 (byte 15) or a huge value (byte 12) stays or leaves bounds
            12 => matches!(e, OpenError::ChunkSize(_)),
            24..40 => matches!(e, OpenError::WrongKey),
            // reserved bytes, in-bounds chunk size, nonce prefix, MAC
            _ => matches!(e, OpenError::Header),
        };
        assert!(ok, "header byte {off}: unexpected {e:?}");
    }
}

#[test]
fn header_chunk_size_bounds() {
    let (_, blob) = sample();
    for (cs, bounds) in [
        (0u32, true),
        (15, true),
        (MAX_CHUNK_SIZE + 1, true),
        (128, false),
    ] {
        let mut b = blob.clone();
        b[12..16].copy_from_slice(&cs.to_be_bytes());
        let e = open_err(&b);
        if bounds {
            assert!(
                matches!(e, OpenError::ChunkSize(x) if x == cs),
                "{cs}: {e:?}"
            );
        } else {
            assert!(matches!(e, OpenError::Header), "{cs}: {e:?}");
        }
    }
}

#[test]
fn truncated_header() {
    let (_, blob) = sample();
    for n in 0..HEADER_LEN {
        assert!(
            matches!(open_err(&blob[..n]), OpenError::TruncatedHeader),
            "{n}"
        );
    }
    assert!(matches!(
        open_err(b"not a blob at all"),
        OpenError::BadMagic
    ));
}

#[test]
fn flipped_bit_in_each_chunk() {
    let (_, blob) = sample();
    for i in 0..6 {
        let r = record(i);
        let end = r.end.min(blob.len());
        for off in [r.start, r.start + 5, end - TAG_LEN, end - 1] {
            let mut b = blob.clone();
            b[off] ^= 0x80;
            let e = open_err(&b);
            assert!(
                matches!(e, OpenError::Chunk { index } if index == i as u64),
                "chunk {i} byte {off}: {e:?}"
            );
        }
    }
}

#[test]
fn truncation_at_each_chunk_boundary() {
    let (_, blob) = sample();
    for k in 0..6 {
        let e = open_err(&blob[..HEADER_LEN + k * REC]);
        assert!(
            matches!(e, OpenError::Truncated { chunks } if chunks == k as u64),
            "cut after {k} chunks: {e:?}"
        );
    }
}

#[test]
fn truncation_inside_chunks() {
    let (_, blob) = sample();
    // Inside a record but past its tag length: the partial chunk fails authentication.
    let e = open_err(&blob[..HEADER_LEN + 2 * REC + 30]);
    assert!(matches!(e, OpenError::Chunk { index: 2 }), "{e:?}");
    // Shorter than a tag.
    let e = open_err(&blob[..HEADER_LEN + 2 * REC + 7]);
    assert!(matches!(e, OpenError::ShortChunk { index: 2 }), "{e:?}");
    // One byte off the end.
    let e = open_err(&blob[..blob.len() - 1]);
    assert!(matches!(e, OpenError::Chunk { index: 5 }), "{e:?}");
}

#[test]
fn swapped_chunks() {
    let (_, blob) = sample();
    let mut b = blob.clone();
    let (c1, c3) = (blob[record(1)].to_vec(), blob[record(3)].to_vec());
    b[record(1)].copy_from_slice(&c3);
    b[record(3)].copy_from_slice(&c1);
    let e = open_err(&b);
    assert!(
        matches!(
            e,
            OpenError::Reordered {
                index: 1,
                original: 3
            }
        ),
        "{e:?}"
    );
}

#[test]
fn duplicated_chunk() {
    let (_, blob) = sample();
    let mut b = blob[..record(2).end].to_vec();
    b.extend_from_slice(&blob[record(2)]);
    b.extend_from_slice(&blob[record(3).start..]);
    let e = open_err(&b);
    assert!(
        matches!(
            e,
            OpenError::Reordered {
                index: 3,
                original: 2
            }
        ),
        "{e:?}"
    );
}

#[test]
fn dropped_chunk() {
    let (_, blob) = sample();
    let mut b = blob[..record(1).start].to_vec();
    b.extend_from_slice(&blob[record(2).start..]);
    let e = open_err(&b);
    assert!(
        matches!(
            e,
            OpenError::Reordered {
                index: 1,
                original: 2
            }
        ),
        "{e:?}"
    );
}

#[test]
fn chunk_from_another_blob() {
    let (_, blob) = sample();
    let mut other = Vec::new();
    seal(&key(), &data(CS as usize * 5 + 10)[..], &mut other, &opts()).unwrap();
    let mut b = blob.clone();
    b[record(2)].copy_from_slice(&other[record(2)]);
    let e = open_err(&b);
    assert!(matches!(e, OpenError::Chunk { index: 2 }), "{e:?}");
}

#[test]
fn appended_data() {
    let (_, blob) = sample();
    for extra in [1usize, 15, 16, 17, REC, 3 * REC + 5] {
        let mut b = blob.clone();
        b.extend(std::iter::repeat_n(0xa5, extra));
        let e = open_err(&b);
        assert!(
            matches!(e, OpenError::TrailingData { after_chunk: 5 }),
            "+{extra}: {e:?}"
        );
    }
}

#[test]
fn appended_data_after_full_final_chunk() {
    let mut blob = Vec::new();
    seal_with(
        &key(),
        PREFIX,
        0,
        &data(3 * CS as usize)[..],
        &mut blob,
        &opts(),
    )
    .unwrap();
    for extra in [1usize, 16, REC, 2 * REC + 1] {
        let mut b = blob.clone();
        b.extend(std::iter::repeat_n(0x00, extra));
        let e = open_err(&b);
        assert!(
            matches!(e, OpenError::TrailingData { after_chunk: 2 }),
            "+{extra}: {e:?}"
        );
    }
}

#[test]
fn second_last_chunk() {
    // Same key and prefix (possible only for whoever holds the key): a 3-chunk blob whose
    // final chunk is followed by chunk 3 of a longer blob, flagged last or not.
    let mut a = Vec::new();
    seal_with(
        &key(),
        PREFIX,
        0,
        &data(3 * CS as usize)[..],
        &mut a,
        &opts(),
    )
    .unwrap();
    for total_chunks in [4usize, 6] {
        let mut long = Vec::new();
        let pt = data(total_chunks * CS as usize);
        seal_with(&key(), PREFIX, 0, &pt[..], &mut long, &opts()).unwrap();
        let mut b = a.clone();
        b.extend_from_slice(&long[record(3)]);
        let e = open_err(&b);
        assert!(
            matches!(e, OpenError::ChunkAfterLast { index: 3 }),
            "{total_chunks}: {e:?}"
        );
    }
}

#[test]
fn counter_overflow() {
    let start = u64::from(u32::MAX) - 1;
    // Two chunks fit below the limit (indices 2^32-2 and 2^32-1)...
    let mut blob = Vec::new();
    let pt = data(2 * CS as usize);
    seal_with(&key(), PREFIX, start, &pt[..], &mut blob, &opts()).unwrap();
    let mut out = Vec::new();
    open_from(&key(), &blob[..], &mut out, &opts(), start).unwrap();
    assert_eq!(out, pt);
    // ...a third would wrap the counter.
    let e = seal_with(
        &key(),
        PREFIX,
        start,
        &data(2 * CS as usize + 1)[..],
        &mut Vec::new(),
        &opts(),
    );
    assert!(matches!(e, Err(SealError::TooLarge)), "{e:?}");
    let mut b = blob.clone();
    b.extend_from_slice(&blob[record(0)]);
    let e = open_from(&key(), &b[..], &mut Vec::new(), &opts(), start).unwrap_err();
    assert!(matches!(e, OpenError::CounterOverflow), "{e:?}");
}

#[test]
fn wrong_key() {
    let (_, blob) = sample();
    let e = open(
        &DataKey::from_bytes([0x43; 32]),
        &blob[..],
        &mut Vec::new(),
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, OpenError::WrongKey), "{e:?}");
}

#[test]
fn commitment_mismatch() {
    let (_, blob) = sample();
    let real = commitment_of(&blob[..]).unwrap();
    let mut wrong = *real.as_bytes();
    wrong[0] ^= 1;
    let e = open_verified(
        &key(),
        &Commitment::from_bytes(wrong),
        &blob[..],
        &mut Vec::new(),
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(e, OpenError::CommitmentMismatch { actual, .. } if actual == real),
        "{e:?}"
    );
    open_verified(&key(), &real, &blob[..], &mut Vec::new(), &opts()).unwrap();
}

#[test]
fn commitment_changes_with_any_byte() {
    let (_, blob) = sample();
    let real = commitment_of(&blob[..]).unwrap();
    for off in (0..blob.len()).step_by(7) {
        let mut b = blob.clone();
        b[off] ^= 1;
        // Key-less structural errors (bad magic etc.) are fine too; a different root is required otherwise.
        if let Ok(c) = commitment_of(&b[..]) {
            assert_ne!(c, real, "byte {off}");
        }
    }
}

#[test]
fn commitment_structure_errors() {
    let (_, blob) = sample();
    assert!(matches!(
        commitment_of(&blob[..HEADER_LEN]),
        Err(OpenError::Truncated { chunks: 0 })
    ));
    assert!(matches!(
        commitment_of(&blob[..HEADER_LEN + REC + 3]),
        Err(OpenError::ShortChunk { index: 1 })
    ));
    assert!(matches!(
        commitment_of(&blob[..10]),
        Err(OpenError::TruncatedHeader)
    ));
}

#[test]
fn bad_seal_options() {
    for cs in [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1] {
        let o = SealOptions {
            chunk_size: cs,
            threads: 1,
        };
        let e = seal(&key(), &b"x"[..], &mut Vec::new(), &o);
        assert!(
            matches!(e, Err(SealError::ChunkSize(x)) if x == cs),
            "{e:?}"
        );
    }
}

/// A reader that fails after `ok` bytes, returning `Interrupted` now and then.
struct Flaky {
    data: Vec<u8>,
    pos: usize,
    fail_at: usize,
    tick: u32,
}

impl std::io::Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tick += 1;
        if self.tick.is_multiple_of(3) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        if self.pos >= self.fail_at {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf
            .len()
            .min(self.data.len() - self.pos)
            .min(self.fail_at - self.pos)
            .min(13);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn io_errors_and_interrupts() {
    let (pt, blob) = sample();
    // Interrupted reads are retried: a slow, interrupting reader still round-trips.
    let r = Flaky {
        data: pt.clone(),
        pos: 0,
        fail_at: usize::MAX,
        tick: 0,
    };
    let mut b2 = Vec::new();
    seal_with(&key(), PREFIX, 0, r, &mut b2, &opts()).unwrap();
    assert_eq!(b2, blob);
    let r = Flaky {
        data: pt.clone(),
        pos: 0,
        fail_at: 100,
        tick: 0,
    };
    assert!(matches!(
        seal(&key(), r, &mut Vec::new(), &opts()),
        Err(SealError::Io(_))
    ));
    let r = Flaky {
        data: blob.clone(),
        pos: 0,
        fail_at: 200,
        tick: 0,
    };
    assert!(matches!(
        open(&key(), r, &mut Vec::new(), &opts()),
        Err(OpenError::Io(_))
    ));
}
