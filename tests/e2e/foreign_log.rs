//! Security L9, runtime side: the `ActionLog` takes appends from the agent and from every LOG
//! grantee on one per-token sequence, so a grantee can log at the sequence number the owner's
//! unlogged records were signed for. The owner's next run re-signs them further on and logs
//! them all, once, and the audit finds nothing wrong with them; a conflict logged with the
//! agent's own key stays an integrity error.

use std::sync::Arc;

use agent_runtime::audit::{AuditTarget, Finding, audit_token};
use agent_runtime::blobstore::{BlobStore, LocalDirStore};
use agent_runtime::db::{Db, OutboxState};
use agent_runtime::indexer::Indexer;
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig, OutboxError};
use agent_runtime::pipeline::open_keys;
use agent_runtime::record::{ActionDraft, ActionKind, ActionRecord, SignedRecord};
use agent_runtime::transfer::rekey::grant_keys;
use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::bindings::ActionLog;
use inft_contracts::scopes;
use inft_runtime::{RunError, Strategy as _, run_steps};
use strategies::creative::CreativeStrategy;

use crate::world::{Actor, World};

/// Logs `hashes` at `first_seq` straight through the contract, sent by `sender`.
async fn log_directly(
    world: &World,
    sender: &PrivateKeySigner,
    token: U256,
    first_seq: u64,
    hashes: Vec<B256>,
) -> anyhow::Result<()> {
    let receipt = ActionLog::new(world.deployment.action_log, world.provider(sender))
        .logActions(token, first_seq, hashes)
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(receipt.status(), "logActions reverted");
    Ok(())
}

/// `user` gets a LOG-only grant for a day (it carries no data keys).
async fn grant_log(world: &World, owner: &Actor, user: &Actor, token: U256) -> anyhow::Result<()> {
    let entries = owner.nft.entries_for(token, owner.address()).await?;
    let token_ref = owner.nft.token_ref(token);
    let keys = open_keys(&entries, &owner.secret, &token_ref)?;
    let sealed = grant_keys(
        &entries,
        &keys,
        &user.secret.public_key(),
        &token_ref,
        scopes::LOG,
    )?;
    let expiry = world.chain_time().await? + 86_400;
    owner
        .nft
        .authorize(token, user.address(), scopes::LOG, expiry, &sealed)
        .await?;
    Ok(())
}

/// The owner's runtime: a creative session as the agent and an outbox that publishes each
/// record to `records` before logging it.
async fn owner_runtime(
    world: &World,
    owner: &Actor,
    token: U256,
    records: Arc<LocalDirStore>,
    db_name: &str,
) -> anyhow::Result<(inft_runtime::AgentSession, Outbox, PrivateKeySigner)> {
    let opened = world.open(owner, token, scopes::RUN).await?;
    let key = opened
        .agent
        .agent_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner unseals the agent key"))?;
    let (session, _) = world
        .session(&opened, token, key.clone(), "unused.db")
        .await?;
    let chain = AlloyChainLog::new(world.provider(&key), world.deployment.start_block);
    let outbox = Outbox::publishing(
        Db::open(world.dir.path().join(db_name)).await?,
        Arc::new(chain),
        records,
        OutboxConfig::default(),
    );
    Ok((session, outbox, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_grantee_taking_the_next_seq_does_not_halt_the_owners_outbox() -> anyhow::Result<()> {
    let world = World::start().await?;
    let records = Arc::new(LocalDirStore::open(world.dir.path().join("public"))?);
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let minted = world.mint_creative(&alice, 91).await?;
    let token = minted.token_id;
    let log = world.log_id(token);
    grant_log(&world, &alice, &bob, token).await?;
    let (mut session, outbox, agent_key) =
        owner_runtime(&world, &alice, token, records.clone(), "owner.db").await?;

    // One action logged as usual (seq 1).
    let mut strategy = CreativeStrategy::new("Write a short poem about the sea.");
    let first = run_steps(&mut session, &mut strategy, &outbox, 1, |_| {}).await?;
    assert_eq!(first.steps[0].seq, 1);

    // Three more actions recorded but not logged yet (the runtime stopped before its logger
    // ran): seq 2, 3, 4. The second keeps its prompt private.
    let mut drafts: Vec<ActionDraft> = Vec::new();
    for step in 1..=3 {
        let mut draft = strategy.step(&mut session, step).await?;
        draft.keep_prompt = step != 2;
        drafts.push(draft);
    }
    let mut unlogged: Vec<SignedRecord> = Vec::new();
    for draft in drafts.clone() {
        unlogged.push(outbox.append(&log, draft, &agent_key).await?);
    }
    assert_eq!(
        unlogged.iter().map(|r| r.record().seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );

    // Bob, a LOG grantee, logs his own (published, signed) record at seq 2 first.
    let bobs = ActionRecord::new(
        &log,
        2,
        first.steps[0].record_hash,
        ActionDraft {
            kind: ActionKind::Other("note".into()),
            prompt: "bob's note".into(),
            keep_prompt: true,
            output: "logged by a grantee".into(),
            tx_hash: None,
            details: serde_json::Value::Null,
            ..drafts[0].clone()
        },
        1_700_000_000_000,
    )
    .sign(&bob.wallet)?;
    records.put_record(&bobs).await?;
    log_directly(&world, &bob.wallet, token, 2, vec![bobs.record_hash()]).await?;

    // The owner runs again (`inft run TOKEN --steps 0`): before the fix, an integrity error
    // that stopped every later action.
    let report = run_steps(&mut session, &mut strategy, &outbox, 0, |_| {}).await?;
    assert_eq!(report.flush.rebases.len(), 1, "{:?}", report.flush);
    let rebase = &report.flush.rebases[0];
    assert_eq!((rebase.seq, rebase.taken_by), (2, bob.address()));
    assert_eq!(report.flush.logged, 3);

    // On chain: the owner's first action, bob's, then the owner's three, re-signed at 3..=5.
    let on_chain = world.logged_hashes(token).await?;
    assert_eq!(on_chain.len(), 5);
    assert_eq!(on_chain[0], first.steps[0].record_hash);
    assert_eq!(on_chain[1], bobs.record_hash());
    let db = outbox.db();
    let local = db.records(&log, 0, 100).await?;
    assert_eq!(
        local
            .iter()
            .map(|r| r.record.record().seq)
            .collect::<Vec<_>>(),
        [1, 3, 4, 5]
    );
    let mut prev = bobs.record_hash();
    for (stored, was) in local[1..].iter().zip(&unlogged) {
        let (r, w) = (stored.record.record(), was.record());
        assert_eq!(on_chain[(r.seq - 1) as usize], stored.record.record_hash());
        assert_eq!(r.prev_record_hash, prev, "chained after bob's entry");
        stored.record.verify(minted.agent)?;
        // Nothing lost, nothing changed but the place.
        assert_eq!(
            (&r.output, r.prompt_hash, &r.prompt, r.timestamp_ms),
            (&w.output, w.prompt_hash, &w.prompt, w.timestamp_ms)
        );
        prev = stored.record.record_hash();
    }
    // No duplicate, and the dead hashes never reached the chain.
    let mut unique = on_chain.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), on_chain.len());
    assert!(
        unlogged
            .iter()
            .all(|r| !on_chain.contains(&r.record_hash()))
    );
    // The private prompt is still private, and still kept for replay.
    let private = local[2].record.record();
    assert_eq!(private.prompt, None);
    assert!(db.private_prompt(private.prompt_hash).await?.is_some());
    assert!(
        db.outbox_entries(&log)
            .await?
            .iter()
            .all(|e| e.state == OutboxState::Confirmed)
    );

    // The log goes on after them.
    let next = run_steps(&mut session, &mut strategy, &outbox, 1, |_| {}).await?;
    assert_eq!(next.steps[0].seq, 6);
    assert!(next.flush.rebases.is_empty());

    // Once more, with an entry the grantee never published (seq 7): the owner's record moves
    // to seq 8.
    let draft = strategy.step(&mut session, 2).await?;
    let pending = outbox.append(&log, draft, &agent_key).await?;
    assert_eq!(pending.record().seq, 7);
    let unpublished = B256::repeat_byte(0x77);
    log_directly(&world, &bob.wallet, token, 7, vec![unpublished]).await?;
    let again = run_steps(&mut session, &mut strategy, &outbox, 0, |_| {}).await?;
    assert_eq!(again.flush.rebases.len(), 1);
    let (seq, hash) = again.flush.position_of(7, pending.record_hash());
    assert_eq!(seq, 8);
    assert_eq!(world.logged_hashes(token).await?[6..], [unpublished, hash]);

    // The audit reads bob's entry between the agent's and finds nothing wrong.
    let reader = world.reader();
    let d = &world.deployment;
    let auditor_db = Db::open(world.dir.path().join("auditor.db")).await?;
    Indexer::new(
        reader.clone(),
        d.chain_id,
        d.agent_nft,
        d.action_log,
        d.start_block,
    )
    .sync(&auditor_db)
    .await?;
    let target = AuditTarget {
        chain_id: d.chain_id,
        agent_nft: d.agent_nft,
        action_log: d.action_log,
        token_id: token,
    };
    // The audit reads the grantee's entries between the agent's: it reports the one record
    // the grantee never published, and nothing about the agent's rebased records.
    let audit = audit_token(&reader, &auditor_db, records.as_ref(), &target).await?;
    assert_eq!(
        audit.findings,
        vec![Finding::MissingRecord {
            seq: 7,
            record_hash: unpublished
        }]
    );
    assert_eq!(audit.actions.len(), 8);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_logged_with_the_agents_own_key_stays_an_integrity_error() -> anyhow::Result<()>
{
    let world = World::start().await?;
    let records = Arc::new(LocalDirStore::open(world.dir.path().join("public"))?);
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, 92).await?;
    let token = minted.token_id;
    let log = world.log_id(token);
    let (mut session, outbox, agent_key) =
        owner_runtime(&world, &alice, token, records, "owner.db").await?;
    let mut strategy = CreativeStrategy::new("Write a short poem about the sea.");
    let draft = strategy.step(&mut session, 0).await?;
    let ours = outbox.append(&log, draft, &agent_key).await?;

    // Another runtime on the same agent key (or this database from an old backup) logged
    // something else at seq 1.
    log_directly(&world, &agent_key, token, 1, vec![B256::repeat_byte(0xab)]).await?;

    let err = run_steps(&mut session, &mut strategy, &outbox, 0, |_| {})
        .await
        .expect_err("our own history forked");
    assert!(
        matches!(err, RunError::Outbox(OutboxError::Integrity { seq: 1, .. })),
        "{err}"
    );
    // Never rebased silently: the record is where it was, unlogged.
    let local = outbox.db().records(&log, 0, 10).await?;
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].record.record_hash(), ours.record_hash());
    assert_eq!(
        world.logged_hashes(token).await?,
        vec![B256::repeat_byte(0xab)]
    );
    Ok(())
}
