//! The runtime's database: agents, action records, the outbox, indexed chain events and the
//! nonce manager's signed transactions.
//!
//! SQLite file by default (embedded, WAL journal, `synchronous = FULL` so a committed outbox
//! entry survives a power cut, foreign keys on). The schema lives in `agent-runtime/migrations`
//! and is applied by [`Db::open`]. Queries are checked at run time (no `DATABASE_URL` needed to
//! build) and written in portable SQL with `$n` placeholders so a PostgreSQL backend can follow.
//!
//! Encodings: addresses and hashes are `0x` + lowercase hex, uint256 token ids are `0x` + 64
//! hex digits (fixed width so they sort), times are milliseconds since the Unix epoch, and
//! documents are JSON text.

mod agents;
mod events;
mod nonces;
pub(crate) mod records;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use crate::error::DbError;
pub use agents::{Agent, AgentRow, AgentStatus};
pub use events::{ChainCursor, ChainEvent};
pub use nonces::{NewSignedTx, SignedTx, TxState};
pub use records::{OutboxEntry, OutboxState, StoredRecord};

static MIGRATOR: Migrator = sqlx::migrate!();

/// A handle to the runtime database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) the SQLite database file at `path` and applies pending
    /// migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Several tasks (agent loop, logger, indexer) share the file; wait for the writer
            // instead of failing with SQLITE_BUSY.
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Self::migrate(pool).await
    }

    /// Opens a private in-memory database (for tools and examples that need no persistence).
    pub async fn open_in_memory() -> Result<Self, DbError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // One connection: each in-memory connection would be a separate database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrate(pool).await
    }

    async fn migrate(pool: SqlitePool) -> Result<Self, DbError> {
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The underlying pool, for queries this module does not offer.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn addr_text(a: &Address) -> String {
    format!("0x{}", hex::encode(a.as_slice()))
}

pub(crate) fn b256_text(b: &B256) -> String {
    format!("0x{}", hex::encode(b.as_slice()))
}

pub(crate) fn u256_text(u: &U256) -> String {
    format!("0x{}", hex::encode(u.to_be_bytes::<32>()))
}

pub(crate) fn to_i64(what: &'static str, value: u64) -> Result<i64, DbError> {
    i64::try_from(value).map_err(|_| DbError::OutOfRange { what, value })
}

fn corrupt(table: &'static str, column: &'static str, detail: impl std::fmt::Display) -> DbError {
    DbError::Corrupt {
        table,
        column,
        detail: detail.to_string(),
    }
}

pub(crate) fn from_i64(table: &'static str, column: &'static str, v: i64) -> Result<u64, DbError> {
    u64::try_from(v).map_err(|_| corrupt(table, column, format!("negative value {v}")))
}

fn strict_hex(s: &str, len: usize) -> Option<&str> {
    let digits = s.strip_prefix("0x")?;
    (digits.len() == len * 2
        && digits
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    .then_some(digits)
}

pub(crate) fn parse_addr(
    table: &'static str,
    column: &'static str,
    s: &str,
) -> Result<Address, DbError> {
    strict_hex(s, 20)
        .and_then(|_| Address::from_str(s).ok())
        .ok_or_else(|| corrupt(table, column, format!("not an address: {s:?}")))
}

pub(crate) fn parse_b256(
    table: &'static str,
    column: &'static str,
    s: &str,
) -> Result<B256, DbError> {
    strict_hex(s, 32)
        .and_then(|_| B256::from_str(s).ok())
        .ok_or_else(|| corrupt(table, column, format!("not a 32-byte hash: {s:?}")))
}

pub(crate) fn parse_u256(
    table: &'static str,
    column: &'static str,
    s: &str,
) -> Result<U256, DbError> {
    strict_hex(s, 32)
        .and_then(|d| U256::from_str_radix(d, 16).ok())
        .ok_or_else(|| corrupt(table, column, format!("not a uint256: {s:?}")))
}

pub(crate) fn parse_json(
    table: &'static str,
    column: &'static str,
    s: &str,
) -> Result<serde_json::Value, DbError> {
    serde_json::from_str(s).map_err(|e| corrupt(table, column, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_fixed_width_lowercase_and_round_trip() {
        let a = Address::from_str("0xAbCdEf0123456789aBcDeF0123456789AbCdEf01").unwrap();
        assert_eq!(addr_text(&a), "0xabcdef0123456789abcdef0123456789abcdef01");
        assert_eq!(parse_addr("t", "c", &addr_text(&a)).unwrap(), a);
        let u = U256::from(255u64);
        let t = u256_text(&u);
        assert_eq!(t.len(), 66);
        assert!(t.ends_with("ff"));
        assert_eq!(parse_u256("t", "c", &t).unwrap(), u);
        // Fixed width: text order is numeric order.
        assert!(u256_text(&U256::from(9u64)) < u256_text(&U256::from(10u64)));
        assert!(parse_u256("t", "c", "0xff").is_err());
        assert!(parse_b256("t", "c", &b256_text(&B256::ZERO).to_uppercase()).is_err());
        assert!(to_i64("x", u64::MAX).is_err());
        assert!(from_i64("t", "c", -1).is_err());
    }
}
