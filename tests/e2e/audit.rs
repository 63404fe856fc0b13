//! Issue 7's must-show: an intact history audits clean and replays 100% on CPU; a modified
//! record, a missing record, a reordered pair and a record signed by a wrong key are each
//! reported with the exact action concerned; the earnings split is exact to the wei.
//! Issue 12: a signature replaced at the store is refused there, reported as the store's if it
//! happens anyway and restored by the runtime (M1); logs by a grantee whose grant was revoked or
//! had expired are reported (L9).

use std::sync::Arc;

use agent_runtime::audit::{AuditReport, AuditTarget, Finding, ReplayOutcome, audit_token, replay};
use agent_runtime::blobstore::{BlobStore, LocalDirStore};
use agent_runtime::db::Db;
use agent_runtime::indexer::Indexer;
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::record::{ActionDraft, ActionKind, ActionRecord, SignedRecord};
use alloy::primitives::{B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::bindings::ActionLog;
use inft_contracts::scopes;
use inft_runtime::run_steps;
use strategies::creative::CreativeStrategy;

use crate::world::World;

/// The public record store and the auditor's database of one test.
struct Auditor {
    records: Arc<LocalDirStore>,
    db: Db,
}

impl Auditor {
    async fn new(world: &World) -> anyhow::Result<Self> {
        Ok(Self {
            records: Arc::new(LocalDirStore::open(world.dir.path().join("public"))?),
            db: Db::open(world.dir.path().join("auditor.db")).await?,
        })
    }

    /// Indexes the chain (as anyone can, with a read-only provider) and audits `token`.
    async fn audit(&self, world: &World, token: U256) -> anyhow::Result<AuditReport> {
        let reader = world.reader();
        let d = &world.deployment;
        Indexer::new(
            reader.clone(),
            d.chain_id,
            d.agent_nft,
            d.action_log,
            d.start_block,
        )
        .sync(&self.db)
        .await?;
        let target = AuditTarget {
            chain_id: d.chain_id,
            agent_nft: d.agent_nft,
            action_log: d.action_log,
            token_id: token,
        };
        Ok(audit_token(&reader, &self.db, self.records.as_ref(), &target).await?)
    }
}

fn draft(i: u64) -> ActionDraft {
    ActionDraft {
        kind: ActionKind::Creative,
        model_hash: B256::repeat_byte(0x11),
        prompt: format!("prompt {i}"),
        keep_prompt: true,
        output: format!("output {i}"),
        sampler: serde_json::Value::Null,
        seed: i,
        llama_build: "test".into(),
        tx_hash: None,
        details: serde_json::json!({ "pnl_quote": (i as i64 * 1_000_000_000_000_000 - 2_000_000_000_000_000).to_string() }),
    }
}

/// Builds `n` chained records for `token`, signing record `i` (from 1) with `signer_for(i)`,
/// and publishes them.
async fn build_records(
    world: &World,
    auditor: &Auditor,
    token: U256,
    n: u64,
    signer_for: impl Fn(u64) -> PrivateKeySigner,
) -> anyhow::Result<Vec<SignedRecord>> {
    let log = world.log_id(token);
    let mut prev = B256::ZERO;
    let mut out = Vec::new();
    for seq in 1..=n {
        let signed = ActionRecord::new(&log, seq, prev, draft(seq), 1_700_000_000_000 + seq)
            .sign(&signer_for(seq))?;
        prev = signed.record_hash();
        auditor.records.put_record(&signed).await?;
        out.push(signed);
    }
    Ok(out)
}

/// Logs `hashes` from seq 1 on, sent by the agent key.
async fn log_hashes(
    world: &World,
    agent: &PrivateKeySigner,
    token: U256,
    hashes: Vec<B256>,
) -> anyhow::Result<()> {
    let receipt = ActionLog::new(world.deployment.action_log, world.provider(agent))
        .logActions(token, 1, hashes)
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(receipt.status(), "logActions reverted");
    Ok(())
}

/// A minted creative agent and its unsealed agent key.
async fn minted_agent(world: &World, salt: u64) -> anyhow::Result<(U256, PrivateKeySigner)> {
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, salt).await?;
    let opened = world.open(&alice, minted.token_id, scopes::RUN).await?;
    let key = opened
        .agent
        .agent_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner unseals the agent key"))?;
    Ok((minted.token_id, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intact_history_audits_clean_and_every_inference_replays() -> anyhow::Result<()> {
    // Its own model: replay must load the model this run used.
    let world = World::start_with_model_seed(21).await?;
    let auditor = Auditor::new(&world).await?;
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, 70).await?;
    let token = minted.token_id;
    let opened = world.open(&alice, token, scopes::RUN).await?;
    let key = opened.agent.agent_key.clone().expect("owner gets the key");
    let (mut session, _) = world.session(&opened, token, key.clone(), "run.db").await?;
    // The runtime publishes each record before logging it.
    let chain = AlloyChainLog::new(world.provider(&key), world.deployment.start_block);
    let outbox = Outbox::publishing(
        Db::open(world.dir.path().join("publishing.db")).await?,
        Arc::new(chain),
        auditor.records.clone(),
        OutboxConfig::default(),
    );
    let mut strategy = CreativeStrategy::new("Write a short poem about the sea.");
    let run = run_steps(&mut session, &mut strategy, &outbox, 3, |_| {}).await?;
    assert_eq!(run.steps.len(), 3);
    let local = outbox.db().records(&world.log_id(token), 0, 10).await?;
    assert!(
        local.iter().all(|r| r.blob_uri.is_some()),
        "every record notes where it was published"
    );

    let report = auditor.audit(&world, token).await?;
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.chain_seq, 3);
    assert_eq!(report.actions.len(), 3);
    for (a, step) in report.actions.iter().zip(&run.steps) {
        assert_eq!(a.seq, step.seq);
        assert_eq!(a.record_hash, step.record_hash);
        assert_eq!(a.signer, Some(minted.agent));
        assert!(a.ok);
    }
    assert!(
        report
            .history
            .iter()
            .any(|h| h.event == "AgentSet" && h.to == minted.agent)
    );

    // Indexing again changes nothing (idempotent, resumes from the cursor).
    let again = auditor.audit(&world, token).await?;
    assert_eq!(again, report);

    // Replay on this CPU build reproduces every action.
    let records: Vec<ActionRecord> = report
        .actions
        .iter()
        .filter_map(|a| a.record.clone())
        .collect();
    let model = opened.agent.model.clone();
    let context = opened.agent.config.context;
    let replayed = tokio::task::block_in_place(|| {
        replay(
            &mut inft_engine::Replayer::new(model.clone(), context),
            &records,
        )
    });
    assert_eq!(replayed.len(), 3);
    assert!(
        replayed
            .iter()
            .all(|r| r.outcome == ReplayOutcome::Reproduced),
        "{replayed:?}"
    );

    // A record claiming another output, or made by another build, does not reproduce, and says why.
    let mut forged = records[0].clone();
    forged.output = "not what the model said".into();
    forged.output_hash = agent_runtime::record::content_hash(forged.output.as_bytes());
    let mut other_build = forged.clone();
    other_build.llama_build = "llama-cpp-2 0.1.160; cuda=on".into();
    let mut no_prompt = records[1].clone();
    no_prompt.prompt = None;
    let outcomes = tokio::task::block_in_place(|| {
        replay(
            &mut inft_engine::Replayer::new(model.clone(), context),
            &[forged, other_build, no_prompt],
        )
    });
    assert!(
        matches!(&outcomes[0].outcome, ReplayOutcome::Diverged { reason, .. } if reason.contains("same model")),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1].outcome, ReplayOutcome::Diverged { reason, .. } if reason.contains("GPU")),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[2].outcome, ReplayOutcome::NotReplayable { reason } if reason.contains("prompt")),
        "{outcomes:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modified_missing_reordered_and_wrongly_signed_records_are_pinned_to_their_action()
-> anyhow::Result<()> {
    let world = World::start().await?;
    let auditor = Auditor::new(&world).await?;

    // Token A: five good records, logged as they should be.
    let (token_a, key_a) = minted_agent(&world, 71).await?;
    let recs = build_records(&world, &auditor, token_a, 5, |_| key_a.clone()).await?;
    let recs_a = recs.clone();
    log_hashes(
        &world,
        &key_a,
        token_a,
        recs.iter().map(SignedRecord::record_hash).collect(),
    )
    .await?;
    let clean = auditor.audit(&world, token_a).await?;
    assert!(clean.is_clean(), "{:?}", clean.findings);
    assert_eq!(clean.pnl_series().len(), 5);

    // A modified record (its output changed in the public store) is reported at seq 3.
    let path = auditor.records.record_path(&recs[2].record_hash());
    let original = std::fs::read(&path)?;
    let tampered = String::from_utf8(original.clone())?.replace("output 3", "output X");
    std::fs::write(&path, tampered)?;
    let report = auditor.audit(&world, token_a).await?;
    assert!(
        matches!(
            report.findings.as_slice(),
            [Finding::ModifiedRecord { seq: 3, .. }]
        ),
        "{:?}",
        report.findings
    );
    // A whole record swapped for another valid record: still seq 3, still modified.
    std::fs::write(&path, recs[3].to_envelope_json()?)?;
    let report = auditor.audit(&world, token_a).await?;
    assert!(
        matches!(
            report.findings.as_slice(),
            [Finding::ModifiedRecord { seq: 3, .. }]
        ),
        "{:?}",
        report.findings
    );
    std::fs::write(&path, &original)?;

    // A missing record is reported at seq 2.
    let path = auditor.records.record_path(&recs[1].record_hash());
    std::fs::remove_file(&path)?;
    let report = auditor.audit(&world, token_a).await?;
    assert!(
        matches!(report.findings.as_slice(), [Finding::MissingRecord { seq: 2, record_hash }] if *record_hash == recs[1].record_hash()),
        "{:?}",
        report.findings
    );
    assert!(!report.actions[1].ok && report.actions[0].ok && report.actions[2].ok);
    auditor.records.put_record(&recs[1]).await?;
    assert!(auditor.audit(&world, token_a).await?.is_clean());

    // Token B: records 3 and 4 logged in each other's place.
    let (token_b, key_b) = minted_agent(&world, 72).await?;
    let recs = build_records(&world, &auditor, token_b, 5, |_| key_b.clone()).await?;
    let mut hashes: Vec<B256> = recs.iter().map(SignedRecord::record_hash).collect();
    hashes.swap(2, 3);
    log_hashes(&world, &key_b, token_b, hashes).await?;
    let report = auditor.audit(&world, token_b).await?;
    assert_eq!(
        report.findings,
        vec![Finding::Reordered {
            seq: 3,
            other_seq: 4
        }],
        "{:?}",
        report.findings
    );

    // Token C: record 4 signed by a key that is not the agent's.
    let (token_c, key_c) = minted_agent(&world, 73).await?;
    let intruder = PrivateKeySigner::random();
    let recs = build_records(&world, &auditor, token_c, 5, |seq| {
        if seq == 4 {
            intruder.clone()
        } else {
            key_c.clone()
        }
    })
    .await?;
    log_hashes(
        &world,
        &key_c,
        token_c,
        recs.iter().map(SignedRecord::record_hash).collect(),
    )
    .await?;
    let report = auditor.audit(&world, token_c).await?;
    // The agent logged the hash, so the chain vouches for the record: the bad signature is
    // reported as the store's copy, not as the agent acting for someone else.
    assert_eq!(
        report.findings,
        vec![Finding::SignatureUnverified {
            seq: 4,
            expected: key_c.address(),
            actual: intruder.address(),
            logged_by: key_c.address(),
        }],
        "{:?}",
        report.findings
    );
    // Token D: the owner rotates the agent key after 3 actions (AgentSet). Records are checked
    // against the agent registered when they were logged: the new key's records are good, the
    // old key's record after the rotation is not.
    let alice = world.actor(1).await?;
    let (token_d, old_key) = minted_agent(&world, 74).await?;
    let new_key = PrivateKeySigner::random();
    let fund = alloy::rpc::types::TransactionRequest::default()
        .to(new_key.address())
        .value(U256::from(10u64).pow(U256::from(18u64)));
    alice
        .nft
        .provider()
        .send_transaction(fund)
        .await?
        .get_receipt()
        .await?;
    let recs = build_records(&world, &auditor, token_d, 6, |seq| {
        if seq <= 3 || seq == 6 {
            old_key.clone()
        } else {
            new_key.clone()
        }
    })
    .await?;
    let hashes: Vec<B256> = recs.iter().map(SignedRecord::record_hash).collect();
    log_hashes(&world, &old_key, token_d, hashes[..3].to_vec()).await?;
    let rotated = inft_contracts::bindings::AgentNFT::new(
        world.deployment.agent_nft,
        alice.nft.provider().clone(),
    )
    .setAgent(token_d, new_key.address())
    .send()
    .await?
    .get_receipt()
    .await?;
    anyhow::ensure!(rotated.status(), "setAgent reverted");
    let receipt = ActionLog::new(world.deployment.action_log, world.provider(&new_key))
        .logActions(token_d, 4, hashes[3..].to_vec())
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(receipt.status(), "logActions reverted");
    let report = auditor.audit(&world, token_d).await?;
    assert_eq!(
        report.findings,
        vec![Finding::SignatureUnverified {
            seq: 6,
            expected: new_key.address(),
            actual: old_key.address(),
            logged_by: new_key.address(),
        }],
        "{:?}",
        report.findings
    );
    assert_eq!(report.actions[2].agent, old_key.address());
    assert_eq!(report.actions[3].agent, new_key.address());

    // Token E: records that name transactions. A trade whose receipt succeeded and moved the
    // recorded amounts is good; a transaction that does not exist, a "reverted" trade whose
    // transaction succeeded, and a fill the receipt does not show are each reported.
    let (token_e, key_e) = minted_agent(&world, 75).await?;
    let (tx_ok, token_in, token_out, amount_in, amount_out) = real_token_transfers(&world).await?;
    let fill = |amount_out: U256| {
        serde_json::json!({ "fill": {
            "token_in": token_in, "token_out": token_out,
            "amount_in": amount_in.to_string(), "amount_out": amount_out.to_string(),
        }})
    };
    let mut drafts = Vec::new();
    let mut d = draft(1);
    d.kind = ActionKind::Trade;
    d.tx_hash = Some(tx_ok);
    d.details = fill(amount_out);
    drafts.push(d.clone());
    d.tx_hash = Some(B256::repeat_byte(0xee));
    drafts.push(d.clone());
    d.tx_hash = Some(tx_ok);
    d.kind = ActionKind::Other("trade-reverted".into());
    drafts.push(d.clone());
    d.kind = ActionKind::Trade;
    d.details = fill(amount_out + U256::from(1u64));
    drafts.push(d);
    let log = world.log_id(token_e);
    let mut prev = B256::ZERO;
    let mut hashes = Vec::new();
    for (i, d) in drafts.into_iter().enumerate() {
        let signed = ActionRecord::new(&log, i as u64 + 1, prev, d, 1).sign(&key_e)?;
        prev = signed.record_hash();
        auditor.records.put_record(&signed).await?;
        hashes.push(prev);
    }
    log_hashes(&world, &key_e, token_e, hashes).await?;
    let report = auditor.audit(&world, token_e).await?;
    let kinds: Vec<(u64, &str)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.seq(),
                match f {
                    Finding::ReceiptMissing { .. } => "missing",
                    Finding::ReceiptMismatch { .. } => "mismatch",
                    _ => "other",
                },
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![(2, "missing"), (3, "mismatch"), (4, "mismatch")],
        "{:?}",
        report.findings
    );

    // The other tokens' audits are unaffected by the others' histories.
    let before = auditor.audit(&world, token_a).await?;
    assert!(before.is_clean());

    // A live agent: an action logged after the last sync is not a gap in the index; the audit
    // reads the head as of the indexed block, and the next sync takes the action in.
    let last = &recs_a[4];
    let sixth = ActionRecord::new(
        &world.log_id(token_a),
        6,
        last.record_hash(),
        draft(6),
        1_700_000_000_006,
    )
    .sign(&key_a)?;
    auditor.records.put_record(&sixth).await?;
    let receipt = ActionLog::new(world.deployment.action_log, world.provider(&key_a))
        .logActions(token_a, 6, vec![sixth.record_hash()])
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(receipt.status(), "logActions reverted");
    let d = &world.deployment;
    let target = AuditTarget {
        chain_id: d.chain_id,
        agent_nft: d.agent_nft,
        action_log: d.action_log,
        token_id: token_a,
    };
    let reader = world.reader();
    let unsynced = audit_token(&reader, &auditor.db, auditor.records.as_ref(), &target).await?;
    assert!(unsynced.is_clean(), "{:?}", unsynced.findings);
    assert_eq!(unsynced.chain_seq, 5);
    let synced = auditor.audit(&world, token_a).await?;
    assert!(synced.is_clean(), "{:?}", synced.findings);
    assert_eq!(synced.chain_seq, 6);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earnings_split_between_creator_contributor_and_holder_to_the_wei() -> anyhow::Result<()> {
    use agent_runtime::royalties::{Payer, Role, claim, credits, owed, settle, split_of};
    use inft_contracts::bindings::{AgentNFT, IAgentNFT};

    let world = World::start().await?;
    let signer = |i| {
        world
            .chain
            .signer(i)
            .ok_or_else(|| anyhow::anyhow!("no dev account {i}"))
    };
    // Dave creates the agent, Bob holds it, Carol contributed data, Erin pays it earnings.
    let (dave, bob, carol, erin) = (signer(4)?, signer(2)?, signer(3)?, signer(5)?);
    let nft = AgentNFT::new(world.deployment.agent_nft, world.provider(&dave));
    let data = IAgentNFT::DataEntries {
        dataHashes: vec![B256::repeat_byte(0xd1)],
        sealedKeys: vec![vec![1u8; 8].into()],
        uris: vec!["inft-local://x".into()],
    };
    let shares = IAgentNFT::Shares {
        royaltyBps: 500,
        creatorBps: 1_000,
        contributors: vec![carol.address()],
        contributorBps: vec![333],
    };
    let salt = alloy::primitives::aliases::U96::from(5u64);
    let token = nft.tokenIdFor(dave.address(), salt).call().await?;
    let receipt = nft
        .mint(
            bob.address(),
            salt,
            data,
            alloy::primitives::Address::repeat_byte(0xa9),
            shares,
            B256::repeat_byte(0x6d),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    anyhow::ensure!(receipt.status(), "mint reverted");

    let reader = world.provider(&erin);
    let split = split_of(
        &reader,
        world.deployment.agent_nft,
        token,
        world.deployment.start_block,
    )
    .await?;
    assert_eq!(split.creator, dave.address());
    assert_eq!(split.holder, bob.address());
    assert_eq!(split.contributors, vec![(carol.address(), 333)]);
    assert_eq!(split.royalty_bps, 500);
    // ERC-2981 on a sale: 5% to the creator.
    assert_eq!(
        agent_runtime::royalties::royalty_on_sale(
            &reader,
            world.deployment.agent_nft,
            token,
            U256::from(2_000_000u64)
        )
        .await?,
        (dave.address(), U256::from(100_000u64))
    );

    // An amount that does not divide evenly: every rounding shows.
    let amount = U256::from(1_000_000_000_000_000_007u128);
    let expected = credits(&split, amount);
    let settlement = settle(
        &reader,
        world.deployment.earnings_splitter,
        &split,
        alloy::primitives::Address::ZERO,
        amount,
        Payer::Wallet,
    )
    .await?;
    assert_eq!(settlement.credits, expected);
    assert_eq!(
        agent_runtime::royalties::deposited(
            &reader,
            world.deployment.earnings_splitter,
            token,
            alloy::primitives::Address::ZERO,
            world.deployment.start_block,
        )
        .await?,
        amount
    );
    let creator_share = U256::from(100_000_000_000_000_000u128); // 10% of 1e18 + 7, rounded down
    let contributor_share = U256::from(33_300_000_000_000_000u128); // 3.33%, rounded down
    let holder_share = amount - creator_share - contributor_share;
    let splitter = world.deployment.earnings_splitter;
    let zero = alloy::primitives::Address::ZERO;
    assert_eq!(
        owed(&reader, splitter, dave.address(), zero).await?,
        creator_share
    );
    assert_eq!(
        owed(&reader, splitter, carol.address(), zero).await?,
        contributor_share
    );
    assert_eq!(
        owed(&reader, splitter, bob.address(), zero).await?,
        holder_share
    );
    assert_eq!(
        expected
            .iter()
            .map(|c| (c.role, c.amount))
            .collect::<Vec<_>>(),
        vec![
            (Role::Creator, creator_share),
            (Role::Contributor, contributor_share),
            (Role::Holder, holder_share)
        ]
    );

    // Carol claims hers to a fresh address: exactly her share arrives.
    let payee = PrivateKeySigner::random().address();
    let carol_provider = world.provider(&carol);
    let (_, claimed) = claim(&carol_provider, splitter, carol.address(), zero, payee).await?;
    assert_eq!(claimed, contributor_share);
    assert_eq!(carol_provider.get_balance(payee).await?, contributor_share);
    assert!(
        owed(&reader, splitter, carol.address(), zero)
            .await?
            .is_zero()
    );
    // Nothing left to claim is an error, not a zero withdrawal.
    assert!(
        claim(&carol_provider, splitter, carol.address(), zero, payee)
            .await
            .is_err()
    );
    // A deposit with a wrong contributor list is refused by the contract.
    let mut wrong = split.clone();
    wrong.contributors = vec![(erin.address(), 333)];
    assert!(
        settle(&reader, splitter, &wrong, zero, amount, Payer::Wallet)
            .await
            .is_err()
    );

    // Earnings held by the agent's own account (e.g. trading profit in the quote token) leave
    // that account: its owner drives the deposit, and the holder's wallet pays nothing.
    use inft_contracts::bindings::TestToken;
    let deployer = signer(0)?;
    let account = world.create_account(token).await?;
    let usd = world.deployment.market()?.quote_token;
    let profit = U256::from(250_000_000_000_000_000_001u128);
    TestToken::new(usd, world.provider(&deployer))
        .transfer(account, profit)
        .send()
        .await?
        .get_receipt()
        .await?;
    let balance = |who| {
        let token = TestToken::new(usd, reader.clone());
        async move { token.balanceOf(who).call().await }
    };
    let bob_before = balance(bob.address()).await?;
    // Only the owner (or the agent) can move the account's funds.
    assert!(
        settle(
            &reader,
            splitter,
            &split,
            usd,
            profit,
            Payer::AgentAccount(account)
        )
        .await
        .is_err(),
        "a stranger cannot pay from the agent's account"
    );
    let settlement = settle(
        &world.provider(&bob),
        splitter,
        &split,
        usd,
        profit,
        Payer::AgentAccount(account),
    )
    .await?;
    assert_eq!(settlement.credits, credits(&split, profit));
    assert!(balance(account).await?.is_zero(), "the account paid it all");
    assert_eq!(
        balance(bob.address()).await?,
        bob_before,
        "bob's wallet paid nothing"
    );
    assert_eq!(
        owed(&reader, splitter, carol.address(), usd).await?,
        credits(&split, profit)[1].amount
    );
    Ok(())
}

/// A real swap on the dev market by the deployer (who holds both test tokens): a receipt with
/// the two ERC-20 transfers a trade record names. Returns (tx, token_in, token_out, amount_in,
/// amount_out).
async fn real_token_transfers(
    world: &World,
) -> anyhow::Result<(
    B256,
    alloy::primitives::Address,
    alloy::primitives::Address,
    U256,
    U256,
)> {
    use inft_contracts::bindings::UniswapV2Router02;
    let m = world.deployment.market()?;
    let amount_in = U256::from(10u64).pow(U256::from(18u64));
    let path = vec![m.quote_token, m.base_token];
    let amounts = UniswapV2Router02::new(m.router, world.reader())
        .getAmountsOut(amount_in, path)
        .call()
        .await?;
    let amount_out = amounts[1];
    let receipt = world.swap(m.quote_token, amount_in).await?;
    Ok((
        receipt.transaction_hash,
        m.quote_token,
        m.base_token,
        amount_in,
        amount_out,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexer_resumes_in_small_ranges_and_rewinds_a_reorganised_chain() -> anyhow::Result<()> {
    use agent_runtime::indexer::IndexerConfig;
    use inft_contracts::bindings::{AgentNFT, IAgentNFT};

    let world = World::start().await?;
    let db = Db::open(world.dir.path().join("index.db")).await?;
    let reader = world.reader();
    let d = &world.deployment;
    // Three blocks per request: the history is read in many ranges.
    let indexer = Indexer::new(
        reader.clone(),
        d.chain_id,
        d.agent_nft,
        d.action_log,
        d.start_block,
    )
    .with_config(IndexerConfig {
        max_range: 3,
        reorg_depth: 64,
    });
    indexer.sync(&db).await?;

    let snapshot: U256 = reader.raw_request("evm_snapshot".into(), ()).await?;
    let dave = world
        .chain
        .signer(4)
        .ok_or_else(|| anyhow::anyhow!("no dev account"))?;
    let nft = AgentNFT::new(d.agent_nft, world.provider(&dave));
    let salt = alloy::primitives::aliases::U96::from(1u64);
    let token = nft.tokenIdFor(dave.address(), salt).call().await?;
    let data = IAgentNFT::DataEntries {
        dataHashes: vec![B256::repeat_byte(0xd1)],
        sealedKeys: vec![vec![1u8; 8].into()],
        uris: vec!["inft-local://x".into()],
    };
    let shares = IAgentNFT::Shares {
        royaltyBps: 0,
        creatorBps: 0,
        contributors: vec![],
        contributorBps: vec![],
    };
    nft.mint(
        dave.address(),
        salt,
        data,
        dave.address(),
        shares,
        B256::repeat_byte(0x6d),
    )
    .send()
    .await?
    .get_receipt()
    .await?;
    let report = indexer.sync(&db).await?;
    assert!(!report.rewound);
    let events = db
        .chain_events_for_token(d.chain_id, d.agent_nft, token)
        .await?;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["Transfer", "DataSet", "AgentSet"]);
    // Nothing new: a second sync writes nothing.
    assert_eq!(indexer.sync(&db).await?.events, 0);

    // The chain drops the mint and grows other blocks in its place.
    let reverted: bool = reader.raw_request("evm_revert".into(), (snapshot,)).await?;
    assert!(reverted);
    for _ in 0..3 {
        let _: serde_json::Value = reader.raw_request("evm_mine".into(), ()).await?;
    }
    let report = indexer.sync(&db).await?;
    assert!(report.rewound, "the reorganisation is detected");
    assert!(
        db.chain_events_for_token(d.chain_id, d.agent_nft, token)
            .await?
            .is_empty(),
        "events of replaced blocks are gone"
    );
    Ok(())
}

/// M1: the record hash does not cover the signature. Anyone who could PUT to the gateway
/// replaced an honest record's signature with another key's, and the audit then blamed the
/// agent (`WrongSigner`), with no way back. Now the gateway refuses the swap; a swap behind its
/// back (its disk, its operator) is reported as the store's, and the runtime restores its copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_replaced_at_the_gateway_is_refused_reported_as_the_stores_and_restored()
-> anyhow::Result<()> {
    use agent_runtime::audit::restore_records;
    use agent_runtime::blobstore::gateway;
    use agent_runtime::blobstore::records::record_hex;

    let world = World::start().await?;
    let auditor = Auditor::new(&world).await?;
    let gw = gateway::serve((*auditor.records).clone(), "127.0.0.1:0".parse()?).await?;
    let (token, key) = minted_agent(&world, 76).await?;
    // The runtime: its own database, publishing each record before logging its hash.
    let runtime_db = Db::open(world.dir.path().join("runtime.db")).await?;
    let outbox = Outbox::publishing(
        runtime_db.clone(),
        Arc::new(AlloyChainLog::new(
            world.provider(&key),
            world.deployment.start_block,
        )),
        auditor.records.clone(),
        OutboxConfig::default(),
    );
    let log = world.log_id(token);
    let mut signed = Vec::new();
    for i in 1..=3 {
        signed.push(outbox.append(&log, draft(i), &key).await?);
    }
    outbox.flush(&log).await?;
    assert!(auditor.audit(&world, token).await?.is_clean());

    // The attacker PUTs record 2 with its own signature over the same record (same hash).
    let intruder = PrivateKeySigner::random();
    let forged = signed[1].record().clone().sign(&intruder)?;
    assert_eq!(forged.record_hash(), signed[1].record_hash());
    let url = format!(
        "{}/record/{}",
        gw.base_url(),
        record_hex(&forged.record_hash())
    );
    let status = reqwest::Client::new()
        .put(&url)
        .body(forged.to_envelope_json()?)
        .send()
        .await?
        .status();
    assert_eq!(
        status.as_u16(),
        409,
        "the gateway keeps the honest signature"
    );
    let report = auditor.audit(&world, token).await?;
    assert!(report.is_clean(), "{:?}", report.findings);

    // The swap made on the gateway's disk: reported as the store's copy, the agent not blamed.
    std::fs::write(
        auditor.records.record_path(&forged.record_hash()),
        forged.to_envelope_json()?,
    )?;
    let report = auditor.audit(&world, token).await?;
    assert_eq!(
        report.findings,
        vec![Finding::SignatureUnverified {
            seq: 2,
            expected: key.address(),
            actual: intruder.address(),
            logged_by: key.address(),
        }],
        "{:?}",
        report.findings
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::WrongSigner { .. })),
        "the agent is not blamed"
    );

    // The runtime still has its signed record: it puts it back, and the audit is clean again.
    let restored = restore_records(&runtime_db, auditor.records.as_ref(), &report).await?;
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].seq, 2);
    assert!(restored[0].outcome.is_ok(), "{restored:?}");
    let report = auditor.audit(&world, token).await?;
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.actions[1].signer, Some(key.address()));
    gw.shutdown().await?;
    Ok(())
}

/// The storage slot of `AgentNFT._grants[token][user]`, found by its value (the grant is one
/// slot): a mapping of mappings at some base slot, whatever the contract's layout is.
async fn grant_slot(
    reader: &DynProvider,
    nft: alloy::primitives::Address,
    token: U256,
    user: alloy::primitives::Address,
) -> anyhow::Result<U256> {
    use alloy::sol_types::SolValue;
    for base in 0u64..64 {
        let inner = alloy::primitives::keccak256((token, U256::from(base)).abi_encode());
        let slot = alloy::primitives::keccak256((user, inner).abi_encode());
        let slot = U256::from_be_bytes(slot.0);
        if !reader.get_storage_at(nft, slot).await?.is_zero() {
            return Ok(slot);
        }
    }
    anyhow::bail!("no storage slot holds the grant of {user}")
}

/// L9: the audit ignored grant expiry and revocation. A log by a grantee whose grant was
/// revoked, or had expired at the block, is reported. The contract refuses such a log, so the
/// test stands in for a contract that did not (the grant is put back into storage behind the
/// events' back): the audit reads the events, not the contract's word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_by_a_grantee_after_its_grant_was_revoked_or_had_expired_are_reported()
-> anyhow::Result<()> {
    use inft_contracts::bindings::AgentNFT;

    let world = World::start().await?;
    let auditor = Auditor::new(&world).await?;
    let (token, key) = minted_agent(&world, 77).await?;
    // After the mint: each actor handle keeps its own nonce.
    let alice = world.actor(1).await?;
    let grantee = PrivateKeySigner::random();
    let fund = alloy::rpc::types::TransactionRequest::default()
        .to(grantee.address())
        .value(U256::from(10u64).pow(U256::from(18u64)));
    alice
        .nft
        .provider()
        .send_transaction(fund)
        .await?
        .get_receipt()
        .await?;
    let nft = AgentNFT::new(world.deployment.agent_nft, alice.nft.provider().clone());
    let reader = world.reader();
    let authorize = |expiry: u64| {
        let nft = nft.clone();
        let user = grantee.address();
        async move {
            let receipt = nft
                .authorize(token, user, scopes::LOG, expiry, vec![])
                .send()
                .await?
                .get_receipt()
                .await?;
            anyhow::ensure!(receipt.status(), "authorize reverted");
            Ok::<_, anyhow::Error>(())
        }
    };
    let set_storage = |slot: U256, value: B256| {
        let reader = reader.clone();
        let nft = world.deployment.agent_nft;
        async move {
            let _: serde_json::Value = reader
                .raw_request("anvil_setStorageAt".into(), (nft, B256::from(slot), value))
                .await?;
            Ok::<_, anyhow::Error>(())
        }
    };
    let log_one = |signer: PrivateKeySigner, seq: u64, hash: B256| {
        let world = &world;
        async move {
            let receipt = ActionLog::new(world.deployment.action_log, world.provider(&signer))
                .logActions(token, seq, vec![hash])
                .send()
                .await?
                .get_receipt()
                .await?;
            anyhow::ensure!(receipt.status(), "logActions reverted");
            Ok::<_, anyhow::Error>(())
        }
    };
    // Records 1 (the agent's) and 2, 3, 4 (the grantee's, signed with its own key).
    let recs = build_records(&world, &auditor, token, 4, |seq| {
        if seq == 1 {
            key.clone()
        } else {
            grantee.clone()
        }
    })
    .await?;
    let hash = |i: usize| recs[i].record_hash();
    let far = world.chain_time().await? + 1_000_000;

    // Seq 1 by the agent, seq 2 by the grantee while its grant holds: both fine.
    authorize(far).await?;
    let slot = grant_slot(
        &reader,
        world.deployment.agent_nft,
        token,
        grantee.address(),
    )
    .await?;
    let valid = reader
        .get_storage_at(world.deployment.agent_nft, slot)
        .await?;
    log_one(key.clone(), 1, hash(0)).await?;
    log_one(grantee.clone(), 2, hash(1)).await?;
    let report = auditor.audit(&world, token).await?;
    assert!(report.is_clean(), "{:?}", report.findings);

    // Revoked, yet logging seq 3 (the grant put back into storage behind the events' back).
    nft.revoke(token, grantee.address())
        .send()
        .await?
        .get_receipt()
        .await?;
    set_storage(slot, B256::from(valid)).await?;
    log_one(grantee.clone(), 3, hash(2)).await?;

    // Granted again, for a short time that runs out; seq 4 logged after it expired.
    let soon = world.chain_time().await? + 100;
    authorize(soon).await?;
    world.advance_time(200).await?;
    set_storage(slot, B256::from(valid)).await?;
    log_one(grantee.clone(), 4, hash(3)).await?;

    let report = auditor.audit(&world, token).await?;
    let found: Vec<(u64, &str)> = report
        .findings
        .iter()
        .map(|f| match f {
            Finding::UnauthorizedLogger { seq, reason, .. } if reason.contains("revoked") => {
                (*seq, "revoked")
            }
            Finding::UnauthorizedLogger { seq, reason, .. } if reason.contains("expired") => {
                (*seq, "expired")
            }
            Finding::WrongSigner { seq, .. } => (*seq, "signer"),
            other => (other.seq(), "other"),
        })
        .collect();
    assert_eq!(
        found,
        vec![(3, "revoked"), (3, "signer"), (4, "expired"), (4, "signer")],
        "{:?}",
        report.findings
    );
    assert!(report.actions[0].ok && report.actions[1].ok);
    assert!(
        report.findings[0]
            .to_string()
            .contains(&grantee.address().to_string()),
        "{}",
        report.findings[0]
    );
    Ok(())
}
