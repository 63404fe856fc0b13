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
//! # Write-once
//!
//! Because the hash does not cover the signature, anyone who can `PUT` to a store could swap an
//! honest record's signature for garbage or another key's. So stores keep the first valid
//! envelope under a hash: putting the same record with the same signature again succeeds (an
//! idempotent re-publish), an envelope whose signature differs is refused with
//! [`BlobError::RecordConflict`] (HTTP `409` from the gateway), and only a stored copy that is
//! malformed (not a signed record with that hash, or a signature that recovers no address) is
//! replaced. A store cannot tell which signature is the agent's (it does not know the agent),
//! but the agent's runtime publishes each record before its hash goes on chain, and nobody can
//! put a record under a hash before seeing it, so the first copy is the runtime's. Records are
//! write-once per record hash rather than per (log, seq): the hash covers the log and the
//! sequence number, and a first-come claim on a (log, seq) would let anyone who guesses the
//! next position block the agent's own publication (which the outbox requires before logging).
//!
//! A copy altered behind the store's back (on its disk, by its operator) is caught by the audit
//! ([`Finding::SignatureUnverified`](crate::audit::Finding::SignatureUnverified) names the store
//! rather than blaming the agent), and the owner's runtime, which keeps every signed record in
//! its database, puts its copy back with [`audit::restore_records`](crate::audit::restore_records)
//! ([`BlobStore::restore_record`](super::BlobStore::restore_record) overwrites in a local
//! directory, the runtime's own).
//!
//! # Lookup by content
//!
//! Stores also answer which records carry a given content:
//! [`BlobStore::records_by_content`](super::BlobStore::records_by_content) lists the hashes of
//! the stored records whose `output_hash` (the `keccak256` of the output, what a creative agent
//! signs as its piece's content hash) is the one asked for. A local
//! directory keeps an index beside the records, `<root>/by-content/<hex output hash>/<hex record
//! hash>` (empty files), written before the record itself, so every stored record is listed;
//! records stored before the index existed are indexed on the first lookup. The index is
//! derived from write-once data (a record hash always names the same output), so it never
//! needs updating; a gateway serves it as `GET /by-content/<hex>`. The list is a hint, not a
//! proof: a lookup fetches each record (which checks its hash) and verifies it on chain
//! ([`crate::provenance`]).
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

/// Subdirectory of a [`LocalDirStore`](super::LocalDirStore) indexing records by output hash.
pub const CONTENT_INDEX_DIR: &str = "by-content";

/// File in [`CONTENT_INDEX_DIR`] whose presence says every stored record was indexed.
pub(crate) const CONTENT_INDEX_COMPLETE: &str = ".complete";

/// The answer of a gateway's `GET /by-content/<hex>`: the record hashes it lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentLookup {
    /// Hashes of stored records whose output, or piece text, hashes to the content hash asked
    /// for.
    pub records: Vec<B256>,
}

/// The text of a creative piece: the `text` field of a record output that is a JSON object
/// with one (`{"title": …, "text": …}`). A piece found on its own is usually just this text.
pub fn piece_text(output: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(output)
        .ok()?
        .get("text")?
    {
        serde_json::Value::String(text) => Some(text.clone()),
        _ => None,
    }
}

/// The content hashes a record is found by: its output's, and its piece text's if it has one
/// ([`piece_text`]), so a piece is found by its whole signed output or by its text alone.
pub fn content_keys(record: &crate::record::ActionRecord) -> Vec<B256> {
    let mut keys = vec![record.output_hash];
    keys.extend(piece_text(&record.output).map(|t| crate::record::content_hash(t.as_bytes())));
    keys
}

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

/// Refuses a record to store whose signature recovers no address: it is nobody's signature,
/// certainly not the agent's.
pub(crate) fn check_record_signature(record: &SignedRecord) -> Result<(), BlobError> {
    record
        .signer()
        .map(drop)
        .map_err(|e| BlobError::RecordMismatch {
            expected: record.record_hash(),
            detail: format!("the signature recovers no address: {e}"),
        })
}

/// The refusal of `refused` because `stored` holds the same record with another signature.
pub(crate) fn conflict(stored: &SignedRecord, refused: &SignedRecord) -> BlobError {
    let who = |r: &SignedRecord| {
        r.signer()
            .map_or_else(|_| "nobody".to_owned(), |a| a.to_string())
    };
    BlobError::RecordConflict {
        record_hash: stored.record_hash(),
        detail: format!(
            "the stored copy is signed by {}, the refused one by {}",
            who(stored),
            who(refused)
        ),
    }
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
    use crate::record::{ActionRecord, LogId};
    use alloy::primitives::{Address, U256};
    use alloy::signers::local::PrivateKeySigner;

    fn signed(output: &str) -> SignedRecord {
        let log = LogId {
            chain_id: 31337,
            action_log: Address::repeat_byte(0xaa),
            token_id: U256::from(7u64),
        };
        let draft = crate::record::testing::draft(output, serde_json::Value::Null);
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

    /// The same record as `rec`, signed by another key: same record hash, other signature.
    fn resigned(rec: &SignedRecord) -> SignedRecord {
        rec.record()
            .clone()
            .sign(&PrivateKeySigner::random())
            .unwrap()
    }

    /// M1: the record hash does not cover the signature, so before stores were write-once a
    /// second put replaced an honest record's signature and audits blamed the agent.
    #[tokio::test]
    async fn replacing_a_stored_records_signature_is_refused_by_the_local_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        let honest = signed("honest");
        store.put_record(&honest).await.unwrap();
        let forged = resigned(&honest);
        assert_eq!(forged.record_hash(), honest.record_hash());
        assert!(matches!(
            store.put_record(&forged).await,
            Err(BlobError::RecordConflict { record_hash, .. }) if record_hash == honest.record_hash()
        ));
        assert_eq!(
            store.fetch_record(honest.record_hash()).await.unwrap(),
            honest
        );
        // Publishing the same record again is fine (idempotent).
        store.put_record(&honest).await.unwrap();

        // A damaged stored copy is replaced by a put; a copy altered behind the store's back is
        // put back by the owner's restore (the runtime's own directory), not by a put.
        std::fs::write(store.record_path(&honest.record_hash()), b"{").unwrap();
        store.put_record(&honest).await.unwrap();
        assert_eq!(
            store.fetch_record(honest.record_hash()).await.unwrap(),
            honest
        );
        std::fs::write(
            store.record_path(&honest.record_hash()),
            forged.to_envelope_json().unwrap(),
        )
        .unwrap();
        assert!(matches!(
            store.put_record(&honest).await,
            Err(BlobError::RecordConflict { .. })
        ));
        store.restore_record(&honest).await.unwrap();
        assert_eq!(
            store.fetch_record(honest.record_hash()).await.unwrap(),
            honest
        );
    }

    /// M1 through the gateway: anyone who can PUT could replace an honest record's signature.
    #[tokio::test]
    async fn a_gateway_put_cannot_replace_an_honest_records_signature() {
        let dir = tempfile::tempdir().unwrap();
        let server_store = LocalDirStore::open(dir.path().join("server")).unwrap();
        let gw = gateway::serve(server_store.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = HttpGatewayStore::new(&gw.base_url(), dir.path().join("cache")).unwrap();
        let honest = signed("over http");
        client.put_record(&honest).await.unwrap();
        let url = format!(
            "{}/record/{}",
            gw.base_url(),
            record_hex(&honest.record_hash())
        );
        let put = |body: Vec<u8>| {
            let url = url.clone();
            async move {
                reqwest::Client::new()
                    .put(&url)
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        // Another key's signature over the same record: 409, the honest copy stays.
        let forged = resigned(&honest);
        assert_eq!(put(forged.to_envelope_json().unwrap()).await, 409);
        assert!(matches!(
            client.put_record(&forged).await,
            Err(BlobError::RecordConflict { .. })
        ));
        // A signature that recovers nobody is not a signature at all: 422.
        let mut envelope: serde_json::Value =
            serde_json::from_slice(&honest.to_envelope_json().unwrap()).unwrap();
        envelope["signature"] = serde_json::json!(format!("0x{}1b", "00".repeat(64)));
        assert_eq!(put(envelope.to_string().into_bytes()).await, 422);
        // The same record and signature again, even in another JSON layout: accepted.
        let mut relaid: serde_json::Value =
            serde_json::from_slice(&honest.to_envelope_json().unwrap()).unwrap();
        relaid["record"]["output"] = serde_json::json!("over http");
        assert_eq!(put(serde_json::to_vec_pretty(&relaid).unwrap()).await, 201);
        assert_eq!(
            client.fetch_record(honest.record_hash()).await.unwrap(),
            honest
        );
        assert_eq!(
            std::fs::read(server_store.record_path(&honest.record_hash())).unwrap(),
            honest.to_envelope_json().unwrap(),
            "stored in canonical form"
        );
    }

    /// Issue 15: a store (and a gateway) answers which records carry a content hash; the index
    /// follows write-once records and covers records stored before it existed.
    #[tokio::test]
    async fn records_are_found_by_content_locally_and_through_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let server_store = LocalDirStore::open(dir.path().join("server")).unwrap();
        let poem = signed("a poem");
        server_store.put_record(&poem).await.unwrap();
        // A record stored before the index existed (no index entries, no completion marker).
        let older = signed("an older poem");
        std::fs::write(
            server_store.record_path(&older.record_hash()),
            older.to_envelope_json().unwrap(),
        )
        .unwrap();
        std::fs::remove_dir_all(dir.path().join("server").join(CONTENT_INDEX_DIR)).unwrap();

        let gw = gateway::serve(server_store.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = HttpGatewayStore::new(&gw.base_url(), dir.path().join("cache")).unwrap();
        let again = signed("a poem, again");
        client.put_record(&again).await.unwrap();
        for store in [&server_store as &dyn BlobStore, &client] {
            for rec in [&poem, &older, &again] {
                assert_eq!(
                    store
                        .records_by_content(rec.record().output_hash)
                        .await
                        .unwrap(),
                    vec![rec.record_hash()]
                );
            }
            assert!(
                store
                    .records_by_content(crate::record::content_hash(b"a poem!"))
                    .await
                    .unwrap()
                    .is_empty(),
                "an edited text is another hash"
            );
        }
        // A refused swap of the signature leaves one entry; a re-publish adds none.
        assert!(client.put_record(&resigned(&poem)).await.is_err());
        client.put_record(&poem).await.unwrap();
        assert_eq!(
            client
                .records_by_content(poem.record().output_hash)
                .await
                .unwrap(),
            vec![poem.record_hash()]
        );
        let status = reqwest::get(format!("{}/by-content/xyz", gw.base_url()))
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 400);
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
