//! Action records: what an agent did, hashed canonically and signed by the agent key.
//!
//! # Hashes
//!
//! - **Content hashes** (`prompt_hash`, `output_hash`, and [`content_hash`]) are plain
//!   `keccak256` of the UTF-8 bytes, so anyone can check them with any Ethereum tool.
//! - **Record hash** ([`ActionRecord::record_hash`]) is
//!   `keccak256(b"inft/v1/action-record" ‖ canonical_json(record))`. This is the hash that goes on
//!   chain: `ActionLog.logActions(tokenId, firstSeq, hashes)` appends exactly these values, one per
//!   record, in sequence order. It covers every field of the record, including chain id, action
//!   log address, token id, sequence number and the previous record hash, so the records form a
//!   hash chain on their own and a hash can never be replayed into another log.
//! - **Signature**: the agent key signs the EIP-712 typed data
//!   `ActionRecord(uint256 tokenId,uint64 seq,bytes32 prevRecordHash,bytes32 recordHash)` under the
//!   domain `{name: "inft ActionLog", version: "1", chainId, verifyingContract: actionLog}`
//!   ([`ActionRecord::signing_hash`]). The signature is not part of the record hash: the record is
//!   final before it is signed, and RFC 6979 signatures are deterministic anyway.
//!
//! # Canonical JSON
//!
//! [`canonical_json`] writes a `serde_json::Value` with object keys sorted by their UTF-8 bytes,
//! no insignificant whitespace, strings escaped as `serde_json` escapes them, integers in plain
//! decimal and floats in their shortest round-trip form. The record's own fields use types that
//! serialize exactly: addresses and 32-byte hashes as `0x` + lowercase hex, the token id and the
//! seed as decimal strings (they may exceed 2^53), `chain_id`, `seq` and `timestamp_ms` as JSON
//! integers. Unknown fields are refused when parsing, so parsing and re-encoding a record is the
//! identity on its canonical bytes.

use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::error::RecordError;

/// Domain label prefixed to the canonical JSON before hashing a record.
pub const RECORD_HASH_LABEL: &[u8] = b"inft/v1/action-record";
/// The current record format version.
pub const RECORD_VERSION: u32 = 1;
/// Sequence number of a token's first action. The `ActionLog` contract counts actions from 1:
/// `chainOf(tokenId).seq` is the number logged so far and the n-th action has seq n.
pub const FIRST_SEQ: u64 = 1;
/// EIP-712 domain name used for record signatures.
pub const EIP712_NAME: &str = "inft ActionLog";
/// EIP-712 domain version used for record signatures.
pub const EIP712_VERSION: &str = "1";

mod eip712 {
    #![allow(missing_docs)]
    alloy::sol! {
        /// The typed data an agent signs for each action record.
        struct ActionRecord {
            uint256 tokenId;
            uint64 seq;
            bytes32 prevRecordHash;
            bytes32 recordHash;
        }
    }
}

/// The EIP-712 type string of the record signature, for contracts and external verifiers.
pub const EIP712_TYPE: &str =
    "ActionRecord(uint256 tokenId,uint64 seq,bytes32 prevRecordHash,bytes32 recordHash)";

/// One token's action log: the chain, the `ActionLog` contract and the token id.
///
/// Sequence numbers and the hash chain are per `LogId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogId {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The `ActionLog` contract address.
    pub action_log: Address,
    /// The INFT token id.
    pub token_id: U256,
}

impl LogId {
    /// The idempotence key of the action at `seq` of this log, `{log}@{seq}`: a transaction
    /// sent for an action before its record exists (a trade) is stored under it (the
    /// `signed_txs.reference` column), so a restart records that transaction instead of
    /// sending another. A rebase ([`Outbox::rebase`](crate::outbox::Outbox::rebase)) moves the
    /// key of the log's next position along with that position.
    pub fn position_reference(&self, seq: u64) -> String {
        format!("{self}@{seq}")
    }
}

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{:#x}#{}",
            self.chain_id, self.action_log, self.token_id
        )
    }
}

/// What kind of action a record describes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActionKind {
    /// Creative output (text), signed as proof of creatorship.
    Creative,
    /// A trade that was sent on chain (`tx_hash` is set).
    Trade,
    /// An intent the policy firewall refused (the reason is in `details`).
    Refusal,
    /// Any other kind, by name (lowercase ASCII, digits, `-` and `_`).
    Other(String),
}

impl ActionKind {
    /// The name used in the record JSON and the database.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Creative => "creative",
            Self::Trade => "trade",
            Self::Refusal => "refusal",
            Self::Other(s) => s,
        }
    }

    /// Parses a kind name; `None` if it is empty or has characters outside `[a-z0-9_-]`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "creative" => Self::Creative,
            "trade" => Self::Trade,
            "refusal" => Self::Refusal,
            other
                if !other.is_empty()
                    && other.len() <= 64
                    && other.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    }) =>
            {
                Self::Other(other.to_owned())
            }
            _ => return None,
        })
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ActionKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ActionKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid action kind {s:?}")))
    }
}

/// Serde helpers for numbers that may exceed 2^53 and are written as decimal strings.
pub(crate) mod decimal {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Canonical decimal only: no sign, no leading zeros, no prefix, so every number has exactly
    /// one encoding (the record hash depends on it).
    pub(crate) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        if s.is_empty()
            || (s.len() > 1 && s.starts_with('0'))
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(serde::de::Error::custom(
                "expected a canonical decimal string",
            ));
        }
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The content of an action, as the agent loop produces it; [`ActionRecord::new`] places it in a
/// log at a sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionDraft {
    /// What kind of action.
    pub kind: ActionKind,
    /// Hash of the model's plaintext GGUF (as the engine computes it).
    pub model_hash: B256,
    /// The full prompt. Kept in the record (not only its hash) so the action can be replayed.
    pub prompt: String,
    /// Whether to keep the prompt text in the record; when `false` only its hash is recorded and
    /// the action cannot be replayed from the record alone.
    pub keep_prompt: bool,
    /// The model's output text.
    pub output: String,
    /// The sampler settings, as the engine serializes them.
    pub sampler: Value,
    /// The sampler seed.
    pub seed: u64,
    /// The llama.cpp build string (version / commit / backend), for replay.
    pub llama_build: String,
    /// For trades: the hash of the signed trade transaction.
    pub tx_hash: Option<B256>,
    /// Kind-specific details (a trade intent, a refusal reason, …); `Value::Null` if none.
    pub details: Value,
}

/// One action of an agent, as stored in the database and blob store and hashed onto the chain.
///
/// Build one with [`ActionRecord::new`]; a record is immutable once built (its hash would change).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRecord {
    /// Record format version ([`RECORD_VERSION`]).
    pub version: u32,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The `ActionLog` contract the record's hash is appended to.
    pub action_log: Address,
    /// The INFT token id.
    #[serde(with = "decimal")]
    pub token_id: U256,
    /// Position in the token's log, from [`FIRST_SEQ`] (= 1), as the contract numbers it.
    pub seq: u64,
    /// [`record_hash`](Self::record_hash) of the record at `seq - 1`; zero for the first.
    pub prev_record_hash: B256,
    /// What kind of action.
    pub kind: ActionKind,
    /// Hash of the model's plaintext GGUF.
    pub model_hash: B256,
    /// `keccak256` of the prompt's UTF-8 bytes.
    pub prompt_hash: B256,
    /// The prompt, when kept (needed for replay).
    pub prompt: Option<String>,
    /// The output text.
    pub output: String,
    /// `keccak256` of the output's UTF-8 bytes.
    pub output_hash: B256,
    /// The sampler settings.
    pub sampler: Value,
    /// The sampler seed.
    #[serde(with = "decimal")]
    pub seed: u64,
    /// The llama.cpp build string.
    pub llama_build: String,
    /// For trades: the trade transaction hash.
    pub tx_hash: Option<B256>,
    /// Kind-specific details.
    pub details: Value,
    /// Milliseconds since the Unix epoch when the record was made.
    pub timestamp_ms: u64,
}

/// `keccak256` of content bytes (prompts, outputs): the hash a creative agent's output is known by.
pub fn content_hash(bytes: &[u8]) -> B256 {
    keccak256(bytes)
}

impl ActionRecord {
    /// Places `draft` in `log` at `seq`, after the record whose hash is `prev_record_hash`.
    pub fn new(
        log: &LogId,
        seq: u64,
        prev_record_hash: B256,
        draft: ActionDraft,
        timestamp_ms: u64,
    ) -> Self {
        Self {
            version: RECORD_VERSION,
            chain_id: log.chain_id,
            action_log: log.action_log,
            token_id: log.token_id,
            seq,
            prev_record_hash,
            kind: draft.kind,
            model_hash: draft.model_hash,
            prompt_hash: content_hash(draft.prompt.as_bytes()),
            prompt: draft.keep_prompt.then_some(draft.prompt),
            output_hash: content_hash(draft.output.as_bytes()),
            output: draft.output,
            sampler: draft.sampler,
            seed: draft.seed,
            llama_build: draft.llama_build,
            tx_hash: draft.tx_hash,
            details: draft.details,
            timestamp_ms,
        }
    }

    /// The log this record belongs to.
    pub fn log_id(&self) -> LogId {
        LogId {
            chain_id: self.chain_id,
            action_log: self.action_log,
            token_id: self.token_id,
        }
    }

    /// The canonical JSON bytes of the record (see the module docs).
    pub fn canonical_json(&self) -> Result<Vec<u8>, RecordError> {
        Ok(canonical_json(&serde_json::to_value(self)?).into_bytes())
    }

    /// Parses a record from JSON and checks its version and content hashes. The result's
    /// [`canonical_json`](Self::canonical_json) may differ from `bytes` only in key order and
    /// whitespace.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let record: Self = serde_json::from_slice(bytes)?;
        record.check()?;
        Ok(record)
    }

    /// Checks the version and that the content hashes match the content carried.
    pub fn check(&self) -> Result<(), RecordError> {
        if self.version != RECORD_VERSION {
            return Err(RecordError::Version(self.version));
        }
        if content_hash(self.output.as_bytes()) != self.output_hash {
            return Err(RecordError::ContentHash {
                field: "output_hash",
            });
        }
        if let Some(prompt) = &self.prompt
            && content_hash(prompt.as_bytes()) != self.prompt_hash
        {
            return Err(RecordError::ContentHash {
                field: "prompt_hash",
            });
        }
        Ok(())
    }

    /// The record hash that goes on chain:
    /// `keccak256(RECORD_HASH_LABEL ‖ canonical_json(self))`.
    pub fn record_hash(&self) -> Result<B256, RecordError> {
        let json = self.canonical_json()?;
        Ok(hash_canonical(&json))
    }

    /// The EIP-712 domain of this record's log.
    pub fn eip712_domain(&self) -> Eip712Domain {
        log_domain(&self.log_id())
    }

    /// The EIP-712 digest the agent key signs for this record.
    pub fn signing_hash(&self) -> Result<B256, RecordError> {
        Ok(self.signing_hash_with(self.record_hash()?))
    }

    fn signing_hash_with(&self, record_hash: B256) -> B256 {
        let typed = eip712::ActionRecord {
            tokenId: self.token_id,
            seq: self.seq,
            prevRecordHash: self.prev_record_hash,
            recordHash: record_hash,
        };
        typed.eip712_signing_hash(&self.eip712_domain())
    }

    /// Signs the record with the agent key.
    pub fn sign(self, agent: &PrivateKeySigner) -> Result<SignedRecord, RecordError> {
        let record_hash = self.record_hash()?;
        let signature = agent.sign_hash_sync(&self.signing_hash_with(record_hash))?;
        Ok(SignedRecord {
            record: self,
            signature,
            record_hash,
        })
    }
}

/// `keccak256(RECORD_HASH_LABEL ‖ json)` for already-canonical JSON bytes.
fn hash_canonical(json: &[u8]) -> B256 {
    let mut buf = Vec::with_capacity(RECORD_HASH_LABEL.len() + json.len());
    buf.extend_from_slice(RECORD_HASH_LABEL);
    buf.extend_from_slice(json);
    keccak256(&buf)
}

/// The EIP-712 domain of a log: `{name: "inft ActionLog", version: "1", chainId, verifyingContract}`.
pub fn log_domain(log: &LogId) -> Eip712Domain {
    eip712_domain! {
        name: EIP712_NAME,
        version: EIP712_VERSION,
        chain_id: log.chain_id,
        verifying_contract: log.action_log,
    }
}

/// A record with the agent's signature, and its hash (computed once).
#[derive(Clone, Debug, PartialEq)]
pub struct SignedRecord {
    record: ActionRecord,
    signature: Signature,
    record_hash: B256,
}

/// The JSON envelope a signed record is stored in (database export, blob store).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    record: ActionRecord,
    /// 65 bytes `r ‖ s ‖ v` (v = 27 or 28), `0x`-hex.
    signature: alloy::primitives::Bytes,
}

impl SignedRecord {
    /// Re-assembles a signed record from its parts (e.g. from the database), checking the
    /// signature's form and the record's content hashes. Does not check who signed: see
    /// [`verify`](Self::verify).
    pub fn from_parts(record: ActionRecord, signature: &[u8]) -> Result<Self, RecordError> {
        record.check()?;
        let signature = parse_signature(signature)?;
        let record_hash = record.record_hash()?;
        Ok(Self {
            record,
            signature,
            record_hash,
        })
    }

    /// The record.
    pub fn record(&self) -> &ActionRecord {
        &self.record
    }

    /// The record hash (what goes on chain).
    pub fn record_hash(&self) -> B256 {
        self.record_hash
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signature as 65 bytes `r ‖ s ‖ v` with `v` = 27 or 28.
    pub fn signature_bytes(&self) -> [u8; 65] {
        self.signature.as_bytes()
    }

    /// The address that signed the record.
    pub fn signer(&self) -> Result<Address, RecordError> {
        let digest = self.record.signing_hash_with(self.record_hash);
        self.signature
            .recover_address_from_prehash(&digest)
            .map_err(|e| RecordError::BadSignature(e.to_string()))
    }

    /// Checks that `agent` signed this record.
    pub fn verify(&self, agent: Address) -> Result<(), RecordError> {
        let actual = self.signer()?;
        if actual != agent {
            return Err(RecordError::WrongSigner {
                expected: agent,
                actual,
            });
        }
        Ok(())
    }

    /// The JSON envelope `{"record": …, "signature": "0x…"}` in canonical form, as stored in
    /// the blob store.
    pub fn to_envelope_json(&self) -> Result<Vec<u8>, RecordError> {
        let env = Envelope {
            record: self.record.clone(),
            signature: self.signature.as_bytes().to_vec().into(),
        };
        Ok(canonical_json(&serde_json::to_value(&env)?).into_bytes())
    }

    /// Parses an envelope written by [`to_envelope_json`](Self::to_envelope_json).
    pub fn from_envelope_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let env: Envelope = serde_json::from_slice(bytes)?;
        Self::from_parts(env.record, &env.signature)
    }

    /// Consumes the signed record, returning the record.
    pub fn into_record(self) -> ActionRecord {
        self.record
    }
}

/// Parses a 65-byte signature and refuses high-`s` (malleable) forms, which RFC 6979 signers
/// never produce: one record has exactly one valid signature encoding.
pub(crate) fn parse_signature(bytes: &[u8]) -> Result<Signature, RecordError> {
    let sig = Signature::from_raw(bytes).map_err(|e| RecordError::BadSignature(e.to_string()))?;
    if sig.normalize_s().is_some() {
        return Err(RecordError::BadSignature("high s value".into()));
    }
    Ok(sig)
}

/// Verifies a stored record against its stored hash and the expected agent. Used by the
/// database layer and by audits.
pub fn verify_stored(
    record_json: &[u8],
    stored_hash: B256,
    signature: &[u8],
    agent: Address,
) -> Result<SignedRecord, RecordError> {
    let record = ActionRecord::from_json(record_json)?;
    let signed = SignedRecord::from_parts(record, signature)?;
    if signed.record_hash != stored_hash {
        return Err(RecordError::HashMismatch {
            stored: stored_hash,
            computed: signed.record_hash,
        });
    }
    signed.verify(agent)?;
    Ok(signed)
}

/// Writes `value` as canonical JSON: object keys sorted by UTF-8 bytes, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // serde_json prints integers exactly and floats in shortest round-trip form.
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sort explicitly: serde_json's map order depends on the `preserve_order` feature,
            // which any crate in the build may switch on.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // Serializing a &str cannot fail.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// Fixtures for the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A creative draft of `output` with `details` and fixed model, prompt, sampler and build.
    pub(crate) fn draft(output: &str, details: Value) -> ActionDraft {
        ActionDraft {
            kind: ActionKind::Creative,
            model_hash: B256::repeat_byte(1),
            prompt: "p".into(),
            keep_prompt: true,
            output: output.into(),
            sampler: Value::Null,
            seed: 1,
            llama_build: "b".into(),
            tx_hash: None,
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log() -> LogId {
        LogId {
            chain_id: 31337,
            action_log: Address::repeat_byte(0xaa),
            token_id: U256::from(7u64),
        }
    }

    fn draft(output: &str) -> ActionDraft {
        ActionDraft {
            kind: ActionKind::Creative,
            model_hash: B256::repeat_byte(0x11),
            prompt: "write a haiku".into(),
            keep_prompt: true,
            output: output.into(),
            sampler: json!({"temperature": 0.8, "top_k": 40, "greedy": false}),
            seed: u64::MAX,
            llama_build: "b1-test".into(),
            tx_hash: None,
            details: Value::Null,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_has_no_whitespace() {
        let v = json!({"b": [1, 2.5, {"z": null, "a": true}], "a": "x\"y", "é": 1, "Z": -3});
        assert_eq!(
            canonical_json(&v),
            r#"{"Z":-3,"a":"x\"y","b":[1,2.5,{"a":true,"z":null}],"é":1}"#
        );
    }

    #[test]
    fn record_round_trips_through_json_with_the_same_hash() {
        let r = ActionRecord::new(
            &log(),
            3,
            B256::repeat_byte(9),
            draft("hello"),
            1_700_000_000_000,
        );
        let json = r.canonical_json().unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        // Big numbers are strings; addresses and hashes lowercase hex.
        assert!(text.contains(r#""seed":"18446744073709551615""#), "{text}");
        assert!(text.contains(r#""token_id":"7""#), "{text}");
        assert!(
            text.contains(r#""action_log":"0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#),
            "{text}"
        );
        let back = ActionRecord::from_json(&json).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.record_hash().unwrap(), r.record_hash().unwrap());
        assert_eq!(back.canonical_json().unwrap(), json);
    }

    #[test]
    fn record_hash_is_pinned() {
        // A fixed vector: changing the canonical encoding or label breaks every logged hash.
        let r = ActionRecord::new(&log(), 0, B256::ZERO, draft("hello"), 1_700_000_000_000);
        let json = String::from_utf8(r.canonical_json().unwrap()).unwrap();
        let expected_json = concat!(
            r#"{"action_log":"0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","chain_id":31337,"details":null,"#,
            r#""kind":"creative","llama_build":"b1-test","#,
            r#""model_hash":"0x1111111111111111111111111111111111111111111111111111111111111111","#,
            r#""output":"hello","output_hash":"0x1c8aff950685c2ed4bc3174f3472287b56d9517b9c948127319a09a7a36deac8","#,
            r#""prev_record_hash":"0x0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""prompt":"write a haiku","#,
        );
        assert!(json.starts_with(expected_json), "{json}");
        let mut pre = RECORD_HASH_LABEL.to_vec();
        pre.extend_from_slice(json.as_bytes());
        assert_eq!(r.record_hash().unwrap(), keccak256(&pre));
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = ActionRecord::new(&log(), 1, B256::repeat_byte(1), draft("out"), 5);
        let h = base.record_hash().unwrap();
        let mut variants = Vec::new();
        let mut r = base.clone();
        r.chain_id += 1;
        variants.push(r);
        let mut r = base.clone();
        r.action_log = Address::repeat_byte(0xbb);
        variants.push(r);
        let mut r = base.clone();
        r.token_id += U256::from(1);
        variants.push(r);
        let mut r = base.clone();
        r.seq += 1;
        variants.push(r);
        let mut r = base.clone();
        r.prev_record_hash = B256::repeat_byte(2);
        variants.push(r);
        let mut r = base.clone();
        r.kind = ActionKind::Trade;
        variants.push(r);
        let mut r = base.clone();
        r.sampler = json!({"temperature": 0.81});
        variants.push(r);
        let mut r = base.clone();
        r.seed ^= 1;
        variants.push(r);
        let mut r = base.clone();
        r.tx_hash = Some(B256::repeat_byte(3));
        variants.push(r);
        let mut r = base.clone();
        r.timestamp_ms += 1;
        variants.push(r);
        for v in variants {
            assert_ne!(v.record_hash().unwrap(), h, "{v:?}");
        }
    }

    #[test]
    fn signature_recovers_the_agent_and_binds_the_log() {
        let agent = PrivateKeySigner::random();
        let r = ActionRecord::new(&log(), 0, B256::ZERO, draft("x"), 1);
        let signed = r.clone().sign(&agent).unwrap();
        assert_eq!(signed.signer().unwrap(), agent.address());
        signed.verify(agent.address()).unwrap();
        // Deterministic (RFC 6979).
        assert_eq!(
            r.clone().sign(&agent).unwrap().signature_bytes(),
            signed.signature_bytes()
        );

        let other = PrivateKeySigner::random();
        assert!(matches!(
            signed.verify(other.address()),
            Err(RecordError::WrongSigner { .. })
        ));

        // The same signature on a record moved to another chain recovers someone else.
        let mut moved = r.clone();
        moved.chain_id = 1;
        let forged = SignedRecord::from_parts(moved, &signed.signature_bytes()).unwrap();
        assert!(forged.verify(agent.address()).is_err());
    }

    #[test]
    fn envelope_round_trip_and_tamper_detection() {
        let agent = PrivateKeySigner::random();
        let signed = ActionRecord::new(&log(), 0, B256::ZERO, draft("x"), 1)
            .sign(&agent)
            .unwrap();
        let env = signed.to_envelope_json().unwrap();
        let back = SignedRecord::from_envelope_json(&env).unwrap();
        assert_eq!(back, signed);

        let tampered = String::from_utf8(env)
            .unwrap()
            .replace(r#""output":"x""#, r#""output":"y""#);
        assert!(matches!(
            SignedRecord::from_envelope_json(tampered.as_bytes()),
            Err(RecordError::ContentHash {
                field: "output_hash"
            })
        ));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(ActionRecord::from_json(b"").is_err());
        assert!(ActionRecord::from_json(b"{}").is_err());
        assert!(SignedRecord::from_envelope_json(b"[1,2]").is_err());
        let r = ActionRecord::new(&log(), 0, B256::ZERO, draft("x"), 1);
        assert!(SignedRecord::from_parts(r.clone(), &[0u8; 10]).is_err());
        // 65 zero bytes: refused as a signature, or recovering nobody.
        if let Ok(s) = SignedRecord::from_parts(r.clone(), &[0u8; 65]) {
            assert!(s.signer().is_err());
        }
        // Unknown fields and non-canonical numbers are refused.
        let mut v = serde_json::to_value(&r).unwrap();
        v["extra"] = json!(1);
        assert!(ActionRecord::from_json(v.to_string().as_bytes()).is_err());
        let mut v = serde_json::to_value(&r).unwrap();
        v["token_id"] = json!("007");
        assert!(ActionRecord::from_json(v.to_string().as_bytes()).is_err());
        let mut v = serde_json::to_value(&r).unwrap();
        v["version"] = json!(2);
        assert!(matches!(
            ActionRecord::from_json(v.to_string().as_bytes()),
            Err(RecordError::Version(2))
        ));
        let mut v = serde_json::to_value(&r).unwrap();
        v["kind"] = json!("Bad Kind");
        assert!(ActionRecord::from_json(v.to_string().as_bytes()).is_err());
    }

    #[test]
    fn high_s_signatures_are_refused() {
        let agent = PrivateKeySigner::random();
        let signed = ActionRecord::new(&log(), 0, B256::ZERO, draft("x"), 1)
            .sign(&agent)
            .unwrap();
        let sig = *signed.signature();
        // Flip to the malleable twin (n - s, parity flipped).
        let n = U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )
        .unwrap();
        let twin = Signature::new(sig.r(), n - sig.s(), !sig.v());
        assert!(matches!(
            SignedRecord::from_parts(signed.record().clone(), &twin.as_bytes()),
            Err(RecordError::BadSignature(_))
        ));
    }
}
