//! Security M4 and L4: re-keying an agent for its own owner. A phished sealing key stops opening
//! anything once the owner rotates; a revoked user's data keys stop opening the agent once the
//! owner re-keys; a grant carries only the keys its scopes need.

use agent_runtime::pipeline::{PipelineError, decrypt_entry, open_keys};
use agent_runtime::token::TokenError;
use agent_runtime::transfer::rekey::{
    AgentKeyRotation, finish_agent_rotation, grant_keys, rekey_token,
};
use agent_runtime::wallet::{derive_sealing_secret, find_sealing_secret};
use alloy::providers::Provider;
use inft_contracts::scopes;
use inft_types::config::EntryKind;
use sealing::SealOptions;

use crate::world::{Actor, World};

/// `user` gets a grant with `grant_scopes` for a day, with the keys those scopes need.
async fn grant(
    world: &World,
    owner: &Actor,
    user: &Actor,
    token: alloy::primitives::U256,
    grant_scopes: u8,
) -> anyhow::Result<()> {
    let entries = owner.nft.entries_for(token, owner.address()).await?;
    let token_ref = owner.nft.token_ref(token);
    let keys = open_keys(&entries, &owner.secret, &token_ref)?;
    let sealed = grant_keys(
        &entries,
        &keys,
        &user.secret.public_key(),
        &token_ref,
        grant_scopes,
    )?;
    let expiry = world.chain_time().await? + 86_400;
    owner
        .nft
        .authorize(token, user.address(), grant_scopes, expiry, &sealed)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_sealing_key_locks_out_a_phished_one_and_keeps_grants() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let chain_id = world.deployment.chain_id;
    let minted = world.mint_creative(&alice, 1).await?;
    let token = minted.token_id;
    grant(&world, &alice, &bob, token, scopes::RUN | scopes::LOG).await?;
    // What a phishing page gets from one signature of the sealing-key message.
    let phished = derive_sealing_secret(&alice.wallet, chain_id, 0)?;
    let before = alice.nft.entries_for(token, alice.address()).await?;
    let token_ref = alice.nft.token_ref(token);
    assert!(open_keys(&before, &phished, &token_ref).is_ok());

    // Rotate: publish key index 1, re-key the token under it with a new agent key.
    let next = derive_sealing_secret(&alice.wallet, chain_id, 1)?;
    alice
        .nft
        .publish_sealing_key(alice.address(), &next.public_key())
        .await?;
    let old_agent_balance = alice.nft.provider().get_balance(minted.agent).await?;
    let rekeyed = rekey_token(
        &alice.nft,
        world.store.as_ref(),
        token,
        &alice.secret,
        &next,
        AgentKeyRotation::Replace,
        &SealOptions::default(),
    )
    .await?;
    let (new_agent, _) = rekeyed.new_agent.expect("a new agent key");
    assert_ne!(new_agent, minted.agent);
    assert_eq!(rekeyed.reissued_grants, vec![bob.address()]);
    let (swept, _) = rekeyed.swept.expect("the old agent wallet held ETH");
    assert!(swept > old_agent_balance / alloy::primitives::U256::from(2));

    // The phished key opens nothing of the token now; the wallet finds its new key by itself.
    let after = alice.nft.entries_for(token, alice.address()).await?;
    let err = open_keys(&after, &phished, &token_ref).expect_err("phished key locked out");
    assert!(matches!(err, PipelineError::Key { .. }), "{err}");
    let published = alice
        .nft
        .sealing_key_of(alice.address())
        .await?
        .expect("published");
    let (index, found) = find_sealing_secret(&alice.wallet, chain_id, &published)?;
    assert_eq!(index, 1);
    let alice_now = Actor {
        wallet: alice.wallet.clone(),
        secret: found,
        nft: alice.nft.clone(),
    };
    let opened = world.open(&alice_now, token, scopes::RUN).await?;
    let agent = opened
        .agent
        .agent_key
        .expect("the owner unseals the agent key");
    assert_eq!(agent.address(), new_agent);
    assert_eq!(alice.nft.state(token).await?.agent, new_agent);
    // Nothing left half-done.
    assert_eq!(
        finish_agent_rotation(
            &alice.nft,
            world.store.as_ref(),
            token,
            &alice_now.secret,
            &SealOptions::default()
        )
        .await?,
        None
    );

    // bob's grant was re-issued: he still runs the agent, without its key.
    let as_bob = world.open(&bob, token, scopes::RUN).await?;
    assert!(as_bob.agent.agent_key.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_and_rekey_leaves_the_revoked_keys_opening_nothing() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let carol = world.actor(3).await?;
    let token = world.mint_creative(&alice, 1).await?.token_id;
    let token_ref = alice.nft.token_ref(token);

    // A log-only grant carries no data keys (L4): carol cannot open the model or config.
    grant(&world, &alice, &carol, token, scopes::LOG).await?;
    let err = world
        .open(&carol, token, scopes::LOG)
        .await
        .expect_err("no keys for a log-only grant");
    assert!(
        err.to_string().contains("carries no sealed keys"),
        "a clear error: {err}"
    );

    // bob runs the agent, so he holds the model key; then he is revoked.
    grant(&world, &alice, &bob, token, scopes::RUN).await?;
    let bob_entries = bob.nft.entries_for(token, bob.address()).await?;
    // (A data key is not Clone: open it again for each use.)
    let bob_model_key = || -> anyhow::Result<sealing::DataKey> {
        open_keys(&bob_entries, &bob.secret, &token_ref)?
            .into_iter()
            .nth(EntryKind::Model.index())
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("bob has the model key"))
    };
    alice.nft.revoke(token, bob.address()).await?;
    // Revoking alone: bob's key still decrypts the token's current model blob.
    let current = alice.nft.entries_for(token, alice.address()).await?;
    let model = &current[EntryKind::Model.index()];
    let opts = SealOptions::default();
    decrypt_entry(
        world.store.as_ref(),
        EntryKind::Model,
        model,
        bob_model_key()?,
        &opts,
        std::io::sink(),
    )
    .await?;

    let agent_before = alice.nft.state(token).await?.agent;
    let rekeyed = rekey_token(
        &alice.nft,
        world.store.as_ref(),
        token,
        &alice.secret,
        &alice.secret,
        AgentKeyRotation::Keep,
        &opts,
    )
    .await?;
    assert!(rekeyed.new_agent.is_none());
    assert_eq!(
        rekeyed.reissued_grants,
        vec![carol.address()],
        "the other live grant is re-issued, the revoked one is not"
    );
    let rekeyed_entries = alice.nft.entries_for(token, alice.address()).await?;
    let model = &rekeyed_entries[EntryKind::Model.index()];
    assert!(
        decrypt_entry(
            world.store.as_ref(),
            EntryKind::Model,
            model,
            bob_model_key()?,
            &opts,
            std::io::sink(),
        )
        .await
        .is_err(),
        "bob's old key opens nothing of the re-keyed model"
    );
    // alice runs her agent as before, with the same agent key.
    let opened = world.open(&alice, token, scopes::RUN).await?;
    assert_eq!(
        opened.agent.agent_key.map(|k| k.address()),
        Some(agent_before)
    );
    let err = world
        .open(&bob, token, scopes::RUN)
        .await
        .expect_err("bob's grant is gone");
    assert!(
        matches!(
            err,
            agent_runtime::lifecycle::LifecycleError::Token(TokenError::Unauthorized { .. })
        ),
        "{err}"
    );
    Ok(())
}
