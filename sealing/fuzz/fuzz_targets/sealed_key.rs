//! Arbitrary bytes as a sealed key and as a key file: parsing and opening never panic, and
//! nothing random opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealing::{Commitment, EncryptedKeyFile, KeyContext, SealedKey, SealingSecret};

fuzz_target!(|data: &[u8]| {
    let secret = SealingSecret::from_bytes([0x11; 32]);
    let ctx = KeyContext::local(Commitment::from_bytes([0x22; 32]));
    if let Ok(k) = SealedKey::from_bytes(data) {
        assert!(k.open(&secret, &ctx).is_err());
    }
    if data.len() == 65 {
        let sig: [u8; 65] = data.try_into().unwrap();
        let _ = SealingSecret::from_wallet_signature(&sig);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(f) = EncryptedKeyFile::from_json(text) {
            // Only cheap parameters: the bounds allow 1 GiB, too slow for a fuzz iteration.
            if f.params().m_cost_kib <= 64 && f.params().t_cost <= 2 && f.params().p_cost <= 2 {
                assert!(f.decrypt(b"fuzz").is_err());
            }
        }
    }
});
