//! The agent's memory: short notes from earlier runs, owned by the token.
//!
//! The memory is the token's optional fourth data entry ([`EntryKind::Memory`]): a small JSON
//! document ([`AgentMemory`]) sealed like every other entry, so it is private to the holder,
//! committed to on chain by its data hash, and re-encrypted for the receiver when the token moves.
//! The runtime puts it into the agent's prompts ([`AgentMemory::prompt_text`]) and, after an
//! owner's run, appends the strategy's note (`Strategy::memory_note` in `inft-runtime`) and publishes the new
//! memory ([`update_memory`]), logging the update as an ordinary action whose record carries the
//! old and new data hashes but never the note ([`memory_update_draft`]).
//!
//! **Only the owner updates the memory.** `AgentNFT.updateData` is owner-only, and the new memory
//! is sealed to the owner alone. An executor running under a grant reads no memory and writes
//! none: a grant seals keys for fixed data hashes, and the memory's hash changes with every
//! update, so a memory key in a grant would go stale after the next run anyway.
//!
//! **Bounds.** At most [`MAX_NOTES`] notes of at most [`MAX_NOTE_CHARS`] characters each, and at
//! most [`MAX_MEMORY_BYTES`] of JSON in all; the oldest notes are dropped first. A document out of
//! these bounds is refused when read, so a memory can never crowd the model's context.
//!

use std::io::Cursor;

use alloy::primitives::{B256, U256};
use sealing::{SealOptions, SealingPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::blobstore::BlobStore;
use crate::pipeline::{EntryRef, PipelineError, seal_entry};
use crate::record::{ActionDraft, ActionKind, ActionRecord};
use crate::token::{AgentNft, TokenError};
use inft_types::config::EntryKind;

/// Version of the [`AgentMemory`] JSON layout.
pub const MEMORY_VERSION: u32 = 1;
/// Most notes a memory keeps (the newest).
pub const MAX_NOTES: usize = 8;
/// Longest note, in characters (longer notes are cut when added).
pub const MAX_NOTE_CHARS: usize = 400;
/// Largest memory document, in bytes of JSON.
pub const MAX_MEMORY_BYTES: usize = 4096;
/// The action kind of a memory update record.
pub const MEMORY_UPDATE_KIND: &str = "memory-update";

/// Why a memory document was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// Not valid JSON of the expected shape.
    #[error("agent memory is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A layout version this runtime does not know.
    #[error("unsupported agent memory version {0}")]
    Version(u32),
    /// The document is larger than [`MAX_MEMORY_BYTES`].
    #[error("agent memory is {bytes} bytes, more than {MAX_MEMORY_BYTES}")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The document holds more than [`MAX_NOTES`] notes.
    #[error("agent memory holds {0} notes, more than {MAX_NOTES}")]
    TooManyNotes(usize),
    /// A note is longer than [`MAX_NOTE_CHARS`].
    #[error("memory note {index} has {chars} characters, more than {MAX_NOTE_CHARS}")]
    NoteTooLong {
        /// Which note.
        index: usize,
        /// Its length.
        chars: usize,
    },
}

/// One note: what a run taught the agent. The text is zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct MemoryNote {
    /// When the run ended (unix seconds).
    #[zeroize(skip)]
    pub at: u64,
    /// How many steps the run took.
    #[zeroize(skip)]
    pub steps: u64,
    /// The log positions of the run's first and last actions, if it recorded any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[zeroize(skip)]
    pub seqs: Option<[u64; 2]>,
    /// The note, one line of at most [`MAX_NOTE_CHARS`] characters.
    pub text: String,
}

impl std::fmt::Debug for MemoryNote {
    // The text is the agent's private memory: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNote")
            .field("at", &self.at)
            .field("steps", &self.steps)
            .field("seqs", &self.seqs)
            .field("chars", &self.text.chars().count())
            .finish()
    }
}

impl MemoryNote {
    /// A note of a run that ended at `at` (unix seconds) after `steps` steps whose actions took
    /// the log positions `seqs`. The text is made one line (control characters and runs of
    /// whitespace become one space) and cut to [`MAX_NOTE_CHARS`]; `None` if nothing is left.
    pub fn new(at: u64, steps: u64, seqs: Option<[u64; 2]>, text: &str) -> Option<Self> {
        let mut line = String::with_capacity(text.len().min(MAX_NOTE_CHARS * 4));
        let mut chars = 0;
        for word in text.split(|c: char| c.is_whitespace() || c.is_control()) {
            if word.is_empty() {
                continue;
            }
            for c in (!line.is_empty())
                .then_some(' ')
                .into_iter()
                .chain(word.chars())
            {
                if chars == MAX_NOTE_CHARS {
                    // Mark the cut, within the bound.
                    line.pop();
                    line.push('…');
                    return Some(Self::with_text(at, steps, seqs, line));
                }
                line.push(c);
                chars += 1;
            }
        }
        (!line.is_empty()).then(|| Self::with_text(at, steps, seqs, line))
    }

    fn with_text(at: u64, steps: u64, seqs: Option<[u64; 2]>, text: String) -> Self {
        Self {
            at,
            steps,
            seqs,
            text,
        }
    }
}

/// The agent's memory, sealed as the token's [`EntryKind::Memory`] entry. Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct AgentMemory {
    /// Layout version ([`MEMORY_VERSION`]).
    #[zeroize(skip)]
    pub version: u32,
    /// The notes, oldest first.
    pub notes: Vec<MemoryNote>,
}

impl Default for AgentMemory {
    fn default() -> Self {
        Self {
            version: MEMORY_VERSION,
            notes: Vec::new(),
        }
    }
}

impl std::fmt::Debug for AgentMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMemory")
            .field("version", &self.version)
            .field("notes", &self.notes.len())
            .finish()
    }
}

impl AgentMemory {
    /// An empty memory (what a new agent is minted with).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and checks a memory document: its version and every bound.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MemoryError> {
        if bytes.len() > MAX_MEMORY_BYTES {
            return Err(MemoryError::TooLarge { bytes: bytes.len() });
        }
        let memory: AgentMemory = serde_json::from_slice(bytes)?;
        if memory.version != MEMORY_VERSION {
            return Err(MemoryError::Version(memory.version));
        }
        if memory.notes.len() > MAX_NOTES {
            return Err(MemoryError::TooManyNotes(memory.notes.len()));
        }
        for (index, note) in memory.notes.iter().enumerate() {
            let chars = note.text.chars().count();
            if chars > MAX_NOTE_CHARS {
                return Err(MemoryError::NoteTooLong { index, chars });
            }
        }
        Ok(memory)
    }

    /// The JSON bytes that are sealed, in a buffer zeroized on drop.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        // A struct of plain data always serializes.
        Zeroizing::new(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Appends `note`, then drops the oldest notes until at most [`MAX_NOTES`] remain and the
    /// document fits in [`MAX_MEMORY_BYTES`].
    pub fn push(&mut self, note: MemoryNote) {
        self.notes.push(note);
        let excess = self.notes.len().saturating_sub(MAX_NOTES);
        self.notes.drain(..excess);
        // One note always fits: 400 characters escape to at most 2,400 bytes of JSON.
        while self.notes.len() > 1 && self.to_json().len() > MAX_MEMORY_BYTES {
            self.notes.remove(0);
        }
    }

    /// The number of notes.
    pub fn len(&self) -> usize {
        self.notes.len()
    }

    /// Whether it holds no note.
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// The memory as short plain text for a prompt, oldest note first; `None` when empty:
    ///
    /// ```text
    /// Notes from earlier runs:
    /// - 2025-01-02 14:03 UTC, 3 steps: Wrote 3 pieces: …
    /// ```
    pub fn prompt_text(&self) -> Option<String> {
        if self.notes.is_empty() {
            return None;
        }
        let mut text = String::from("Notes from earlier runs:");
        for note in &self.notes {
            text.push_str(&format!(
                "\n- {}, {} step{}: {}",
                utc_minutes(note.at),
                note.steps,
                if note.steps == 1 { "" } else { "s" },
                note.text
            ));
        }
        Some(text)
    }
}

/// `YYYY-MM-DD HH:MM UTC` for unix seconds.
fn utc_minutes(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || format!("{secs} s"),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
}

/// Why publishing a new memory failed. Nothing changed on chain on any error (the new blob is
/// then merely unreferenced).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryUpdateError {
    /// Sealing the new memory failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A chain read or the `updateData` transaction failed (a typed revert inside, e.g. the
    /// sender is not the owner).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The entries given are not an agent's (three, or four with memory).
    #[error("an agent token has 3 data entries, or 4 with memory; {0} were given")]
    Layout(usize),
    /// The token's data changed since the entries were read (another update or a transfer):
    /// writing now would undo that change.
    #[error("token {0}'s data changed since its entries were read")]
    Stale(U256),
}

/// A published memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryUpdate {
    /// The memory entry's data hash before, `None` if the token had no memory entry.
    pub old_data_hash: Option<B256>,
    /// The new memory entry's data hash (on chain now).
    pub new_data_hash: B256,
    /// The `updateData` transaction.
    pub tx_hash: B256,
    /// The token's entries now, in on-chain order.
    pub entries: Vec<EntryRef>,
    /// Notes in the new memory.
    pub notes: usize,
}

/// Publishes `memory` as the memory of `token_id`, through `nft`'s wallet (the owner's): seals it
/// with a fresh data key to `owner_key` (the owner's sealing public key), then `updateData` with
/// the model, agent-key and config entries of `current` unchanged (hashes, sealed keys and URIs
/// exactly as the latest `DataSet` holds them: pass the owner's [`AgentNft::entries_for`]) and the
/// new memory entry after them. `current` may lack a memory entry: one is then added.
pub async fn update_memory(
    nft: &AgentNft,
    store: &dyn BlobStore,
    owner_key: &SealingPublicKey,
    token_id: U256,
    current: &[EntryRef],
    memory: &AgentMemory,
    opts: &SealOptions,
) -> Result<MemoryUpdate, MemoryUpdateError> {
    let required = EntryKind::REQUIRED.len();
    if current.len() != required && current.len() != EntryKind::ALL.len() {
        return Err(MemoryUpdateError::Layout(current.len()));
    }
    // updateData replaces every entry: check first that `current` is what the chain holds.
    let hash_of = |e: &EntryRef| B256::from(*e.data_hash.as_bytes());
    let state = nft.state(token_id).await?;
    if state.data_hashes != current.iter().map(hash_of).collect::<Vec<_>>() {
        return Err(MemoryUpdateError::Stale(token_id));
    }
    let token = nft.token_ref(token_id);
    let sealed = seal_entry(
        store,
        EntryKind::Memory,
        Box::new(Cursor::new(memory.to_json())),
        owner_key,
        &token,
        opts,
    )
    .await?;
    let new_data_hash = hash_of(&sealed);
    let mut entries = current[..required].to_vec();
    entries.push(sealed);
    let tx_hash = nft.update_data(token_id, &entries).await?;
    tracing::info!(token = %token_id, memory = %new_data_hash, tx = %tx_hash, "agent memory updated");
    Ok(MemoryUpdate {
        old_data_hash: current.get(EntryKind::Memory.index()).map(hash_of),
        new_data_hash,
        tx_hash,
        entries,
        notes: memory.len(),
    })
}

/// The action a memory update is logged as: kind [`MEMORY_UPDATE_KIND`], signed by the agent
/// like every record, with the `updateData` transaction (so the audit checks its receipt) and
/// `details` = `{entry, old_data_hash, new_data_hash, tx, notes}`. The memory is private: the
/// record carries no note text, no prompt and no model output.
pub fn memory_update_draft(update: &MemoryUpdate) -> ActionDraft {
    ActionDraft {
        // A valid kind name (lowercase and '-'), as ActionKind::parse makes it.
        kind: ActionKind::Other(MEMORY_UPDATE_KIND.to_owned()),
        model_hash: B256::ZERO,
        prompt: String::new(),
        keep_prompt: false,
        output: String::new(),
        sampler: Value::Null,
        seed: 0,
        llama_build: String::new(),
        tx_hash: Some(update.tx_hash),
        details: json!({
            "entry": EntryKind::Memory.index(),
            "old_data_hash": update.old_data_hash,
            "new_data_hash": update.new_data_hash,
            "tx": update.tx_hash,
            "notes": update.notes,
        }),
    }
}

/// A memory update as a record logs it (see [`memory_update_draft`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LoggedMemoryUpdate {
    /// The memory's data hash before (`None`: the update added the memory entry).
    pub old_data_hash: Option<B256>,
    /// The new memory's data hash.
    pub new_data_hash: B256,
    /// The `updateData` transaction.
    pub tx: Option<B256>,
    /// Notes in the new memory.
    pub notes: u64,
}

impl LoggedMemoryUpdate {
    /// Reads a memory-update record; `None` for another kind or details without a new hash.
    pub fn from_record(record: &ActionRecord) -> Option<Self> {
        if record.kind.as_str() != MEMORY_UPDATE_KIND {
            return None;
        }
        let d = &record.details;
        let hash = |k: &str| d[k].as_str().and_then(|s| s.parse::<B256>().ok());
        Some(Self {
            old_data_hash: hash("old_data_hash"),
            new_data_hash: hash("new_data_hash")?,
            tx: hash("tx").or(record.tx_hash),
            notes: d["notes"].as_u64().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(text: &str) -> MemoryNote {
        MemoryNote::new(1_700_000_000, 2, Some([1, 2]), text).unwrap()
    }

    #[test]
    fn round_trips_through_json() {
        let mut m = AgentMemory::new();
        m.push(note("Wrote 2 pieces: Sea, Salt"));
        m.push(MemoryNote::new(1_700_000_100, 1, None, "Learned \"quotes\" and ünïcode").unwrap());
        let back = AgentMemory::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.notes[1].seqs, None);
        assert_eq!(
            AgentMemory::from_json(b"{\"version\":1,\"notes\":[]}").unwrap(),
            AgentMemory::new()
        );
    }

    #[test]
    fn keeps_the_newest_notes_within_bounds() {
        let mut m = AgentMemory::new();
        for i in 0..20 {
            // Two bytes a character: eight cut notes would not fit in 4 KiB.
            m.push(note(&format!("note {i} {}", "é".repeat(1000))));
            assert!(m.len() <= MAX_NOTES);
            assert!(
                m.to_json().len() <= MAX_MEMORY_BYTES,
                "{}",
                m.to_json().len()
            );
            assert!(
                m.notes
                    .iter()
                    .all(|n| n.text.chars().count() <= MAX_NOTE_CHARS)
            );
        }
        // Long notes: the byte bound drops more than the count bound does; the newest stays.
        assert!(m.notes.last().unwrap().text.starts_with("note 19 "));
        assert!(m.len() < MAX_NOTES);
        let mut short = AgentMemory::new();
        for i in 0..20 {
            short.push(note(&format!("note {i}")));
        }
        assert_eq!(short.len(), MAX_NOTES);
        assert_eq!(short.notes[0].text, "note 12");
        AgentMemory::from_json(&m.to_json()).unwrap();
        AgentMemory::from_json(&short.to_json()).unwrap();
    }

    #[test]
    fn notes_are_one_line_and_cut() {
        let n = note("  first\nsecond\t\u{7}third  ");
        assert_eq!(n.text, "first second third");
        let long = note(&"é".repeat(MAX_NOTE_CHARS + 5));
        assert_eq!(long.text.chars().count(), MAX_NOTE_CHARS);
        assert!(long.text.ends_with('…'));
        let exact = note(&"a".repeat(MAX_NOTE_CHARS));
        assert_eq!(exact.text, "a".repeat(MAX_NOTE_CHARS));
        assert!(MemoryNote::new(0, 0, None, " \n\t ").is_none());
    }

    #[test]
    fn refuses_malformed_and_out_of_bounds_documents() {
        assert!(matches!(
            AgentMemory::from_json(b"\xff\x00"),
            Err(MemoryError::Malformed(_))
        ));
        assert!(matches!(
            AgentMemory::from_json(b"{\"version\":1,\"notes\":[],\"extra\":1}"),
            Err(MemoryError::Malformed(_))
        ));
        assert!(matches!(
            AgentMemory::from_json(b"{\"version\":2,\"notes\":[]}"),
            Err(MemoryError::Version(2))
        ));
        let big = format!(
            "{{\"version\":1,\"notes\":[],\"pad\":\"{}\"}}",
            " ".repeat(5000)
        );
        assert!(matches!(
            AgentMemory::from_json(big.as_bytes()),
            Err(MemoryError::TooLarge { .. })
        ));
        let many = json!({"version": 1, "notes": (0..9).map(|i| json!({"at": i, "steps": 1, "text": "n"})).collect::<Vec<_>>()});
        assert!(matches!(
            AgentMemory::from_json(many.to_string().as_bytes()),
            Err(MemoryError::TooManyNotes(9))
        ));
        let long = json!({"version": 1, "notes": [{"at": 0, "steps": 1, "text": "y".repeat(401)}]});
        assert!(matches!(
            AgentMemory::from_json(long.to_string().as_bytes()),
            Err(MemoryError::NoteTooLong {
                index: 0,
                chars: 401
            })
        ));
    }

    #[test]
    fn prompt_text_lists_notes_oldest_first() {
        assert_eq!(AgentMemory::new().prompt_text(), None);
        let mut m = AgentMemory::new();
        m.push(MemoryNote::new(0, 1, None, "first").unwrap());
        m.push(MemoryNote::new(86_400 * 366 + 3_660, 3, Some([4, 6]), "second").unwrap());
        assert_eq!(
            m.prompt_text().unwrap(),
            "Notes from earlier runs:\n- 1970-01-01 00:00 UTC, 1 step: first\n- 1971-01-02 01:01 UTC, 3 steps: second"
        );
        // Debug output never shows the notes.
        assert!(!format!("{m:?} {:?}", m.notes[0]).contains("first"));
    }

    #[test]
    fn update_record_carries_hashes_but_no_note() {
        let update = MemoryUpdate {
            old_data_hash: Some(B256::repeat_byte(1)),
            new_data_hash: B256::repeat_byte(2),
            tx_hash: B256::repeat_byte(3),
            entries: Vec::new(),
            notes: 4,
        };
        let draft = memory_update_draft(&update);
        assert_eq!(
            ActionKind::parse(MEMORY_UPDATE_KIND),
            Some(draft.kind.clone())
        );
        assert!(draft.output.is_empty() && draft.prompt.is_empty() && !draft.keep_prompt);
        let log = crate::record::LogId {
            chain_id: 1,
            action_log: alloy::primitives::Address::ZERO,
            token_id: U256::from(1),
        };
        let record = ActionRecord::new(&log, 1, B256::ZERO, draft, 0);
        let logged = LoggedMemoryUpdate::from_record(&record).unwrap();
        assert_eq!(logged.old_data_hash, update.old_data_hash);
        assert_eq!(logged.new_data_hash, update.new_data_hash);
        assert_eq!(logged.tx, Some(update.tx_hash));
        assert_eq!(logged.notes, 4);
        assert_eq!(record.details["entry"], 3);
    }
}
