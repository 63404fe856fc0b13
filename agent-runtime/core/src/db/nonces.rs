//! Storage for the nonce manager: `account_nonces` and `signed_txs`.
//!
//! The rule the nonce manager builds on: a transaction is signed, then **persisted here, then
//! broadcast**. After a restart every unfinished transaction is found here with its raw bytes,
//! so it is rebroadcast (or replaced at the same nonce), never signed anew at a fresh nonce.

use alloy::primitives::{Address, B256, Bytes};

use super::{
    Db, DbError, WriteScope, addr_text, b256_text, from_i64, now_ms, parse_addr, parse_b256, to_i64,
};

const TABLE: &str = "signed_txs";

/// Where a signed transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxState {
    /// Signed and persisted; maybe not broadcast yet.
    Signed,
    /// Broadcast to the node.
    Broadcast,
    /// Mined (see the receipt for success).
    Mined,
    /// Mined and reverted, or refused by the node for good.
    Failed,
    /// Another transaction at the same nonce was mined instead.
    Replaced,
    /// Gone from the mempool and not mined.
    Dropped,
}

impl TxState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Broadcast => "broadcast",
            Self::Mined => "mined",
            Self::Failed => "failed",
            Self::Replaced => "replaced",
            Self::Dropped => "dropped",
        }
    }

    /// Whether the transaction may still be mined.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Signed | Self::Broadcast)
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "signed" => Self::Signed,
            "broadcast" => Self::Broadcast,
            "mined" => Self::Mined,
            "failed" => Self::Failed,
            "replaced" => Self::Replaced,
            "dropped" => Self::Dropped,
            other => {
                return Err(DbError::Corrupt {
                    table: TABLE,
                    column: "state",
                    detail: format!("unknown state {other:?}"),
                });
            }
        })
    }
}

/// A signed transaction to persist before broadcasting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSignedTx {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Sender.
    pub sender: Address,
    /// Nonce.
    pub nonce: u64,
    /// EIP-2718 encoded signed transaction.
    pub raw_tx: Bytes,
    /// What it is for (`log_actions`, `trade`, `sweep`, …).
    pub purpose: String,
    /// The thing it does, for idempotence checks (a trade id, an outbox range, …).
    pub reference: Option<String>,
    /// Max fee per gas (wei).
    pub max_fee_per_gas: Option<u128>,
    /// Max priority fee per gas (wei).
    pub max_priority_fee_per_gas: Option<u128>,
    /// Whether this transaction replaces (reprices) unfinished ones at the same nonce.
    pub replacement: bool,
}

/// A persisted signed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Sender.
    pub sender: Address,
    /// Nonce.
    pub nonce: u64,
    /// EIP-2718 encoded signed transaction.
    pub raw_tx: Bytes,
    /// What it is for.
    pub purpose: String,
    /// The thing it does.
    pub reference: Option<String>,
    /// Max fee per gas (wei).
    pub max_fee_per_gas: Option<u128>,
    /// Max priority fee per gas (wei).
    pub max_priority_fee_per_gas: Option<u128>,
    /// Where it stands.
    pub state: TxState,
    /// Block it was mined in.
    pub block_number: Option<u64>,
    /// Insert time (ms).
    pub created_at_ms: u64,
    /// Last change (ms).
    pub updated_at_ms: u64,
}

#[derive(sqlx::FromRow)]
struct Raw {
    chain_id: i64,
    tx_hash: String,
    sender: String,
    nonce: i64,
    raw_tx: String,
    purpose: String,
    reference: Option<String>,
    max_fee_per_gas: Option<String>,
    max_priority_fee_per_gas: Option<String>,
    state: String,
    block_number: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl Raw {
    fn decode(self) -> Result<SignedTx, DbError> {
        let fee = |column: &'static str, v: Option<String>| {
            v.map(|s| {
                s.parse::<u128>().map_err(|_| DbError::Corrupt {
                    table: TABLE,
                    column,
                    detail: format!("not a u128: {s:?}"),
                })
            })
            .transpose()
        };
        let raw_tx = self
            .raw_tx
            .strip_prefix("0x")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| DbError::Corrupt {
                table: TABLE,
                column: "raw_tx",
                detail: "not hex".into(),
            })?;
        Ok(SignedTx {
            chain_id: from_i64(TABLE, "chain_id", self.chain_id)?,
            tx_hash: parse_b256(TABLE, "tx_hash", &self.tx_hash)?,
            sender: parse_addr(TABLE, "sender", &self.sender)?,
            nonce: from_i64(TABLE, "nonce", self.nonce)?,
            raw_tx: raw_tx.into(),
            purpose: self.purpose,
            reference: self.reference,
            max_fee_per_gas: fee("max_fee_per_gas", self.max_fee_per_gas)?,
            max_priority_fee_per_gas: fee(
                "max_priority_fee_per_gas",
                self.max_priority_fee_per_gas,
            )?,
            state: TxState::parse(&self.state)?,
            block_number: self
                .block_number
                .map(|b| from_i64(TABLE, "block_number", b))
                .transpose()?,
            created_at_ms: from_i64(TABLE, "created_at", self.created_at)?,
            updated_at_ms: from_i64(TABLE, "updated_at", self.updated_at)?,
        })
    }
}

const COLUMNS: &str = "chain_id, tx_hash, sender, nonce, raw_tx, purpose, reference, max_fee_per_gas, max_priority_fee_per_gas, state, block_number, created_at, updated_at";

impl Db {
    /// The nonce to use for the next new transaction of `sender`: the larger of what this
    /// runtime already used and `chain_pending_nonce` (the node's pending count).
    pub async fn next_nonce(
        &self,
        chain_id: u64,
        sender: Address,
        chain_pending_nonce: u64,
    ) -> Result<u64, DbError> {
        let stored: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT next_nonce FROM account_nonces WHERE chain_id = $1 AND address = $2",
            )
            .bind(to_i64("chain_id", chain_id)?)
            .bind(addr_text(&sender))
            .fetch_optional(pool)
            .await
        })?;
        let stored = stored
            .map(|n| from_i64("account_nonces", "next_nonce", n))
            .transpose()?
            .unwrap_or(0);
        Ok(stored.max(chain_pending_nonce))
    }

    /// Persists a signed transaction (call before broadcasting it) and advances the account's
    /// next nonce past it, in one transaction. Refused with [`DbError::NonceInUse`] when an
    /// unfinished transaction already holds the nonce and `tx.replacement` is false. Recording
    /// the same transaction twice is a no-op.
    pub async fn record_signed_tx(&self, tx: &NewSignedTx) -> Result<(), DbError> {
        let chain_id = to_i64("chain_id", tx.chain_id)?;
        let sender = addr_text(&tx.sender);
        let nonce = to_i64("nonce", tx.nonce)?;
        let next = to_i64("nonce", tx.nonce.saturating_add(1))?;
        let hash = b256_text(&tx.tx_hash);
        let now = to_i64("now", now_ms())?;
        // Take the account's write lock before reading, so two writers cannot both see the
        // nonce free; a fenced handle checks its lease here.
        let mut db_tx = self
            .begin_write(WriteScope::Account {
                chain_id: tx.chain_id,
                address: tx.sender,
            })
            .await?;
        let holders: Vec<String> = on_tx!(&mut db_tx, |conn| {
            sqlx::query_scalar(
                "SELECT tx_hash FROM signed_txs
                 WHERE chain_id = $1 AND sender = $2 AND nonce = $3 AND state IN ('signed', 'broadcast')",
            )
            .bind(chain_id)
            .bind(&sender)
            .bind(nonce)
            .fetch_all(&mut *conn)
            .await
        })?;
        if holders.contains(&hash) {
            return Ok(());
        }
        if !tx.replacement
            && let Some(existing) = holders.first()
        {
            return Err(DbError::NonceInUse {
                sender: tx.sender,
                nonce: tx.nonce,
                existing: parse_b256(TABLE, "tx_hash", existing)?,
            });
        }
        on_tx!(&mut db_tx, |conn| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO signed_txs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'signed', NULL, $10, $10)
                 ON CONFLICT (chain_id, tx_hash) DO NOTHING"
            )))
            .bind(chain_id)
            .bind(&hash)
            .bind(&sender)
            .bind(nonce)
            .bind(format!("0x{}", hex::encode(&tx.raw_tx)))
            .bind(&tx.purpose)
            .bind(tx.reference.as_deref())
            .bind(tx.max_fee_per_gas.map(|f| f.to_string()))
            .bind(tx.max_priority_fee_per_gas.map(|f| f.to_string()))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        on_tx!(&mut db_tx, |conn| {
            sqlx::query(
                "INSERT INTO account_nonces (chain_id, address, next_nonce, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (chain_id, address) DO UPDATE SET
                    next_nonce = CASE WHEN excluded.next_nonce > account_nonces.next_nonce
                                      THEN excluded.next_nonce ELSE account_nonces.next_nonce END,
                    updated_at = excluded.updated_at",
            )
            .bind(chain_id)
            .bind(&sender)
            .bind(next)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        db_tx.commit().await?;
        Ok(())
    }

    /// Updates a transaction's state (and the block it was mined in). When a transaction is
    /// mined, the other unfinished transactions at its nonce become `replaced`.
    pub async fn set_tx_state(
        &self,
        chain_id: u64,
        tx_hash: B256,
        state: TxState,
        block_number: Option<u64>,
    ) -> Result<bool, DbError> {
        let chain = to_i64("chain_id", chain_id)?;
        let hash = b256_text(&tx_hash);
        let now = to_i64("now", now_ms())?;
        let mut db_tx = self.begin().await?;
        let done = on_tx!(&mut db_tx, |conn| {
            sqlx::query(
                "UPDATE signed_txs SET state = $1, block_number = COALESCE($2, block_number), updated_at = $3
                 WHERE chain_id = $4 AND tx_hash = $5",
            )
            .bind(state.as_str())
            .bind(block_number.map(|b| to_i64("block_number", b)).transpose()?)
            .bind(now)
            .bind(chain)
            .bind(&hash)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
        if matches!(state, TxState::Mined | TxState::Failed) && block_number.is_some() {
            on_tx!(&mut db_tx, |conn| {
                sqlx::query(
                    "UPDATE signed_txs SET state = 'replaced', updated_at = $1
                     WHERE chain_id = $2 AND tx_hash <> $3 AND state IN ('signed', 'broadcast')
                       AND (sender, nonce) IN (SELECT sender, nonce FROM signed_txs WHERE chain_id = $2 AND tx_hash = $3)",
                )
                .bind(now)
                .bind(chain)
                .bind(&hash)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        db_tx.commit().await?;
        Ok(done > 0)
    }

    /// A persisted transaction by hash.
    pub async fn signed_tx(
        &self,
        chain_id: u64,
        tx_hash: B256,
    ) -> Result<Option<SignedTx>, DbError> {
        let row: Option<Raw> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM signed_txs WHERE chain_id = $1 AND tx_hash = $2"
            )))
            .bind(to_i64("chain_id", chain_id)?)
            .bind(b256_text(&tx_hash))
            .fetch_optional(pool)
            .await
        })?;
        row.map(Raw::decode).transpose()
    }

    /// The unfinished (signed or broadcast) transactions of `sender`, by nonce then age: what a
    /// restarted nonce manager must rebroadcast or reprice.
    pub async fn unfinished_txs(
        &self,
        chain_id: u64,
        sender: Address,
    ) -> Result<Vec<SignedTx>, DbError> {
        let rows: Vec<Raw> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM signed_txs
                 WHERE chain_id = $1 AND sender = $2 AND state IN ('signed', 'broadcast')
                 ORDER BY nonce, created_at"
            )))
            .bind(to_i64("chain_id", chain_id)?)
            .bind(addr_text(&sender))
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(Raw::decode).collect()
    }

    /// The transactions recorded for a purpose and reference (e.g. to learn whether a trade was
    /// already sent before a crash), oldest first.
    pub async fn txs_by_reference(
        &self,
        chain_id: u64,
        purpose: &str,
        reference: &str,
    ) -> Result<Vec<SignedTx>, DbError> {
        let rows: Vec<Raw> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM signed_txs
                 WHERE chain_id = $1 AND purpose = $2 AND reference = $3 ORDER BY created_at, nonce"
            )))
            .bind(to_i64("chain_id", chain_id)?)
            .bind(purpose)
            .bind(reference)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(Raw::decode).collect()
    }
}
