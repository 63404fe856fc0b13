//! Agent memory on anvil: the owner's runs leave notes in the token's sealed memory entry, the
//! next run's prompts carry them, every update is logged (without the note) and audits clean,
//! the memory moves to the receiver with the token in both proof modes while the old owner is
//! locked out of it, an executor runs without it, and tokens minted without memory still run
//! and transfer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use agent_runtime::audit::{AuditTarget, audit_token};
use agent_runtime::blobstore::LocalDirStore;
use agent_runtime::db::Db;
use agent_runtime::indexer::Indexer;
use agent_runtime::memory::{
    AgentMemory, MEMORY_UPDATE_KIND, MemoryNote, MemoryUpdate, memory_update_draft, update_memory,
};
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::pipeline::open_keys;
use agent_runtime::record::ActionRecord;
use agent_runtime::token::Access;
use agent_runtime::transfer::oracle::{OracleService, request_rotation};
use agent_runtime::transfer::{Offer, accept_offer, complete_transfer, make_offer};
use alloy::primitives::{B256, U256};
use inft_contracts::scopes;
use inft_runtime::{AgentSession, Strategy as _, record_action, run_steps};
use inft_types::config::AgentConfig;
use sealing::{SealOptions, SealedKey};
use strategies::creative::{CreativeStrategy, without_titles};

use crate::world::{Actor, ORACLE_ACCOUNT, World};

const PROMPT: &str = "Write a short poem about the sea.";

/// The creative config with room in the context for the memory: the test model's vocabulary is
/// byte-level, so a note costs about a token per character.
fn config(world: &World) -> AgentConfig {
    let mut config = world.creative_config(PROMPT);
    config.context.n_ctx = 4096;
    config
}

/// What one run produced.
struct Ran {
    /// The run's records, in order: its steps, then the memory update if it made one.
    records: Vec<ActionRecord>,
    /// The memory the run started with (`None`: the token has none, or the runner may not read
    /// it).
    memory_before: Option<AgentMemory>,
    /// The memory update, if the run made one.
    update: Option<MemoryUpdate>,
    /// The note the update appended, as stored.
    note: Option<String>,
}

/// Runs `token` as `actor` for `steps` creative steps the way `inft run` does: the memory the
/// runner can unseal goes into the prompts; an owner's run then appends the strategy's note to
/// the memory, publishes it and logs the update through the same outbox (an executor's run does
/// neither). Records are published for audits.
async fn run_as(
    world: &World,
    actor: &Actor,
    token: U256,
    steps: u64,
    db_name: &str,
) -> anyhow::Result<Ran> {
    let opened = world.open(actor, token, scopes::RUN).await?;
    let agent = &opened.agent;
    let signer = agent
        .agent_key
        .clone()
        .unwrap_or_else(|| actor.wallet.clone());
    let context = agent.model.new_context(&agent.config.context)?;
    let log = world.log_id(token);
    let mut session = AgentSession::new(
        log,
        world.deployment.agent_nft,
        agent.config.clone(),
        signer.clone(),
        context,
    );
    session.set_memory(agent.memory.as_ref().and_then(AgentMemory::prompt_text));
    let db = Db::open(world.dir.path().join(db_name)).await?;
    let chain = AlloyChainLog::new(world.provider(&signer), world.deployment.start_block);
    let outbox = Outbox::publishing(
        db,
        Arc::new(chain),
        Arc::new(public_records(world)?),
        OutboxConfig::default(),
    );
    let mut strategy = CreativeStrategy::new(PROMPT);
    let report = run_steps(&mut session, &mut strategy, &outbox, steps, |_| {}).await?;
    assert_eq!(report.steps.len() as u64, steps);
    let first_seq = report.steps[0].seq;

    let (mut update, mut note) = (None, None);
    if let (Some(mut memory), Some(_owner)) = (agent.memory.clone(), &agent.agent_key) {
        let text = strategy
            .memory_note()
            .ok_or_else(|| anyhow::anyhow!("the creative strategy has a note after a run"))?;
        let seqs = report
            .steps
            .first()
            .zip(report.steps.last())
            .map(|(a, b)| [a.seq, b.seq]);
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let added = MemoryNote::new(now, steps, seqs, &text)
            .ok_or_else(|| anyhow::anyhow!("an empty note"))?;
        note = Some(added.text.clone());
        memory.push(added);
        let entries = actor.nft.entries_for(token, actor.address()).await?;
        let published = update_memory(
            &actor.nft,
            world.store.as_ref(),
            &actor.secret.public_key(),
            token,
            &entries,
            &memory,
            &SealOptions::default(),
        )
        .await?;
        record_action(&session, &outbox, memory_update_draft(&published)).await?;
        update = Some(published);
    }
    let records = outbox
        .db()
        .records(&log, first_seq, 100)
        .await?
        .into_iter()
        .map(|r| r.record.into_record())
        .collect();
    Ok(Ran {
        records,
        memory_before: agent.memory.clone(),
        update,
        note,
    })
}

/// The public record store the runs publish to and the audit reads.
fn public_records(world: &World) -> anyhow::Result<LocalDirStore> {
    Ok(LocalDirStore::open(world.dir.path().join("public"))?)
}

fn memory_hash(hashes: &[B256]) -> Option<B256> {
    hashes.get(3).copied()
}

/// The first prompt of a run (records keep their prompts).
fn first_prompt(ran: &Ran) -> &str {
    ran.records[0].prompt.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_follows_the_token_through_runs_and_a_transfer() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let minted = world
        .mint_with_memory(&alice, 1, &config(&world), Some(AgentMemory::new()))
        .await?;
    let token = minted.token_id;
    assert_eq!(minted.entries.len(), 4, "model, agent key, config, memory");
    let minted_memory = B256::from(*minted.entries[3].data_hash.as_bytes());

    // First run: starts from the empty memory, leaves a note; the memory hash on chain changes
    // and the update is logged with it, after the steps, in the same hash chain.
    let first = run_as(&world, &alice, token, 2, "alice.db").await?;
    assert_eq!(first.memory_before, Some(AgentMemory::new()));
    let update = first
        .update
        .as_ref()
        .expect("the owner's run updates the memory");
    let note = first.note.clone().expect("a note");
    let state = alice.nft.state(token).await?;
    assert_eq!(memory_hash(&state.data_hashes), Some(update.new_data_hash));
    assert_eq!(update.old_data_hash, Some(minted_memory));
    assert_ne!(update.new_data_hash, minted_memory);
    assert_eq!(
        &state.data_hashes[..3],
        &minted
            .entries
            .iter()
            .take(3)
            .map(|e| B256::from(*e.data_hash.as_bytes()))
            .collect::<Vec<_>>()[..],
        "the other entries are untouched"
    );
    assert_eq!(first.records.len(), 3);
    let logged = &first.records[2];
    assert_eq!(logged.kind.as_str(), MEMORY_UPDATE_KIND);
    assert_eq!(
        logged.details["new_data_hash"],
        serde_json::json!(update.new_data_hash)
    );
    assert_eq!(logged.details["entry"], 3);
    assert_eq!(logged.tx_hash, Some(update.tx_hash));
    assert_eq!(logged.prev_record_hash, first.records[1].record_hash()?);
    assert!(logged.output.is_empty() && logged.prompt.is_none());
    let json = String::from_utf8(logged.canonical_json()?)?;
    assert!(!json.contains(&note), "the record never carries the note");
    let on_chain = world.logged_hashes(token).await?;
    assert_eq!(on_chain.last(), Some(&logged.record_hash()?));

    // Second run: its prompts carry the first run's note.
    let second = run_as(&world, &alice, token, 1, "alice.db").await?;
    assert_eq!(second.memory_before.as_ref().map(AgentMemory::len), Some(1));
    assert!(
        first_prompt(&second).contains(&without_titles(&note)),
        "the prompt holds the note (its titles are kept out by the grammar): {}",
        first_prompt(&second)
    );
    let second_update = second.update.as_ref().expect("updated again");
    assert_eq!(second_update.old_data_hash, Some(update.new_data_hash));
    assert_eq!(second_update.notes, 2);
    let notes_before_transfer = vec![note.clone(), second.note.clone().expect("a note")];

    // The audit sees both updates, old → new hash, each set on chain by a DataSet event.
    let reader = world.reader();
    let d = &world.deployment;
    let auditor = Db::open(world.dir.path().join("auditor.db")).await?;
    Indexer::new(
        reader.clone(),
        d.chain_id,
        d.agent_nft,
        d.action_log,
        d.start_block,
    )
    .sync(&auditor)
    .await?;
    let target = AuditTarget {
        chain_id: d.chain_id,
        agent_nft: d.agent_nft,
        action_log: d.action_log,
        token_id: token,
    };
    let report = audit_token(&reader, &auditor, &public_records(&world)?, &target).await?;
    assert!(report.is_clean(), "{:?}", report.findings);
    let updates = report.memory_updates();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].1.old_data_hash, Some(minted_memory));
    assert_eq!(updates[0].1.new_data_hash, update.new_data_hash);
    assert_eq!(updates[1].1.new_data_hash, second_update.new_data_hash);

    // Transfer, receiver-verified: the memory rotates with the other entries.
    let deadline = world.chain_time().await? + 3600;
    let offer = make_offer(
        &alice.nft,
        store,
        token,
        &alice.secret,
        bob.address(),
        deadline,
        &opts,
    )
    .await?;
    let offer: Offer = serde_json::from_str(&serde_json::to_string(&offer)?)?;
    let new_memory = offer.memory.clone().expect("the offer rotates the memory");
    assert_ne!(new_memory.data_hash, second_update.new_data_hash);
    // An offer that drops the memory is refused by the receiver.
    let now = world.chain_time().await?;
    let dropped = Offer {
        memory: None,
        ..offer.clone()
    };
    assert!(
        accept_offer(
            &bob.nft,
            store,
            &dropped,
            &bob.wallet,
            &bob.secret,
            now,
            &opts
        )
        .await
        .is_err()
    );
    let signed = accept_offer(
        &bob.nft,
        store,
        &offer,
        &bob.wallet,
        &bob.secret,
        now,
        &opts,
    )
    .await?;
    complete_transfer(&alice.nft, store, &alice.secret, &offer, &signed, &opts).await?;
    let state = bob.nft.state(token).await?;
    assert_eq!(state.owner, bob.address());
    assert_eq!(memory_hash(&state.data_hashes), Some(new_memory.data_hash));

    // The old owner's sealing secret opens nothing of the new memory; the new owner's does.
    let entries = bob.nft.entries_for(token, bob.address()).await?;
    let token_ref = bob.nft.token_ref(token);
    let memory_key: &SealedKey = entries[3].sealed_key.as_ref().expect("sealed to bob");
    let context = token_ref.key_context(entries[3].data_hash);
    assert!(memory_key.open(&alice.secret, &context).is_err());
    assert!(memory_key.open(&bob.secret, &context).is_ok());
    assert!(open_keys(&entries, &alice.secret, &token_ref).is_err());

    // The new owner runs with the same notes in his prompts.
    let third = run_as(&world, &bob, token, 1, "bob.db").await?;
    let carried: Vec<String> = third
        .memory_before
        .as_ref()
        .expect("bob reads the memory")
        .notes
        .iter()
        .map(|n| n.text.clone())
        .collect();
    assert_eq!(carried, notes_before_transfer);
    for note in &notes_before_transfer {
        assert!(first_prompt(&third).contains(&without_titles(note)));
    }
    assert!(
        third.update.is_some(),
        "the new owner's run updates the memory"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_rotates_through_the_oracle_and_executors_run_without_it() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let carol = world.actor(3).await?;
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let opts = SealOptions::default();
    let minted = world
        .mint_with_memory(&alice, 1, &config(&world), Some(AgentMemory::new()))
        .await?;
    let token = minted.token_id;

    // Carol is authorized as `inft authorize` does it: keys for the three agent entries (the
    // agent-key slot empty), none for the memory.
    let entries = alice.nft.entries_for(token, alice.address()).await?;
    let token_ref = alice.nft.token_ref(token);
    let keys = open_keys(&entries, &alice.secret, &token_ref)?;
    let carol_key = carol.secret.public_key();
    let sealed = inft_types::config::EntryKind::REQUIRED
        .iter()
        .zip(entries.iter().zip(keys))
        .map(|(&kind, (entry, key))| match (kind, key) {
            (inft_types::config::EntryKind::AgentKey, _) | (_, None) => Ok(None),
            (_, Some(key)) => {
                SealedKey::seal(&key, &carol_key, &token_ref.key_context(entry.data_hash)).map(Some)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(sealed.len(), 3);
    let expiry = world.chain_time().await? + 3600;
    alice
        .nft
        .authorize(
            token,
            carol.address(),
            scopes::RUN | scopes::LOG,
            expiry,
            &sealed,
        )
        .await?;

    // Alice's run updates the memory after the grant; the grant still opens the agent.
    let first = run_as(&world, &alice, token, 1, "alice.db").await?;
    let update = first.update.expect("the owner's run updates the memory");
    let executor = run_as(&world, &carol, token, 1, "carol.db").await?;
    assert_eq!(executor.memory_before, None, "an executor reads no memory");
    assert!(executor.update.is_none(), "and writes none");
    assert_eq!(executor.records.len(), 1);
    let opened = world.open(&carol, token, scopes::RUN).await?;
    assert!(matches!(opened.access, Access::Authorized { .. }));
    assert!(opened.agent.agent_key.is_none() && opened.agent.memory.is_none());
    assert_eq!(
        memory_hash(&alice.nft.state(token).await?.data_hashes),
        Some(update.new_data_hash),
        "the executor's run left the memory as it was"
    );

    // Oracle-attested transfer: the memory rotates too.
    let service = Arc::new(OracleService::new(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        opts,
    ));
    let server = service.serve("127.0.0.1:0".parse()?).await?;
    let answer = request_rotation(
        &alice.nft,
        &server.base_url(),
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        world.chain_time().await? + 3600,
    )
    .await?;
    let rotated = answer
        .offer
        .memory
        .clone()
        .expect("the oracle rotates the memory");
    complete_transfer(
        &alice.nft,
        world.store.as_ref(),
        &alice.secret,
        &answer.offer,
        &answer.signed,
        &opts,
    )
    .await?;
    server.shutdown().await?;
    let state = bob.nft.state(token).await?;
    assert_eq!(state.owner, bob.address());
    assert_eq!(memory_hash(&state.data_hashes), Some(rotated.data_hash));

    let second = run_as(&world, &bob, token, 1, "bob.db").await?;
    let memory = second.memory_before.as_ref().expect("bob reads the memory");
    assert_eq!(memory.len(), 1);
    assert_eq!(Some(&memory.notes[0].text), first.note.as_ref());
    assert!(first_prompt(&second).contains(&without_titles(&memory.notes[0].text)));
    // The transfer voided carol's grant.
    assert!(world.open(&carol, token, scopes::RUN).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_without_memory_runs_and_transfers() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let minted = world
        .mint_with_memory(&alice, 1, &config(&world), None)
        .await?;
    let token = minted.token_id;
    assert_eq!(minted.entries.len(), 3);

    let ran = run_as(&world, &alice, token, 1, "alice.db").await?;
    assert!(ran.memory_before.is_none() && ran.update.is_none());
    assert_eq!(alice.nft.state(token).await?.data_hashes.len(), 3);

    let offer = make_offer(
        &alice.nft,
        store,
        token,
        &alice.secret,
        bob.address(),
        world.chain_time().await? + 3600,
        &opts,
    )
    .await?;
    assert!(offer.memory.is_none());
    // An offer written before memory existed (no `memory` field) still parses.
    let old_form = serde_json::to_value(&offer)?;
    assert!(old_form.get("memory").is_none());
    let offer: Offer = serde_json::from_value(old_form)?;
    let now = world.chain_time().await?;
    let signed = accept_offer(
        &bob.nft,
        store,
        &offer,
        &bob.wallet,
        &bob.secret,
        now,
        &opts,
    )
    .await?;
    complete_transfer(&alice.nft, store, &alice.secret, &offer, &signed, &opts).await?;
    assert_eq!(bob.nft.state(token).await?.data_hashes.len(), 3);
    let ran = run_as(&world, &bob, token, 1, "bob.db").await?;
    assert!(ran.memory_before.is_none() && ran.update.is_none());
    Ok(())
}
