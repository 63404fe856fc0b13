//! The runtime's database: agents, action records, the outbox, indexed chain events, the
//! nonce manager's signed transactions, and a fleet's leases.
//!
//! Two backends, one schema, one set of queries:
//! - **SQLite** by default: a file, embedded ([`Db::open`], or [`Db::connect`] with
//!   `sqlite://PATH`). WAL journal, `synchronous = FULL` so a committed outbox entry survives a
//!   power cut, foreign keys on, writers wait for each other (busy timeout) instead of failing.
//! - **PostgreSQL** for fleets: several `inft serve` nodes share one server
//!   ([`Db::connect`] with `postgres://…` or `postgresql://…`), each agent leased to one node at
//!   a time ([`Db::try_acquire_lease`], [`Db::fenced`]).
//!
//! The handle wraps the native sqlx pool of its backend ([`DbPool`]); every query is written
//! once, in portable SQL with `$n` placeholders, and run on either pool (the `on_pool!` and
//! `on_tx!` macros below expand one query text for both drivers). What differs per backend is
//! kept in a few helpers: [`Backend::clock_sql`] (the database's clock), the row lock of the
//! fence check, and `Db::begin_write`: SQLite takes the database's write lock at `BEGIN
//! IMMEDIATE`; PostgreSQL takes a transaction-scoped advisory lock per action log (or per
//! sending account), which gives the same guarantee for the read-then-insert of an append.
//!
//! Each backend has its own migration directory with the same versions (`migrations/` for
//! SQLite, whose checksums are recorded in existing databases and never change, and
//! `migrations/postgres/`, with `BIGINT` for 64-bit numbers), applied on open. Queries are
//! checked at run time (no `DATABASE_URL` needed to build).
//!
//! Encodings: addresses and hashes are `0x` + lowercase hex, uint256 token ids are `0x` + 64
//! hex digits (fixed width so they sort), times are milliseconds since the Unix epoch, and
//! documents are JSON text.

/// Runs `$body` with `$pool` bound to the handle's native pool, whichever backend it is: the
/// body is expanded once per driver, so one query text serves both.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::DbPool::Sqlite($pool) => $body,
            $crate::db::DbPool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the native connection of a [`WriteTx`] (and `$backend`
/// to its [`Backend`]), expanded once per driver.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        on_tx!($tx, |$conn, _backend| $body)
    };
    ($tx:expr, |$conn:ident, $backend:ident| $body:expr) => {
        match $tx {
            $crate::db::WriteTx::Sqlite(t) => {
                let $conn: &mut ::sqlx::SqliteConnection = &mut **t;
                let $backend = $crate::db::Backend::Sqlite;
                $body
            }
            $crate::db::WriteTx::Postgres(t) => {
                let $conn: &mut ::sqlx::PgConnection = &mut **t;
                let $backend = $crate::db::Backend::Postgres;
                $body
            }
        }
    };
}

mod agents;
mod events;
mod leases;
mod nonces;
pub(crate) mod records;
#[doc(hidden)]
pub mod testing;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite};

pub use crate::error::DbError;
pub use agents::{Agent, AgentRow, AgentStatus};
pub use events::{ChainCursor, ChainEvent};
pub use leases::Lease;
pub use nonces::{NewSignedTx, SignedTx, TxState};
pub use records::{OutboxEntry, OutboxState, StoredRecord};

use crate::record::LogId;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections of a PostgreSQL handle: agent loops, the outbox logger, the indexer and the
/// service's lease keeper of one node share them.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

/// Which database a handle talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// An SQLite file (or a private in-memory database).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// An SQL expression for "now" in milliseconds since the Unix epoch on the **database's**
    /// clock: SQLite's is the clock of the machine holding the file (the only one writing it);
    /// PostgreSQL's is the server's (`clock_timestamp()`, the real time even inside a long
    /// transaction), so the nodes of a fleet agree on lease expiry whatever their own clocks say.
    pub fn clock_sql(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// What follows a `SELECT` of a lease row in a fenced write so a takeover waits for the
    /// write to commit: nothing on SQLite (the write transaction already holds the database's
    /// write lock), `FOR SHARE` on PostgreSQL.
    fn share_lock_sql(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR SHARE",
        }
    }
}

/// The native connection pool behind a [`Db`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DbPool {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A handle to the runtime database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Db {
    pool: DbPool,
    /// The lease the writes of records and signed transactions check (see [`Db::fenced`]).
    fence: Option<Arc<Lease>>,
}

/// A write transaction from [`Db::begin_write`]: the write lock of its scope is held (and a
/// fenced handle's lease was checked) until it commits or is dropped (rolled back).
#[derive(Debug)]
pub(crate) enum WriteTx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl WriteTx {
    /// Commits the transaction.
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        match self {
            Self::Sqlite(t) => t.commit().await?,
            Self::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// What a write transaction serializes with: two writers of the same scope never interleave
/// their reads and writes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WriteScope<'a> {
    /// The records and outbox entries of one action log (append, rebase).
    Log(&'a LogId),
    /// The nonces and signed transactions of one sending account.
    Account {
        /// EIP-155 chain id.
        chain_id: u64,
        /// The sender.
        address: Address,
    },
}

impl WriteScope<'_> {
    /// The PostgreSQL advisory lock key of this scope: 64 bits of SHA-256 of a labelled name
    /// (a collision only makes two scopes wait for each other).
    fn advisory_key(&self) -> i64 {
        let name = match self {
            Self::Log(log) => format!(
                "inft/v1/lock/log/{}/{}/{}",
                log.chain_id,
                addr_text(&log.action_log),
                u256_text(&log.token_id)
            ),
            Self::Account { chain_id, address } => {
                format!("inft/v1/lock/account/{chain_id}/{}", addr_text(address))
            }
        };
        let digest = Sha256::digest(name.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite database file at `path` and applies pending
    /// migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        Self::open_sqlite(SqliteConnectOptions::new().filename(path.as_ref())).await
    }

    /// Connects to the database named by `url` and applies pending migrations:
    /// - `sqlite://PATH` (`sqlite:///abs/path.db`, `sqlite://relative.db`, `?mode=ro` etc. as
    ///   sqlx reads them; `sqlite::memory:` for a private in-memory database): the same file
    ///   settings as [`Db::open`];
    /// - `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]` (or `postgresql://`), as libpq
    ///   and sqlx read them (e.g. `?host=/socket/dir`, `?sslmode=require`).
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .connect_with(options)
                .await?;
            // The migrator takes a database-wide advisory lock: nodes starting together apply
            // each migration once.
            POSTGRES_MIGRATOR.run(&pool).await?;
            Ok(Self::from_pool(DbPool::Postgres(pool)))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?;
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Self::open_memory(options).await;
            }
            Self::open_sqlite(options).await
        } else {
            Err(DbError::Sqlx(sqlx::Error::Configuration(
                format!(
                    "unsupported database URL {:?}: expected sqlite://PATH or postgres://…",
                    redact_url(url)
                )
                .into(),
            )))
        }
    }

    async fn open_sqlite(options: SqliteConnectOptions) -> Result<Self, DbError> {
        let options = options
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
        Self::migrate_sqlite(pool).await
    }

    /// Opens a private in-memory database (for tools and examples that need no persistence).
    pub async fn open_in_memory() -> Result<Self, DbError> {
        Self::open_memory(SqliteConnectOptions::new().in_memory(true)).await
    }

    async fn open_memory(options: SqliteConnectOptions) -> Result<Self, DbError> {
        // One connection: each in-memory connection would be a separate database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.foreign_keys(true))
            .await?;
        Self::migrate_sqlite(pool).await
    }

    async fn migrate_sqlite(pool: SqlitePool) -> Result<Self, DbError> {
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(Self::from_pool(DbPool::Sqlite(pool)))
    }

    fn from_pool(pool: DbPool) -> Self {
        Self { pool, fence: None }
    }

    /// The underlying pool, for queries this module does not offer.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Which database this handle talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            DbPool::Sqlite(_) => Backend::Sqlite,
            DbPool::Postgres(_) => Backend::Postgres,
        }
    }

    /// [`Backend::clock_sql`] of this handle's backend.
    fn clock_sql(&self) -> &'static str {
        self.backend().clock_sql()
    }

    /// Begins a write transaction that serializes with every other write of `scope`:
    /// SQLite takes the database's write lock at once (`BEGIN IMMEDIATE`), PostgreSQL a
    /// transaction-scoped advisory lock of the scope. On a fenced handle ([`Db::fenced`]) it
    /// then checks the lease inside the transaction and fails with [`DbError::LeaseLost`] when
    /// it is no longer held; the lease row stays locked against a takeover until the
    /// transaction ends.
    pub(crate) async fn begin_write(&self, scope: WriteScope<'_>) -> Result<WriteTx, DbError> {
        let mut tx = match &self.pool {
            DbPool::Sqlite(pool) => WriteTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            DbPool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(scope.advisory_key())
                    .execute(&mut *tx)
                    .await?;
                WriteTx::Postgres(tx)
            }
        };
        if let Some(lease) = &self.fence {
            leases::check_fence(&mut tx, lease).await?;
        }
        Ok(tx)
    }

    /// Begins a plain transaction (no write lock taken up front, no fence check).
    pub(crate) async fn begin(&self) -> Result<WriteTx, DbError> {
        Ok(match &self.pool {
            DbPool::Sqlite(pool) => WriteTx::Sqlite(pool.begin().await?),
            DbPool::Postgres(pool) => WriteTx::Postgres(pool.begin().await?),
        })
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        match &self.pool {
            DbPool::Sqlite(pool) => pool.close().await,
            DbPool::Postgres(pool) => pool.close().await,
        }
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
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

    #[test]
    fn database_urls_lose_their_password_in_messages() {
        assert_eq!(
            redact_url("postgres://inft:secret@db.example:5432/inft?sslmode=require"),
            "postgres://inft:***@db.example:5432/inft?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://inft@localhost/inft"),
            "postgres://inft@localhost/inft"
        );
        assert_eq!(redact_url("sqlite:///var/inft.db"), "sqlite:///var/inft.db");
    }

    #[test]
    fn write_scopes_lock_per_log_and_per_account() {
        let log = |token: u64| LogId {
            chain_id: 1,
            action_log: Address::repeat_byte(1),
            token_id: U256::from(token),
        };
        let (a, b) = (log(1), log(2));
        assert_eq!(
            WriteScope::Log(&a).advisory_key(),
            WriteScope::Log(&log(1)).advisory_key()
        );
        assert_ne!(
            WriteScope::Log(&a).advisory_key(),
            WriteScope::Log(&b).advisory_key()
        );
        let account = WriteScope::Account {
            chain_id: 1,
            address: Address::repeat_byte(1),
        };
        assert_ne!(account.advisory_key(), WriteScope::Log(&a).advisory_key());
    }
}
