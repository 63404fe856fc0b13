//! Issue 5: transfers in both proof modes on anvil — mint → run → transfer → the new owner runs
//! and logs, the old owner and the old agent key are locked out — and every refused proof and
//! interrupted step leaves the token usable by its current owner.

use std::num::NonZeroU32;
use std::sync::Arc;

use agent_runtime::pipeline::open_keys;
use agent_runtime::token::TokenError;
use agent_runtime::transfer::oracle::{
    OracleLimits, OracleService, RotateRequest, request_rotation, rotate_request_digest,
};
use agent_runtime::transfer::{
    Completed, Offer, SignedRotation, TransferError, accept_offer, complete_transfer, make_offer,
    submit_transfer,
};
use alloy::primitives::{Bytes, U256, keccak256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use inft_contracts::bindings::{ActionLog, AgentNFT, TransferVerifier};
use inft_contracts::{ContractRevert, ProofMode, proof_domain, scopes};
use inft_runtime::run_steps;
use sealing::SealOptions;
use strategies::creative::CreativeStrategy;

use crate::world::{Actor, ORACLE_ACCOUNT, World};

fn revert(err: &TransferError) -> Option<&ContractRevert> {
    match err {
        TransferError::Token(TokenError::Revert(r)) => Some(r),
        _ => None,
    }
}

fn is_verifier_error(
    err: &TransferError,
    pick: fn(&TransferVerifier::TransferVerifierErrors) -> bool,
) -> bool {
    matches!(revert(err), Some(ContractRevert::Verifier(e)) if pick(e))
}

/// Opens `token` as `actor`, runs `steps` creative steps with the unsealed agent key, and returns
/// the agent's address.
async fn run_agent(
    world: &World,
    actor: &Actor,
    token: U256,
    steps: u64,
    db: &str,
) -> anyhow::Result<alloy::primitives::Address> {
    let opened = world.open(actor, token, scopes::RUN).await?;
    let agent = opened
        .agent
        .agent_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner gets the agent key"))?;
    let (mut session, outbox) = world.session(&opened, token, agent.clone(), db).await?;
    let action_log = ActionLog::new(world.deployment.action_log, world.provider(&agent));
    let before = action_log.chainOf(token).call().await?.seq;
    let mut strategy = CreativeStrategy::new("Write a short poem about the sea.");
    let report = run_steps(&mut session, &mut strategy, &outbox, steps, |_| {}).await?;
    assert_eq!(report.steps.len() as u64, steps);
    // run_steps returns once every record is confirmed on chain.
    let after = action_log.chainOf(token).call().await?.seq;
    assert_eq!(after, before + steps, "{:?}", report.flush);
    Ok(agent.address())
}

/// A confirmed transfer, as the checks after it need it.
struct Handover<'a> {
    token: U256,
    /// The agent key before the transfer.
    old_agent: &'a PrivateKeySigner,
    /// The new agent wallet.
    new_agent: alloy::primitives::Address,
    completed: &'a Completed,
    /// Actions the old owner logged.
    logged_before: u64,
}

/// After a transfer from `old` to `new`: the new owner runs the agent (with the swept gas money)
/// and logs; the old owner unseals nothing of the new data; the old agent key can no longer log.
async fn check_handover(
    world: &World,
    old: &Actor,
    new: &Actor,
    handover: Handover<'_>,
) -> anyhow::Result<()> {
    let Handover {
        token,
        old_agent,
        new_agent,
        completed,
        logged_before,
    } = handover;
    let state = new.nft.state(token).await?;
    assert_eq!(state.owner, new.address());
    assert_eq!(state.agent, new_agent);
    let (swept, _) = completed.swept.expect("the old agent wallet held ETH");
    let provider = new.nft.provider();
    assert_eq!(provider.get_balance(new_agent).await?, swept);
    assert!(
        provider.get_balance(old_agent.address()).await? < U256::from(10u64).pow(U256::from(15u64))
    );

    let ran = run_agent(world, new, token, 2, &format!("{}-new.db", token)).await?;
    assert_eq!(ran, new_agent);
    let action_log = ActionLog::new(world.deployment.action_log, world.provider(old_agent));
    let seq = action_log.chainOf(token).call().await?.seq;
    assert_eq!(
        seq,
        logged_before + 2,
        "the old owner's actions, then the new owner's"
    );

    // The old owner can open none of the new keys, and is refused before any fetch.
    let entries = new.nft.entries_for(token, new.address()).await?;
    let token_ref = new.nft.token_ref(token);
    assert!(open_keys(&entries, &old.secret, &token_ref).is_err());
    assert!(open_keys(&entries, &new.secret, &token_ref).is_ok());
    assert!(world.open(old, token, scopes::RUN).await.is_err());

    // The old agent key can no longer log actions.
    let err = action_log
        .logActions(token, seq + 1, vec![keccak256("late")])
        .call()
        .await
        .expect_err("the old agent is no longer the token's agent");
    assert!(
        inft_contracts::revert_of(&err).is_some(),
        "typed revert: {err}"
    );
    Ok(())
}

/// The old agent key, as the current owner unseals it.
async fn agent_key(world: &World, owner: &Actor, token: U256) -> anyhow::Result<PrivateKeySigner> {
    let opened = world.open(owner, token, scopes::RUN).await?;
    opened
        .agent
        .agent_key
        .ok_or_else(|| anyhow::anyhow!("the owner gets the agent key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_verified_transfer_moves_the_agent_and_locks_out_the_old_owner()
-> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let carol = world.actor(3).await?;
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let minted = world.mint_creative(&alice, 1).await?;
    let other = world.mint_creative(&alice, 2).await?;
    let token = minted.token_id;
    run_agent(&world, &alice, token, 2, "alice.db").await?;
    let old_agent = agent_key(&world, &alice, token).await?;

    // Step 1: the offer, through its JSON form. Interrupted here: alice still runs her agent.
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
    let offer: Offer = serde_json::from_str(&serde_json::to_string_pretty(&offer)?)?;
    run_agent(&world, &alice, token, 1, "alice.db").await?;

    // An offer to bob is refused by carol, and a tampered offer is refused by bob.
    let now = world.chain_time().await?;
    let err = accept_offer(
        &carol.nft,
        store,
        &offer,
        &carol.wallet,
        &carol.secret,
        now,
        &opts,
    )
    .await
    .expect_err("not carol's offer");
    assert!(matches!(err, TransferError::Mismatch(_)), "{err}");
    let swapped = Offer {
        model: offer.config.clone(),
        ..offer.clone()
    };
    assert!(
        accept_offer(
            &bob.nft,
            store,
            &swapped,
            &bob.wallet,
            &bob.secret,
            now,
            &opts
        )
        .await
        .is_err(),
        "a sealed key for another blob does not open"
    );

    // Step 2: bob verifies and accepts. Interrupted here: alice still runs her agent.
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
    let signed: SignedRotation = serde_json::from_str(&serde_json::to_string(&signed)?)?;
    assert_eq!(signed.mode, ProofMode::Receiver);
    run_agent(&world, &alice, token, 1, "alice.db").await?;

    // Refused proofs change nothing: signed by the wrong party, for another token, expired.
    let verifier = AgentNFT::new(world.deployment.agent_nft, alice.nft.provider())
        .verifier()
        .call()
        .await?;
    let hash = offer
        .rotation(&signed.agent_key, signed.new_agent)
        .signing_hash(
            ProofMode::Receiver,
            &proof_domain(world.deployment.chain_id, verifier),
        );
    let forged = SignedRotation {
        signature: Bytes::from(carol.wallet.sign_hash_sync(&hash)?.as_bytes().to_vec()),
        ..signed.clone()
    };
    let err = complete_transfer(&alice.nft, store, &alice.secret, &offer, &forged, &opts)
        .await
        .expect_err("wrong signer");
    assert!(
        is_verifier_error(&err, |e| matches!(
            e,
            TransferVerifier::TransferVerifierErrors::InvalidSignature(_)
        )),
        "{err}"
    );
    let for_other = Offer {
        token_id: other.token_id,
        old_data_hashes: alice.nft.state(other.token_id).await?.data_hashes,
        ..offer.clone()
    };
    let err = submit_transfer(&alice.nft, &for_other, &signed)
        .await
        .expect_err("another token");
    assert!(
        is_verifier_error(&err, |e| matches!(
            e,
            TransferVerifier::TransferVerifierErrors::InvalidSignature(_)
        )),
        "{err}"
    );
    let short = make_offer(
        &alice.nft,
        store,
        token,
        &alice.secret,
        bob.address(),
        world.chain_time().await? + 60,
        &opts,
    )
    .await?;
    let short_signed = accept_offer(
        &bob.nft,
        store,
        &short,
        &bob.wallet,
        &bob.secret,
        world.chain_time().await?,
        &opts,
    )
    .await?;
    world.advance_time(120).await?;
    let err = submit_transfer(&alice.nft, &short, &short_signed)
        .await
        .expect_err("expired");
    assert!(
        revert(&err).is_some(),
        "typed revert for an expired proof: {err}"
    );
    // The receiver too refuses an offer past its deadline.
    let err = accept_offer(
        &bob.nft,
        store,
        &short,
        &bob.wallet,
        &bob.secret,
        world.chain_time().await?,
        &opts,
    )
    .await
    .expect_err("expired offer");
    assert!(matches!(err, TransferError::Mismatch(_)), "{err}");

    // Nothing was lost: alice still owns the token and runs her agent with the same key.
    assert_eq!(alice.nft.state(token).await?.owner, alice.address());
    assert_eq!(
        run_agent(&world, &alice, token, 1, "alice.db").await?,
        minted.agent
    );

    // The transfer itself (the first offer is still live: refused attempts burn no nonce).
    let completed =
        complete_transfer(&alice.nft, store, &alice.secret, &offer, &signed, &opts).await?;
    println!(
        "transferWithProof (3 entries, receiver-verified): gas {}",
        completed.transfer.gas_used
    );

    // A replayed acceptance is refused.
    let err = submit_transfer(&alice.nft, &offer, &signed)
        .await
        .expect_err("replay");
    assert!(revert(&err).is_some(), "typed revert for a replay: {err}");

    let handover = Handover {
        token,
        old_agent: &old_agent,
        new_agent: signed.new_agent,
        completed: &completed,
        logged_before: 5,
    };
    check_handover(&world, &alice, &bob, handover).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_attested_transfer_moves_the_agent_and_locks_out_the_old_owner() -> anyhow::Result<()>
{
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let carol = world.actor(3).await?;
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let minted = world.mint_creative(&alice, 1).await?;
    let other = world.mint_creative(&alice, 2).await?;
    let token = minted.token_id;
    run_agent(&world, &alice, token, 2, "alice.db").await?;
    let old_agent = agent_key(&world, &alice, token).await?;
    let deadline = world.chain_time().await? + 3600;

    // The oracle is down: a clear error, and alice's agent is untouched.
    let err = request_rotation(
        &alice.nft,
        "http://127.0.0.1:9",
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        deadline,
    )
    .await
    .expect_err("no oracle there");
    assert!(matches!(err, TransferError::Oracle(_)), "{err}");

    let service = Arc::new(OracleService::new(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        opts,
    ));
    let server = service.serve("127.0.0.1:0".parse()?).await?;
    let url = server.base_url();

    // An account that is not a registered oracle is refused by the sender before submitting.
    let impostor_account = world.actor(3).await?;
    let impostor = Arc::new(OracleService::new(
        impostor_account.wallet,
        impostor_account.secret,
        impostor_account.nft,
        world.store.clone(),
        opts,
    ));
    let impostor_server = impostor.serve("127.0.0.1:0".parse()?).await?;
    let err = request_rotation(
        &alice.nft,
        &impostor_server.base_url(),
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        deadline,
    )
    .await
    .expect_err("carol is no oracle");
    assert!(
        matches!(err, TransferError::NotAnOracle(a) if a == carol.address()),
        "{err}"
    );
    // ...and so is her attestation on chain, should anyone submit it.
    let answer_by_carol = {
        // carol signs the attestation of a rotation the real oracle made
        let real = request_rotation(
            &alice.nft,
            &url,
            token,
            &alice.wallet,
            &alice.secret,
            bob.address(),
            deadline,
        )
        .await?;
        let verifier = AgentNFT::new(world.deployment.agent_nft, alice.nft.provider())
            .verifier()
            .call()
            .await?;
        let hash = real
            .offer
            .rotation(&real.signed.agent_key, real.signed.new_agent)
            .signing_hash(
                ProofMode::Oracle,
                &proof_domain(world.deployment.chain_id, verifier),
            );
        let mut forged = real.clone();
        forged.signed.signature =
            Bytes::from(carol.wallet.sign_hash_sync(&hash)?.as_bytes().to_vec());
        forged
    };
    let err = submit_transfer(&alice.nft, &answer_by_carol.offer, &answer_by_carol.signed)
        .await
        .expect_err("not an oracle's attestation");
    assert!(revert(&err).is_some(), "typed revert: {err}");

    // An attestation for token 1 used for another token.
    let answer = request_rotation(
        &alice.nft,
        &url,
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        deadline,
    )
    .await?;
    let for_other = Offer {
        token_id: other.token_id,
        old_data_hashes: alice.nft.state(other.token_id).await?.data_hashes,
        ..answer.offer.clone()
    };
    let err = submit_transfer(&alice.nft, &for_other, &answer.signed)
        .await
        .expect_err("another token");
    assert!(revert(&err).is_some(), "typed revert: {err}");

    // Past its deadline.
    let short = request_rotation(
        &alice.nft,
        &url,
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        world.chain_time().await? + 60,
    )
    .await?;
    world.advance_time(120).await?;
    let err = submit_transfer(&alice.nft, &short.offer, &short.signed)
        .await
        .expect_err("expired");
    assert!(revert(&err).is_some(), "typed revert: {err}");

    // Interrupted after the oracle answered and before submitting: nothing lost.
    assert_eq!(
        run_agent(&world, &alice, token, 1, "alice.db").await?,
        minted.agent
    );

    // The retried transfer goes through; the attestation cannot be replayed.
    let answer = request_rotation(
        &alice.nft,
        &url,
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        world.chain_time().await? + 3600,
    )
    .await?;
    assert_eq!(answer.signed.mode, ProofMode::Oracle);
    let completed = complete_transfer(
        &alice.nft,
        store,
        &alice.secret,
        &answer.offer,
        &answer.signed,
        &opts,
    )
    .await?;
    println!(
        "transferWithProof (3 entries, oracle-attested): gas {}",
        completed.transfer.gas_used
    );
    let err = submit_transfer(&alice.nft, &answer.offer, &answer.signed)
        .await
        .expect_err("replay");
    assert!(revert(&err).is_some(), "typed revert for a replay: {err}");
    server.shutdown().await?;
    impostor_server.shutdown().await?;

    let handover = Handover {
        token,
        old_agent: &old_agent,
        new_agent: answer.signed.new_agent,
        completed: &completed,
        logged_before: 3,
    };
    check_handover(&world, &alice, &bob, handover).await
}

/// Security L8: the oracle re-encrypts only for a token's owner, within limits. A stranger's
/// (or an unsigned) request is refused before any blob is read, an oversized body is refused
/// unread, and an owner over the hourly quota is told so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_refuses_strangers_oversized_bodies_and_owners_over_quota() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let carol = world.actor(3).await?;
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let token = world.mint_creative(&alice, 1).await?.token_id;
    let limits = OracleLimits {
        concurrent: 2,
        per_owner_per_hour: NonZeroU32::MIN,
        ..OracleLimits::default()
    };
    let service = Arc::new(OracleService::with_limits(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        SealOptions::default(),
        limits,
    ));
    let server = service.clone().serve("127.0.0.1:0".parse()?).await?;
    let url = server.base_url();
    let deadline = world.chain_time().await? + 3600;

    // carol asks for alice's token, signing as herself: refused, and no blob was fetched.
    let fetched = world.store.fetches();
    let mut request = signed_rotate_request(&world, token, carol.address(), deadline, &carol)?;
    let err = service
        .rotate(&request)
        .await
        .expect_err("carol is not the owner");
    assert!(
        matches!(err, TransferError::WrongSigner { expected, actual }
            if expected == alice.address() && actual == carol.address()),
        "{err}"
    );
    let client = reqwest::Client::new();
    let status = client
        .post(format!("{url}/v1/rotate"))
        .json(&request)
        .send()
        .await?
        .status();
    assert_eq!(status.as_u16(), 403);
    // alice's signature over another receiver does not carry over to carol.
    let mut for_bob = request.clone();
    for_bob.to = bob.address();
    request.owner_signature = Bytes::from(
        alice
            .wallet
            .sign_hash_sync(&rotate_request_digest(&for_bob))?
            .as_bytes()
            .to_vec(),
    );
    let err = service.rotate(&request).await.expect_err("signed for bob");
    assert!(matches!(err, TransferError::WrongSigner { .. }), "{err}");
    // Unsigned, or valid for longer than a day.
    request.owner_signature = Bytes::new();
    assert!(service.rotate(&request).await.is_err());
    request.deadline = U256::from(deadline + 2 * 86_400);
    assert!(matches!(
        service.rotate(&request).await,
        Err(TransferError::Mismatch(_))
    ));
    assert_eq!(
        world.store.fetches(),
        fetched,
        "refused before any blob was read"
    );

    // A 1 MiB body is refused unread.
    let status = client
        .post(format!("{url}/v1/rotate"))
        .header("content-type", "application/json")
        .body(vec![b' '; 1 << 20])
        .send()
        .await?
        .status();
    assert_eq!(status.as_u16(), 413);

    // alice's first rotation is served; her second within the hour is over quota.
    request_rotation(
        &alice.nft,
        &url,
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        deadline,
    )
    .await?;
    let err = request_rotation(
        &alice.nft,
        &url,
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        deadline,
    )
    .await
    .expect_err("over quota");
    assert!(
        matches!(&err, TransferError::Oracle(m) if m.starts_with("429")),
        "{err}"
    );
    server.shutdown().await?;
    Ok(())
}

/// A request for `token` to `to`, signed by `signer` (the owner, or a stranger).
fn signed_rotate_request(
    world: &World,
    token: U256,
    to: alloy::primitives::Address,
    deadline: u64,
    signer: &Actor,
) -> anyhow::Result<RotateRequest> {
    let mut request = RotateRequest {
        chain_id: world.deployment.chain_id,
        nft: world.deployment.agent_nft,
        token_id: token,
        to,
        market: None,
        model_key: Bytes::from(vec![1u8; 100]),
        config_key: Bytes::from(vec![2u8; 100]),
        memory_key: None,
        deadline: U256::from(deadline),
        owner_signature: Bytes::new(),
    };
    request.owner_signature = Bytes::from(
        signer
            .wallet
            .sign_hash_sync(&rotate_request_digest(&request))?
            .as_bytes()
            .to_vec(),
    );
    Ok(request)
}

/// Security F7: anyone can make owners, so a flood of signed requests must not reach the chain
/// or the store unbounded. Past the per-client and the global per-minute limits a request is
/// answered 429 before its signature is checked against the chain (the owner's own included),
/// and a rotation that would write more than the hour's store budget is answered 503 and
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_flooded_by_strangers_answers_429_before_the_chain_and_caps_store_writes()
-> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let carol = world.actor(3).await?;
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let token = world.mint_creative(&alice, 1).await?.token_id;
    let deadline = world.chain_time().await? + 3600;
    let n = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let service = Arc::new(OracleService::with_limits(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        SealOptions::default(),
        OracleLimits {
            requests_per_minute: n(4),
            per_client_per_minute: n(2),
            ..OracleLimits::default()
        },
    ));
    let server = service.clone().serve("127.0.0.1:0".parse()?).await?;
    let url = server.base_url();
    let client = reqwest::Client::new();
    let stranger = signed_rotate_request(&world, token, carol.address(), deadline, &carol)?;
    let post = || {
        client
            .post(format!("{url}/v1/rotate"))
            .json(&stranger)
            .send()
    };

    // One client: two requests reach the signature check (carol is not the owner), the third
    // is over the client's quota.
    assert_eq!(post().await?.status().as_u16(), 403);
    assert_eq!(post().await?.status().as_u16(), 403);
    let over = post().await?;
    assert_eq!(over.status().as_u16(), 429);
    assert!(over.text().await?.contains("client"));

    // All clients together: two more requests are checked, then even the owner is told to
    // wait, before anything is asked of the chain.
    for _ in 0..2 {
        let err = service
            .rotate(&stranger)
            .await
            .expect_err("carol is not the owner");
        assert!(matches!(err, TransferError::WrongSigner { .. }), "{err}");
    }
    let owners = signed_rotate_request(&world, token, bob.address(), deadline, &alice)?;
    let err = service
        .rotate(&owners)
        .await
        .expect_err("over the global quota");
    assert!(
        matches!(err, TransferError::Busy(m) if m.contains("request quota for the minute")),
        "{err}"
    );
    let err = request_rotation(
        &alice.nft,
        &url,
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        deadline,
    )
    .await
    .expect_err("over the global quota");
    assert!(
        matches!(&err, TransferError::Oracle(m) if m.starts_with("429")),
        "{err}"
    );
    server.shutdown().await?;

    // The store budget: what one rotation of this token writes, and a half more. The first
    // rotation fits, the second is refused before it writes a blob.
    let mut bytes = 0u64;
    for entry in alice.nft.entries_for(token, alice.address()).await? {
        bytes += agent_runtime::blobstore::BlobStore::fetch(
            world.store.as_ref(),
            &entry.uri,
            &entry.data_hash,
        )
        .await?
        .len;
    }
    let one_rotation_kib = u32::try_from(bytes.div_ceil(1024))?;
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let service = Arc::new(OracleService::with_limits(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        SealOptions::default(),
        OracleLimits {
            store_kib_per_hour: n(one_rotation_kib * 3 / 2),
            ..OracleLimits::default()
        },
    ));
    let server = service.clone().serve("127.0.0.1:0".parse()?).await?;
    let url = server.base_url();
    let rotate = || {
        request_rotation(
            &alice.nft,
            &url,
            token,
            &alice.wallet,
            &alice.secret,
            bob.address(),
            deadline,
        )
    };
    rotate().await?;
    let written = world.store.puts();
    let err = rotate().await.expect_err("over the store budget");
    assert!(
        matches!(&err, TransferError::Oracle(m) if m.starts_with("503") && m.contains("write budget")),
        "{err}"
    );
    assert_eq!(world.store.puts(), written, "nothing was written");
    server.shutdown().await?;
    Ok(())
}

/// A cheaper model (a generated one from `seed`) and a config naming it, each sealed to
/// `recipient` for `token`, with the model's SHA-256: what a dishonest seller passes off as the
/// agent.
async fn seal_cheaper_model(
    world: &World,
    recipient: &sealing::SealingPublicKey,
    token: &agent_runtime::pipeline::TokenRef,
    seed: u64,
) -> anyhow::Result<(
    agent_runtime::pipeline::EntryRef,
    agent_runtime::pipeline::EntryRef,
    alloy::primitives::B256,
)> {
    use agent_runtime::pipeline::seal_entry;
    use inft_engine::testmodel::{TestModelParams, llama_gguf_bytes};
    use inft_types::config::EntryKind;

    let cheap = llama_gguf_bytes(&TestModelParams::for_size(1 << 19), seed)?;
    let sha256 = <sha2::Sha256 as sha2::Digest>::digest(&cheap);
    let mut config = world.creative_config("Write a short poem about the sea.");
    config.model_sha256 = hex::encode(sha256);
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let model = seal_entry(
        store,
        EntryKind::Model,
        Box::new(std::io::Cursor::new(cheap)),
        recipient,
        token,
        &opts,
    )
    .await?;
    let config = seal_entry(
        store,
        EntryKind::Config,
        Box::new(std::io::Cursor::new(config.to_json())),
        recipient,
        token,
        &opts,
    )
    .await?;
    Ok((model, config, alloy::primitives::B256::from_slice(&sha256)))
}

/// Security M2: a seller re-encrypts a cheaper model with a config that names it. The offer is
/// self-consistent, but not the agent the token is: the receiver refuses it against the model
/// hash the token committed to at mint, and accepts the honest offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_refuses_a_cheaper_model_passed_off_as_the_agent() -> anyhow::Result<()> {
    use agent_runtime::transfer::WireEntry;

    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let token = world.mint_creative(&alice, 1).await?.token_id;
    let committed = alice.nft.model_hash_of(token).await?;
    assert_eq!(hex::encode(committed), world.model_sha256);
    let deadline = world.chain_time().await? + 3600;
    let honest = make_offer(
        &alice.nft,
        store,
        token,
        &alice.secret,
        bob.address(),
        deadline,
        &opts,
    )
    .await?;

    // The cheaper model, and a config that names it, sealed to bob like the honest entries.
    let bob_key = bob.secret.public_key();
    let (model, config, cheap_sha256) =
        seal_cheaper_model(&world, &bob_key, &alice.nft.token_ref(token), 99).await?;
    let forged = Offer {
        model: WireEntry::from_entry(&model),
        config: WireEntry::from_entry(&config),
        ..honest.clone()
    };
    let now = world.chain_time().await?;
    let err = accept_offer(
        &bob.nft,
        store,
        &forged,
        &bob.wallet,
        &bob.secret,
        now,
        &opts,
    )
    .await
    .expect_err("not the committed model");
    assert!(
        matches!(&err, TransferError::ModelNotCommitted { committed: c, offered }
            if *c == committed && *offered == cheap_sha256),
        "{err}"
    );
    accept_offer(
        &bob.nft,
        store,
        &honest,
        &bob.wallet,
        &bob.secret,
        now,
        &opts,
    )
    .await?;
    Ok(())
}

/// Security M2, the runtime's side: a token whose sealed model is not the one it committed to
/// on chain does not run (a config naming its own model is not enough).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_model_is_not_its_commitment_does_not_run() -> anyhow::Result<()> {
    use agent_runtime::lifecycle::LifecycleError;
    use agent_runtime::pipeline::seal_agent;
    use agent_runtime::token::Shares;

    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let config = world.creative_config("Write a short poem about the sea.");
    let agent = PrivateKeySigner::random();
    let token = alice.nft.token_id_for(alice.address(), 5);
    let entries = seal_agent(
        world.store.as_ref(),
        Box::new(std::io::Cursor::new(world.model.as_ref().clone())),
        &agent,
        &config,
        None,
        &alice.secret.public_key(),
        &alice.nft.token_ref(token),
        &SealOptions::default(),
    )
    .await?;
    let claimed = alloy::primitives::B256::repeat_byte(0x42);
    let shares = Shares {
        royalty_bps: 0,
        creator_bps: 0,
        contributors: vec![],
    };
    alice
        .nft
        .mint(
            alice.address(),
            5,
            &entries,
            agent.address(),
            &shares,
            claimed,
        )
        .await?;
    let err = world
        .open(&alice, token, scopes::RUN)
        .await
        .expect_err("the model is not the committed one");
    assert!(
        matches!(err, LifecycleError::ModelNotCommitted { committed, .. } if committed == claimed),
        "{err}"
    );
    Ok(())
}

/// Security M2, oracle mode and the sender's side: an owner who swaps a cheaper model (and a
/// config naming it) into the token with `updateData` cannot sell it as the agent: `make_offer`
/// says so before any receiver downloads it, and the oracle refuses to attest it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_swapped_in_after_mint_is_neither_offered_nor_attested() -> anyhow::Result<()> {
    use inft_types::config::EntryKind;

    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let oracle = world.actor(ORACLE_ACCOUNT).await?;
    let opts = SealOptions::default();
    let store = world.store.as_ref();
    let token = world.mint_creative(&alice, 1).await?.token_id;
    let committed = alice.nft.model_hash_of(token).await?;

    let mut entries = alice.nft.entries_for(token, alice.address()).await?;
    let (model, config, _) = seal_cheaper_model(
        &world,
        &alice.secret.public_key(),
        &alice.nft.token_ref(token),
        98,
    )
    .await?;
    entries[EntryKind::Model.index()] = model;
    entries[EntryKind::Config.index()] = config;
    alice.nft.update_data(token, &entries).await?;

    let deadline = world.chain_time().await? + 3600;
    let err = make_offer(
        &alice.nft,
        store,
        token,
        &alice.secret,
        bob.address(),
        deadline,
        &opts,
    )
    .await
    .expect_err("not the committed model");
    assert!(
        matches!(&err, TransferError::ModelNotCommitted { committed: c, .. } if *c == committed),
        "{err}"
    );

    let service = Arc::new(OracleService::new(
        oracle.wallet,
        oracle.secret,
        oracle.nft,
        world.store.clone(),
        opts,
    ));
    let server = service.serve("127.0.0.1:0".parse()?).await?;
    let err = request_rotation(
        &alice.nft,
        &server.base_url(),
        token,
        &alice.wallet,
        &alice.secret,
        bob.address(),
        deadline,
    )
    .await
    .expect_err("the oracle does not attest another model");
    assert!(
        matches!(&err, TransferError::Oracle(m) if m.starts_with("422") && m.contains("committed")),
        "{err}"
    );
    server.shutdown().await?;
    Ok(())
}
