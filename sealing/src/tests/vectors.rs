//! Test vectors from `tests/vectors/*.txt` (format in FORMAT.md), one test per file.
//!
//! Regenerate after a deliberate format change (then review the diff and bump the version):
//! `INFT_WRITE_VECTORS=1 cargo test -p sealing --lib write_vectors -- --ignored`

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::stream::seal_with;
use crate::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// `name: value` lines; `#` starts a comment line.
fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn h(v: &str) -> Vec<u8> {
    hex::decode(v.trim_start_matches("0x")).unwrap()
}

fn h32(v: &str) -> [u8; 32] {
    h(v).try_into().unwrap()
}

/// The plaintext pattern used by vectors: byte i = i mod 251.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn describe(e: &OpenError) -> String {
    match e {
        OpenError::BadMagic => "bad-magic".into(),
        OpenError::Version(v) => format!("version {v}"),
        OpenError::Suite(s) => format!("suite {s}"),
        OpenError::ChunkSize(c) => format!("chunk-size {c}"),
        OpenError::TruncatedHeader => "truncated-header".into(),
        OpenError::WrongKey => "wrong-key".into(),
        OpenError::Header => "header".into(),
        OpenError::Chunk { index } => format!("chunk {index}"),
        OpenError::Reordered { index, original } => format!("reordered {index} {original}"),
        OpenError::ShortChunk { index } => format!("short-chunk {index}"),
        OpenError::Truncated { chunks } => format!("truncated {chunks}"),
        OpenError::TrailingData { after_chunk } => format!("trailing-data {after_chunk}"),
        OpenError::ChunkAfterLast { index } => format!("chunk-after-last {index}"),
        OpenError::CounterOverflow => "counter-overflow".into(),
        OpenError::CommitmentMismatch { .. } => "commitment-mismatch".into(),
        OpenError::Io(e) => format!("io {e}"),
    }
}

fn ctx_of(v: &BTreeMap<String, String>) -> KeyContext {
    KeyContext {
        chain_id: v["chain_id"].parse().unwrap(),
        contract: h(&v["contract"]).try_into().unwrap(),
        token_id: h32(&v["token_id"]),
        data_hash: Commitment::from_hex(&v["data_hash"]).unwrap(),
    }
}

fn run(name: &str) {
    let path = dir().join(format!("{name}.txt"));
    let v = parse(&std::fs::read_to_string(&path).unwrap());
    let expect = v["expect"].as_str();
    match v["kind"].as_str() {
        "blob" => {
            let key = DataKey::from_bytes(h32(&v["key"]));
            let blob = if let Some(b) = v.get("blob") {
                h(b)
            } else {
                // Large ok vectors give the plaintext length and the blob's sha256 instead.
                let pt = pattern(v["plaintext_len"].parse().unwrap());
                let prefix: [u8; 7] = h(&v["nonce_prefix"]).try_into().unwrap();
                let opts = SealOptions {
                    chunk_size: v["chunk_size"].parse().unwrap(),
                    threads: 2,
                };
                let mut b = Vec::new();
                seal_with(&key, prefix, 0, &pt[..], &mut b, &opts).unwrap();
                b
            };
            if let Some(sha) = v.get("blob_sha256") {
                assert_eq!(hex::encode(Sha256::digest(&blob)), *sha, "blob sha256");
            }
            let mut out = Vec::new();
            let res = open(
                &key,
                &blob[..],
                &mut out,
                &SealOptions {
                    chunk_size: 16,
                    threads: 2,
                },
            );
            match (expect, res) {
                ("ok", Ok(s)) => {
                    let pt = pattern(v["plaintext_len"].parse().unwrap());
                    assert_eq!(out, pt);
                    assert_eq!(s.commitment.to_hex(), v["commitment"]);
                    assert_eq!(commitment_of(&blob[..]).unwrap(), s.commitment);
                    // Sealing with the vector's inputs reproduces the blob byte for byte.
                    let prefix: [u8; 7] = h(&v["nonce_prefix"]).try_into().unwrap();
                    let opts = SealOptions {
                        chunk_size: v["chunk_size"].parse().unwrap(),
                        threads: 1,
                    };
                    let mut b = Vec::new();
                    seal_with(&key, prefix, 0, &pt[..], &mut b, &opts).unwrap();
                    assert_eq!(b, blob, "seal reproduces the vector");
                }
                (exp, Err(e)) => assert_eq!(describe(&e), exp, "{name}"),
                (exp, Ok(_)) => panic!("{name}: opened, expected {exp}"),
            }
        }
        "sealed-key" => {
            let secret = SealingSecret::from_bytes(h32(&v["recipient_secret"]));
            assert_eq!(secret.public_key().to_hex(), v["recipient_public"]);
            let ctx = ctx_of(&v);
            let res =
                SealedKey::from_bytes(&h(&v["sealed_key"])).and_then(|k| k.open(&secret, &ctx));
            match (expect, res) {
                ("ok", Ok(dk)) => {
                    assert_eq!(hex::encode(dk.expose()), v["data_key"]);
                    let again = SealedKey::seal_with_ephemeral(
                        &dk,
                        &secret.public_key(),
                        &ctx,
                        &h32(&v["ephemeral_secret"]),
                    )
                    .unwrap();
                    assert_eq!(again.to_hex(), v["sealed_key"]);
                }
                ("unseal", Err(KeyError::Unseal)) => {}
                ("length", Err(KeyError::Length { .. })) => {}
                ("version", Err(KeyError::Version(_))) => {}
                ("low-order", Err(KeyError::LowOrderPoint)) => {}
                (exp, r) => panic!("{name}: expected {exp}, got {r:?}"),
            }
        }
        "wallet-key" => {
            let sig: [u8; 65] = h(&v["signature"]).try_into().unwrap();
            let s = SealingSecret::from_wallet_signature(&sig);
            match expect {
                "ok" => assert_eq!(s.unwrap().public_key().to_hex(), v["public_key"]),
                _ => assert!(matches!(s, Err(KeyError::InvalidSignature))),
            }
        }
        "key-file" => {
            let f = EncryptedKeyFile::from_json(&v["file"]).unwrap();
            assert_eq!(f.public_key().to_hex(), v["public_key"]);
            let r = f.decrypt(v["passphrase"].as_bytes());
            match expect {
                "ok" => assert_eq!(r.unwrap().public_key().to_hex(), v["public_key"]),
                _ => assert!(matches!(r, Err(KeyFileError::Passphrase))),
            }
        }
        k => panic!("unknown vector kind {k}"),
    }
}

macro_rules! vectors {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { run(stringify!($name)); } )*

        #[test]
        fn every_vector_file_has_a_test() {
            let mut files: Vec<String> = std::fs::read_dir(dir())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter_map(|f| f.strip_suffix(".txt").map(str::to_owned))
                .collect();
            files.sort();
            let mut listed = vec![$(stringify!($name).to_owned()),*];
            listed.sort();
            assert_eq!(files, listed);
        }
    };
}

vectors!(
    blob_empty,
    blob_one_byte,
    blob_exact_chunk,
    blob_multi_chunk,
    blob_large_1mib_chunks,
    blob_bad_magic,
    blob_version,
    blob_header_mac,
    blob_wrong_key,
    blob_flipped_chunk,
    blob_truncated,
    blob_swapped,
    blob_trailing_data,
    blob_short_chunk,
    blob_chunk_size_bounds,
    sealed_key_ok,
    sealed_key_wrong_chain,
    sealed_key_wrong_contract,
    sealed_key_wrong_token,
    sealed_key_wrong_hash,
    sealed_key_wrong_recipient,
    sealed_key_low_order,
    sealed_key_version,
    wallet_key_ok,
    wallet_key_invalid,
    key_file_ok,
    key_file_wrong_passphrase,
);

/// Writes the vector files from this implementation. Run only after a deliberate format change.
#[test]
#[ignore = "writes tests/vectors; run with INFT_WRITE_VECTORS=1"]
fn write_vectors() {
    if std::env::var("INFT_WRITE_VECTORS").is_err() {
        return;
    }
    let d = dir();
    std::fs::create_dir_all(&d).unwrap();
    let write = |name: &str, lines: Vec<String>| {
        std::fs::write(d.join(format!("{name}.txt")), lines.join("\n") + "\n").unwrap();
    };
    let key_bytes = [0x42u8; 32];
    let key = DataKey::from_bytes(key_bytes);
    let prefix = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6];
    let mk = |len: usize, cs: u32| {
        let mut b = Vec::new();
        let s = seal_with(
            &key,
            prefix,
            0,
            &pattern(len)[..],
            &mut b,
            &SealOptions {
                chunk_size: cs,
                threads: 1,
            },
        )
        .unwrap();
        (b, s.commitment)
    };
    let blob_head = |desc: &str, len: usize, cs: u32| {
        vec![
            format!("# {desc}"),
            "kind: blob".into(),
            format!("key: {}", hex::encode(key_bytes)),
            format!("nonce_prefix: {}", hex::encode(prefix)),
            format!("chunk_size: {cs}"),
            format!("plaintext_len: {len}"),
        ]
    };
    for (name, desc, len, cs) in [
        (
            "blob_empty",
            "empty plaintext: one empty final chunk",
            0usize,
            64u32,
        ),
        ("blob_one_byte", "one byte", 1, 64),
        (
            "blob_exact_chunk",
            "exactly one full chunk (final chunk is full)",
            64,
            64,
        ),
        (
            "blob_multi_chunk",
            "three full chunks and a 5-byte final chunk",
            197,
            64,
        ),
    ] {
        let (b, c) = mk(len, cs);
        let mut l = blob_head(desc, len, cs);
        l.push(format!("blob: {}", hex::encode(&b)));
        l.push(format!("commitment: {c}"));
        l.push("expect: ok".into());
        write(name, l);
    }
    {
        let len = 3 * (1 << 20) + 1000;
        let (b, c) = mk(len, 1 << 20);
        let mut l = blob_head(
            "default 1 MiB chunks: three full chunks and a 1000-byte final chunk",
            len,
            1 << 20,
        );
        l.push(format!("blob_sha256: {}", hex::encode(Sha256::digest(&b))));
        l.push(format!("commitment: {c}"));
        l.push("expect: ok".into());
        write("blob_large_1mib_chunks", l);
    }
    let (base, _) = mk(197, 64);
    let rec = |i: usize| HEADER_LEN + i * 80..HEADER_LEN + (i + 1) * 80;
    let fail = |name: &str, desc: &str, blob: Vec<u8>, expect: &str| {
        let mut l = blob_head(desc, 197, 64);
        l.push(format!("blob: {}", hex::encode(&blob)));
        l.push(format!("expect: {expect}"));
        write(name, l);
    };
    let mut b = base.clone();
    b[0] ^= 0x20;
    fail("blob_bad_magic", "first magic byte altered", b, "bad-magic");
    let mut b = base.clone();
    b[8] = 2;
    fail("blob_version", "version byte set to 2", b, "version 2");
    let mut b = base.clone();
    b[16] ^= 1;
    fail(
        "blob_header_mac",
        "nonce prefix altered: header MAC fails",
        b,
        "header",
    );
    let mut b = base.clone();
    b[HEADER_LEN + 80 + 3] ^= 1;
    fail(
        "blob_flipped_chunk",
        "one bit flipped in chunk 1",
        b,
        "chunk 1",
    );
    fail(
        "blob_truncated",
        "cut after chunk 1 (a chunk boundary)",
        base[..HEADER_LEN + 160].to_vec(),
        "truncated 2",
    );
    let mut b = base.clone();
    let (c0, c2) = (base[rec(0)].to_vec(), base[rec(2)].to_vec());
    b[rec(0)].copy_from_slice(&c2);
    b[rec(2)].copy_from_slice(&c0);
    fail("blob_swapped", "chunks 0 and 2 swapped", b, "reordered 0 2");
    let mut b = base.clone();
    b.extend_from_slice(&[0u8; 3]);
    fail(
        "blob_trailing_data",
        "three zero bytes appended",
        b,
        "trailing-data 3",
    );
    fail(
        "blob_short_chunk",
        "final record cut to 10 bytes (shorter than a tag)",
        base[..HEADER_LEN + 3 * 80 + 10].to_vec(),
        "short-chunk 3",
    );
    let mut b = base.clone();
    b[12..16].copy_from_slice(&(MAX_CHUNK_SIZE + 1).to_be_bytes());
    fail(
        "blob_chunk_size_bounds",
        "chunk size 16 MiB + 1 in the header",
        b,
        &format!("chunk-size {}", MAX_CHUNK_SIZE + 1),
    );
    // wrong key: the base blob, opened with another key
    {
        let mut l = blob_head("the multi-chunk blob opened with key 43..43", 197, 64);
        l[2] = format!("key: {}", hex::encode([0x43u8; 32]));
        l.push(format!("blob: {}", hex::encode(&base)));
        l.push("expect: wrong-key".into());
        write("blob_wrong_key", l);
    }

    // Sealed keys.
    let rs = [0x11u8; 32];
    let recipient = SealingSecret::from_bytes(rs);
    let es = [0x22u8; 32];
    let dk_bytes = [0x33u8; 32];
    let ctx = KeyContext {
        chain_id: 31337,
        contract: [0x5f; 20],
        token_id: KeyContext::token_id_from_u64(42),
        data_hash: Commitment::from_bytes([0x77; 32]),
    };
    let sk = SealedKey::seal_with_ephemeral(
        &DataKey::from_bytes(dk_bytes),
        &recipient.public_key(),
        &ctx,
        &es,
    )
    .unwrap();
    let sk_lines = |desc: &str, secret: &[u8; 32], c: &KeyContext, sealed: &str, expect: &str| {
        let s = SealingSecret::from_bytes(*secret);
        vec![
            format!("# {desc}"),
            "kind: sealed-key".into(),
            format!("recipient_secret: {}", hex::encode(secret)),
            format!("recipient_public: {}", s.public_key().to_hex()),
            format!("ephemeral_secret: {}", hex::encode(es)),
            format!("data_key: {}", hex::encode(dk_bytes)),
            format!("chain_id: {}", c.chain_id),
            format!("contract: {}", hex::encode(c.contract)),
            format!("token_id: {}", hex::encode(c.token_id)),
            format!("data_hash: {}", hex::encode(c.data_hash.as_bytes())),
            format!("sealed_key: {sealed}"),
            format!("expect: {expect}"),
        ]
    };
    write(
        "sealed_key_ok",
        sk_lines(
            "a data key sealed to recipient 11..11 for chain 31337, token 42",
            &rs,
            &ctx,
            &sk.to_hex(),
            "ok",
        ),
    );
    let mut c = ctx;
    c.chain_id = 1;
    write(
        "sealed_key_wrong_chain",
        sk_lines("opened with chain id 1", &rs, &c, &sk.to_hex(), "unseal"),
    );
    let mut c = ctx;
    c.contract[0] ^= 1;
    write(
        "sealed_key_wrong_contract",
        sk_lines(
            "opened with another contract",
            &rs,
            &c,
            &sk.to_hex(),
            "unseal",
        ),
    );
    let mut c = ctx;
    c.token_id = KeyContext::token_id_from_u64(43);
    write(
        "sealed_key_wrong_token",
        sk_lines("opened for token 43", &rs, &c, &sk.to_hex(), "unseal"),
    );
    let mut c = ctx;
    c.data_hash = Commitment::from_bytes([0x78; 32]);
    write(
        "sealed_key_wrong_hash",
        sk_lines(
            "opened with another data hash",
            &rs,
            &c,
            &sk.to_hex(),
            "unseal",
        ),
    );
    write(
        "sealed_key_wrong_recipient",
        sk_lines(
            "opened by recipient 12..12",
            &[0x12; 32],
            &ctx,
            &sk.to_hex(),
            "unseal",
        ),
    );
    let mut low = [0u8; SealedKey::LEN];
    low[0] = 1;
    write(
        "sealed_key_low_order",
        sk_lines(
            "all-zero ephemeral public key",
            &rs,
            &ctx,
            &hex::encode(low),
            "low-order",
        ),
    );
    let mut v2 = sk.to_bytes();
    v2[0] = 2;
    write(
        "sealed_key_version",
        sk_lines("version byte 2", &rs, &ctx, &hex::encode(v2), "version"),
    );

    // Wallet-derived keys.
    let mut sig = [0u8; 65];
    sig[..32].fill(0x5a);
    sig[32..64].fill(0x3c);
    sig[64] = 27;
    let pk = SealingSecret::from_wallet_signature(&sig)
        .unwrap()
        .public_key();
    write(
        "wallet_key_ok",
        vec![
            "# r = 5a..5a, s = 3c..3c (low s), v = 27".into(),
            "kind: wallet-key".into(),
            format!("signature: {}", hex::encode(sig)),
            format!("public_key: {}", pk.to_hex()),
            "expect: ok".into(),
        ],
    );
    let mut bad = sig;
    bad[..32].fill(0);
    write(
        "wallet_key_invalid",
        vec![
            "# r = 0".into(),
            "kind: wallet-key".into(),
            format!("signature: {}", hex::encode(bad)),
            "expect: invalid-signature".into(),
        ],
    );

    // Key files.
    let f = EncryptedKeyFile::encrypt(
        &recipient,
        b"inft test passphrase",
        KdfParams::insecure_fast(),
    )
    .unwrap();
    let one_line: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
    for (name, pass, expect) in [
        ("key_file_ok", "inft test passphrase", "ok"),
        (
            "key_file_wrong_passphrase",
            "not the passphrase",
            "passphrase",
        ),
    ] {
        write(
            name,
            vec![
                "# secret 11..11 under Argon2id (64 KiB, 1 pass: test parameters only)".into(),
                "kind: key-file".into(),
                format!("passphrase: {pass}"),
                format!("file: {one_line}"),
                format!("public_key: {}", recipient.public_key().to_hex()),
                format!("expect: {expect}"),
            ],
        );
    }
}
