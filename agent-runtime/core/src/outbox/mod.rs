//! The action-log outbox: every action record reaches the chain exactly once, across crashes.
//!
//! # How exactly-once works
//!
//! 1. **Outbox first.** [`Outbox::append`] signs the record and inserts it into `action_records`
//!    and a `pending` row into `outbox` in **one** database transaction (SQLite
//!    `BEGIN IMMEDIATE`, `synchronous = FULL`; PostgreSQL: an advisory lock per log), before
//!    anything is sent. The sequence number and previous hash are taken inside that transaction,
//!    so two appends can never claim the same position. Through a fenced handle
//!    ([`Db::fenced`]), the transaction first checks the node's lease on the agent and writes
//!    nothing once it is lost ([`DbError::LeaseLost`](crate::db::DbError::LeaseLost)). A crash
//!    before the commit loses an action that was never logged anywhere; a crash after it leaves
//!    a pending entry that will be logged.
//! 2. **Reconcile before every send.** [`Outbox::step`] reads the chain's next sequence number
//!    for the token. Unconfirmed entries below it are already on chain (a transaction from before
//!    a crash landed): their hashes are compared with the chain's, equal hashes are marked
//!    `confirmed` without sending anything, a different hash is an
//!    [`Integrity`](OutboxError::Integrity) error that stops logging for that token (or, sent by
//!    another account, a [`Foreign`](OutboxError::Foreign) one: see 6).
//! 3. **Send in order, from the chain's position.** The remaining entries must start exactly at
//!    the chain's next sequence number (else [`Gap`](OutboxError::Gap)); up to
//!    [`MAX_BATCH`] consecutive hashes go into one `logActions(tokenId, firstSeq, hashes)`. The
//!    entries become `sent` with the transaction hash, then `confirmed` when its receipt succeeds.
//! 4. **The contract is the last guard.** `logActions` reverts unless `firstSeq` equals the
//!    token's next sequence number, so a duplicate send (two runtimes, or a retry racing a slow
//!    transaction) can never append a hash twice; the reverted attempt is reconciled in the next
//!    step.
//!
//! 5. **Records are public before their hashes are.** With a record store
//!    ([`Outbox::publishing`]), each signed record's envelope is put into the blob store right
//!    after it is committed, addressed by its record hash, and [`Outbox::step`] publishes any
//!    entry not yet published before it sends a batch: a hash never reaches the chain while
//!    its record cannot be fetched and audited.
//!
//! 6. **A sequence number taken by someone else.** The contract takes appends from the agent and
//!    from every LOG grantee on one per-token sequence. When reconciliation finds, at the seq of
//!    an unconfirmed local record, a hash sent by **another account** (the `ActionsLogged`
//!    sender), that record and every later one can never land where they are: the step fails
//!    with [`Foreign`](OutboxError::Foreign). [`Outbox::rebase`] re-signs them, same content and
//!    timestamp, at the chain's next free sequence numbers (chained to the hash the chain holds
//!    before them) and replaces the dead rows in one database transaction; they are then
//!    published and logged as usual. That needs their signing key, which the logger does not
//!    hold: [`Outbox::flush_rebasing`] (the agent loop's final flush) does it. A different hash
//!    sent by the records' own signer stays an [`Integrity`](OutboxError::Integrity) error: this
//!    runtime's own history forked (an old backup, two runtimes on one key), and it is never
//!    rebased silently.
//!
//! So every committed record is retried until the chain holds it (at least once), and the chain
//! accepts each sequence number once (at most once). Transient chain errors are retried with
//! exponential backoff; entries keep their state, with `attempts` and `last_error` updated.

mod chain;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::blobstore::BlobStore;
use crate::db::records::{
    delete_unconfirmed_from, insert_private_prompt, insert_record_with_outbox, last_position,
    move_position_reference, records_from,
};
use crate::db::{Db, OutboxEntry, OutboxState, WriteScope};
use crate::record::{ActionDraft, ActionRecord, FIRST_SEQ, LogId, SignedRecord};

pub use crate::error::{ChainLogError, OutboxError};
pub use chain::AlloyChainLog;

/// Most hashes in one `logActions` call.
pub const MAX_BATCH: usize = 32;

/// Most rebases in one [`Outbox::flush_rebasing`]: each one answers another account logging
/// at our next sequence number; past this, the flush returns the
/// [`Foreign`](OutboxError::Foreign) error and the next flush goes on.
pub const MAX_REBASES: usize = 8;

/// A token's action log as the chain holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The next sequence number the contract accepts (= number of actions logged).
    pub next_seq: u64,
    /// The contract's hash-chain head (its own fold of the logged hashes).
    pub head: B256,
}

/// One logged action as the chain holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedAction {
    /// Its sequence number.
    pub seq: u64,
    /// The hash logged there.
    pub hash: B256,
    /// Who sent the `logActions` transaction (the `ActionsLogged` event's `sender`).
    pub sender: Address,
}

/// The outcome of a mined transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxConfirmation {
    /// The block it was mined in.
    pub block_number: u64,
    /// Whether it succeeded (receipt status 1).
    pub success: bool,
}

/// The chain side of the action log: the `ActionLog` contract. The outbox is written against
/// this trait; the alloy implementation talks to the deployed contract, tests may inject faults.
#[async_trait]
pub trait ChainLog: Send + Sync {
    /// The token's log as the chain holds it now.
    async fn head(&self, log: &LogId) -> Result<ChainHead, ChainLogError>;

    /// The hashes logged at sequence numbers `from_seq..to_seq` (exactly `to_seq - from_seq`
    /// of them; every one of them below [`ChainHead::next_seq`]).
    async fn logged_hashes(
        &self,
        log: &LogId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<B256>, ChainLogError>;

    /// Like [`logged_hashes`](Self::logged_hashes), with who logged each hash.
    async fn logged_actions(
        &self,
        log: &LogId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<LoggedAction>, ChainLogError>;

    /// Broadcasts `logActions(tokenId, firstSeq, hashes)` and returns the transaction hash
    /// without waiting for it to be mined.
    async fn log_actions(
        &self,
        log: &LogId,
        first_seq: u64,
        hashes: &[B256],
    ) -> Result<B256, ChainLogError>;

    /// Waits (bounded by the implementation) until `tx_hash` is mined and returns its outcome.
    async fn confirm(&self, tx_hash: B256) -> Result<TxConfirmation, ChainLogError>;
}

/// Tuning of the outbox logger.
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// Most hashes per transaction (clamped to `1..=MAX_BATCH`).
    pub max_batch: usize,
    /// First retry delay after a retryable failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// [`Outbox::flush`] gives up after this many consecutive retryable failures (entries stay
    /// pending). The background logger never gives up.
    pub max_consecutive_failures: u32,
    /// How often the background logger looks for work when not woken by an append.
    pub poll_interval: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_batch: MAX_BATCH,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            max_consecutive_failures: 8,
            poll_interval: Duration::from_secs(5),
        }
    }
}

impl OutboxConfig {
    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max)
    }
}

/// What one [`Outbox::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Nothing unconfirmed.
    Idle,
    /// Entries found already on chain were marked confirmed; nothing was sent.
    Reconciled {
        /// How many entries.
        confirmed: u64,
    },
    /// A batch was logged and confirmed (after reconciling `reconciled` entries).
    Logged {
        /// First sequence number of the batch.
        first_seq: u64,
        /// Last sequence number of the batch.
        last_seq: u64,
        /// The `logActions` transaction.
        tx_hash: B256,
        /// Entries reconciled before sending.
        reconciled: u64,
    },
}

/// What [`Outbox::flush`] did in total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Entries found already on chain and confirmed without sending.
    pub reconciled: u64,
    /// Entries sent and confirmed.
    pub logged: u64,
    /// The transactions sent, in order.
    pub transactions: Vec<B256>,
    /// Retryable failures met (and retried) on the way.
    pub retries: u32,
    /// Records re-signed at later sequence numbers because another account took theirs
    /// ([`Outbox::flush_rebasing`]), in order.
    pub rebases: Vec<Rebase>,
}

impl FlushReport {
    /// Where the record that was at `seq` with hash `record_hash` ended up after this flush's
    /// rebases: its new `(seq, record_hash)`, or the same pair if it was not moved.
    pub fn position_of(&self, seq: u64, record_hash: B256) -> (u64, B256) {
        let mut at = (seq, record_hash);
        for moved in self.rebases.iter().flat_map(|r| &r.moved) {
            if moved.old_hash == at.1 {
                at = (moved.new_seq, moved.new_hash);
            }
        }
        at
    }
}

/// What one [`Outbox::rebase`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebase {
    /// The first sequence number another account took from under a local record.
    pub seq: u64,
    /// That account.
    pub taken_by: Address,
    /// Every record moved, in order.
    pub moved: Vec<MovedRecord>,
}

/// A record re-signed at a later sequence number (same content and timestamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MovedRecord {
    /// Where it was.
    pub old_seq: u64,
    /// Its hash there (never logged).
    pub old_hash: B256,
    /// Where it is now.
    pub new_seq: u64,
    /// Its new hash.
    pub new_hash: B256,
}

struct Inner {
    db: Db,
    chain: Arc<dyn ChainLog>,
    config: OutboxConfig,
    /// Chain positions learned at the first append of each log in this process: the floor
    /// for the next sequence number when the chain is ahead of the local database (e.g. the
    /// token's earlier actions were logged by a previous owner's runtime).
    chain_floor: Mutex<HashMap<LogId, (u64, B256)>>,
    wake: Notify,
    /// Where signed records are published for audits, if anywhere.
    records: Option<Arc<dyn BlobStore>>,
}

/// The action-log outbox over a database and a chain. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox writing to `db` and logging through `chain`.
    pub fn new(db: Db, chain: Arc<dyn ChainLog>, config: OutboxConfig) -> Self {
        Self::build(db, chain, None, config)
    }

    /// An outbox that also publishes every signed record to `records` (see
    /// [`BlobStore::put_record`]) before its hash is logged, so anyone can audit the agent.
    pub fn publishing(
        db: Db,
        chain: Arc<dyn ChainLog>,
        records: Arc<dyn BlobStore>,
        config: OutboxConfig,
    ) -> Self {
        Self::build(db, chain, Some(records), config)
    }

    fn build(
        db: Db,
        chain: Arc<dyn ChainLog>,
        records: Option<Arc<dyn BlobStore>>,
        mut config: OutboxConfig,
    ) -> Self {
        config.max_batch = config.max_batch.clamp(1, MAX_BATCH);
        Self {
            inner: Arc::new(Inner {
                db,
                chain,
                config,
                chain_floor: Mutex::new(HashMap::new()),
                wake: Notify::new(),
                records,
            }),
        }
    }

    /// Publishes one record to the record store (if any) and notes its URI in the database.
    async fn publish(&self, signed: &SignedRecord) -> Result<(), OutboxError> {
        let Some(store) = &self.inner.records else {
            return Ok(());
        };
        let r = signed.record();
        let uri = store
            .put_record(signed)
            .await
            .map_err(|source| OutboxError::Publish { seq: r.seq, source })?;
        self.inner
            .db
            .set_record_blob_uri(&r.log_id(), r.seq, &uri)
            .await?;
        tracing::debug!(seq = r.seq, %uri, "action record published");
        Ok(())
    }

    /// Publishes the records of `seqs` that are not published yet.
    async fn publish_missing(&self, log: &LogId, seqs: &[u64]) -> Result<(), OutboxError> {
        if self.inner.records.is_none() {
            return Ok(());
        }
        for &seq in seqs {
            match self.inner.db.record(log, seq).await? {
                Some(stored) if stored.blob_uri.is_none() => self.publish(&stored.record).await?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Publishes right after the commit; a failure here is retried by the logger before the
    /// record's hash is sent, so it only warns.
    async fn publish_after_commit(&self, signed: &SignedRecord) {
        if let Err(e) = self.publish(signed).await {
            tracing::warn!(seq = signed.record().seq, error = %e, "publishing the action record failed; the logger retries before logging it");
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Learns the chain's position of `log` once per process (cached). Needed before the first
    /// append so a runtime with no (or old) local records continues the chain's log instead of
    /// forking it.
    pub async fn sync_position(&self, log: &LogId) -> Result<(u64, B256), OutboxError> {
        if let Some(p) = self.floor(log) {
            return Ok(p);
        }
        let chain = &self.inner.chain;
        let head = chain.head(log).await?;
        // The contract numbers actions from FIRST_SEQ: a log with nothing on chain has no
        // previous record.
        let prev = if head.next_seq <= FIRST_SEQ {
            B256::ZERO
        } else {
            let from = head.next_seq - 1;
            let hashes = chain.logged_hashes(log, from, head.next_seq).await?;
            match hashes.as_slice() {
                [h] => *h,
                _ => {
                    return Err(OutboxError::ChainShape {
                        from,
                        to: head.next_seq,
                        got: hashes.len(),
                    });
                }
            }
        };
        let pos = (head.next_seq, prev);
        self.inner
            .chain_floor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*log, pos);
        Ok(pos)
    }

    fn floor(&self, log: &LogId) -> Option<(u64, B256)> {
        self.inner
            .chain_floor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(log)
            .copied()
    }

    /// Builds the next record of `log` from `draft`, signs it with the agent key and commits it
    /// with its pending outbox entry in one database transaction. Nothing is sent here: the
    /// logger ([`step`](Self::step), [`flush`](Self::flush) or [`spawn`](Self::spawn)) does that.
    pub async fn append(
        &self,
        log: &LogId,
        draft: ActionDraft,
        agent: &PrivateKeySigner,
    ) -> Result<SignedRecord, OutboxError> {
        // Ask the chain once per process. If it is down, a log with local records goes on from
        // them (reconciliation will catch a conflict); a log with none cannot start.
        let floor = match self.sync_position(log).await {
            Ok(p) => Ok(p),
            Err(OutboxError::Chain(e)) if e.is_retryable() => Err(e),
            Err(e) => return Err(e),
        };
        let mut tx = self.inner.db.begin_write(WriteScope::Log(log)).await?;
        let local = last_position(&mut tx, log).await?;
        let next_local = local.map(|(seq, h)| (seq + 1, h));
        let (seq, prev) = match (next_local, floor) {
            (Some(l), Ok(c)) => {
                if c.0 > l.0 {
                    c
                } else {
                    l
                }
            }
            (Some(l), Err(e)) => {
                tracing::warn!(%log, error = %e, "chain unavailable; appending after the local records");
                l
            }
            (None, Ok(c)) => c,
            (None, Err(e)) => return Err(OutboxError::Unsynced(e)),
        };
        // A prompt the record publishes only by hash stays with this runtime, for replay.
        let private_prompt = (!draft.keep_prompt).then(|| draft.prompt.clone());
        let record = ActionRecord::new(log, seq, prev, draft, crate::db::now_ms());
        let signed = record.sign(agent)?;
        insert_record_with_outbox(&mut tx, &signed, agent.address()).await?;
        if let Some(prompt) = &private_prompt {
            insert_private_prompt(&mut tx, prompt).await?;
        }
        tx.commit().await?;
        tracing::debug!(%log, seq, hash = %signed.record_hash(), "action record appended to the outbox");
        self.publish_after_commit(&signed).await;
        self.inner.wake.notify_one();
        Ok(signed)
    }

    /// Commits an already signed record with its pending outbox entry. The record must continue
    /// the log: `seq` = last local seq + 1 (or the synced chain position when there is no local
    /// record) and `prev_record_hash` = that record's hash.
    pub async fn append_signed(&self, signed: &SignedRecord) -> Result<(), OutboxError> {
        let r = signed.record();
        let log = r.log_id();
        let signer = signed.signer()?;
        let mut tx = self.inner.db.begin_write(WriteScope::Log(&log)).await?;
        let local = last_position(&mut tx, &log).await?.map(|(s, h)| (s + 1, h));
        let (next_seq, head) = match (local, self.floor(&log)) {
            (Some(l), Some(c)) if c.0 > l.0 => c,
            (Some(l), _) => l,
            (None, Some(c)) => c,
            (None, None) => (FIRST_SEQ, B256::ZERO),
        };
        if r.seq != next_seq || r.prev_record_hash != head {
            return Err(OutboxError::NotNext {
                seq: r.seq,
                next_seq,
                head,
            });
        }
        insert_record_with_outbox(&mut tx, signed, signer).await?;
        tx.commit().await?;
        self.publish_after_commit(signed).await;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// One round of logging for `log`: reconcile unconfirmed entries with the chain, then send
    /// and confirm at most one batch.
    pub async fn step(&self, log: &LogId) -> Result<Step, OutboxError> {
        let db = &self.inner.db;
        let chain = &self.inner.chain;
        let entries = db.unconfirmed(log, 4 * MAX_BATCH as u32).await?;
        let Some(first) = entries.first() else {
            return Ok(Step::Idle);
        };

        // A transaction sent before a crash or timeout may still be on its way: give it its
        // bounded chance to be mined before deciding to send again.
        if first.state == OutboxState::Sent
            && let Some(tx) = first.tx_hash
            && let Err(e) = chain.confirm(tx).await
        {
            tracing::debug!(%log, %tx, error = %e, "earlier logActions transaction not confirmed");
        }

        let head = match chain.head(log).await {
            Ok(head) => head,
            Err(e) => {
                // Nothing was sent, so no attempt is counted; the entry still says why it is
                // pending (e.g. the RPC is down).
                let e = OutboxError::from(e);
                if let Err(db_err) = db.note_outbox_error(log, first.seq, &e.to_string()).await {
                    tracing::warn!(%log, error = %db_err, "could not note a logging error");
                }
                return Err(e);
            }
        };
        let reconciled = self.reconcile(log, &entries, head.next_seq).await?;
        let rest: Vec<&OutboxEntry> = entries.iter().filter(|e| e.seq >= head.next_seq).collect();
        let Some(start) = rest.first() else {
            return Ok(Step::Reconciled {
                confirmed: reconciled,
            });
        };
        if start.seq != head.next_seq {
            return Err(OutboxError::Gap {
                chain_next: head.next_seq,
                local_first: start.seq,
            });
        }
        let batch: Vec<&OutboxEntry> = rest
            .iter()
            .copied()
            .enumerate()
            .take_while(|(i, e)| e.seq == start.seq + *i as u64)
            .map(|(_, e)| e)
            .take(self.inner.config.max_batch)
            .collect();
        let first_seq = start.seq;
        let last_seq = first_seq + batch.len() as u64 - 1;
        let hashes: Vec<B256> = batch.iter().map(|e| e.record_hash).collect();
        let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
        if let Err(e) = self.publish_missing(log, &seqs).await {
            db.record_outbox_failure(log, first_seq, last_seq, &e.to_string(), false)
                .await?;
            return Err(e);
        }

        let tx_hash = match chain.log_actions(log, first_seq, &hashes).await {
            Ok(h) => h,
            Err(e) => {
                db.record_outbox_failure(log, first_seq, last_seq, &e.to_string(), true)
                    .await?;
                return Err(e.into());
            }
        };
        db.mark_sent(log, first_seq, last_seq, tx_hash).await?;
        tracing::info!(%log, first_seq, last_seq, %tx_hash, "logActions sent");
        match chain.confirm(tx_hash).await {
            Ok(c) if c.success => {
                db.mark_confirmed(
                    log,
                    first_seq,
                    last_seq,
                    Some(tx_hash),
                    Some(c.block_number),
                )
                .await?;
                Ok(Step::Logged {
                    first_seq,
                    last_seq,
                    tx_hash,
                    reconciled,
                })
            }
            Ok(_) => {
                let e = ChainLogError::Reverted { tx_hash };
                db.record_outbox_failure(log, first_seq, last_seq, &e.to_string(), false)
                    .await?;
                Err(e.into())
            }
            Err(e) => {
                db.record_outbox_failure(log, first_seq, last_seq, &e.to_string(), false)
                    .await?;
                Err(e.into())
            }
        }
    }

    /// Marks the entries below `chain_next` confirmed when the chain holds the same hashes.
    async fn reconcile(
        &self,
        log: &LogId,
        entries: &[OutboxEntry],
        chain_next: u64,
    ) -> Result<u64, OutboxError> {
        let on_chain: Vec<&OutboxEntry> = entries.iter().filter(|e| e.seq < chain_next).collect();
        let (Some(lo), Some(hi)) = (on_chain.first(), on_chain.last()) else {
            return Ok(0);
        };
        let (from, to) = (lo.seq, hi.seq + 1);
        let hashes = self.inner.chain.logged_hashes(log, from, to).await?;
        if hashes.len() as u64 != to - from {
            return Err(OutboxError::ChainShape {
                from,
                to,
                got: hashes.len(),
            });
        }
        for e in &on_chain {
            // Entries are unique per seq and within from..to, so the index is in range.
            let Some(&chain_hash) = hashes.get((e.seq - from) as usize) else {
                return Err(OutboxError::ChainShape {
                    from,
                    to,
                    got: hashes.len(),
                });
            };
            if chain_hash != e.record_hash {
                let err = match self.foreign_conflict(log, e, chain_hash, to).await? {
                    Some(err) => {
                        // The entries before the conflict are ours on chain.
                        if e.seq > from {
                            self.inner
                                .db
                                .mark_confirmed(log, from, e.seq - 1, None, None)
                                .await?;
                        }
                        tracing::warn!(%log, error = %err, "sequence numbers taken by another account");
                        err
                    }
                    None => {
                        tracing::error!(%log, seq = e.seq, %chain_hash, local = %e.record_hash, "action log integrity error");
                        OutboxError::Integrity {
                            seq: e.seq,
                            chain: chain_hash,
                            local: e.record_hash,
                        }
                    }
                };
                self.inner
                    .db
                    .note_outbox_error(log, e.seq, &err.to_string())
                    .await?;
                return Err(err);
            }
        }
        let n = self
            .inner
            .db
            .mark_confirmed(log, from, hi.seq, None, None)
            .await?;
        if n > 0 {
            tracing::info!(%log, from, to = hi.seq, "outbox entries found on chain, marked confirmed");
        }
        Ok(n)
    }

    /// Whether the conflict at `first` (the chain holds `chain_hash` there) is another
    /// account's doing: [`Foreign`](OutboxError::Foreign) when every hash the chain holds at the
    /// unconfirmed seqs `first.seq..to` was sent by someone other than the local record's
    /// signer, `None` (an integrity error) when any was sent by that signer.
    async fn foreign_conflict(
        &self,
        log: &LogId,
        first: &OutboxEntry,
        chain_hash: B256,
        to: u64,
    ) -> Result<Option<OutboxError>, OutboxError> {
        let actions = self.inner.chain.logged_actions(log, first.seq, to).await?;
        if actions.len() as u64 != to - first.seq {
            return Err(OutboxError::ChainShape {
                from: first.seq,
                to,
                got: actions.len(),
            });
        }
        let mut taken = None;
        for a in &actions {
            let Some(local) = self.inner.db.record(log, a.seq).await? else {
                continue;
            };
            if a.sender == local.signer {
                return Ok(None);
            }
            if a.seq == first.seq {
                taken = Some((a.sender, local.signer));
            }
        }
        Ok(taken.map(|(taken_by, signer)| OutboxError::Foreign {
            token_id: log.token_id,
            seq: first.seq,
            taken_by,
            signer,
            chain: chain_hash,
            local: first.record_hash,
        }))
    }

    /// Re-signs with `signer` the local records that another account's entries displaced (see
    /// [`Foreign`](OutboxError::Foreign)): from the first unconfirmed record whose sequence
    /// number the chain holds with another account's hash, every local record moves to the
    /// chain's next free sequence numbers, in order, the first one chained to the hash the chain
    /// holds before them. Content and timestamp stay (a private prompt stays private: the record
    /// keeps only its hash, and the prompt stays in `private_prompts` under it); the seq, the
    /// previous hash, the record hash and the signature change. The dead rows and their outbox
    /// entries are replaced in **one** database transaction (a crash leaves either the old rows
    /// or the new ones), and the idempotence key of a transaction sent for the log's next
    /// position but not yet recorded (a trade: [`LogId::position_reference`]) moves with that
    /// position, so the trade is recorded, not made again. Nothing is sent here: the logger
    /// publishes and logs the new records as usual.
    ///
    /// Returns `None` when nothing is displaced. A different hash sent by the records' own
    /// signer is an [`Integrity`](OutboxError::Integrity) error, never rebased; a record signed
    /// by another key than `signer` is [`RebaseSigner`](OutboxError::RebaseSigner).
    ///
    /// A transaction still in flight for a displaced record can no longer succeed (the contract
    /// takes a batch only at `seq + 1`, and the chain is past it); the entries that knew it are
    /// gone, so its late receipt changes nothing.
    pub async fn rebase(
        &self,
        log: &LogId,
        signer: &PrivateKeySigner,
    ) -> Result<Option<Rebase>, OutboxError> {
        let db = &self.inner.db;
        let chain = &self.inner.chain;
        let head = chain.head(log).await?;
        let entries = db.unconfirmed(log, 4 * MAX_BATCH as u32).await?;
        let below: Vec<&OutboxEntry> = entries.iter().filter(|e| e.seq < head.next_seq).collect();
        let Some(lo) = below.first().map(|e| e.seq) else {
            return Ok(None);
        };
        // What the chain holds from the first unconfirmed seq to its end.
        let actions = chain.logged_actions(log, lo, head.next_seq).await?;
        if actions.len() as u64 != head.next_seq - lo {
            return Err(OutboxError::ChainShape {
                from: lo,
                to: head.next_seq,
                got: actions.len(),
            });
        }
        let at = |seq: u64| actions.get((seq - lo) as usize);
        let Some(first) = below
            .iter()
            .find(|e| at(e.seq).is_none_or(|a| a.hash != e.record_hash))
        else {
            return Ok(None);
        };
        let Some(taken) = at(first.seq).copied() else {
            return Ok(None);
        };
        // The records' own signer at any of these seqs: our history forked, not a grantee's.
        for e in below.iter().filter(|e| e.seq >= first.seq) {
            let (Some(a), Some(local)) = (at(e.seq), db.record(log, e.seq).await?) else {
                continue;
            };
            if a.sender == local.signer {
                return Err(OutboxError::Integrity {
                    seq: e.seq,
                    chain: a.hash,
                    local: e.record_hash,
                });
            }
        }
        let Some(mut prev) = actions.last().map(|a| a.hash) else {
            return Ok(None);
        };

        let mut tx = db.begin_write(WriteScope::Log(log)).await?;
        let old = records_from(&mut tx, log, first.seq).await?;
        // Another rebase (or anything else) changed the rows since they were read: step again.
        if old.first().map(|r| r.record.record_hash()) != Some(first.record_hash) {
            return Ok(None);
        }
        let mut moved = Vec::with_capacity(old.len());
        let mut new = Vec::with_capacity(old.len());
        let mut seq = head.next_seq;
        for stored in &old {
            let r = stored.record.record();
            if stored.signer != signer.address() {
                return Err(OutboxError::RebaseSigner {
                    seq: r.seq,
                    signer: stored.signer,
                    given: signer.address(),
                });
            }
            let mut record = r.clone();
            record.seq = seq;
            record.prev_record_hash = prev;
            let signed = record.sign(signer)?;
            moved.push(MovedRecord {
                old_seq: r.seq,
                old_hash: stored.record.record_hash(),
                new_seq: seq,
                new_hash: signed.record_hash(),
            });
            prev = signed.record_hash();
            seq += 1;
            new.push(signed);
        }
        let (Some(old_last), Some(new_last)) =
            (moved.last().map(|m| m.old_seq), seq.checked_sub(1))
        else {
            return Ok(None);
        };
        // Only unconfirmed rows may go: a confirmed one past the conflict means the chain holds
        // our record there, which no rebase explains.
        if delete_unconfirmed_from(&mut tx, log, first.seq).await? != Some(old.len() as u64) {
            return Err(OutboxError::Integrity {
                seq: first.seq,
                chain: taken.hash,
                local: first.record_hash,
            });
        }
        for signed in &new {
            insert_record_with_outbox(&mut tx, signed, signer.address()).await?;
        }
        move_position_reference(&mut tx, log, old_last + 1, new_last + 1).await?;
        tx.commit().await?;
        tracing::warn!(
            %log,
            seq = first.seq,
            taken_by = %taken.sender,
            records = new.len(),
            first_new_seq = head.next_seq,
            "local records re-signed after sequence numbers taken by another account"
        );
        for signed in &new {
            self.publish_after_commit(signed).await;
        }
        self.inner.wake.notify_one();
        Ok(Some(Rebase {
            seq: first.seq,
            taken_by: taken.sender,
            moved,
        }))
    }

    /// Steps until nothing is unconfirmed for `log`, retrying retryable failures with backoff;
    /// gives up after [`OutboxConfig::max_consecutive_failures`] of them in a row.
    pub async fn flush(&self, log: &LogId) -> Result<FlushReport, OutboxError> {
        let mut report = FlushReport::default();
        self.flush_into(log, &mut report).await?;
        Ok(report)
    }

    /// [`flush`](Self::flush) that also answers [`Foreign`](OutboxError::Foreign) by re-signing
    /// the displaced records with `signer` ([`rebase`](Self::rebase)) and going on, at most
    /// [`MAX_REBASES`] times. For whoever holds the records' key (the agent loop).
    pub async fn flush_rebasing(
        &self,
        log: &LogId,
        signer: &PrivateKeySigner,
    ) -> Result<FlushReport, OutboxError> {
        let mut report = FlushReport::default();
        let mut rebases = 0;
        loop {
            match self.flush_into(log, &mut report).await {
                Err(OutboxError::Foreign { .. }) if rebases < MAX_REBASES => {
                    rebases += 1;
                    match self.rebase(log, signer).await {
                        Ok(Some(rebase)) => report.rebases.push(rebase),
                        // Resolved meanwhile (another rebase): step again.
                        Ok(None) => {}
                        Err(e) if e.is_retryable() => {
                            report.retries += 1;
                            let delay = self.inner.config.backoff(rebases as u32);
                            tracing::warn!(%log, error = %e, ?delay, "rebase failed, retrying");
                            tokio::time::sleep(delay).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                other => return other.map(|()| report),
            }
        }
    }

    async fn flush_into(&self, log: &LogId, report: &mut FlushReport) -> Result<(), OutboxError> {
        let mut failures = 0u32;
        loop {
            match self.step(log).await {
                Ok(Step::Idle) => return Ok(()),
                Ok(Step::Reconciled { confirmed }) => {
                    failures = 0;
                    report.reconciled += confirmed;
                }
                Ok(Step::Logged {
                    first_seq,
                    last_seq,
                    tx_hash,
                    reconciled,
                }) => {
                    failures = 0;
                    report.reconciled += reconciled;
                    report.logged += last_seq - first_seq + 1;
                    report.transactions.push(tx_hash);
                }
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    report.retries += 1;
                    if failures >= self.inner.config.max_consecutive_failures {
                        return Err(OutboxError::GaveUp {
                            attempts: failures,
                            last: Box::new(e),
                        });
                    }
                    let delay = self.inner.config.backoff(failures);
                    tracing::warn!(%log, error = %e, ?delay, "action logging failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts the background logger: it logs every log with unconfirmed entries, wakes on each
    /// append (and every [`OutboxConfig::poll_interval`]), retries retryable failures with
    /// backoff forever, and stops logging a token after a non-retryable error (integrity, gap,
    /// rejection) until restarted.
    pub fn spawn(&self) -> LoggerHandle {
        self.spawn_logger(None)
    }

    /// [`spawn`](Self::spawn) for one log only: the logger of an agent whose key may log its
    /// own token and no other. Several agents sharing one database (a service) each run one;
    /// a logger for every log would send other tokens' records with the wrong key.
    pub fn spawn_for(&self, log: LogId) -> LoggerHandle {
        self.spawn_logger(Some(log))
    }

    fn spawn_logger(&self, only: Option<LogId>) -> LoggerHandle {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let this = self.clone();
        let join = tokio::spawn(async move { this.run(stop_rx, only).await });
        LoggerHandle {
            stop: stop_tx,
            join,
        }
    }

    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>, only: Option<LogId>) {
        let config = self.inner.config.clone();
        // Per log: consecutive failures and when to try again; halted logs are skipped.
        let mut retry: HashMap<LogId, (u32, tokio::time::Instant)> = HashMap::new();
        let mut halted: HashMap<LogId, String> = HashMap::new();
        loop {
            if *stop.borrow() {
                return;
            }
            let mut next_wake = tokio::time::Instant::now() + config.poll_interval;
            let logs = match only {
                // A log with nothing pending is a cheap idle step.
                Some(log) => Ok(vec![log]),
                None => self.inner.db.logs_with_unconfirmed().await,
            };
            match logs {
                Ok(logs) => {
                    for log in logs {
                        if halted.contains_key(&log) || *stop.borrow() {
                            continue;
                        }
                        if let Some((_, at)) = retry.get(&log)
                            && *at > tokio::time::Instant::now()
                        {
                            next_wake = next_wake.min(*at);
                            continue;
                        }
                        loop {
                            match self.step(&log).await {
                                Ok(Step::Idle) => {
                                    retry.remove(&log);
                                    break;
                                }
                                Ok(_) => {
                                    retry.remove(&log);
                                }
                                Err(e) if e.is_retryable() => {
                                    let failures = retry.get(&log).map_or(0, |r| r.0) + 1;
                                    let at = tokio::time::Instant::now() + config.backoff(failures);
                                    tracing::warn!(%log, error = %e, failures, "action logging failed, will retry");
                                    retry.insert(log, (failures, at));
                                    next_wake = next_wake.min(at);
                                    break;
                                }
                                Err(e) => {
                                    tracing::error!(%log, error = %e, "action logging halted for this token");
                                    halted.insert(log, e.to_string());
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "outbox: cannot read the database"),
            }
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep_until(next_wake) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Handle of the background logger started by [`Outbox::spawn`].
#[derive(Debug)]
pub struct LoggerHandle {
    stop: tokio::sync::watch::Sender<bool>,
    join: JoinHandle<()>,
}

impl LoggerHandle {
    /// Asks the logger to stop after its current step and waits for it. Unconfirmed entries
    /// stay in the outbox for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.join.await {
            tracing::error!(error = %e, "outbox logger task failed");
        }
    }
}
