//! Leases with fencing tokens, fleet heartbeats, and the fenced writes built on them.
//!
//! A fleet of `inft serve` nodes shares one database; each agent is leased to one node at a
//! time. A lease is a row of `leases` keyed by a text key (e.g. the agent), held by one holder
//! (a node) until `expires_at`, with a **fence**: a number that grows by one each time the key
//! changes hands (taken when free, expired or released), never reused. A node renews its leases
//! well before they expire; a dead node's leases expire and another node takes them.
//!
//! Expiry is not enough on its own: a node paused past its lease (a GC pause, a frozen VM, a
//! partition) still believes it holds it. So the writes that must never come from two nodes,
//! an action record with its outbox entry, and a signed transaction before it is broadcast, go
//! through [`Db::fenced`]: inside the same database transaction as the write, the lease row is
//! checked to be still held by the same holder with the same fence and unexpired, and the write
//! fails with [`DbError::LeaseLost`] otherwise, writing nothing. The check locks the lease row
//! (SQLite: the database write lock of `BEGIN IMMEDIATE`; PostgreSQL: `SELECT … FOR SHARE` on
//! the row), so a takeover's `UPDATE` of the row waits for the write to commit: every write made
//! under fence *f* commits before fence *f + 1* is handed out, and none after.
//!
//! **Clocks.** Every time here is read from the database's clock in the SQL statement itself
//! (SQLite: `julianday('now')` of the machine holding the file; PostgreSQL:
//! `clock_timestamp()` of the server), never from the node's: nodes with skewed clocks agree on
//! who holds what. [`Lease::expires_at_ms`] is on that clock too.

use std::sync::Arc;
use std::time::Duration;

use super::{Db, DbError, WriteTx, from_i64, to_i64};
use crate::record::LogId;

const TABLE: &str = "leases";

/// A lease on a key, as taken or renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// What is leased (e.g. an agent).
    pub key: String,
    /// Who holds it (a node).
    pub holder: String,
    /// The fencing token: grows by one each time the key changes hands, never reused.
    pub fence: u64,
    /// When it expires unless renewed, in milliseconds since the Unix epoch on the database's
    /// clock (0 once released).
    pub expires_at_ms: u64,
}

fn ttl_ms(ttl: Duration) -> Result<i64, DbError> {
    to_i64("ttl", u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

fn decode((key, holder, fence, expires_at): (String, String, i64, i64)) -> Result<Lease, DbError> {
    Ok(Lease {
        key,
        holder,
        fence: from_i64(TABLE, "fence", fence)?,
        expires_at_ms: from_i64(TABLE, "expires_at", expires_at)?,
    })
}

impl Db {
    /// Takes the lease on `key` for `holder` if it is free, expired (or released), or already
    /// held by `holder` (then it is renewed, same fence). Taking it from nobody or from an
    /// expired holder (`holder` itself included) increments the fence (monotonic per key,
    /// never reused). `Ok(None)` while another holder's lease is unexpired.
    pub async fn try_acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, DbError> {
        let now = self.clock_sql();
        // One statement: the row lock of the upsert makes concurrent takers queue, and the
        // loser sees the winner's unexpired row and gets no row back.
        let sql = format!(
            "INSERT INTO leases (key, holder, fence, expires_at, updated_at)
             VALUES ($1, $2, 1, {now} + $3, {now})
             ON CONFLICT (key) DO UPDATE SET
                fence = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > {now}
                             THEN leases.fence ELSE leases.fence + 1 END,
                holder = excluded.holder,
                expires_at = excluded.expires_at,
                updated_at = excluded.updated_at
             WHERE leases.holder = excluded.holder OR leases.expires_at <= {now}
             RETURNING key, holder, fence, expires_at"
        );
        let ttl = ttl_ms(ttl)?;
        let row: Option<(String, String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(key)
                .bind(holder)
                .bind(ttl)
                .fetch_optional(pool)
                .await
        })?;
        row.map(decode).transpose()
    }

    /// Extends a held lease by `ttl` from now (same fence); `Ok(None)` if it was lost
    /// (expired, released, or its fence or holder changed).
    pub async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<Option<Lease>, DbError> {
        let now = self.clock_sql();
        let sql = format!(
            "UPDATE leases SET expires_at = {now} + $1, updated_at = {now}
             WHERE key = $2 AND holder = $3 AND fence = $4 AND expires_at > {now}
             RETURNING key, holder, fence, expires_at"
        );
        let ttl = ttl_ms(ttl)?;
        let fence = to_i64("fence", lease.fence)?;
        let row: Option<(String, String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(ttl)
                .bind(&lease.key)
                .bind(&lease.holder)
                .bind(fence)
                .fetch_optional(pool)
                .await
        })?;
        row.map(decode).transpose()
    }

    /// Gives the lease up now (it expires: `expires_at = 0`) so another holder can take it at
    /// once; a no-op if it was already lost.
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), DbError> {
        let now = self.clock_sql();
        let sql = format!(
            "UPDATE leases SET expires_at = 0, updated_at = {now}
             WHERE key = $1 AND holder = $2 AND fence = $3"
        );
        let fence = to_i64("fence", lease.fence)?;
        on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&lease.key)
                .bind(&lease.holder)
                .bind(fence)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Every lease row (held, expired and released), by key.
    pub async fn leases(&self) -> Result<Vec<Lease>, DbError> {
        let rows: Vec<(String, String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT key, holder, fence, expires_at FROM leases ORDER BY key")
                .fetch_all(pool)
                .await
        })?;
        rows.into_iter().map(decode).collect()
    }

    /// Records this node's heartbeat (on the database's clock); returns the number of nodes
    /// whose heartbeat is younger than `ttl`, this one included.
    pub async fn heartbeat_node(&self, node: &str, ttl: Duration) -> Result<u64, DbError> {
        let now = self.clock_sql();
        let upsert = format!(
            "INSERT INTO fleet_nodes (node_id, heartbeat_at) VALUES ($1, {now})
             ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
        );
        let count = format!("SELECT COUNT(*) FROM fleet_nodes WHERE heartbeat_at > {now} - $1");
        let ttl = ttl_ms(ttl)?;
        let live: i64 = on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(upsert))
                .bind(node)
                .execute(pool)
                .await?;
            sqlx::query_scalar(sqlx::AssertSqlSafe(count))
                .bind(ttl)
                .fetch_one(pool)
                .await
        })?;
        from_i64("fleet_nodes", "count", live)
    }

    /// Removes a node's heartbeat row (clean shutdown).
    pub async fn remove_node(&self, node: &str) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM fleet_nodes WHERE node_id = $1")
                .bind(node)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// A clone of this handle whose writes of action records with their outbox entries (the
    /// outbox's append, append_signed and rebase transactions) and of signed transactions (the
    /// nonce manager's persist before broadcast) are fenced by `lease`: inside the same database
    /// transaction they first check that the lease is still held (same holder and fence,
    /// unexpired on the database's clock) and fail with [`DbError::LeaseLost`] otherwise,
    /// writing nothing. Other writes (outbox states, indexer, agents) are not fenced: they
    /// record facts about the chain, which any node may learn.
    ///
    /// The handle keeps the lease it was given: after a renewal (same fence) it stays valid;
    /// after a loss it fails for good, and a lease taken again (a new fence) needs a new handle.
    pub fn fenced(&self, lease: &Lease) -> Db {
        Db {
            fence: Some(Arc::new(lease.clone())),
            ..self.clone()
        }
    }

    /// The lease this handle's fenced writes check, if any.
    pub fn fence(&self) -> Option<&Lease> {
        self.fence.as_deref()
    }

    /// Number of action records of `log` created at or after `since_ms` (ms since the Unix
    /// epoch, on the clock of the node that wrote them): daily step budgets.
    pub async fn count_records_since(&self, log: &LogId, since_ms: u64) -> Result<u64, DbError> {
        let k = super::records::key(log)?;
        let since = to_i64("since", since_ms)?;
        let n: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM action_records
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND created_at >= $4",
            )
            .bind(k.chain_id)
            .bind(&k.action_log)
            .bind(&k.token_id)
            .bind(since)
            .fetch_one(pool)
            .await
        })?;
        from_i64("action_records", "count", n)
    }
}

/// Inside a write transaction, checks that `lease` is still held (same holder and fence,
/// unexpired), locking its row against a takeover until the transaction ends.
pub(super) async fn check_fence(tx: &mut WriteTx, lease: &Lease) -> Result<(), DbError> {
    let fence = to_i64("fence", lease.fence)?;
    let held: Option<i64> = on_tx!(tx, |conn, backend| {
        // SQLite: the transaction already holds the database's write lock (BEGIN IMMEDIATE), so
        // no takeover can commit before it ends. PostgreSQL: FOR SHARE locks the row, so a
        // takeover's UPDATE waits for this transaction (and a takeover that committed first has
        // changed the fence or holder, so the row is not found).
        let sql = format!(
            "SELECT fence FROM leases
             WHERE key = $1 AND holder = $2 AND fence = $3 AND expires_at > {now}{lock}",
            now = backend.clock_sql(),
            lock = backend.share_lock_sql(),
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(&lease.key)
            .bind(&lease.holder)
            .bind(fence)
            .fetch_optional(&mut *conn)
            .await
    })?;
    match held {
        Some(_) => Ok(()),
        None => Err(DbError::LeaseLost {
            key: lease.key.clone(),
        }),
    }
}
