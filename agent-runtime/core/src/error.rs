//! Typed errors of the runtime's infrastructure modules (blob store, database, action records,
//! outbox, wallets). Each module re-exports its own error; they live together here so a caller
//! that handles several of them sees them side by side.
//!
//! Messages never contain secret material (passphrases, keys, signatures used as key material).

use alloy::primitives::{Address, B256};
use sealing::Commitment;

/// Why a blob could not be stored or fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The URI is not one this store understands.
    #[error("blob URI {uri:?} is not understood by this store: {reason}")]
    BadUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The URI names a different commitment than the one the caller expects (checked before
    /// any byte is fetched).
    #[error("blob URI {uri:?} names commitment {} but {} was expected", named.to_hex(), expected.to_hex())]
    UriMismatch {
        /// The URI as given.
        uri: String,
        /// The commitment the URI names.
        named: Commitment,
        /// The commitment the caller expects.
        expected: Commitment,
    },
    /// No blob with this commitment is stored there.
    #[error("blob {uri:?} not found")]
    NotFound {
        /// The URI as given.
        uri: String,
    },
    /// The bytes do not have the expected commitment. They were not kept.
    #[error("blob refused: commitment {} does not match the expected {}", actual.to_hex(), expected.to_hex())]
    CommitmentMismatch {
        /// The commitment the caller expects (e.g. the token's `dataHash`).
        expected: Commitment,
        /// The commitment of the bytes actually received.
        actual: Commitment,
    },
    /// The blob is larger than the configured limit; the transfer was stopped.
    #[error("blob refused: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The gateway could not be reached (connection refused, DNS, timeout before a response).
    #[error("blob gateway {url} is unreachable: {source}")]
    Unreachable {
        /// The URL that was requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The gateway answered with an unexpected HTTP status.
    #[error("blob gateway {url} answered HTTP {status}: {message}")]
    Status {
        /// The URL that was requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, for diagnosis.
        message: String,
    },
    /// The connection broke while the body was streaming.
    #[error("blob transfer with {url} failed: {source}")]
    Transfer {
        /// The URL that was requested.
        url: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The gateway answered something that is not the protocol (e.g. a different commitment
    /// for an upload than the one computed locally).
    #[error("blob gateway protocol error: {0}")]
    Protocol(String),
    /// Computing the commitment failed for a reason other than I/O.
    #[error("computing the blob commitment failed: {0}")]
    Commitment(String),
    /// Local file system error.
    #[error("blob store I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes stored under an action record's hash are not a signed record with that hash
    /// (altered, truncated, or another record). Nothing was kept.
    #[error("action record {expected} refused: {detail}")]
    RecordMismatch {
        /// The record hash asked for (as logged on chain).
        expected: B256,
        /// What is wrong with the bytes.
        detail: String,
    },
    /// This store does not hold public records (see [`BlobStore::put_record`](crate::blobstore::BlobStore::put_record)).
    #[error("this blob store does not hold public action records")]
    RecordsUnsupported,
    /// The store already holds this record with another signature and does not replace it:
    /// records are write-once (see [`blobstore::records`](crate::blobstore::records)).
    #[error(
        "action record {record_hash} is already stored with another signature, which is kept \
         (records are write-once); {detail}"
    )]
    RecordConflict {
        /// The record hash.
        record_hash: B256,
        /// Who signed the stored copy and the refused one, for diagnosis.
        detail: String,
    },
}

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The driver reported an error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying the migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (the database was edited by hand, or is corrupt).
    #[error("corrupt value in {table}.{column}: {detail}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A number does not fit the database's 63-bit signed integers.
    #[error("{what} = {value} does not fit in a database integer")]
    OutOfRange {
        /// What the number is.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A signed transaction for this nonce is already recorded and not finished.
    #[error("nonce {nonce} of {sender} already has an unfinished transaction {existing}")]
    NonceInUse {
        /// The sending account.
        sender: Address,
        /// The nonce.
        nonce: u64,
        /// The transaction already recorded for it.
        existing: B256,
    },
    /// A write through a fenced handle ([`Db::fenced`](crate::db::Db::fenced)) found its lease
    /// lost (expired, released, or taken over by another holder). Nothing was written.
    #[error("lease {key:?} was lost (expired or taken over); nothing was written")]
    LeaseLost {
        /// The lease key.
        key: String,
    },
}

impl DbError {
    /// Whether this is [`LeaseLost`](Self::LeaseLost): the writer no longer holds its lease and
    /// must stop (another node owns the work now).
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::LeaseLost { .. })
    }
}

/// Why an action record could not be encoded, signed or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record JSON is malformed or has unknown fields.
    #[error("malformed action record: {0}")]
    Json(#[from] serde_json::Error),
    /// The record has a format version this runtime does not know.
    #[error("unsupported action record version {0}")]
    Version(u32),
    /// A content hash in the record does not match the content it carries.
    #[error("action record field {field} does not match its content hash")]
    ContentHash {
        /// `prompt_hash` or `output_hash`.
        field: &'static str,
    },
    /// Signing failed.
    #[error("signing the action record failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// The signature is malformed, has a high `s`, or does not recover a key.
    #[error("invalid action record signature: {0}")]
    BadSignature(String),
    /// The signature recovers to a different address than the agent's.
    #[error("action record signed by {actual}, expected the agent {expected}")]
    WrongSigner {
        /// The agent address that should have signed.
        expected: Address,
        /// The address the signature recovers to.
        actual: Address,
    },
    /// The stored hash does not match the record's contents.
    #[error("action record hash mismatch: stored {stored}, computed {computed}")]
    HashMismatch {
        /// The hash stored beside the record.
        stored: B256,
        /// The hash computed from the record.
        computed: B256,
    },
}

/// An error reported by a [`ChainLog`](crate::outbox::ChainLog) implementation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainLogError {
    /// A transient failure (RPC unreachable, timeout, nonce race): retried with backoff.
    #[error("chain RPC error (will retry): {0}")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The transaction was mined but reverted. The outbox reconciles with the chain and retries.
    #[error("logActions transaction {tx_hash} reverted")]
    Reverted {
        /// The reverted transaction.
        tx_hash: B256,
    },
    /// The chain refuses this caller for good (e.g. not the token's agent or an authorized
    /// executor). Not retried.
    #[error("chain refused to log actions: {0}")]
    Rejected(String),
}

impl ChainLogError {
    /// Wraps any error as a transient (retryable) failure.
    pub fn transient(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Transient(e.into())
    }

    /// Whether retrying later can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Reverted { .. })
    }
}

/// Why appending to or flushing the action log outbox failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The record could not be built, signed or verified.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The chain client failed.
    #[error(transparent)]
    Chain(#[from] ChainLogError),
    /// The chain holds a different hash at a sequence number than the local record, logged by
    /// this runtime's own signer (e.g. a database restored from an old backup, or two runtimes
    /// sharing a key), or the local database was altered. Never resolved automatically. (A
    /// different hash logged by another account is [`Foreign`](Self::Foreign).)
    #[error("integrity error at seq {seq}: chain has {chain}, local record is {local}")]
    Integrity {
        /// Sequence number concerned.
        seq: u64,
        /// The hash on chain.
        chain: B256,
        /// The hash of the local record.
        local: B256,
    },
    /// Another account (a LOG grantee, another runtime of an executor) logged at sequence numbers
    /// that local unconfirmed records were signed for: the contract takes each seq once, so those
    /// records, and every later one (they chain to them), can never land where they are. They
    /// must be re-signed at the chain's next free positions ([`Outbox::rebase`], done by
    /// [`Outbox::flush_rebasing`]), which needs their signing key: the logger alone cannot.
    ///
    /// [`Outbox::rebase`]: crate::outbox::Outbox::rebase
    /// [`Outbox::flush_rebasing`]: crate::outbox::Outbox::flush_rebasing
    #[error(
        "seq {seq} of token {token_id} was taken by {taken_by}, not by this runtime's signer \
         {signer}: the local records from seq {seq} on must be re-signed at the next free \
         sequence numbers, which needs their signing key (run `inft run {token_id} --steps 0`)"
    )]
    Foreign {
        /// The token.
        token_id: alloy::primitives::U256,
        /// The first sequence number taken.
        seq: u64,
        /// Who logged there (the `ActionsLogged` event's sender).
        taken_by: Address,
        /// Who signed (and logs) the local record at `seq`.
        signer: Address,
        /// The hash on chain at `seq`.
        chain: B256,
        /// The hash of the local record at `seq`.
        local: B256,
    },
    /// A rebase was asked with another key than the one that signed a record it must move.
    #[error(
        "the record at seq {seq} was signed by {signer}: re-signing it needs that key, not {given}"
    )]
    RebaseSigner {
        /// The record's sequence number.
        seq: u64,
        /// Who signed it.
        signer: Address,
        /// The key offered.
        given: Address,
    },
    /// The chain's next sequence number is below the first unconfirmed local entry, and the
    /// missing records are not in the local outbox (e.g. a chain reorganisation dropped them).
    #[error(
        "gap: chain expects seq {chain_next} but the first unconfirmed local entry is {local_first}"
    )]
    Gap {
        /// The chain's next sequence number.
        chain_next: u64,
        /// The first unconfirmed local sequence number.
        local_first: u64,
    },
    /// The chain returned a different number of hashes than asked for.
    #[error("chain returned {got} hashes for seq {from}..{to}")]
    ChainShape {
        /// First sequence number asked for.
        from: u64,
        /// One past the last.
        to: u64,
        /// How many came back.
        got: usize,
    },
    /// The record does not continue the log: its sequence number or previous hash is not the
    /// log's next position.
    #[error("record at seq {seq} does not continue the log (next seq {next_seq}, head {head})")]
    NotNext {
        /// The record's sequence number.
        seq: u64,
        /// The log's next sequence number.
        next_seq: u64,
        /// The log's last record hash.
        head: B256,
    },
    /// The log's position is unknown: no local record and the chain could not be asked.
    #[error("cannot start the log: no local record and the chain is unavailable: {0}")]
    Unsynced(#[source] ChainLogError),
    /// Publishing the record at `seq` to the blob store failed. Nothing is logged on chain
    /// before its record is public; the entry stays pending and is retried.
    #[error("publishing the record at seq {seq} failed: {source}")]
    Publish {
        /// Sequence number concerned.
        seq: u64,
        /// The blob store error.
        #[source]
        source: BlobError,
    },
    /// Gave up after this many consecutive retryable failures; entries stay pending.
    #[error("gave up after {attempts} consecutive failures: {last}")]
    GaveUp {
        /// Consecutive failed attempts.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<OutboxError>,
    },
}

impl OutboxError {
    /// Whether a fenced write found its lease lost ([`DbError::LeaseLost`], also behind
    /// [`GaveUp`](Self::GaveUp)): the caller must stop, another node owns the log now.
    pub fn is_lease_lost(&self) -> bool {
        match self {
            Self::Db(e) => e.is_lease_lost(),
            Self::GaveUp { last, .. } => last.is_lease_lost(),
            _ => false,
        }
    }

    /// Whether retrying later can help (the entries stay pending either way).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Chain(e) => e.is_retryable(),
            // A store that cannot hold records never will; anything else (gateway down, disk
            // full) may heal.
            Self::Publish { source, .. } => !matches!(source, BlobError::RecordsUnsupported),
            // A locked or busy database is transient; anything else in the DB is not expected
            // to heal by itself.
            Self::Db(DbError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))) => true,
            // PostgreSQL: a serialization failure or a deadlock victim; the transaction was
            // rolled back and may simply be run again.
            Self::Db(DbError::Sqlx(sqlx::Error::Database(e))) => {
                matches!(e.code().as_deref(), Some("40001" | "40P01"))
            }
            _ => false,
        }
    }
}

/// Why a wallet could not be loaded, created or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// No passphrase in the environment and no terminal to ask on.
    #[error(
        "no passphrase: set INFT_PASSPHRASE or INFT_PASSPHRASE_FILE, or run on a terminal to be prompted"
    )]
    NoPassphrase,
    /// The passphrase file could not be read.
    #[error("cannot read the passphrase file {path}: {source}")]
    PassphraseFile {
        /// The file named by `INFT_PASSPHRASE_FILE`.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the passphrase from the terminal failed.
    #[error("cannot read the passphrase from the terminal: {0}")]
    Prompt(#[source] std::io::Error),
    /// The keystore could not be decrypted (wrong passphrase or corrupt file) or written.
    #[error("keystore {path}: {source}")]
    Keystore {
        /// The keystore file or directory.
        path: std::path::PathBuf,
        /// The keystore error (its message contains no secret).
        #[source]
        source: eth_keystore::KeystoreError,
    },
    /// The decrypted key is not a valid secp256k1 private key.
    #[error("keystore {path} holds an invalid private key")]
    InvalidKey {
        /// The keystore file.
        path: std::path::PathBuf,
    },
    /// Signing failed.
    #[error("wallet signing failed: {0}")]
    Sign(#[from] alloy::signers::Error),
    /// The sealing key published for the wallet is none of the keys it derives.
    #[error(
        "the sealing key published for {owner} is not derived from this wallet (key indices 0-255); \
         was it set by another tool? `inft keys rotate` publishes one derived from this wallet"
    )]
    UnknownSealingKey {
        /// The wallet's address.
        owner: Address,
    },
    /// The wallet signature does not come from the expected owner.
    #[error("the sealing-key signature recovers to {actual}, not the owner {expected}")]
    WrongSigner {
        /// The owner address.
        expected: Address,
        /// The address the signature recovers to.
        actual: Address,
    },
    /// The signature is malformed.
    #[error("malformed wallet signature")]
    BadSignature,
    /// The sealing crate refused to derive a key from the signature.
    #[error("sealing key derivation failed: {0}")]
    Sealing(String),
    /// File system error.
    #[error("wallet I/O error: {0}")]
    Io(#[from] std::io::Error),
}
