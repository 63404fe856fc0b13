//! The outbox on a real SQLite file (or on PostgreSQL with `INFT_TEST_DATABASE_URL` set, see
//! `agent_runtime::db::testing`). The chain side is a small in-process `ChainLog` that
//! follows the `ActionLog` contract's rules (1-based seq, `firstSeq == seq + 1`, head =
//! keccak(head ‖ hash)) and lets a test inject faults: failed sends, a send that lands on chain
//! but whose answer is lost (a crash right after broadcasting), a send still in flight, an
//! unreachable RPC, and other accounts logging on the same sequence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_runtime::db::testing::{self, TestDb};
use agent_runtime::db::{Backend, DbError, OutboxState};
use agent_runtime::outbox::{
    ChainHead, ChainLog, ChainLogError, LoggedAction, Outbox, OutboxConfig, OutboxError,
    TxConfirmation,
};
use agent_runtime::record::{ActionDraft, ActionKind, LogId};
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Result;
use async_trait::async_trait;
use serde_json::json;

/// A send broadcast but not mined yet.
struct InFlight {
    tx: B256,
    log: LogId,
    first_seq: u64,
    hashes: Vec<B256>,
}

#[derive(Default)]
struct FakeState {
    /// Per log, each logged hash and who sent it.
    logs: HashMap<LogId, Vec<(B256, Address)>>,
    /// The account the outbox's sends come from.
    sender: Address,
    /// The next N sends are broadcast but stay in flight until [`FakeChain::mine`].
    hold_sends: u32,
    in_flight: Vec<InFlight>,
    receipts: HashMap<B256, TxConfirmation>,
    block: u64,
    /// The next N sends fail before reaching the chain.
    fail_sends: u32,
    /// The next N sends land on chain, but the caller gets an error (answer lost / crash).
    land_then_error: u32,
    /// The next N confirmations fail (receipt not available yet).
    fail_confirms: u32,
    /// The next N head reads fail (RPC down).
    fail_heads: u32,
    /// Every send that reached the chain: (first seq, number of hashes, accepted).
    sends: Vec<(u64, usize, bool)>,
}

#[derive(Default, Clone)]
struct FakeChain(Arc<Mutex<FakeState>>);

impl FakeChain {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().expect("lock")
    }

    fn logged(&self, log: &LogId) -> Vec<B256> {
        let s = self.state();
        s.logs
            .get(log)
            .map(|l| l.iter().map(|(h, _)| *h).collect())
            .unwrap_or_default()
    }

    /// Someone else appends directly (a previous owner's runtime, another writer).
    fn append_foreign(&self, log: &LogId, hashes: &[B256]) {
        self.append_as(log, Address::repeat_byte(0xee), hashes);
    }

    /// `sender` appends directly, as the contract allows the agent and any LOG grantee.
    fn append_as(&self, log: &LogId, sender: Address, hashes: &[B256]) {
        self.state()
            .logs
            .entry(*log)
            .or_default()
            .extend(hashes.iter().map(|h| (*h, sender)));
    }

    /// Mines the sends in flight, in order, by the contract's rule (each reverts unless it
    /// starts right after the last logged action).
    fn mine(&self) {
        let mut s = self.state();
        let sender = s.sender;
        for f in std::mem::take(&mut s.in_flight) {
            s.block += 1;
            let block = s.block;
            let chain = s.logs.entry(f.log).or_default();
            let accepted = f.first_seq == chain.len() as u64 + 1;
            if accepted {
                chain.extend(f.hashes.iter().map(|h| (*h, sender)));
            }
            s.receipts.insert(
                f.tx,
                TxConfirmation {
                    block_number: block,
                    success: accepted,
                },
            );
        }
    }
}

fn rpc_down() -> ChainLogError {
    ChainLogError::transient(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused",
    ))
}

#[async_trait]
impl ChainLog for FakeChain {
    async fn head(&self, log: &LogId) -> Result<ChainHead, ChainLogError> {
        let mut s = self.state();
        if s.fail_heads > 0 {
            s.fail_heads -= 1;
            return Err(rpc_down());
        }
        let hashes = s.logs.get(log).cloned().unwrap_or_default();
        let head = hashes.iter().fold(B256::ZERO, |h, (x, _)| {
            keccak256([h.as_slice(), x.as_slice()].concat())
        });
        Ok(ChainHead {
            next_seq: hashes.len() as u64 + 1,
            head,
        })
    }

    async fn logged_hashes(
        &self,
        log: &LogId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<B256>, ChainLogError> {
        let actions = self.logged_actions(log, from_seq, to_seq).await?;
        Ok(actions.into_iter().map(|a| a.hash).collect())
    }

    async fn logged_actions(
        &self,
        log: &LogId,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<LoggedAction>, ChainLogError> {
        let s = self.state();
        let hashes = s.logs.get(log).cloned().unwrap_or_default();
        if from_seq < 1 || to_seq > hashes.len() as u64 + 1 || from_seq > to_seq {
            return Err(ChainLogError::Rejected(format!(
                "bad range {from_seq}..{to_seq}"
            )));
        }
        Ok((from_seq..to_seq)
            .map(|seq| {
                let (hash, sender) = hashes[(seq - 1) as usize];
                LoggedAction { seq, hash, sender }
            })
            .collect())
    }

    async fn log_actions(
        &self,
        log: &LogId,
        first_seq: u64,
        hashes: &[B256],
    ) -> Result<B256, ChainLogError> {
        let mut s = self.state();
        if s.fail_sends > 0 {
            s.fail_sends -= 1;
            return Err(rpc_down());
        }
        s.block += 1;
        let block = s.block;
        let tx = keccak256(format!("tx-{block}"));
        if s.hold_sends > 0 {
            s.hold_sends -= 1;
            s.in_flight.push(InFlight {
                tx,
                log: *log,
                first_seq,
                hashes: hashes.to_vec(),
            });
            return Ok(tx);
        }
        let sender = s.sender;
        let chain = s.logs.entry(*log).or_default();
        // The contract's rule: the batch must start right after the last logged action.
        let accepted = !hashes.is_empty() && first_seq == chain.len() as u64 + 1;
        if accepted {
            chain.extend(hashes.iter().map(|h| (*h, sender)));
        }
        s.sends.push((first_seq, hashes.len(), accepted));
        s.receipts.insert(
            tx,
            TxConfirmation {
                block_number: block,
                success: accepted,
            },
        );
        if s.land_then_error > 0 {
            s.land_then_error -= 1;
            return Err(ChainLogError::transient(
                "connection reset while waiting for the answer",
            ));
        }
        Ok(tx)
    }

    async fn confirm(&self, tx_hash: B256) -> Result<TxConfirmation, ChainLogError> {
        let mut s = self.state();
        if s.fail_confirms > 0 {
            s.fail_confirms -= 1;
            return Err(ChainLogError::transient("receipt not available"));
        }
        s.receipts
            .get(&tx_hash)
            .copied()
            .ok_or_else(|| ChainLogError::transient("unknown transaction"))
    }
}

fn log_id(token: u64) -> LogId {
    LogId {
        chain_id: 31337,
        action_log: Address::repeat_byte(0xa1),
        token_id: U256::from(token),
    }
}

fn draft(i: usize) -> ActionDraft {
    ActionDraft {
        kind: ActionKind::Creative,
        model_hash: B256::repeat_byte(0x77),
        prompt: format!("prompt {i}"),
        keep_prompt: true,
        output: format!("output {i}"),
        sampler: json!({"temperature": 0.0, "seed": i}),
        seed: i as u64,
        llama_build: "test-build".into(),
        tx_hash: None,
        details: serde_json::Value::Null,
    }
}

fn config() -> OutboxConfig {
    OutboxConfig {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        max_consecutive_failures: 3,
        poll_interval: Duration::from_millis(20),
        ..OutboxConfig::default()
    }
}

/// An outbox on (a new handle to) `db`: opening again is a restart.
async fn open(db: &TestDb, chain: &FakeChain) -> Result<Outbox> {
    let db = db.open().await?;
    Ok(Outbox::new(db, Arc::new(chain.clone()), config()))
}

/// The record hashes stored locally for a log, in order.
async fn local_hashes(outbox: &Outbox, log: &LogId) -> Result<Vec<B256>> {
    Ok(outbox
        .db()
        .records(log, 0, 10_000)
        .await?
        .iter()
        .map(|r| r.record.record_hash())
        .collect())
}

#[tokio::test]
async fn appended_records_persist_hash_chained_and_signed() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let agent = PrivateKeySigner::random();
    let log = log_id(1);
    {
        let outbox = open(&test_db, &chain).await?;
        for i in 0..3 {
            outbox.append(&log, draft(i), &agent).await?;
        }
        outbox.db().close().await;
    }
    let outbox = open(&test_db, &chain).await?;
    let records = outbox.db().records(&log, 0, 100).await?;
    assert_eq!(records.len(), 3);
    let mut prev = B256::ZERO;
    for (i, stored) in records.iter().enumerate() {
        let r = stored.record.record();
        assert_eq!(r.seq, i as u64 + 1, "the contract counts from 1");
        assert_eq!(r.prev_record_hash, prev);
        assert_eq!(r.output, format!("output {i}"));
        stored.record.verify(agent.address())?;
        assert_eq!(stored.signer, agent.address());
        prev = stored.record.record_hash();
    }
    let entries = outbox.db().outbox_entries(&log).await?;
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .all(|e| e.state == OutboxState::Pending && e.attempts == 0)
    );
    assert_eq!(
        outbox
            .db()
            .last_record(&log)
            .await?
            .map(|r| r.record.record_hash()),
        Some(prev)
    );
    assert_eq!(outbox.db().logs_with_unconfirmed().await?, vec![log]);
    assert!(chain.logged(&log).is_empty(), "append never sends");
    Ok(())
}

#[tokio::test]
async fn flush_logs_in_sequence_in_batches_of_at_most_32() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    let (a, b) = (log_id(1), log_id(2));
    for i in 0..70 {
        outbox.append(&a, draft(i), &agent).await?;
    }
    outbox.append(&b, draft(0), &agent).await?;

    let report = outbox.flush(&a).await?;
    assert_eq!(report.logged, 70);
    assert_eq!(report.reconciled, 0);
    assert_eq!(report.transactions.len(), 3);
    assert_eq!(
        chain.state().sends,
        vec![(1, 32, true), (33, 32, true), (65, 6, true)]
    );
    assert_eq!(chain.logged(&a), local_hashes(&outbox, &a).await?);
    let entries = outbox.db().outbox_entries(&a).await?;
    assert!(entries.iter().all(|e| e.state == OutboxState::Confirmed
        && e.tx_hash.is_some()
        && e.block_number.is_some()));
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.tx_hash == Some(report.transactions[2]))
            .count(),
        6
    );

    // Logs are independent: token 2 is still pending.
    assert_eq!(outbox.db().logs_with_unconfirmed().await?, vec![b]);
    outbox.flush(&b).await?;
    assert!(outbox.db().logs_with_unconfirmed().await?.is_empty());
    // Nothing left: another flush sends nothing.
    assert_eq!(outbox.flush(&a).await?.transactions.len(), 0);
    assert_eq!(chain.state().sends.len(), 4);
    Ok(())
}

#[tokio::test]
async fn restart_after_a_send_that_landed_reconciles_without_resending() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let agent = PrivateKeySigner::random();
    let log = log_id(3);
    {
        let outbox = open(&test_db, &chain).await?;
        for i in 0..5 {
            outbox.append(&log, draft(i), &agent).await?;
        }
        // The transaction reaches the chain, but the runtime never learns it (crash/timeout).
        chain.state().land_then_error = 1;
        let err = outbox.step(&log).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let entries = outbox.db().outbox_entries(&log).await?;
        assert!(
            entries.iter().all(|e| e.state == OutboxState::Pending
                && e.attempts == 1
                && e.last_error.is_some())
        );
        outbox.db().close().await; // the process dies here
    }
    assert_eq!(chain.logged(&log).len(), 5);

    let outbox = open(&test_db, &chain).await?;
    let report = outbox.flush(&log).await?;
    assert_eq!(report.reconciled, 5);
    assert_eq!(report.logged, 0);
    assert_eq!(chain.state().sends.len(), 1, "nothing was sent twice");
    assert_eq!(chain.logged(&log), local_hashes(&outbox, &log).await?);
    let entries = outbox.db().outbox_entries(&log).await?;
    assert!(
        entries
            .iter()
            .all(|e| e.state == OutboxState::Confirmed && e.last_error.is_none())
    );

    // New actions after the restart continue the same chain.
    outbox.append(&log, draft(5), &agent).await?;
    outbox.flush(&log).await?;
    assert_eq!(chain.logged(&log), local_hashes(&outbox, &log).await?);
    assert_eq!(chain.logged(&log).len(), 6);
    Ok(())
}

#[tokio::test]
async fn restart_with_entries_marked_sent_waits_for_their_transaction() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let agent = PrivateKeySigner::random();
    let log = log_id(4);
    {
        let outbox = open(&test_db, &chain).await?;
        for i in 0..3 {
            outbox.append(&log, draft(i), &agent).await?;
        }
        // Broadcast succeeds, the receipt is not there yet when the process dies.
        chain.state().fail_confirms = 1;
        assert!(outbox.step(&log).await.is_err());
        let entries = outbox.db().outbox_entries(&log).await?;
        assert!(
            entries
                .iter()
                .all(|e| e.state == OutboxState::Sent && e.tx_hash.is_some())
        );
        outbox.db().close().await;
    }
    let outbox = open(&test_db, &chain).await?;
    let report = outbox.flush(&log).await?;
    assert_eq!((report.reconciled, report.logged), (3, 0));
    assert_eq!(
        chain.state().sends.len(),
        1,
        "the sent transaction was not repeated"
    );
    let entries = outbox.db().outbox_entries(&log).await?;
    assert!(
        entries
            .iter()
            .all(|e| e.state == OutboxState::Confirmed && e.tx_hash.is_some())
    );
    Ok(())
}

#[tokio::test]
async fn chain_failures_keep_entries_pending_with_attempts_and_error() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    let log = log_id(5);
    for i in 0..4 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    chain.state().fail_sends = 100;
    let err = outbox.flush(&log).await.unwrap_err();
    assert!(
        matches!(err, OutboxError::GaveUp { attempts: 3, .. }),
        "{err}"
    );
    let entries = outbox.db().outbox_entries(&log).await?;
    for e in &entries {
        assert_eq!(e.state, OutboxState::Pending);
        assert_eq!(e.attempts, 3);
        assert!(
            e.last_error
                .as_deref()
                .is_some_and(|m| m.contains("connection refused")),
            "{e:?}"
        );
    }
    assert!(chain.logged(&log).is_empty());

    // The RPC comes back: everything goes out once, in order.
    chain.state().fail_sends = 0;
    let report = outbox.flush(&log).await?;
    assert_eq!(report.logged, 4);
    assert_eq!(chain.logged(&log), local_hashes(&outbox, &log).await?);
    Ok(())
}

#[tokio::test]
async fn transient_failures_are_retried_within_one_flush() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    let log = log_id(6);
    for i in 0..2 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    {
        let mut s = chain.state();
        s.fail_sends = 1;
        s.fail_heads = 1;
    }
    let report = outbox.flush(&log).await?;
    assert_eq!(report.logged, 2);
    assert_eq!(report.retries, 2);
    let entries = outbox.db().outbox_entries(&log).await?;
    assert!(entries.iter().all(|e| e.state == OutboxState::Confirmed));
    assert_eq!(entries[0].attempts, 2, "one failed send, one good one");
    Ok(())
}

#[tokio::test]
async fn a_different_hash_logged_by_the_records_own_signer_is_an_integrity_error() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    chain.state().sender = agent.address();
    let log = log_id(7);
    let ours = outbox.append(&log, draft(0), &agent).await?;
    // The agent's own key logged something else at seq 1 meanwhile (a second runtime on the
    // same key, or this database restored from an old backup).
    chain.append_as(&log, agent.address(), &[B256::repeat_byte(0xde)]);
    let err = outbox.flush(&log).await.unwrap_err();
    match err {
        OutboxError::Integrity { seq, chain: c, .. } => {
            assert_eq!(seq, 1);
            assert_eq!(c, B256::repeat_byte(0xde));
        }
        other => panic!("expected an integrity error, got {other}"),
    }
    assert!(
        !OutboxError::Gap {
            chain_next: 1,
            local_first: 2
        }
        .is_retryable()
    );
    let e = outbox.db().outbox_entry(&log, 1).await?.expect("entry");
    assert_eq!(e.state, OutboxState::Pending, "never marked confirmed");
    assert!(
        e.last_error
            .as_deref()
            .is_some_and(|m| m.contains("integrity"))
    );
    // Holding the key changes nothing: this runtime's own history forked, and that is never
    // rebased silently.
    let err = outbox.flush_rebasing(&log, &agent).await.unwrap_err();
    assert!(
        matches!(err, OutboxError::Integrity { seq: 1, .. }),
        "{err}"
    );
    let err = outbox.rebase(&log, &agent).await.unwrap_err();
    assert!(
        matches!(err, OutboxError::Integrity { seq: 1, .. }),
        "{err}"
    );
    assert_eq!(local_hashes(&outbox, &log).await?, vec![ours.record_hash()]);
    assert_eq!(chain.state().sends.len(), 0);
    Ok(())
}

/// A trading step's draft: a trade already made on chain (its transaction hash and fill).
fn trade_draft(i: usize) -> ActionDraft {
    ActionDraft {
        kind: ActionKind::Trade,
        tx_hash: Some(keccak256(format!("trade {i}"))),
        details: json!({"fill": {"amount_in": "1000", "amount_out": "990"}, "timestamp": 1_700_000_000u64}),
        ..draft(i)
    }
}

/// Security L9: a LOG grantee logs one hash at the agent's next sequence number while the
/// agent's records wait in the outbox. The plain logger stops with a clear, distinct error;
/// whoever holds the agent key re-signs the displaced records further on, and everything lands
/// once, in order, with the trade recorded and not made again and a private prompt still
/// private.
#[tokio::test]
async fn a_log_grantee_taking_the_next_seq_does_not_halt_the_outbox() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    chain.state().sender = agent.address();
    let grantee = Address::repeat_byte(0x6e);
    let log = log_id(13);
    let first = outbox.append(&log, draft(0), &agent).await?;
    outbox.flush(&log).await?;

    // Three actions recorded, not logged yet: a private prompt, a trade, a plain one.
    let private = ActionDraft {
        keep_prompt: false,
        ..draft(1)
    };
    let mut old = Vec::new();
    for d in [private, trade_draft(2), draft(3)] {
        old.push(outbox.append(&log, d, &agent).await?);
    }
    assert_eq!(
        old.iter().map(|r| r.record().seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    // A trade sent for the next position, not recorded yet (a crash in between): its key.
    let in_flight = agent_runtime::db::NewSignedTx {
        chain_id: log.chain_id,
        tx_hash: keccak256("unrecorded trade"),
        sender: agent.address(),
        nonce: 7,
        raw_tx: alloy::primitives::Bytes::from_static(b"raw"),
        purpose: "trade".into(),
        reference: Some(log.position_reference(5)),
        max_fee_per_gas: None,
        max_priority_fee_per_gas: None,
        replacement: false,
    };
    outbox.db().record_signed_tx(&in_flight).await?;

    // The grantee takes seq 2.
    let taken = B256::repeat_byte(0x99);
    chain.append_as(&log, grantee, &[taken]);

    // The logger cannot fix it: a distinct error naming the seq, who took it and what to run.
    let err = outbox.flush(&log).await.unwrap_err();
    match &err {
        OutboxError::Foreign {
            seq,
            taken_by,
            signer,
            chain: c,
            local,
            ..
        } => {
            assert_eq!(
                (*seq, *taken_by, *signer, *c, *local),
                (2, grantee, agent.address(), taken, old[0].record_hash())
            );
        }
        other => panic!("expected a foreign-entry error, got {other}"),
    }
    assert!(!err.is_retryable());
    let message = err.to_string();
    assert!(
        message.contains(&grantee.to_string()) && message.contains("inft run 13 --steps 0"),
        "{message}"
    );
    assert!(matches!(
        outbox.flush(&log).await,
        Err(OutboxError::Foreign { seq: 2, .. })
    ));
    // Rebasing needs the records' own key.
    let stranger = PrivateKeySigner::random();
    assert!(matches!(
        outbox.rebase(&log, &stranger).await,
        Err(OutboxError::RebaseSigner { seq: 2, .. })
    ));
    assert_eq!(local_hashes(&outbox, &log).await?.len(), 4);

    // The agent's key is at hand: rebase and log.
    let report = outbox.flush_rebasing(&log, &agent).await?;
    assert_eq!(report.rebases.len(), 1);
    let rebase = &report.rebases[0];
    assert_eq!((rebase.seq, rebase.taken_by), (2, grantee));
    assert_eq!(
        rebase
            .moved
            .iter()
            .map(|m| (m.old_seq, m.new_seq))
            .collect::<Vec<_>>(),
        [(2, 3), (3, 4), (4, 5)]
    );
    assert_eq!(report.logged, 3);

    // The chain holds ours, the grantee's, then ours again, each once; the chain links hold.
    let on_chain = chain.logged(&log);
    let local = outbox.db().records(&log, 0, 100).await?;
    assert_eq!(
        local
            .iter()
            .map(|r| r.record.record().seq)
            .collect::<Vec<_>>(),
        [1, 3, 4, 5],
        "no local record where the grantee logged"
    );
    assert_eq!(on_chain.len(), 5);
    assert_eq!(on_chain[0], first.record_hash());
    assert_eq!(on_chain[1], taken);
    let mut prev = taken;
    for (stored, was) in local[1..].iter().zip(&old) {
        let (r, w) = (stored.record.record(), was.record());
        assert_eq!(on_chain[(r.seq - 1) as usize], stored.record.record_hash());
        assert_eq!(r.prev_record_hash, prev);
        prev = stored.record.record_hash();
        stored.record.verify(agent.address())?;
        // Same action, same time: only its place changed.
        assert_eq!(
            (&r.kind, &r.prompt, r.prompt_hash, &r.output, r.seed),
            (&w.kind, &w.prompt, w.prompt_hash, &w.output, w.seed)
        );
        assert_eq!(
            (r.tx_hash, &r.details, r.timestamp_ms),
            (w.tx_hash, &w.details, w.timestamp_ms)
        );
        assert_eq!(report.position_of(w.seq, was.record_hash()), (r.seq, prev));
    }
    // The private prompt is still only a hash in the record, and still here for replay.
    let moved_private = local[1].record.record();
    assert_eq!(moved_private.prompt, None);
    assert_eq!(
        outbox
            .db()
            .private_prompt(moved_private.prompt_hash)
            .await?
            .as_deref(),
        Some("prompt 1")
    );
    // The trade was recorded once and is not made again: the unrecorded one's key moved with
    // the log's next position.
    let trades: Vec<_> = local
        .iter()
        .filter(|r| r.record.record().kind == ActionKind::Trade)
        .collect();
    assert_eq!(trades.len(), 1);
    let db = outbox.db();
    assert!(
        db.txs_by_reference(log.chain_id, "trade", &log.position_reference(5))
            .await?
            .is_empty()
    );
    let moved_tx = db
        .txs_by_reference(log.chain_id, "trade", &log.position_reference(6))
        .await?;
    assert_eq!(moved_tx.len(), 1);
    assert_eq!(moved_tx[0].tx_hash, in_flight.tx_hash);
    assert!(db.logs_with_unconfirmed().await?.is_empty());

    // The log goes on after the rebased records.
    let next = outbox.append(&log, draft(4), &agent).await?;
    assert_eq!(next.record().seq, 6);
    assert_eq!(next.record().prev_record_hash, prev);
    outbox.flush(&log).await?;
    assert_eq!(chain.logged(&log).len(), 6);
    Ok(())
}

/// L9 with a batch in flight: the agent's `logActions` is broadcast, a grantee's lands first.
/// The in-flight transaction can no longer succeed; after the rebase its late receipt changes
/// nothing.
#[tokio::test]
async fn a_batch_in_flight_when_a_grantee_takes_its_seq_is_rebased_and_its_receipt_ignored()
-> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    chain.state().sender = agent.address();
    let log = log_id(14);
    for i in 0..3 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    chain.state().hold_sends = 1;
    assert!(outbox.step(&log).await.is_err(), "not mined yet");
    let entries = outbox.db().outbox_entries(&log).await?;
    let stale = entries[0].tx_hash.expect("sent");
    assert!(
        entries
            .iter()
            .all(|e| e.state == OutboxState::Sent && e.tx_hash == Some(stale))
    );

    // The grantee's transaction is mined first.
    chain.append_foreign(&log, &[B256::repeat_byte(0x42)]);
    let report = outbox.flush_rebasing(&log, &agent).await?;
    assert_eq!(report.rebases.len(), 1);
    assert_eq!(report.logged, 3);
    assert_eq!(chain.logged(&log).len(), 4);

    // Now the stale transaction is mined: it reverts (seq 1 is long gone) and confirms nothing.
    chain.mine();
    assert!(!chain.confirm(stale).await?.success);
    assert_eq!(
        outbox
            .db()
            .mark_confirmed(&log, 1, 10, Some(stale), Some(99))
            .await?,
        0
    );
    let entries = outbox.db().outbox_entries(&log).await?;
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3, 4]);
    assert!(entries.iter().all(|e| e.state == OutboxState::Confirmed
        && e.tx_hash.is_some()
        && e.tx_hash != Some(stale)));
    assert_eq!(
        chain.logged(&log)[1..],
        local_hashes(&outbox, &log).await?[..]
    );
    assert_eq!(outbox.step(&log).await?, agent_runtime::outbox::Step::Idle);
    Ok(())
}

/// A rebase replaces the displaced rows in one database transaction: a failure half-way (a
/// crash, a full disk) leaves the old rows, all of them, and a later rebase finishes the job.
#[tokio::test]
async fn a_rebase_that_fails_half_way_leaves_the_old_records_intact() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    chain.state().sender = agent.address();
    let log = log_id(15);
    for i in 0..3 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    let before = local_hashes(&outbox, &log).await?;
    chain.append_foreign(&log, &[B256::repeat_byte(0x42)]);
    // The second re-signed record cannot be written.
    let db = outbox.db();
    let (create, drop) = match db.backend() {
        Backend::Postgres => (
            "CREATE FUNCTION fail_second() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.seq = 3 THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$;
             CREATE TRIGGER fail_second BEFORE INSERT ON action_records
             FOR EACH ROW EXECUTE FUNCTION fail_second();",
            "DROP TRIGGER fail_second ON action_records; DROP FUNCTION fail_second();",
        ),
        _ => (
            "CREATE TRIGGER fail_second BEFORE INSERT ON action_records WHEN NEW.seq = 3
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
            "DROP TRIGGER fail_second",
        ),
    };
    testing::execute(db, create).await?;
    let err = outbox.rebase(&log, &agent).await.unwrap_err();
    assert!(matches!(err, OutboxError::Db(_)), "{err}");
    assert_eq!(local_hashes(&outbox, &log).await?, before);
    let entries = outbox.db().outbox_entries(&log).await?;
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(entries.iter().all(|e| e.state == OutboxState::Pending));

    testing::execute(outbox.db(), drop).await?;
    outbox.flush_rebasing(&log, &agent).await?;
    assert_eq!(
        chain.logged(&log)[1..],
        local_hashes(&outbox, &log).await?[..]
    );
    Ok(())
}

#[tokio::test]
async fn a_fresh_runtime_continues_the_tokens_log_from_the_chain() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let log = log_id(8);
    // A previous owner's runtime logged three actions.
    let earlier = [
        B256::repeat_byte(1),
        B256::repeat_byte(2),
        B256::repeat_byte(3),
    ];
    chain.append_foreign(&log, &earlier);

    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    let signed = outbox.append(&log, draft(0), &agent).await?;
    assert_eq!(signed.record().seq, 4);
    assert_eq!(signed.record().prev_record_hash, earlier[2]);
    outbox.flush(&log).await?;
    assert_eq!(chain.logged(&log).len(), 4);
    assert_eq!(chain.logged(&log)[3], signed.record_hash());
    Ok(())
}

#[tokio::test]
async fn append_needs_the_chain_only_when_there_is_no_local_record() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let agent = PrivateKeySigner::random();
    let log = log_id(9);
    chain.state().fail_heads = 1;
    let outbox = open(&test_db, &chain).await?;
    let err = outbox.append(&log, draft(0), &agent).await.unwrap_err();
    assert!(matches!(err, OutboxError::Unsynced(_)), "{err}");
    assert!(outbox.db().records(&log, 0, 10).await?.is_empty());

    outbox.append(&log, draft(0), &agent).await?;
    outbox.db().close().await;
    // After a restart with the RPC down, the agent can still record actions (logged later).
    chain.state().fail_heads = 1;
    let outbox = open(&test_db, &chain).await?;
    let second = outbox.append(&log, draft(1), &agent).await?;
    assert_eq!(second.record().seq, 2);
    outbox.flush(&log).await?;
    assert_eq!(chain.logged(&log), local_hashes(&outbox, &log).await?);
    Ok(())
}

#[tokio::test]
async fn records_that_do_not_continue_the_log_are_refused_atomically() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    let log = log_id(10);
    let first = outbox.append(&log, draft(0), &agent).await?;

    // The same position again, and a record that skips a position.
    let dup =
        agent_runtime::record::ActionRecord::new(&log, 1, B256::ZERO, draft(1), 0).sign(&agent)?;
    assert!(matches!(
        outbox.append_signed(&dup).await,
        Err(OutboxError::NotNext {
            seq: 1,
            next_seq: 2,
            ..
        })
    ));
    let skip = agent_runtime::record::ActionRecord::new(&log, 3, first.record_hash(), draft(1), 0)
        .sign(&agent)?;
    assert!(matches!(
        outbox.append_signed(&skip).await,
        Err(OutboxError::NotNext { .. })
    ));
    let wrong_prev =
        agent_runtime::record::ActionRecord::new(&log, 2, B256::repeat_byte(9), draft(1), 0)
            .sign(&agent)?;
    assert!(matches!(
        outbox.append_signed(&wrong_prev).await,
        Err(OutboxError::NotNext { .. })
    ));
    assert_eq!(outbox.db().records(&log, 0, 10).await?.len(), 1);
    assert_eq!(outbox.db().outbox_entries(&log).await?.len(), 1);

    // The right one is accepted, record and outbox entry together.
    let next = agent_runtime::record::ActionRecord::new(&log, 2, first.record_hash(), draft(1), 0)
        .sign(&agent)?;
    outbox.append_signed(&next).await?;
    assert_eq!(outbox.db().records(&log, 0, 10).await?.len(), 2);
    assert_eq!(outbox.db().outbox_entries(&log).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn concurrent_appends_get_distinct_consecutive_positions() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = Arc::new(PrivateKeySigner::random());
    let log = log_id(11);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (outbox, agent) = (outbox.clone(), agent.clone());
        tasks.push(tokio::spawn(async move {
            outbox.append(&log, draft(i), &agent).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let records = outbox.db().records(&log, 0, 100).await?;
    let seqs: Vec<u64> = records.iter().map(|r| r.record.record().seq).collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>());
    for pair in records.windows(2) {
        assert_eq!(
            pair[1].record.record().prev_record_hash,
            pair[0].record.record_hash()
        );
    }
    outbox.flush(&log).await?;
    assert_eq!(chain.logged(&log), local_hashes(&outbox, &log).await?);
    Ok(())
}

#[tokio::test]
async fn background_logger_logs_what_is_appended() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    let log = log_id(12);
    chain.state().fail_sends = 2; // it retries by itself
    let logger = outbox.spawn();
    for i in 0..5 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    // Wait (bounded) for the logger to drain the outbox.
    let mut drained = false;
    for _ in 0..500 {
        if outbox.db().logs_with_unconfirmed().await?.is_empty() {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    logger.shutdown().await;
    assert!(drained, "the background logger confirmed every entry");
    assert_eq!(chain.logged(&log), local_hashes(&outbox, &log).await?);
    Ok(())
}

#[tokio::test]
async fn a_logger_for_one_log_leaves_the_other_logs_alone() -> Result<()> {
    // Two agents share one database (a service): each agent's logger sends with that agent's
    // key, so it must log its own token only, however many others have records pending.
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let (mine, theirs) = (log_id(21), log_id(22));
    let (me, them) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    for i in 0..3 {
        outbox.append(&theirs, draft(i), &them).await?;
    }
    let logger = outbox.spawn_for(mine);
    for i in 0..3 {
        outbox.append(&mine, draft(i), &me).await?;
    }
    let mut drained = false;
    for _ in 0..500 {
        if outbox.db().unconfirmed(&mine, 100).await?.is_empty() {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few more polls: a logger of every log would have sent `theirs` by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    logger.shutdown().await;
    assert!(drained, "the logger confirmed its own log");
    assert_eq!(chain.logged(&mine), local_hashes(&outbox, &mine).await?);
    assert!(
        chain.logged(&theirs).is_empty(),
        "another token's records were sent"
    );
    assert_eq!(outbox.db().unconfirmed(&theirs, 100).await?.len(), 3);
    Ok(())
}

/// A record store that refuses uploads while `down` is set (a gateway outage).
struct FlakyRecords {
    inner: agent_runtime::blobstore::LocalDirStore,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl agent_runtime::blobstore::BlobStore for FlakyRecords {
    async fn put_reader(
        &self,
        reader: Box<dyn std::io::Read + Send>,
    ) -> Result<agent_runtime::blobstore::BlobRef, agent_runtime::blobstore::BlobError> {
        self.inner.put_reader(reader).await
    }
    async fn fetch(
        &self,
        uri: &str,
        expected: &sealing::Commitment,
    ) -> Result<agent_runtime::blobstore::VerifiedBlob, agent_runtime::blobstore::BlobError> {
        self.inner.fetch(uri, expected).await
    }
    fn uri_for(&self, commitment: &sealing::Commitment) -> String {
        self.inner.uri_for(commitment)
    }
    async fn put_record(
        &self,
        record: &agent_runtime::record::SignedRecord,
    ) -> Result<String, agent_runtime::blobstore::BlobError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(agent_runtime::blobstore::BlobError::Io(
                std::io::Error::other("gateway down"),
            ));
        }
        self.inner.put_record(record).await
    }
    async fn fetch_record(
        &self,
        record_hash: B256,
    ) -> Result<agent_runtime::record::SignedRecord, agent_runtime::blobstore::BlobError> {
        self.inner.fetch_record(record_hash).await
    }
}

#[tokio::test]
async fn records_are_published_before_their_hashes_reach_the_chain() -> Result<()> {
    use agent_runtime::blobstore::BlobStore;
    let dir = tempfile::tempdir()?;
    let chain = FakeChain::default();
    let store = Arc::new(FlakyRecords {
        inner: agent_runtime::blobstore::LocalDirStore::open(dir.path().join("public"))?,
        down: std::sync::atomic::AtomicBool::new(true),
    });
    let test_db = TestDb::new().await?;
    let outbox = Outbox::publishing(
        test_db.open().await?,
        Arc::new(chain.clone()),
        store.clone(),
        config(),
    );
    let log = log_id(1);
    let agent = PrivateKeySigner::random();
    // The store is down: appending still commits the record (nothing is lost)...
    let first = outbox.append(&log, draft(0), &agent).await?;
    assert!(
        outbox
            .db()
            .record(&log, 1)
            .await?
            .and_then(|r| r.blob_uri)
            .is_none()
    );
    // ...but its hash is not logged while the record cannot be fetched by auditors.
    let err = outbox
        .step(&log)
        .await
        .expect_err("publishing must come first");
    assert!(matches!(err, OutboxError::Publish { seq: 1, .. }), "{err}");
    assert!(err.is_retryable());
    assert!(chain.logged(&log).is_empty());
    assert!(chain.state().sends.is_empty());

    // The store is back: the logger publishes, then logs; later appends publish at once.
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let second = outbox.append(&log, draft(1), &agent).await?;
    assert!(
        outbox
            .db()
            .record(&log, 2)
            .await?
            .and_then(|r| r.blob_uri)
            .is_some()
    );
    outbox.flush(&log).await?;
    assert_eq!(
        chain.logged(&log),
        vec![first.record_hash(), second.record_hash()]
    );
    for signed in [&first, &second] {
        assert_eq!(&store.fetch_record(signed.record_hash()).await?, signed);
        let stored = outbox.db().record(&log, signed.record().seq).await?;
        assert!(stored.and_then(|r| r.blob_uri).is_some());
    }
    Ok(())
}

/// A node whose lease on the agent was taken over can no longer write the agent's records: the
/// append, the append of a signed record and the rebase all fail with `LeaseLost` inside their
/// transaction and write nothing, while the new holder's handle writes on.
#[tokio::test]
async fn a_fenced_outbox_writes_nothing_once_its_lease_is_taken_over() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    let chain = FakeChain::default();
    let agent = PrivateKeySigner::random();
    chain.state().sender = agent.address();
    let log = log_id(20);
    let ttl = Duration::from_secs(60);
    let old = db
        .try_acquire_lease("agent:20", "node-a", ttl)
        .await?
        .expect("free");
    let outbox = Outbox::new(db.fenced(&old), Arc::new(chain.clone()), config());
    assert_eq!(outbox.db().fence(), Some(&old));
    for i in 0..3 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    // Another account takes seq 1 on chain (so a rebase has work), then node-a stalls past its
    // lease: it is released here (a takeover after expiry is tested in tests/db.rs).
    chain.append_foreign(&log, &[B256::repeat_byte(0x42)]);
    db.release_lease(&old).await?;
    let new = db
        .try_acquire_lease("agent:20", "node-b", ttl)
        .await?
        .expect("released");
    assert_eq!(new.fence, old.fence + 1);
    let before = local_hashes(&outbox, &log).await?;

    let err = outbox.append(&log, draft(3), &agent).await.unwrap_err();
    assert!(err.is_lease_lost(), "{err}");
    assert!(
        matches!(&err, OutboxError::Db(DbError::LeaseLost { key }) if key == "agent:20"),
        "{err}"
    );
    assert!(!err.is_retryable());
    let next = agent_runtime::record::ActionRecord::new(
        &log,
        4,
        *before.last().expect("records"),
        draft(3),
        0,
    )
    .sign(&agent)?;
    let err = outbox.append_signed(&next).await.unwrap_err();
    assert!(err.is_lease_lost(), "{err}");
    let err = outbox.rebase(&log, &agent).await.unwrap_err();
    assert!(err.is_lease_lost(), "{err}");
    assert_eq!(
        local_hashes(&outbox, &log).await?,
        before,
        "nothing written"
    );
    assert_eq!(outbox.db().outbox_entries(&log).await?.len(), 3);

    // The new holder goes on where the old one stopped.
    let outbox_b = Outbox::new(db.fenced(&new), Arc::new(chain.clone()), config());
    let report = outbox_b.flush_rebasing(&log, &agent).await?;
    assert_eq!(report.rebases.len(), 1);
    outbox_b.append(&log, draft(3), &agent).await?;
    outbox_b.flush(&log).await?;
    assert_eq!(chain.logged(&log).len(), 5);
    assert_eq!(
        chain.logged(&log)[1..],
        local_hashes(&outbox_b, &log).await?[..]
    );
    Ok(())
}

#[tokio::test]
async fn records_are_counted_since_a_time_for_daily_budgets() -> Result<()> {
    let test_db = TestDb::new().await?;
    let chain = FakeChain::default();
    let outbox = open(&test_db, &chain).await?;
    let agent = PrivateKeySigner::random();
    let (log, other) = (log_id(21), log_id(22));
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    for i in 0..3 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    outbox.append(&other, draft(0), &agent).await?;
    let db = outbox.db();
    assert_eq!(db.count_records_since(&log, 0).await?, 3);
    assert_eq!(db.count_records_since(&log, start).await?, 3);
    assert_eq!(db.count_records_since(&other, start).await?, 1);
    assert_eq!(db.count_records_since(&log, start + 3_600_000).await?, 0);
    assert_eq!(db.count_records_since(&log_id(23), 0).await?, 0);
    Ok(())
}

/// The fence check serializes with a change of hands: once `release_lease` (or a takeover)
/// returns, no append of the old holder lands, even one that was in flight meanwhile.
#[tokio::test]
async fn no_fenced_append_lands_after_the_lease_changed_hands() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    let chain = FakeChain::default();
    let agent = Arc::new(PrivateKeySigner::random());
    let log = log_id(24);
    let lease = db
        .try_acquire_lease("agent:24", "node-a", Duration::from_secs(60))
        .await?
        .expect("free");
    let outbox = Outbox::new(db.fenced(&lease), Arc::new(chain.clone()), config());
    let writer = {
        let (outbox, agent) = (outbox.clone(), agent.clone());
        tokio::spawn(async move {
            let mut written = 0usize;
            loop {
                match outbox.append(&log, draft(written), &agent).await {
                    Ok(_) => written += 1,
                    Err(e) if e.is_lease_lost() => return Ok(written),
                    Err(e) => return Err(e),
                }
            }
        })
    };
    while db.records(&log, 0, 1000).await?.len() < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    db.release_lease(&lease).await?;
    let at_release = db.records(&log, 0, 10_000).await?.len();
    let taken = db
        .try_acquire_lease("agent:24", "node-b", Duration::from_secs(60))
        .await?
        .expect("released");
    assert_eq!(taken.fence, 2);
    let written = writer.await??;
    assert_eq!(
        written, at_release,
        "every append that succeeded landed before the release"
    );
    assert_eq!(db.records(&log, 0, 10_000).await?.len(), at_release);
    Ok(())
}
