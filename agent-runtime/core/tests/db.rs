//! The database on a real SQLite file, or on PostgreSQL with `INFT_TEST_DATABASE_URL` set (see
//! `agent_runtime::db::testing`): migrations, persistence across reopen, event index, nonce
//! manager storage, corruption detection, leases and fenced writes.

use std::time::Duration;

use agent_runtime::db::testing::{self, TestDb};
use agent_runtime::db::{
    Agent, AgentStatus, Backend, ChainCursor, ChainEvent, Db, DbError, Lease, NewSignedTx, TxState,
};
use alloy::primitives::{Address, B256, U256};
use anyhow::Result;
use serde_json::json;

fn agent(token: u64) -> Agent {
    Agent {
        chain_id: 31337,
        inft_contract: Address::repeat_byte(0x11),
        token_id: U256::from(token),
        action_log: Address::repeat_byte(0x22),
        agent_address: Address::repeat_byte(0x33),
        model_hash: B256::repeat_byte(0x44),
        config: json!({"kind": "creative", "max_tokens": 64}),
        status: AgentStatus::Active,
    }
}

#[tokio::test]
async fn agents_persist_across_reopen_and_upsert_updates() -> Result<()> {
    let test_db = TestDb::new().await?;
    {
        let db = test_db.open().await?;
        db.upsert_agent(&agent(2)).await?;
        db.upsert_agent(&agent(1)).await?;
        // Token ids sort numerically, not as decimal text.
        db.upsert_agent(&agent(10)).await?;
        db.close().await;
    }
    let db = test_db.open().await?; // migrations already applied: a no-op
    let all = db.agents().await?;
    let ids: Vec<U256> = all.iter().map(|a| a.agent.token_id).collect();
    assert_eq!(ids, vec![U256::from(1), U256::from(2), U256::from(10)]);
    assert_eq!(all[0].agent, agent(1));

    // After a transfer the agent key rotates: the same token's row is updated, not duplicated.
    let mut rotated = agent(1);
    rotated.agent_address = Address::repeat_byte(0x55);
    db.upsert_agent(&rotated).await?;
    let row = db
        .agent(31337, rotated.inft_contract, rotated.token_id)
        .await?
        .expect("row");
    assert_eq!(row.agent.agent_address, Address::repeat_byte(0x55));
    assert!(row.updated_at_ms >= row.created_at_ms);
    assert_eq!(db.agents().await?.len(), 3);

    assert!(
        db.set_agent_status(
            31337,
            rotated.inft_contract,
            rotated.token_id,
            AgentStatus::Transferred
        )
        .await?
    );
    assert!(
        !db.set_agent_status(
            31337,
            rotated.inft_contract,
            U256::from(99),
            AgentStatus::Paused
        )
        .await?
    );
    let row = db
        .agent(31337, rotated.inft_contract, rotated.token_id)
        .await?
        .expect("row");
    assert_eq!(row.agent.status, AgentStatus::Transferred);
    assert!(
        db.agent(1, rotated.inft_contract, rotated.token_id)
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn hand_edited_rows_are_reported_as_corrupt() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    db.upsert_agent(&agent(1)).await?;
    testing::execute(&db, "UPDATE agents SET agent_address = 'not an address'").await?;
    let err = db.agents().await.unwrap_err();
    assert!(
        matches!(
            err,
            DbError::Corrupt {
                table: "agents",
                column: "agent_address",
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn schema_constraints_hold() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    // An outbox row without its action record violates the foreign key.
    let orphan = testing::execute(
        &db,
        "INSERT INTO outbox (chain_id, action_log, token_id, seq, record_hash, created_at, updated_at)
         VALUES (1, '0x00', '0x00', 1, '0x00', 0, 0)",
    )
    .await;
    assert!(orphan.is_err());
    // Unknown states are refused by CHECK constraints.
    db.upsert_agent(&agent(1)).await?;
    let status = testing::execute(&db, "UPDATE agents SET status = 'flying'").await;
    assert!(status.is_err());
    Ok(())
}

fn event(block: u64, index: u64, block_hash: u8, token: Option<u64>) -> ChainEvent {
    ChainEvent {
        chain_id: 31337,
        block_number: block,
        log_index: index,
        block_hash: B256::repeat_byte(block_hash),
        tx_hash: B256::repeat_byte(0xee),
        contract: Address::repeat_byte(0x22),
        token_id: token.map(U256::from),
        kind: "ActionsLogged".into(),
        payload: json!({"firstSeq": block, "hashes": []}),
    }
}

#[tokio::test]
async fn chain_events_index_is_idempotent_and_handles_reorgs() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    let contract = Address::repeat_byte(0x22);
    let evs = vec![
        event(5, 0, 1, Some(7)),
        event(5, 1, 1, Some(8)),
        event(6, 0, 2, Some(7)),
        event(7, 3, 3, None),
    ];
    db.insert_chain_events(&evs).await?;
    db.insert_chain_events(&evs).await?; // re-indexing the same range changes nothing
    let t7 = db
        .chain_events_for_token(31337, contract, U256::from(7))
        .await?;
    assert_eq!(t7, vec![evs[0].clone(), evs[2].clone()]);
    assert_eq!(db.chain_events_in_blocks(31337, 5, 7).await?.len(), 4);

    // Block 6 was reorganised: its event is replaced in place.
    let replaced = event(6, 0, 9, Some(8));
    db.insert_chain_events(std::slice::from_ref(&replaced))
        .await?;
    assert_eq!(
        db.chain_events_for_token(31337, contract, U256::from(7))
            .await?,
        vec![evs[0].clone()]
    );
    // Deeper reorg: drop everything from block 6 on.
    assert_eq!(db.delete_chain_events_from(31337, 6).await?, 2);
    assert_eq!(db.chain_events_in_blocks(31337, 0, 100).await?.len(), 2);

    assert!(db.chain_cursor(31337, contract).await?.is_none());
    let cursor = ChainCursor {
        next_block: 6,
        last_block_hash: Some(B256::repeat_byte(1)),
    };
    db.set_chain_cursor(31337, contract, &cursor).await?;
    assert_eq!(db.chain_cursor(31337, contract).await?, Some(cursor));
    Ok(())
}

fn signed_tx(nonce: u64, hash: u8, replacement: bool) -> NewSignedTx {
    NewSignedTx {
        chain_id: 31337,
        tx_hash: B256::repeat_byte(hash),
        sender: Address::repeat_byte(0x33),
        nonce,
        raw_tx: vec![0x02, hash, 0xc0].into(),
        purpose: "trade".into(),
        reference: Some(format!("trade-{nonce}")),
        max_fee_per_gas: Some(u128::MAX),
        max_priority_fee_per_gas: Some(1_000_000_000),
        replacement,
    }
}

#[tokio::test]
async fn nonce_manager_storage_survives_restart_and_never_reuses_a_nonce() -> Result<()> {
    let test_db = TestDb::new().await?;
    let sender = Address::repeat_byte(0x33);
    {
        let db = test_db.open().await?;
        assert_eq!(db.next_nonce(31337, sender, 4).await?, 4);
        db.record_signed_tx(&signed_tx(4, 0xa4, false)).await?;
        db.record_signed_tx(&signed_tx(4, 0xa4, false)).await?; // same tx again: no-op
        // A different tx at a nonce held by an unfinished one is refused...
        let err = db
            .record_signed_tx(&signed_tx(4, 0xb4, false))
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::NonceInUse { nonce: 4, .. }), "{err}");
        // ...unless it is a deliberate replacement (repricing).
        db.record_signed_tx(&signed_tx(4, 0xb4, true)).await?;
        // The node still reports 4 pending (nothing mined yet): the DB knows better.
        assert_eq!(db.next_nonce(31337, sender, 4).await?, 5);
        db.record_signed_tx(&signed_tx(5, 0xa5, false)).await?;
        db.close().await; // "crash" before anything was broadcast
    }
    let db = test_db.open().await?;
    assert_eq!(
        db.next_nonce(31337, sender, 0).await?,
        6,
        "a restart never hands out a used nonce"
    );
    let unfinished = db.unfinished_txs(31337, sender).await?;
    let hashes: Vec<(u64, B256)> = unfinished.iter().map(|t| (t.nonce, t.tx_hash)).collect();
    assert_eq!(
        hashes,
        vec![
            (4, B256::repeat_byte(0xa4)),
            (4, B256::repeat_byte(0xb4)),
            (5, B256::repeat_byte(0xa5))
        ]
    );
    // The raw bytes come back exactly, to be rebroadcast as they are.
    assert_eq!(unfinished[0].raw_tx.as_ref(), &[0x02, 0xa4, 0xc0]);
    assert_eq!(unfinished[0].max_fee_per_gas, Some(u128::MAX));
    assert_eq!(unfinished[0].state, TxState::Signed);

    // The replacement is mined: the original at the same nonce becomes 'replaced'.
    assert!(
        db.set_tx_state(31337, B256::repeat_byte(0xb4), TxState::Mined, Some(100))
            .await?
    );
    let a4 = db
        .signed_tx(31337, B256::repeat_byte(0xa4))
        .await?
        .expect("row");
    assert_eq!(a4.state, TxState::Replaced);
    let b4 = db
        .signed_tx(31337, B256::repeat_byte(0xb4))
        .await?
        .expect("row");
    assert_eq!((b4.state, b4.block_number), (TxState::Mined, Some(100)));
    assert_eq!(db.unfinished_txs(31337, sender).await?.len(), 1);
    // Idempotence lookups: was this trade already sent?
    let sent = db.txs_by_reference(31337, "trade", "trade-4").await?;
    assert_eq!(sent.len(), 2);
    // The chain moved past the DB (another tool used the key): its nonce wins.
    assert_eq!(db.next_nonce(31337, sender, 9).await?, 9);
    Ok(())
}

#[tokio::test]
async fn in_memory_database_works_for_tools() -> Result<()> {
    let db = Db::open_in_memory().await?;
    db.upsert_agent(&agent(1)).await?;
    assert_eq!(db.agents().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn connect_takes_sqlite_urls_and_refuses_unknown_schemes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("by-url.db").display());
    {
        let db = Db::connect(&url).await?;
        assert_eq!(db.backend(), Backend::Sqlite);
        db.upsert_agent(&agent(1)).await?;
        db.close().await;
    }
    // The same file as Db::open sees it.
    let db = Db::open(dir.path().join("by-url.db")).await?;
    assert_eq!(db.agents().await?.len(), 1);
    let memory = Db::connect("sqlite::memory:").await?;
    assert!(memory.agents().await?.is_empty());
    let err = Db::connect("mysql://u:secret@h/db").await.unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
    Ok(())
}

const LONG: Duration = Duration::from_secs(60);

async fn acquire(db: &Db, key: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
    Ok(db.try_acquire_lease(key, holder, ttl).await?)
}

#[tokio::test]
async fn leases_renew_expire_and_change_hands_with_a_growing_fence() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    let a = acquire(&db, "agent:1", "node-a", LONG)
        .await?
        .expect("free");
    assert_eq!(
        (a.key.as_str(), a.holder.as_str(), a.fence),
        ("agent:1", "node-a", 1)
    );
    // Held: another node cannot take it; its holder takes it again as a renewal, same fence.
    assert_eq!(acquire(&db, "agent:1", "node-b", LONG).await?, None);
    let again = acquire(&db, "agent:1", "node-a", LONG)
        .await?
        .expect("held by a");
    assert_eq!(again.fence, 1);
    assert!(again.expires_at_ms >= a.expires_at_ms);
    let renewed = db.renew_lease(&a, LONG).await?.expect("held");
    assert_eq!((renewed.fence, renewed.holder.as_str()), (1, "node-a"));
    // Keys are independent.
    let other = acquire(&db, "agent:2", "node-b", LONG)
        .await?
        .expect("free");
    assert_eq!(other.fence, 1);

    // node-a stops renewing: its lease expires, renewing fails, node-b takes it (fence 2).
    let short = db
        .renew_lease(&a, Duration::from_millis(100))
        .await?
        .expect("held");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(db.renew_lease(&short, LONG).await?, None, "expired");
    let b = acquire(&db, "agent:1", "node-b", LONG)
        .await?
        .expect("expired");
    assert_eq!((b.holder.as_str(), b.fence), ("node-b", 2));
    assert_eq!(acquire(&db, "agent:1", "node-a", LONG).await?, None);
    assert_eq!(db.renew_lease(&a, LONG).await?, None, "a's fence is gone");
    // Releasing a lost lease changes nothing.
    db.release_lease(&a).await?;
    assert!(db.renew_lease(&b, LONG).await?.is_some());

    // A release lets another holder take it at once.
    db.release_lease(&b).await?;
    assert_eq!(db.renew_lease(&b, LONG).await?, None, "released");
    let a3 = acquire(&db, "agent:1", "node-a", LONG)
        .await?
        .expect("released");
    assert_eq!(a3.fence, 3);
    // Even its own holder gets a new fence once a lease expired: the old tenure is over.
    let a3 = db
        .renew_lease(&a3, Duration::from_millis(100))
        .await?
        .expect("held");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let a4 = acquire(&db, "agent:1", "node-a", LONG)
        .await?
        .expect("expired");
    assert_eq!(a4.fence, 4);
    assert_eq!(db.renew_lease(&a3, LONG).await?, None);

    let all = db.leases().await?;
    assert_eq!(
        all.iter()
            .map(|l| (l.key.as_str(), l.holder.as_str(), l.fence))
            .collect::<Vec<_>>(),
        [("agent:1", "node-a", 4), ("agent:2", "node-b", 1)]
    );
    assert_eq!(all[0], a4);
    Ok(())
}

#[tokio::test]
async fn one_of_many_racing_nodes_gets_a_free_lease() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.try_acquire_lease("agent:race", &format!("node-{i}"), LONG)
                .await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await??);
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].fence, 1);
    assert_eq!(db.leases().await?, winners);
    Ok(())
}

#[tokio::test]
async fn a_fenced_handle_persists_no_signed_tx_once_its_lease_is_lost() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    let sender = Address::repeat_byte(0x33);
    let lease = acquire(&db, "agent:7", "node-a", Duration::from_millis(300))
        .await?
        .expect("free");
    let fenced = db.fenced(&lease);
    assert_eq!(fenced.fence(), Some(&lease));
    assert_eq!(db.fence(), None);
    fenced.record_signed_tx(&signed_tx(1, 0xa1, false)).await?;
    // A renewal keeps the same fence: the handle stays good.
    db.renew_lease(&lease, Duration::from_millis(300))
        .await?
        .expect("held");
    fenced.record_signed_tx(&signed_tx(2, 0xa2, false)).await?;

    // Expired (nobody took it yet): refused already.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = fenced
        .record_signed_tx(&signed_tx(3, 0xa3, false))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::LeaseLost { key } if key == "agent:7"),
        "{err}"
    );
    // Taken over: still refused, and nothing was written.
    let b = acquire(&db, "agent:7", "node-b", LONG)
        .await?
        .expect("expired");
    assert_eq!(b.fence, 2);
    let err = fenced
        .record_signed_tx(&signed_tx(3, 0xa3, false))
        .await
        .unwrap_err();
    assert!(err.is_lease_lost(), "{err}");
    assert!(
        db.signed_tx(31337, B256::repeat_byte(0xa3))
            .await?
            .is_none()
    );
    assert_eq!(db.next_nonce(31337, sender, 0).await?, 3);
    // The new holder's handle writes.
    db.fenced(&b)
        .record_signed_tx(&signed_tx(3, 0xb3, false))
        .await?;
    assert_eq!(db.next_nonce(31337, sender, 0).await?, 4);
    Ok(())
}

#[tokio::test]
async fn fleet_nodes_count_live_heartbeats() -> Result<()> {
    let test_db = TestDb::new().await?;
    let db = test_db.open().await?;
    assert_eq!(db.heartbeat_node("node-a", LONG).await?, 1);
    assert_eq!(db.heartbeat_node("node-b", LONG).await?, 2);
    assert_eq!(db.heartbeat_node("node-a", LONG).await?, 2, "a beat again");
    db.remove_node("node-b").await?;
    assert_eq!(db.heartbeat_node("node-a", LONG).await?, 1);
    // node-c beats once and dies: after the ttl it no longer counts.
    db.heartbeat_node("node-c", LONG).await?;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        db.heartbeat_node("node-a", Duration::from_millis(150))
            .await?,
        1
    );
    assert_eq!(db.heartbeat_node("node-a", LONG).await?, 2);
    Ok(())
}
