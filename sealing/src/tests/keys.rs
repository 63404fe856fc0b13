//! Sealed keys, wallet-derived keys and key files.

use crate::*;

fn ctx() -> KeyContext {
    KeyContext {
        chain_id: 31337,
        contract: [0x11; 20],
        token_id: KeyContext::token_id_from_u64(7),
        data_hash: Commitment::from_bytes([0x22; 32]),
    }
}

#[test]
fn sealed_key_round_trip() {
    let owner = SealingSecret::generate();
    let dk = DataKey::generate();
    let sk = SealedKey::seal(&dk, &owner.public_key(), &ctx()).unwrap();
    assert_eq!(sk.to_bytes().len(), SealedKey::LEN);
    assert_eq!(SealedKey::LEN, 81);
    let parsed = SealedKey::from_bytes(&sk.to_bytes()).unwrap();
    let back = parsed.open(&owner, &ctx()).unwrap();
    assert_eq!(back.expose(), dk.expose());
    // Fresh ephemeral key every time.
    let sk2 = SealedKey::seal(&dk, &owner.public_key(), &ctx()).unwrap();
    assert_ne!(sk.to_bytes(), sk2.to_bytes());
}

#[test]
fn sealed_key_wrong_context_each_field() {
    let owner = SealingSecret::generate();
    let dk = DataKey::generate();
    let sk = SealedKey::seal(&dk, &owner.public_key(), &ctx()).unwrap();
    let mut variants = Vec::new();
    let mut c = ctx();
    c.chain_id = 1;
    variants.push(("chain", c));
    let mut c = ctx();
    c.contract[19] ^= 1;
    variants.push(("contract", c));
    let mut c = ctx();
    c.token_id = KeyContext::token_id_from_u64(8);
    variants.push(("token", c));
    let mut c = ctx();
    c.data_hash = Commitment::from_bytes([0x23; 32]);
    variants.push(("hash", c));
    for (what, c) in variants {
        assert!(
            matches!(sk.open(&owner, &c), Err(KeyError::Unseal)),
            "{what}"
        );
    }
    // Wrong recipient.
    let other = SealingSecret::generate();
    assert!(matches!(sk.open(&other, &ctx()), Err(KeyError::Unseal)));
}

#[test]
fn sealed_key_every_byte_flip() {
    let owner = SealingSecret::generate();
    let sk = SealedKey::seal(&DataKey::generate(), &owner.public_key(), &ctx()).unwrap();
    for off in 0..SealedKey::LEN {
        let mut b = sk.to_bytes();
        b[off] ^= 0x01;
        let r = SealedKey::from_bytes(&b).and_then(|k| k.open(&owner, &ctx()));
        match off {
            0 => assert!(matches!(r, Err(KeyError::Version(0))), "{off}: {r:?}"),
            _ => assert!(
                matches!(r, Err(KeyError::Unseal) | Err(KeyError::LowOrderPoint)),
                "{off}: {r:?}"
            ),
        }
    }
}

#[test]
fn sealed_key_lengths() {
    for n in [0, 80, 82, 200] {
        let r = SealedKey::from_bytes(&vec![1u8; n]);
        assert!(matches!(r, Err(KeyError::Length { expected: 81, actual }) if actual == n));
    }
}

#[test]
fn low_order_points_refused() {
    let dk = DataKey::generate();
    // 0 and 1 are low-order u-coordinates on Curve25519.
    for u in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        let r = SealedKey::seal(&dk, &SealingPublicKey::from_bytes(u), &ctx());
        assert!(matches!(r, Err(KeyError::LowOrderPoint)));
        // A sealed key carrying a low-order ephemeral key.
        let mut b = [0u8; SealedKey::LEN];
        b[0] = SealedKey::VERSION;
        b[1..33].copy_from_slice(&u);
        let sk = SealedKey::from_bytes(&b).unwrap();
        assert!(matches!(
            sk.open(&SealingSecret::generate(), &ctx()),
            Err(KeyError::LowOrderPoint)
        ));
    }
}

fn sig(r: u8, s: [u8; 32], v: u8) -> [u8; 65] {
    let mut b = [0u8; 65];
    b[..32].fill(r);
    b[32..64].copy_from_slice(&s);
    b[64] = v;
    b
}

#[test]
fn wallet_key_is_deterministic_and_malleability_proof() {
    let mut s = [0u8; 32];
    s[31] = 5;
    s[0] = 0x12;
    let a = SealingSecret::from_wallet_signature(&sig(0x33, s, 27)).unwrap();
    let b = SealingSecret::from_wallet_signature(&sig(0x33, s, 27)).unwrap();
    assert_eq!(a.public_key(), b.public_key());
    // v encoding does not matter.
    let c = SealingSecret::from_wallet_signature(&sig(0x33, s, 0)).unwrap();
    assert_eq!(a.public_key(), c.public_key());
    // The high-s twin (n - s, flipped v) derives the same key.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    let mut high = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        high[i] = d as u8;
    }
    let d = SealingSecret::from_wallet_signature(&sig(0x33, high, 28)).unwrap();
    assert_eq!(a.public_key(), d.public_key());
    // A different signature derives a different key.
    let e = SealingSecret::from_wallet_signature(&sig(0x34, s, 27)).unwrap();
    assert_ne!(a.public_key(), e.public_key());
}

#[test]
fn wallet_signature_validation() {
    let mut s = [0u8; 32];
    s[31] = 1;
    assert!(matches!(
        SealingSecret::from_wallet_signature(&sig(0, s, 27)),
        Err(KeyError::InvalidSignature)
    ));
    assert!(matches!(
        SealingSecret::from_wallet_signature(&sig(1, [0; 32], 27)),
        Err(KeyError::InvalidSignature)
    ));
    assert!(matches!(
        SealingSecret::from_wallet_signature(&sig(0xff, s, 27)),
        Err(KeyError::InvalidSignature)
    ));
}

#[test]
fn key_file_round_trip_and_failures() {
    let secret = SealingSecret::generate();
    let f =
        EncryptedKeyFile::encrypt(&secret, b"correct horse", KdfParams::insecure_fast()).unwrap();
    let json = f.to_json();
    let g = EncryptedKeyFile::from_json(&json).unwrap();
    assert_eq!(g.public_key(), secret.public_key());
    assert_eq!(
        g.decrypt(b"correct horse").unwrap().public_key(),
        secret.public_key()
    );
    assert!(matches!(g.decrypt(b"wrong"), Err(KeyFileError::Passphrase)));
    // The public key and KDF parameters are authenticated.
    let other = SealingSecret::generate().public_key().to_hex();
    let swapped = json.replace(&secret.public_key().to_hex(), &other);
    let h = EncryptedKeyFile::from_json(&swapped).unwrap();
    assert!(matches!(
        h.decrypt(b"correct horse"),
        Err(KeyFileError::Passphrase)
    ));
    let t2 = json.replace("\"t_cost\": 1", "\"t_cost\": 2");
    assert!(matches!(
        EncryptedKeyFile::from_json(&t2)
            .unwrap()
            .decrypt(b"correct horse"),
        Err(KeyFileError::Passphrase)
    ));
    // Structure.
    let big = json.replace("\"m_cost_kib\": 64", "\"m_cost_kib\": 99999999");
    assert!(matches!(
        EncryptedKeyFile::from_json(&big),
        Err(KeyFileError::Format(_))
    ));
    assert!(matches!(
        EncryptedKeyFile::from_json("{}"),
        Err(KeyFileError::Json(_))
    ));
    let v2 = json.replace("\"version\": 1", "\"version\": 2");
    assert!(matches!(
        EncryptedKeyFile::from_json(&v2),
        Err(KeyFileError::Format(_))
    ));
}
