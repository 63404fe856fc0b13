//! Issue 15's must-show: proof of creatorship anyone can check. A creative agent writes three
//! pieces; they are exported with proof bundles; a verifier with nothing but an RPC endpoint
//! checks each; a lookup by text through a gateway finds each piece (whole, or its poem alone);
//! an edited copy is unknown;
//! bundles altered in their signature, record, transaction or token are refused, each for its
//! own reason; and a piece written before the agent key was replaced still verifies against the
//! key of its time.

use std::sync::Arc;

use agent_runtime::audit::html::html_report_linked;
use agent_runtime::audit::{AuditReport, AuditTarget, audit_token};
use agent_runtime::blobstore::records::piece_text;
use agent_runtime::blobstore::{BlobStore, HttpGatewayStore, LocalDirStore, gateway};
use agent_runtime::db::Db;
use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
use agent_runtime::provenance::{
    Contracts, CreativePiece, ProofBundle, ProvenanceError, bundle_file_name, creation_digest,
    creations, exported_pieces, find_by_content, piece_file_name, verify_bundle, write_piece,
};
use agent_runtime::record::{SignedRecord, content_hash};
use agent_runtime::transfer::rekey::{AgentKeyRotation, rekey_token};
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::scopes;
use inft_runtime::OpenedAgent;
use inft_runtime::run_steps;
use sealing::SealOptions;
use strategies::creative::CreativeStrategy;

use crate::world::{Actor, World};

/// The opened agent of `token` and its key (the owner unseals it).
async fn open_with_key(
    world: &World,
    owner: &Actor,
    token: U256,
) -> anyhow::Result<(OpenedAgent, PrivateKeySigner)> {
    let opened = world.open(owner, token, scopes::RUN).await?;
    let key = opened
        .agent
        .agent_key
        .clone()
        .expect("the owner unseals the agent key");
    Ok((opened, key))
}

/// Runs the opened creative agent of `token` for `steps` steps, signing with `key` and
/// publishing each record to `records` before its hash goes on chain.
async fn write_pieces(
    world: &World,
    opened: &OpenedAgent,
    token: U256,
    key: PrivateKeySigner,
    records: Arc<dyn BlobStore>,
    steps: u64,
    db_name: &str,
) -> anyhow::Result<()> {
    let (mut session, _) = world.session(opened, token, key.clone(), db_name).await?;
    let outbox = Outbox::publishing(
        Db::open(world.dir.path().join(format!("publishing-{db_name}"))).await?,
        Arc::new(AlloyChainLog::new(
            world.provider(&key),
            world.deployment.start_block,
        )),
        records,
        OutboxConfig::default(),
    );
    let mut strategy = CreativeStrategy::new("Write a short poem about the sea.");
    let run = run_steps(&mut session, &mut strategy, &outbox, steps, |_| {}).await?;
    assert_eq!(run.steps.len() as u64, steps);
    Ok(())
}

/// What `inft creations` does: index the chain, audit the token, list its pieces with bundles.
async fn audit_and_list(
    world: &World,
    db: &Db,
    records: &dyn BlobStore,
    token: U256,
) -> anyhow::Result<(AuditReport, Vec<CreativePiece>)> {
    world.index(db).await?;
    let d = &world.deployment;
    let target = AuditTarget {
        chain_id: d.chain_id,
        agent_nft: d.agent_nft,
        action_log: d.action_log,
        token_id: token,
    };
    let report = audit_token(&world.reader(), db, records, &target).await?;
    assert!(report.is_clean(), "{:?}", report.findings);
    let pieces = creations(&report, records).await?;
    Ok((report, pieces))
}

/// Replaces one word of `text` (the first run of letters of at least three).
fn edit_one_word(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3 && *w != "title" && *w != "text")
        .collect();
    let word = words.first().copied().unwrap_or("title");
    text.replacen(word, "zebra", 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_are_exported_verified_with_only_an_rpc_found_by_text_and_alterations_refused()
-> anyhow::Result<()> {
    let world = World::start().await?;
    let public = LocalDirStore::open(world.dir.path().join("public"))?;
    let gw = gateway::serve(public, "127.0.0.1:0".parse()?).await?;
    // The runtime publishes through the gateway, which indexes each record by content.
    let publisher = HttpGatewayStore::new(&gw.base_url(), world.dir.path().join("runtime-cache"))?;
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, 150).await?;
    let token = minted.token_id;
    let (opened, key) = open_with_key(&world, &alice, token).await?;
    write_pieces(
        &world,
        &opened,
        token,
        key,
        Arc::new(publisher),
        3,
        "poet.db",
    )
    .await?;

    // `inft creations --out DIR`, by someone else: an indexer database and the gateway.
    let owner_db = Db::open(world.dir.path().join("owner.db")).await?;
    let owner_view = HttpGatewayStore::new(&gw.base_url(), world.dir.path().join("owner-cache"))?;
    let (report, pieces) = audit_and_list(&world, &owner_db, &owner_view, token).await?;
    assert_eq!(pieces.len(), 3, "{pieces:?}");
    let out = world.dir.path().join("pieces");
    for (piece, seq) in pieces.iter().zip(1..) {
        assert_eq!(piece.seq, seq);
        assert!(piece.audited_ok && piece.problem.is_none(), "{piece:?}");
        assert!(piece.title.is_some(), "the creative details give a title");
        assert_eq!(piece.content_hash, content_hash(piece.content.as_bytes()));
        let files = write_piece(&out, piece)?;
        assert_eq!(
            files,
            vec![
                out.join(piece_file_name(seq)),
                out.join(bundle_file_name(seq))
            ]
        );
    }

    // A fresh verifier: nothing but the two files and an RPC endpoint.
    let rpc = world.reader();
    let trusted = Contracts::from(&world.deployment);
    let mut bundles = Vec::new();
    for piece in &pieces {
        let bundle =
            ProofBundle::from_json(&std::fs::read(out.join(bundle_file_name(piece.seq)))?)?;
        let content = std::fs::read(out.join(piece_file_name(piece.seq)))?;
        let v = verify_bundle(&rpc, &bundle, content_hash(&content), None).await?;
        assert_eq!(v.token_id, token);
        assert_eq!(v.agent, minted.agent);
        assert_eq!(v.owner, alice.address());
        assert_eq!(v.seq, piece.seq);
        assert_eq!(v.title, piece.title);
        assert_eq!(v.block_number, piece.block_number);
        assert!(v.block_time > 0);
        assert_eq!(v.model_hash, v.committed_model_hash);
        assert_eq!(hex::encode(v.model_hash), world.model_sha256);
        assert!(!v.deployment_pinned);
        assert!(
            verify_bundle(&rpc, &bundle, content_hash(&content), Some(&trusted))
                .await?
                .deployment_pinned
        );
        bundles.push(bundle);
    }

    // `inft provenance --text`: each piece found by its text through the gateway, from a
    // database that only indexed the chain.
    let looker_db = Db::open(world.dir.path().join("looker.db")).await?;
    let looker = HttpGatewayStore::new(&gw.base_url(), world.dir.path().join("looker-cache"))?;
    world.index(&looker_db).await?;
    for piece in &pieces {
        let found = find_by_content(
            &rpc,
            &looker_db,
            &looker,
            &trusted,
            content_hash(piece.content.as_bytes()),
        )
        .await?;
        assert_eq!(found.len(), 1, "{found:?}");
        let v = found[0].verdict.as_ref().expect("verified");
        assert_eq!(
            (v.token_id, v.seq, v.agent),
            (token, piece.seq, minted.agent)
        );
        assert!(v.deployment_pinned);
        assert!(!found[0].text_only);

        // The poem alone, as found somewhere without its title, is found and verified too:
        // it is the `text` of the output the agent signed.
        let poem = piece_text(&piece.content).expect("a creative piece has a text");
        let found = find_by_content(
            &rpc,
            &looker_db,
            &looker,
            &trusted,
            content_hash(poem.as_bytes()),
        )
        .await?;
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].text_only);
        let v = found[0].verdict.as_ref().expect("verified");
        assert_eq!((v.seq, v.agent), (piece.seq, minted.agent));
        // One word changed in the poem alone: unknown.
        let edited = edit_one_word(&poem);
        assert_ne!(edited, poem);
        let found = find_by_content(
            &rpc,
            &looker_db,
            &looker,
            &trusted,
            content_hash(edited.as_bytes()),
        )
        .await?;
        assert!(found.is_empty(), "{found:?}");
    }

    // An edited copy (one word changed) is unknown, and refused against the bundle.
    let edited = edit_one_word(&pieces[0].content);
    assert_ne!(edited, pieces[0].content);
    let edited_hash = content_hash(edited.as_bytes());
    let found = find_by_content(&rpc, &looker_db, &looker, &trusted, edited_hash).await?;
    assert!(found.is_empty(), "{found:?}");
    let err = verify_bundle(&rpc, &bundles[0], edited_hash, None)
        .await
        .expect_err("edited content");
    assert!(
        matches!(err, ProvenanceError::ContentAltered { actual, .. } if actual == edited_hash),
        "{err}"
    );

    // Altered bundles: each refused for its own reason.
    let bundle = &bundles[0];
    let content = bundle.content_hash;
    let intruder = PrivateKeySigner::random();
    let refuse = async |b: &ProofBundle| {
        verify_bundle(&rpc, b, content, None)
            .await
            .expect_err("an altered bundle must be refused")
    };
    // The creation signature: another key's, over the very same creation.
    let mut b = bundle.clone();
    b.creator_signature = intruder
        .sign_hash_sync(&creation_digest(
            b.chain_id,
            b.agent_nft,
            b.token_id,
            content,
        ))?
        .as_bytes()
        .to_vec()
        .into();
    let err = refuse(&b).await;
    assert!(
        matches!(err, ProvenanceError::WrongSigner { what: "creation", expected, actual }
            if expected == minted.agent && actual == Some(intruder.address())),
        "{err}"
    );
    // The record's signature (not covered by the record hash): someone else's.
    let signed = SignedRecord::from_envelope_json(&serde_json::to_vec(&bundle.record)?)?;
    let mut b = bundle.clone();
    b.record = serde_json::from_slice(
        &signed
            .record()
            .clone()
            .sign(&intruder)?
            .to_envelope_json()?,
    )?;
    let err = refuse(&b).await;
    assert!(
        matches!(err, ProvenanceError::WrongSigner { what: "record", actual, .. } if actual == Some(intruder.address())),
        "{err}"
    );
    // The record: one field changed.
    let mut b = bundle.clone();
    b.record["record"]["timestamp_ms"] = serde_json::json!(signed.record().timestamp_ms + 1);
    assert!(
        matches!(refuse(&b).await, ProvenanceError::RecordAltered(_)),
        "record"
    );
    // The transaction: the mint's, which logs nothing (in its own block, or claimed in the
    // piece's), and a forged hash the chain does not know.
    let mint_block = rpc
        .get_transaction_receipt(minted.tx_hash)
        .await?
        .and_then(|r| r.block_number)
        .expect("the mint was mined");
    for (tx, block) in [
        (minted.tx_hash, mint_block),
        (minted.tx_hash, bundle.block_number),
        (B256::repeat_byte(0x42), bundle.block_number),
    ] {
        let mut b = bundle.clone();
        b.log_tx = tx;
        b.block_number = block;
        let err = refuse(&b).await;
        assert!(
            matches!(&err, ProvenanceError::NotInTransaction { tx_hash, .. } if *tx_hash == tx),
            "{err}"
        );
    }
    // Another piece's transaction, when it was logged in another one: another hash at that seq.
    if let Some(other) = bundles.iter().find(|o| o.log_tx != bundle.log_tx) {
        let mut b = bundle.clone();
        b.log_tx = other.log_tx;
        b.block_number = other.block_number;
        assert!(matches!(
            refuse(&b).await,
            ProvenanceError::NotInTransaction { .. }
        ));
    }
    // The token: another one.
    let mut b = bundle.clone();
    b.token_id = token + U256::from(1);
    assert!(
        matches!(refuse(&b).await, ProvenanceError::WrongToken { bundle, .. } if bundle == token + U256::from(1)),
        "token"
    );
    // Another deployment than the one trusted.
    let elsewhere = Contracts {
        action_log: world.deployment.earnings_splitter,
        ..trusted
    };
    assert!(matches!(
        verify_bundle(&rpc, bundle, content, Some(&elsewhere))
            .await
            .expect_err("not the trusted deployment"),
        ProvenanceError::ForeignDeployment(_)
    ));

    // The audit's HTML report links each creative action to its exported piece.
    let linked = exported_pieces(&out, &report);
    assert_eq!(linked.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    let hrefs = linked
        .keys()
        .map(|seq| (*seq, format!("pieces/{}", piece_file_name(*seq))))
        .collect();
    let html = html_report_linked(&report, None, &hrefs);
    assert_eq!(html.matches("exported piece</a>").count(), 3);
    assert!(html.contains("href=\"pieces/piece-2.proof.json\""));
    gw.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_written_before_a_key_rotation_and_a_transfer_verifies_against_the_key_of_its_time()
-> anyhow::Result<()> {
    let world = World::start().await?;
    let public: Arc<LocalDirStore> =
        Arc::new(LocalDirStore::open(world.dir.path().join("public"))?);
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, 151).await?;
    let token = minted.token_id;
    let (opened, old_key) = open_with_key(&world, &alice, token).await?;
    write_pieces(
        &world,
        &opened,
        token,
        old_key,
        public.clone(),
        1,
        "before.db",
    )
    .await?;

    // `setAgent`: the owner replaces the agent key (`inft keys rotate`).
    let rekeyed = rekey_token(
        &alice.nft,
        world.store.as_ref(),
        token,
        &alice.secret,
        &alice.secret,
        AgentKeyRotation::Replace,
        &SealOptions::default(),
    )
    .await?;
    let (new_agent, _) = rekeyed.new_agent.expect("a new agent key");
    assert_ne!(new_agent, minted.agent);
    assert_eq!(alice.nft.state(token).await?.agent, new_agent);

    let db = Db::open(world.dir.path().join("owner.db")).await?;
    let (_, pieces) = audit_and_list(&world, &db, public.as_ref(), token).await?;
    assert_eq!(pieces.len(), 1);
    let bundle = pieces[0].bundle.clone().expect("a bundle");
    assert_eq!(
        pieces[0].content_hash,
        content_hash(pieces[0].content.as_bytes())
    );
    let rpc = world.reader();
    let v = verify_bundle(&rpc, &bundle, bundle.content_hash, None).await?;
    assert_eq!(v.agent, minted.agent, "the agent key of that time");
    assert_ne!(v.agent, new_agent);

    // Today's key claiming the old piece is refused: it was not the agent then.
    let (_, new_key) = open_with_key(&world, &alice, token).await?;
    assert_eq!(new_key.address(), new_agent);
    let mut claimed = bundle.clone();
    claimed.creator_signature = new_key
        .sign_hash_sync(&creation_digest(
            bundle.chain_id,
            bundle.agent_nft,
            token,
            bundle.content_hash,
        ))?
        .as_bytes()
        .to_vec()
        .into();
    let err = verify_bundle(&rpc, &claimed, bundle.content_hash, None)
        .await
        .expect_err("today's key did not write it");
    assert!(
        matches!(err, ProvenanceError::WrongSigner { what: "creation", expected, actual }
            if expected == minted.agent && actual == Some(new_agent)),
        "{err}"
    );
    // And the lookup by content finds it, attributed to the old key.
    let found = find_by_content(
        &rpc,
        &db,
        public.as_ref(),
        &Contracts::from(&world.deployment),
        bundle.content_hash,
    )
    .await?;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].verdict.as_ref().map(|v| v.agent).ok(),
        Some(minted.agent)
    );

    // A transfer to bob (receiver-verified, keys rotated, a new agent again): the piece still
    // verifies against the agent of its time, and its owner then was alice, not bob.
    let bob = world.actor(2).await?;
    world.transfer(&alice, &bob, token).await?;
    let state = bob.nft.state(token).await?;
    assert_eq!(state.owner, bob.address());
    assert_ne!(state.agent, minted.agent);
    assert_ne!(state.agent, new_agent);
    let v = verify_bundle(&rpc, &bundle, bundle.content_hash, None).await?;
    assert_eq!(v.agent, minted.agent, "the agent key of that time");
    assert_eq!(v.owner, alice.address(), "the owner at that block");
    Ok(())
}
