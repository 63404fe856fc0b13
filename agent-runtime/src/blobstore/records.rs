//! Public action records: signed record envelopes stored in the clear, addressed by their
//! record hash (the hash logged on chain), so anyone can fetch and audit an agent's actions.
//!
//! Unlike sealed blobs (addressed by a Merkle commitment over ciphertext), a record blob is the
//! canonical JSON envelope of a [`SignedRecord`]
//! ([`SignedRecord::to_envelope_json`]) and its address is
//! [`record_hash`](crate::record::ActionRecord::record_hash) of the record inside it. A fetch
//! parses the envelope and recomputes the hash, so a store (or gateway) can only hand out the
//! record the chain committed to. The signature is not covered by the record hash: an audit
//! checks it separately against the agent key.
//!
//! | store | where | URI |
//! | --- | --- | --- |
//! | [`LocalDirStore`](super::LocalDirStore) | `<root>/records/<hex record hash>` | `inft-local://record/<hex>` |
//! | [`HttpGatewayStore`](super::HttpGatewayStore) | `GET/PUT <base>/record/<hex>` | `<base>/record/<hex>` |

use alloy::primitives::B256;

use super::BlobError;
use crate::record::SignedRecord;

/// Largest record envelope a store accepts or returns (records are a few KiB; prompts and
/// outputs of real models stay far below this).
pub const MAX_RECORD_LEN: usize = 1 << 20;

/// Subdirectory of a [`LocalDirStore`](super::LocalDirStore) holding record envelopes.
pub const RECORD_DIR: &str = "records";

/// The record hash as it appears in file names and URLs: 64 lowercase hex digits, no prefix.
pub fn record_hex(hash: &B256) -> String {
    hex::encode(hash.as_slice())
}

/// Parses 64 hex digits (no prefix) as a record hash.
pub fn record_hash_from_hex(s: &str) -> Option<B256> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(s, &mut bytes).ok()?;
    Some(B256::from(bytes))
}

/// Checks that `bytes` are a signed record envelope whose record hash is `expected`.
pub fn verify_record_bytes(bytes: &[u8], expected: B256) -> Result<SignedRecord, BlobError> {
    if bytes.len() > MAX_RECORD_LEN {
        return Err(BlobError::TooLarge {
            limit: MAX_RECORD_LEN as u64,
        });
    }
    let signed =
        SignedRecord::from_envelope_json(bytes).map_err(|e| BlobError::RecordMismatch {
            expected,
            detail: format!("not a valid signed record: {e}"),
        })?;
    if signed.record_hash() != expected {
        return Err(BlobError::RecordMismatch {
            expected,
            detail: format!("the bytes hash to {}", signed.record_hash()),
        });
    }
    Ok(signed)
}

/// The bytes a record is stored as: its canonical envelope.
pub(crate) fn record_bytes(record: &SignedRecord) -> Result<Vec<u8>, BlobError> {
    let expected = record.record_hash();
    record
        .to_envelope_json()
        .map_err(|e| BlobError::RecordMismatch {
            expected,
            detail: format!("cannot encode the record: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobstore::{BlobStore, HttpGatewayStore, LocalDirStore, gateway};
    use crate::record::{ActionDraft, ActionKind, ActionRecord, LogId};
    use alloy::primitives::{Address, U256};
    use alloy::signers::local::PrivateKeySigner;

    fn signed(output: &str) -> SignedRecord {
        let log = LogId {
            chain_id: 31337,
            action_log: Address::repeat_byte(0xaa),
            token_id: U256::from(7u64),
        };
        let draft = ActionDraft {
            kind: ActionKind::Creative,
            model_hash: B256::repeat_byte(1),
            prompt: "p".into(),
            keep_prompt: true,
            output: output.into(),
            sampler: serde_json::Value::Null,
            seed: 1,
            llama_build: "b".into(),
            tx_hash: None,
            details: serde_json::Value::Null,
        };
        ActionRecord::new(&log, 1, B256::ZERO, draft, 1)
            .sign(&PrivateKeySigner::random())
            .unwrap()
    }

    #[tokio::test]
    async fn local_store_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        let rec = signed("hello");
        let uri = store.put_record(&rec).await.unwrap();
        assert_eq!(uri, store.record_uri(&rec.record_hash()));
        assert_eq!(store.fetch_record(rec.record_hash()).await.unwrap(), rec);

        // Another record's bytes under this hash are refused.
        let other = signed("other");
        std::fs::write(
            store.record_path(&rec.record_hash()),
            other.to_envelope_json().unwrap(),
        )
        .unwrap();
        assert!(matches!(
            store.fetch_record(rec.record_hash()).await,
            Err(BlobError::RecordMismatch { .. })
        ));
        // Garbage too, and a missing record is NotFound.
        std::fs::write(store.record_path(&rec.record_hash()), b"{").unwrap();
        assert!(matches!(
            store.fetch_record(rec.record_hash()).await,
            Err(BlobError::RecordMismatch { .. })
        ));
        assert!(matches!(
            store.fetch_record(B256::repeat_byte(3)).await,
            Err(BlobError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn gateway_serves_and_checks_records() {
        let dir = tempfile::tempdir().unwrap();
        let server_store = LocalDirStore::open(dir.path().join("server")).unwrap();
        let gw = gateway::serve(server_store.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = HttpGatewayStore::new(&gw.base_url(), dir.path().join("cache")).unwrap();
        let rec = signed("over http");
        let uri = client.put_record(&rec).await.unwrap();
        assert_eq!(
            uri,
            format!(
                "{}/record/{}",
                gw.base_url(),
                record_hex(&rec.record_hash())
            )
        );
        assert_eq!(
            server_store.fetch_record(rec.record_hash()).await.unwrap(),
            rec
        );
        assert_eq!(client.fetch_record(rec.record_hash()).await.unwrap(), rec);

        // The gateway refuses bytes that are not the named record.
        let other = signed("other");
        let url = format!(
            "{}/record/{}",
            gw.base_url(),
            record_hex(&rec.record_hash())
        );
        let resp = reqwest::Client::new()
            .put(&url)
            .body(other.to_envelope_json().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 422);
        // A tampered copy on the server is refused by the client.
        std::fs::write(
            server_store.record_path(&rec.record_hash()),
            other.to_envelope_json().unwrap(),
        )
        .unwrap();
        assert!(matches!(
            client.fetch_record(rec.record_hash()).await,
            Err(BlobError::RecordMismatch { .. })
        ));
        assert!(matches!(
            client.fetch_record(B256::repeat_byte(9)).await,
            Err(BlobError::NotFound { .. })
        ));
    }
}
