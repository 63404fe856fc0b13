//! The `action_records` and `outbox` tables.

use super::{
    Db, DbError, WriteTx, addr_text, b256_text, from_i64, now_ms, parse_addr, parse_b256,
    parse_u256, to_i64, u256_text,
};
use crate::record::{ActionRecord, LogId, SignedRecord};
use alloy::primitives::{Address, B256};

const RECORDS: &str = "action_records";
const OUTBOX: &str = "outbox";

/// An action record as stored, re-verified on load: its JSON parses, its content hashes match,
/// and its hash equals the stored `record_hash`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    /// The signed record.
    pub record: SignedRecord,
    /// The address the signature recovered to when it was inserted.
    pub signer: Address,
    /// Where the signed envelope was also stored in the blob store.
    pub blob_uri: Option<String>,
    /// Insert time (ms since the Unix epoch).
    pub created_at_ms: u64,
}

/// Where an outbox entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutboxState {
    /// Not yet seen on chain; no transaction known to carry it.
    Pending,
    /// A `logActions` transaction carrying it was broadcast (`tx_hash`), not yet confirmed.
    Sent,
    /// The chain holds this record hash at this sequence number.
    Confirmed,
}

impl OutboxState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Confirmed => "confirmed",
        }
    }

    fn parse(s: &str) -> Result<Self, DbError> {
        Ok(match s {
            "pending" => Self::Pending,
            "sent" => Self::Sent,
            "confirmed" => Self::Confirmed,
            other => {
                return Err(DbError::Corrupt {
                    table: OUTBOX,
                    column: "state",
                    detail: format!("unknown state {other:?}"),
                });
            }
        })
    }
}

/// One outbox entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The log.
    pub log: LogId,
    /// Sequence number.
    pub seq: u64,
    /// The record hash to append at `seq`.
    pub record_hash: B256,
    /// Where it stands.
    pub state: OutboxState,
    /// The last transaction that carried it (once sent), or the one that confirmed it.
    pub tx_hash: Option<B256>,
    /// Block of the confirming transaction, when known.
    pub block_number: Option<u64>,
    /// How many sends were tried.
    pub attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Insert time (ms).
    pub created_at_ms: u64,
    /// Last change (ms).
    pub updated_at_ms: u64,
    /// Last send (ms).
    pub sent_at_ms: Option<u64>,
    /// Confirmation time (ms).
    pub confirmed_at_ms: Option<u64>,
}

#[derive(sqlx::FromRow)]
struct RawRecord {
    seq: i64,
    record_hash: String,
    record_json: String,
    signature: String,
    signer: String,
    blob_uri: Option<String>,
    created_at: i64,
}

impl RawRecord {
    fn decode(self, log: &LogId) -> Result<StoredRecord, DbError> {
        let corrupt = |column: &'static str, detail: String| DbError::Corrupt {
            table: RECORDS,
            column,
            detail,
        };
        let seq = from_i64(RECORDS, "seq", self.seq)?;
        let stored_hash = parse_b256(RECORDS, "record_hash", &self.record_hash)?;
        let record = ActionRecord::from_json(self.record_json.as_bytes())
            .map_err(|e| corrupt("record_json", e.to_string()))?;
        if record.log_id() != *log || record.seq != seq {
            return Err(corrupt(
                "record_json",
                format!(
                    "record is for {} seq {}, row for {log} seq {seq}",
                    record.log_id(),
                    record.seq
                ),
            ));
        }
        let sig = self
            .signature
            .strip_prefix("0x")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| corrupt("signature", "not hex".into()))?;
        let signed = SignedRecord::from_parts(record, &sig)
            .map_err(|e| corrupt("signature", e.to_string()))?;
        if signed.record_hash() != stored_hash {
            return Err(corrupt(
                "record_hash",
                format!(
                    "stored {stored_hash}, record hashes to {}",
                    signed.record_hash()
                ),
            ));
        }
        Ok(StoredRecord {
            record: signed,
            signer: parse_addr(RECORDS, "signer", &self.signer)?,
            blob_uri: self.blob_uri,
            created_at_ms: from_i64(RECORDS, "created_at", self.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RawEntry {
    seq: i64,
    record_hash: String,
    state: String,
    tx_hash: Option<String>,
    block_number: Option<i64>,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    sent_at: Option<i64>,
    confirmed_at: Option<i64>,
}

impl RawEntry {
    fn decode(self, log: &LogId) -> Result<OutboxEntry, DbError> {
        let opt = |col, v: Option<i64>| v.map(|v| from_i64(OUTBOX, col, v)).transpose();
        Ok(OutboxEntry {
            log: *log,
            seq: from_i64(OUTBOX, "seq", self.seq)?,
            record_hash: parse_b256(OUTBOX, "record_hash", &self.record_hash)?,
            state: OutboxState::parse(&self.state)?,
            tx_hash: self
                .tx_hash
                .as_deref()
                .map(|t| parse_b256(OUTBOX, "tx_hash", t))
                .transpose()?,
            block_number: opt("block_number", self.block_number)?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error,
            created_at_ms: from_i64(OUTBOX, "created_at", self.created_at)?,
            updated_at_ms: from_i64(OUTBOX, "updated_at", self.updated_at)?,
            sent_at_ms: opt("sent_at", self.sent_at)?,
            confirmed_at_ms: opt("confirmed_at", self.confirmed_at)?,
        })
    }
}

const RECORD_COLUMNS: &str =
    "seq, record_hash, record_json, signature, signer, blob_uri, created_at";
const ENTRY_COLUMNS: &str = "seq, record_hash, state, tx_hash, block_number, attempts, last_error, created_at, updated_at, sent_at, confirmed_at";

/// The log key as bind values.
pub(super) struct Key {
    pub(super) chain_id: i64,
    pub(super) action_log: String,
    pub(super) token_id: String,
}

pub(super) fn key(log: &LogId) -> Result<Key, DbError> {
    Ok(Key {
        chain_id: to_i64("chain_id", log.chain_id)?,
        action_log: addr_text(&log.action_log),
        token_id: u256_text(&log.token_id),
    })
}

/// The last record of a log on this connection: `(seq, record_hash)`.
pub(crate) async fn last_position(
    tx: &mut WriteTx,
    log: &LogId,
) -> Result<Option<(u64, B256)>, DbError> {
    let k = key(log)?;
    let row: Option<(i64, String)> = on_tx!(tx, |conn| {
        sqlx::query_as(
            "SELECT seq, record_hash FROM action_records
             WHERE chain_id = $1 AND action_log = $2 AND token_id = $3
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(k.chain_id)
        .bind(k.action_log)
        .bind(k.token_id)
        .fetch_optional(&mut *conn)
        .await
    })?;
    row.map(|(seq, h)| {
        Ok((
            from_i64(RECORDS, "seq", seq)?,
            parse_b256(RECORDS, "record_hash", &h)?,
        ))
    })
    .transpose()
}

/// Inserts a record and its pending outbox entry on this connection (the caller owns the
/// transaction that makes the two one unit).
pub(crate) async fn insert_record_with_outbox(
    tx: &mut WriteTx,
    signed: &SignedRecord,
    signer: Address,
) -> Result<(), DbError> {
    let record = signed.record();
    let k = key(&record.log_id())?;
    let seq = to_i64("seq", record.seq)?;
    let now = to_i64("now", now_ms())?;
    let json = record.canonical_json().map_err(|e| DbError::Corrupt {
        table: RECORDS,
        column: "record_json",
        detail: e.to_string(),
    })?;
    let json = String::from_utf8(json).map_err(|e| DbError::Corrupt {
        table: RECORDS,
        column: "record_json",
        detail: e.to_string(),
    })?;
    let hash = b256_text(&signed.record_hash());
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO action_records
                (chain_id, action_log, token_id, seq, record_hash, prev_hash, kind, record_json, signature, signer, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(k.chain_id)
        .bind(&k.action_log)
        .bind(&k.token_id)
        .bind(seq)
        .bind(&hash)
        .bind(b256_text(&record.prev_record_hash))
        .bind(record.kind.as_str())
        .bind(json)
        .bind(format!("0x{}", hex::encode(signed.signature_bytes())))
        .bind(addr_text(&signer))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO outbox (chain_id, action_log, token_id, seq, record_hash, state, attempts, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)",
        )
        .bind(k.chain_id)
        .bind(&k.action_log)
        .bind(&k.token_id)
        .bind(seq)
        .bind(&hash)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Every record of a log from `from_seq` on, in sequence order, on this connection.
pub(crate) async fn records_from(
    tx: &mut WriteTx,
    log: &LogId,
    from_seq: u64,
) -> Result<Vec<StoredRecord>, DbError> {
    let k = key(log)?;
    let rows: Vec<RawRecord> = on_tx!(tx, |conn| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM action_records
             WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND seq >= $4 ORDER BY seq"
        )))
        .bind(k.chain_id)
        .bind(k.action_log)
        .bind(k.token_id)
        .bind(to_i64("seq", from_seq)?)
        .fetch_all(&mut *conn)
        .await
    })?;
    rows.into_iter().map(|r| r.decode(log)).collect()
}

/// Deletes the records of a log from `from_seq` on with their outbox entries, on this
/// connection (the caller's transaction replaces them), provided none of those entries is
/// confirmed: `None` (nothing deleted) if one is, else how many records went.
pub(crate) async fn delete_unconfirmed_from(
    tx: &mut WriteTx,
    log: &LogId,
    from_seq: u64,
) -> Result<Option<u64>, DbError> {
    let k = key(log)?;
    let from = to_i64("seq", from_seq)?;
    let confirmed: i64 = on_tx!(tx, |conn| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox
             WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND seq >= $4
               AND state = 'confirmed'",
        )
        .bind(k.chain_id)
        .bind(&k.action_log)
        .bind(&k.token_id)
        .bind(from)
        .fetch_one(&mut *conn)
        .await
    })?;
    if confirmed > 0 {
        return Ok(None);
    }
    let mut gone = 0;
    // Outbox entries first: they reference their records.
    for table in [OUTBOX, RECORDS] {
        gone = on_tx!(tx, |conn| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table}
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND seq >= $4"
            )))
            .bind(k.chain_id)
            .bind(&k.action_log)
            .bind(&k.token_id)
            .bind(from)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected())
        })?;
    }
    Ok(Some(gone))
}

/// Moves the idempotence key of a transaction sent for a log's next position but not yet
/// recorded ([`LogId::position_reference`], e.g. a trade) from position `old_seq` to
/// `new_seq`, on this connection (a rebase moved the log's next position).
pub(crate) async fn move_position_reference(
    tx: &mut WriteTx,
    log: &LogId,
    old_seq: u64,
    new_seq: u64,
) -> Result<u64, DbError> {
    let done = on_tx!(tx, |conn| {
        sqlx::query(
            "UPDATE signed_txs SET reference = $1, updated_at = $2
             WHERE chain_id = $3 AND reference = $4",
        )
        .bind(log.position_reference(new_seq))
        .bind(to_i64("now", now_ms())?)
        .bind(to_i64("chain_id", log.chain_id)?)
        .bind(log.position_reference(old_seq))
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(done)
}

/// Keeps a prompt that its record publishes only by hash (see the `private_prompts` table).
pub(crate) async fn insert_private_prompt(tx: &mut WriteTx, prompt: &str) -> Result<(), DbError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO private_prompts (prompt_hash, prompt, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (prompt_hash) DO NOTHING",
        )
        .bind(b256_text(&crate::record::content_hash(prompt.as_bytes())))
        .bind(prompt)
        .bind(to_i64("now", now_ms())?)
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected())
    })?;
    Ok(())
}

impl Db {
    /// The prompt whose keccak256 is `prompt_hash`, if this runtime ran an action with it and
    /// kept it private (the record published only the hash).
    pub async fn private_prompt(&self, prompt_hash: B256) -> Result<Option<String>, DbError> {
        let prompt: Option<String> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT prompt FROM private_prompts WHERE prompt_hash = $1")
                .bind(b256_text(&prompt_hash))
                .fetch_optional(pool)
                .await
        })?;
        // The table is written only by this runtime, but a prompt is used only if it matches.
        Ok(prompt.filter(|p| crate::record::content_hash(p.as_bytes()) == prompt_hash))
    }

    /// The record at `seq` of a log.
    pub async fn record(&self, log: &LogId, seq: u64) -> Result<Option<StoredRecord>, DbError> {
        let k = key(log)?;
        let row: Option<RawRecord> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {RECORD_COLUMNS} FROM action_records
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND seq = $4"
            )))
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", seq)?)
            .fetch_optional(pool)
            .await
        })?;
        row.map(|r| r.decode(log)).transpose()
    }

    /// Up to `limit` records of a log from `from_seq` on, in sequence order.
    pub async fn records(
        &self,
        log: &LogId,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<StoredRecord>, DbError> {
        let k = key(log)?;
        let rows: Vec<RawRecord> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {RECORD_COLUMNS} FROM action_records
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND seq >= $4
                 ORDER BY seq LIMIT $5"
            )))
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", from_seq)?)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(|r| r.decode(log)).collect()
    }

    /// The last record of a log.
    pub async fn last_record(&self, log: &LogId) -> Result<Option<StoredRecord>, DbError> {
        let k = key(log)?;
        let row: Option<RawRecord> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {RECORD_COLUMNS} FROM action_records
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3
                 ORDER BY seq DESC LIMIT 1"
            )))
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .fetch_optional(pool)
            .await
        })?;
        row.map(|r| r.decode(log)).transpose()
    }

    /// The record with this hash, in any log.
    pub async fn record_by_hash(&self, record_hash: B256) -> Result<Option<StoredRecord>, DbError> {
        let found: Option<(i64, String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT chain_id, action_log, token_id, seq FROM action_records WHERE record_hash = $1",
            )
            .bind(b256_text(&record_hash))
            .fetch_optional(pool)
            .await
        })?;
        let Some((chain_id, action_log, token_id, seq)) = found else {
            return Ok(None);
        };
        let log = LogId {
            chain_id: from_i64(RECORDS, "chain_id", chain_id)?,
            action_log: parse_addr(RECORDS, "action_log", &action_log)?,
            token_id: parse_u256(RECORDS, "token_id", &token_id)?,
        };
        self.record(&log, from_i64(RECORDS, "seq", seq)?).await
    }

    /// Notes where a record's signed envelope was stored in the blob store.
    pub async fn set_record_blob_uri(
        &self,
        log: &LogId,
        seq: u64,
        uri: &str,
    ) -> Result<bool, DbError> {
        let k = key(log)?;
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE action_records SET blob_uri = $1
                 WHERE chain_id = $2 AND action_log = $3 AND token_id = $4 AND seq = $5",
            )
            .bind(uri)
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", seq)?)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// The outbox entry at `seq` of a log.
    pub async fn outbox_entry(
        &self,
        log: &LogId,
        seq: u64,
    ) -> Result<Option<OutboxEntry>, DbError> {
        let k = key(log)?;
        let row: Option<RawEntry> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND seq = $4"
            )))
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", seq)?)
            .fetch_optional(pool)
            .await
        })?;
        row.map(|r| r.decode(log)).transpose()
    }

    /// Every outbox entry of a log, in sequence order.
    pub async fn outbox_entries(&self, log: &LogId) -> Result<Vec<OutboxEntry>, DbError> {
        let k = key(log)?;
        let rows: Vec<RawEntry> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 ORDER BY seq"
            )))
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(|r| r.decode(log)).collect()
    }

    /// Up to `limit` unconfirmed (pending or sent) entries of a log, in sequence order.
    pub async fn unconfirmed(&self, log: &LogId, limit: u32) -> Result<Vec<OutboxEntry>, DbError> {
        let k = key(log)?;
        let rows: Vec<RawEntry> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox
                 WHERE chain_id = $1 AND action_log = $2 AND token_id = $3 AND state <> 'confirmed'
                 ORDER BY seq LIMIT $4"
            )))
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(|r| r.decode(log)).collect()
    }

    /// Every log that has unconfirmed outbox entries.
    pub async fn logs_with_unconfirmed(&self) -> Result<Vec<LogId>, DbError> {
        let rows: Vec<(i64, String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT chain_id, action_log, token_id FROM outbox
                 WHERE state <> 'confirmed' ORDER BY chain_id, action_log, token_id",
            )
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(c, a, t)| {
                Ok(LogId {
                    chain_id: from_i64(OUTBOX, "chain_id", c)?,
                    action_log: parse_addr(OUTBOX, "action_log", &a)?,
                    token_id: parse_u256(OUTBOX, "token_id", &t)?,
                })
            })
            .collect()
    }

    /// Marks the unconfirmed entries `first..=last` as sent in `tx_hash` and counts the attempt.
    pub async fn mark_sent(
        &self,
        log: &LogId,
        first: u64,
        last: u64,
        tx_hash: B256,
    ) -> Result<u64, DbError> {
        let k = key(log)?;
        let now = to_i64("now", now_ms())?;
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET state = 'sent', tx_hash = $1, attempts = attempts + 1, last_error = NULL,
                        sent_at = $2, updated_at = $2
                 WHERE chain_id = $3 AND action_log = $4 AND token_id = $5 AND seq >= $6 AND seq <= $7
                   AND state <> 'confirmed'",
            )
            .bind(b256_text(&tx_hash))
            .bind(now)
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", first)?)
            .bind(to_i64("seq", last)?)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    /// Marks the unconfirmed entries `first..=last` as confirmed. With `tx_hash` (a receipt),
    /// only the entries that transaction carried (their stored `tx_hash`): a late receipt never
    /// confirms rows that were replaced meanwhile (see `Outbox::rebase`). `block_number`
    /// replaces the stored one when given (a reconciliation may not know the transaction).
    pub async fn mark_confirmed(
        &self,
        log: &LogId,
        first: u64,
        last: u64,
        tx_hash: Option<B256>,
        block_number: Option<u64>,
    ) -> Result<u64, DbError> {
        let k = key(log)?;
        let now = to_i64("now", now_ms())?;
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET state = 'confirmed', tx_hash = COALESCE($1, tx_hash),
                        block_number = COALESCE($2, block_number), last_error = NULL,
                        confirmed_at = $3, updated_at = $3
                 WHERE chain_id = $4 AND action_log = $5 AND token_id = $6 AND seq >= $7 AND seq <= $8
                   AND state <> 'confirmed' AND ($1 IS NULL OR tx_hash = $1)",
            )
            .bind(tx_hash.as_ref().map(b256_text))
            .bind(
                block_number
                    .map(|b| to_i64("block_number", b))
                    .transpose()?,
            )
            .bind(now)
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", first)?)
            .bind(to_i64("seq", last)?)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    /// Records a failure for the unconfirmed entries `first..=last`; they keep their state.
    /// `count_attempt` adds one to `attempts` (a send that did not go out); a failure while
    /// waiting for an already counted send only notes the error.
    pub async fn record_outbox_failure(
        &self,
        log: &LogId,
        first: u64,
        last: u64,
        error: &str,
        count_attempt: bool,
    ) -> Result<u64, DbError> {
        let k = key(log)?;
        let now = to_i64("now", now_ms())?;
        // Keep the message bounded: it is diagnostic, not a log.
        let error: String = error.chars().take(2000).collect();
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + $1, last_error = $2, updated_at = $3
                 WHERE chain_id = $4 AND action_log = $5 AND token_id = $6 AND seq >= $7 AND seq <= $8
                   AND state <> 'confirmed'",
            )
            .bind(i64::from(count_attempt))
            .bind(error)
            .bind(now)
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", first)?)
            .bind(to_i64("seq", last)?)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    /// Notes an error on the entry at `seq` without counting an attempt (e.g. an integrity error
    /// found while reconciling).
    pub async fn note_outbox_error(
        &self,
        log: &LogId,
        seq: u64,
        error: &str,
    ) -> Result<(), DbError> {
        let k = key(log)?;
        let error: String = error.chars().take(2000).collect();
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET last_error = $1, updated_at = $2
                 WHERE chain_id = $3 AND action_log = $4 AND token_id = $5 AND seq = $6",
            )
            .bind(error)
            .bind(to_i64("now", now_ms())?)
            .bind(k.chain_id)
            .bind(k.action_log)
            .bind(k.token_id)
            .bind(to_i64("seq", seq)?)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
