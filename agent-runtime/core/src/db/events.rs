//! The `chain_events` index and the indexer's `chain_cursors`.

use alloy::primitives::{Address, B256, U256};
use serde_json::Value;

use super::{
    Db, DbError, addr_text, b256_text, from_i64, now_ms, parse_addr, parse_b256, parse_json,
    parse_u256, to_i64, u256_text,
};

const TABLE: &str = "chain_events";

/// A decoded contract event, at its position in the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainEvent {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Block number.
    pub block_number: u64,
    /// Log index within the block.
    pub log_index: u64,
    /// Block hash (to detect reorganisations).
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// The emitting contract.
    pub contract: Address,
    /// The token the event is about, if it is about one.
    pub token_id: Option<U256>,
    /// Event name (e.g. `ActionsLogged`).
    pub kind: String,
    /// The decoded event fields.
    pub payload: Value,
}

/// How far the indexer got for one contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainCursor {
    /// The next block to index.
    pub next_block: u64,
    /// Hash of block `next_block - 1`, to detect a reorganisation under the cursor.
    pub last_block_hash: Option<B256>,
}

#[derive(sqlx::FromRow)]
struct Raw {
    chain_id: i64,
    block_number: i64,
    log_index: i64,
    block_hash: String,
    tx_hash: String,
    contract: String,
    token_id: Option<String>,
    kind: String,
    payload: String,
}

impl Raw {
    fn decode(self) -> Result<ChainEvent, DbError> {
        Ok(ChainEvent {
            chain_id: from_i64(TABLE, "chain_id", self.chain_id)?,
            block_number: from_i64(TABLE, "block_number", self.block_number)?,
            log_index: from_i64(TABLE, "log_index", self.log_index)?,
            block_hash: parse_b256(TABLE, "block_hash", &self.block_hash)?,
            tx_hash: parse_b256(TABLE, "tx_hash", &self.tx_hash)?,
            contract: parse_addr(TABLE, "contract", &self.contract)?,
            token_id: self
                .token_id
                .as_deref()
                .map(|t| parse_u256(TABLE, "token_id", t))
                .transpose()?,
            kind: self.kind,
            payload: parse_json(TABLE, "payload", &self.payload)?,
        })
    }
}

const COLUMNS: &str =
    "chain_id, block_number, log_index, block_hash, tx_hash, contract, token_id, kind, payload";

impl Db {
    /// Stores events; an event at an already indexed position replaces the old row (the block
    /// there was reorganised). Returns how many rows were written. All or nothing.
    pub async fn insert_chain_events(&self, events: &[ChainEvent]) -> Result<u64, DbError> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for e in events {
            let done = on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO chain_events (chain_id, block_number, log_index, block_hash, tx_hash, contract, token_id, kind, payload)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (chain_id, block_number, log_index) DO UPDATE SET
                        block_hash = excluded.block_hash, tx_hash = excluded.tx_hash, contract = excluded.contract,
                        token_id = excluded.token_id, kind = excluded.kind, payload = excluded.payload",
                )
                .bind(to_i64("chain_id", e.chain_id)?)
                .bind(to_i64("block_number", e.block_number)?)
                .bind(to_i64("log_index", e.log_index)?)
                .bind(b256_text(&e.block_hash))
                .bind(b256_text(&e.tx_hash))
                .bind(addr_text(&e.contract))
                .bind(e.token_id.as_ref().map(u256_text))
                .bind(&e.kind)
                .bind(e.payload.to_string())
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
            })?;
            n += done;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The indexed events of one token of one contract, in chain order.
    pub async fn chain_events_for_token(
        &self,
        chain_id: u64,
        contract: Address,
        token_id: U256,
    ) -> Result<Vec<ChainEvent>, DbError> {
        let rows: Vec<Raw> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM chain_events
                 WHERE chain_id = $1 AND contract = $2 AND token_id = $3
                 ORDER BY block_number, log_index"
            )))
            .bind(to_i64("chain_id", chain_id)?)
            .bind(addr_text(&contract))
            .bind(u256_text(&token_id))
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(Raw::decode).collect()
    }

    /// The indexed events of a chain in blocks `from_block..=to_block`, in chain order.
    pub async fn chain_events_in_blocks(
        &self,
        chain_id: u64,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<ChainEvent>, DbError> {
        let rows: Vec<Raw> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM chain_events
                 WHERE chain_id = $1 AND block_number >= $2 AND block_number <= $3
                 ORDER BY block_number, log_index"
            )))
            .bind(to_i64("chain_id", chain_id)?)
            .bind(to_i64("block_number", from_block)?)
            .bind(to_i64("block_number", to_block)?)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(Raw::decode).collect()
    }

    /// Deletes the indexed events of a chain from `from_block` on (a reorganisation replaced
    /// those blocks). Returns how many rows were deleted.
    pub async fn delete_chain_events_from(
        &self,
        chain_id: u64,
        from_block: u64,
    ) -> Result<u64, DbError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM chain_events WHERE chain_id = $1 AND block_number >= $2")
                .bind(to_i64("chain_id", chain_id)?)
                .bind(to_i64("block_number", from_block)?)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    /// Deletes the indexed events of one contract from `from_block` on (a reorganisation under
    /// that contract's cursor). Returns how many rows were deleted.
    pub async fn delete_contract_events_from(
        &self,
        chain_id: u64,
        contract: Address,
        from_block: u64,
    ) -> Result<u64, DbError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM chain_events WHERE chain_id = $1 AND contract = $2 AND block_number >= $3",
            )
            .bind(to_i64("chain_id", chain_id)?)
            .bind(addr_text(&contract))
            .bind(to_i64("block_number", from_block)?)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    /// The indexer cursor of a contract.
    pub async fn chain_cursor(
        &self,
        chain_id: u64,
        contract: Address,
    ) -> Result<Option<ChainCursor>, DbError> {
        let row: Option<(i64, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT next_block, last_block_hash FROM chain_cursors WHERE chain_id = $1 AND contract = $2")
                .bind(to_i64("chain_id", chain_id)?)
                .bind(addr_text(&contract))
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(next, hash)| {
            Ok(ChainCursor {
                next_block: from_i64("chain_cursors", "next_block", next)?,
                last_block_hash: hash
                    .as_deref()
                    .map(|h| parse_b256("chain_cursors", "last_block_hash", h))
                    .transpose()?,
            })
        })
        .transpose()
    }

    /// Sets the indexer cursor of a contract.
    pub async fn set_chain_cursor(
        &self,
        chain_id: u64,
        contract: Address,
        cursor: &ChainCursor,
    ) -> Result<(), DbError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO chain_cursors (chain_id, contract, next_block, last_block_hash, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (chain_id, contract) DO UPDATE SET
                    next_block = excluded.next_block, last_block_hash = excluded.last_block_hash,
                    updated_at = excluded.updated_at",
            )
            .bind(to_i64("chain_id", chain_id)?)
            .bind(addr_text(&contract))
            .bind(to_i64("next_block", cursor.next_block)?)
            .bind(cursor.last_block_hash.as_ref().map(b256_text))
            .bind(to_i64("now", now_ms())?)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
