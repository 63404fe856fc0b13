//! Action records end to end: an agent key loaded from an encrypted keystore signs a hash
//! chain of records; an auditor verifies it from the stored JSON alone.

use agent_runtime::record::{
    ActionDraft, ActionKind, ActionRecord, EIP712_TYPE, FIRST_SEQ, LogId, RecordError,
    SignedRecord, content_hash, log_domain, verify_stored,
};
use agent_runtime::wallet::{Passphrase, create_keystore, load_keystore};
use alloy::primitives::{Address, B256, U256, keccak256};
use anyhow::Result;
use serde_json::json;

fn log() -> LogId {
    LogId {
        chain_id: 31337,
        action_log: Address::repeat_byte(0x5a),
        token_id: U256::from(42u64),
    }
}

fn trade(i: u64) -> ActionDraft {
    ActionDraft {
        kind: ActionKind::Trade,
        model_hash: B256::repeat_byte(0x01),
        prompt: format!("market state {i}"),
        keep_prompt: true,
        output: format!(r#"{{"action":"buy","amount":"{i}"}}"#),
        sampler: json!({"temperature": 0.7, "top_p": 0.9, "grammar": "intent.gbnf"}),
        seed: 1234 + i,
        llama_build: "llama.cpp b0000 cpu".into(),
        tx_hash: Some(keccak256(i.to_be_bytes())),
        details: json!({"pair": "WETH/TKN", "min_out": "1000"}),
    }
}

#[test]
fn a_chain_of_records_signed_with_a_keystore_key_verifies_from_stored_json() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pass = Passphrase::new("correct horse battery staple".into());
    let (created, path) = create_keystore(dir.path(), Some("agent.json"), &pass)?;
    let agent = load_keystore(&path, &pass)?;
    assert_eq!(agent.address(), created.address());

    // Build three linked records and keep only what the database keeps: JSON, hash, signature.
    let mut prev = B256::ZERO;
    let mut stored = Vec::new();
    for i in 0..3 {
        let record =
            ActionRecord::new(&log(), FIRST_SEQ + i, prev, trade(i), 1_700_000_000_000 + i);
        let signed = record.sign(&agent)?;
        prev = signed.record_hash();
        stored.push((
            signed.record().canonical_json()?,
            signed.record_hash(),
            signed.signature_bytes(),
        ));
    }

    // The auditor's view.
    let mut expect_prev = B256::ZERO;
    for (i, (json, hash, sig)) in stored.iter().enumerate() {
        let r = verify_stored(json, *hash, sig, agent.address())?;
        assert_eq!(r.record().seq, FIRST_SEQ + i as u64);
        assert_eq!(r.record().prev_record_hash, expect_prev);
        assert_eq!(
            r.record().output_hash,
            content_hash(r.record().output.as_bytes())
        );
        expect_prev = *hash;
    }

    // Wrong agent, altered hash, altered content: each refused with its own error.
    let (json, hash, sig) = &stored[1];
    assert!(matches!(
        verify_stored(json, *hash, sig, Address::repeat_byte(9)),
        Err(RecordError::WrongSigner { .. })
    ));
    assert!(matches!(
        verify_stored(json, B256::repeat_byte(7), sig, agent.address()),
        Err(RecordError::HashMismatch { .. })
    ));
    let edited = String::from_utf8(json.clone())?.replace("market state 1", "market state X");
    assert!(matches!(
        verify_stored(edited.as_bytes(), *hash, sig, agent.address()),
        Err(RecordError::ContentHash {
            field: "prompt_hash"
        })
    ));
    // Changing the prompt AND its hash still changes the record hash.
    let mut r = ActionRecord::from_json(json)?;
    r.prompt = Some("market state X".into());
    r.prompt_hash = content_hash(b"market state X");
    let forged = r.canonical_json()?;
    assert!(matches!(
        verify_stored(&forged, *hash, sig, agent.address()),
        Err(RecordError::HashMismatch { .. })
    ));
    Ok(())
}

#[test]
fn the_signature_is_standard_eip712_over_the_documented_type() -> Result<()> {
    let agent = alloy::signers::local::PrivateKeySigner::random();
    let record = ActionRecord::new(&log(), 5, B256::repeat_byte(4), trade(5), 1);
    let signed = record.clone().sign(&agent)?;

    // Recompute the digest by hand from the documented type string and domain, as a Solidity
    // contract or a wallet would.
    let type_hash = keccak256(EIP712_TYPE.as_bytes());
    let struct_hash = keccak256(
        [
            type_hash.as_slice(),
            &record.token_id.to_be_bytes::<32>(),
            &U256::from(record.seq).to_be_bytes::<32>(),
            record.prev_record_hash.as_slice(),
            signed.record_hash().as_slice(),
        ]
        .concat(),
    );
    let domain = log_domain(&log());
    let digest = keccak256(
        [
            &[0x19u8, 0x01][..],
            domain.separator().as_slice(),
            struct_hash.as_slice(),
        ]
        .concat(),
    );
    assert_eq!(digest, record.signing_hash()?);
    assert_eq!(
        signed.signature().recover_address_from_prehash(&digest)?,
        agent.address()
    );

    // The domain is {name, version, chainId, verifyingContract} of the action log.
    let expected_domain = alloy::sol_types::eip712_domain! {
        name: "inft ActionLog",
        version: "1",
        chain_id: 31337,
        verifying_contract: Address::repeat_byte(0x5a),
    };
    assert_eq!(domain, expected_domain);
    Ok(())
}

#[test]
fn a_wrong_keystore_passphrase_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_, path) = create_keystore(dir.path(), None, &Passphrase::new("right".into()))?;
    let err = load_keystore(&path, &Passphrase::new("wrong".into())).unwrap_err();
    assert!(
        matches!(err, agent_runtime::wallet::WalletError::Keystore { .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("right") && !err.to_string().contains("wrong"));
    Ok(())
}

#[test]
fn envelopes_round_trip_for_the_blob_store() -> Result<()> {
    let agent = alloy::signers::local::PrivateKeySigner::random();
    let signed = ActionRecord::new(&log(), 1, B256::ZERO, trade(0), 1).sign(&agent)?;
    let bytes = signed.to_envelope_json()?;
    let back = SignedRecord::from_envelope_json(&bytes)?;
    assert_eq!(back.record_hash(), signed.record_hash());
    back.verify(agent.address())?;
    Ok(())
}
