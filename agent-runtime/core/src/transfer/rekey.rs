//! Re-keying a token for its own owner: fresh data keys and new blobs for the model, config and
//! memory, sealed to the owner's (possibly new) sealing key, and optionally a new agent key.
//!
//! Two things call for it, and both are about keys that someone else may hold:
//! * **After a revoke** (`inft revoke --rotate`): the ex-user was given the model and config data
//!   keys, and the blobs are public, so revoking the grant alone leaves them able to decrypt the
//!   current data forever. Re-keying makes the token's data something their keys do not open.
//!   The agent key was never shared, so it stays.
//! * **Sealing-key rotation** (`inft keys rotate`): whoever holds the owner's old sealing secret
//!   (e.g. a phished wallet signature) can open every key ever sealed to it, the agent key
//!   included, so the agent key is replaced too and its wallet's ETH moves to the new one.
//!
//! A transfer does the same for a new owner under a proof; here the owner acts alone, with
//! `updateData` (and `setAgent`). The old blobs are left where they are (the store is
//! content-addressed and may be shared); what was in them is what the old keys could already
//! read. Live grants are re-issued with the new keys (same scopes and expiry): their old sealed
//! keys open the old blobs, not the new ones.
//!
//! Crash safety: nothing is changed before the new blobs are stored. `updateData` then swaps
//! all entries at once; with a new agent key, `setAgent` follows. If the process stops between
//! the two, the token holds the new agent key while the chain still names the old agent, and
//! [`finish_agent_rotation`] (which `inft keys rotate` runs first) completes it.

use alloy::primitives::{Address, B256, U256};
use inft_contracts::scopes;
use sealing::{DataKey, SealOptions, SealedKey, SealingPublicKey, SealingSecret};

use super::{TransferError, new_agent_entry, reencrypt_data, sweep_agent_wallet};
use crate::blobstore::BlobStore;
use crate::pipeline::{EntryRef, PipelineError, TokenRef, open_keys, unseal_agent_key};
use crate::token::AgentNft;
use inft_types::config::EntryKind;

/// The data keys a grant with `grant_scopes` carries, sealed to the user's key `user_key`: the
/// model and config keys for a grant that runs the agent (RUN or CREATE), none for one that
/// only logs or trades (it needs no data). The agent key is never shared, nor the memory (the
/// owner's alone: its key changes with every update). `keys` are the token's open data keys in
/// entry order.
pub fn grant_keys(
    entries: &[EntryRef],
    keys: &[Option<DataKey>],
    user_key: &SealingPublicKey,
    token: &TokenRef,
    grant_scopes: u8,
) -> Result<Vec<Option<SealedKey>>, PipelineError> {
    if grant_scopes & (scopes::RUN | scopes::CREATE) == 0 {
        return Ok(Vec::new());
    }
    EntryKind::REQUIRED
        .iter()
        .map(|&kind| match (kind, &keys[kind.index()]) {
            (EntryKind::AgentKey, _) | (_, None) => Ok(None),
            (_, Some(key)) => SealedKey::seal(
                key,
                user_key,
                &token.key_context(entries[kind.index()].data_hash),
            )
            .map(Some)
            .map_err(|source| PipelineError::Key {
                entry: kind.name(),
                source,
            }),
        })
        .collect()
}

/// Re-issues every live grant of `token_id` with keys to the token's current data (opened with
/// the owner's `secret`): same scopes, same expiry. Returns who got one.
pub async fn reissue_grants(
    nft: &AgentNft,
    token_id: U256,
    secret: &SealingSecret,
) -> Result<Vec<Address>, TransferError> {
    let state = nft.state(token_id).await?;
    let token = nft.token_ref(token_id);
    let entries = nft.entries_for(token_id, state.owner).await?;
    let keys = open_keys(&entries, secret, &token)?;
    let mut reissued = Vec::new();
    for grant in nft.live_grants(token_id).await? {
        let user_key = nft
            .sealing_key_of(grant.user)
            .await?
            .ok_or(TransferError::NoSealingKey(grant.user))?;
        let sealed = grant_keys(&entries, &keys, &user_key, &token, grant.scopes)?;
        nft.authorize(token_id, grant.user, grant.scopes, grant.expiry, &sealed)
            .await?;
        reissued.push(grant.user);
    }
    Ok(reissued)
}

/// What to do with the agent key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentKeyRotation {
    /// Keep it (only possible when the owner's sealing key stays the same).
    Keep,
    /// Make a new one, register it and move the old agent wallet's ETH to it.
    Replace,
}

/// The outcome of [`rekey_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rekeyed {
    /// The `updateData` transaction.
    pub update_tx: B256,
    /// The new agent and the `setAgent` transaction, if the agent key was replaced.
    pub new_agent: Option<(Address, B256)>,
    /// ETH moved from the old agent wallet (amount, transaction), if any.
    pub swept: Option<(U256, B256)>,
    /// The users whose live grants were re-issued with keys to the new data.
    pub reissued_grants: Vec<Address>,
}

/// Re-keys `token_id` (owned by the holder of `secret`): the model, config and memory get fresh
/// data keys and blobs sealed to the owner's current or new sealing key, and with
/// [`AgentKeyRotation::Replace`] a new agent key; live grants are re-issued (revoke first to
/// leave a user out). `new_secret` is the owner's sealing secret from now on (`secret` itself
/// when the sealing key stays).
pub async fn rekey_token(
    nft: &AgentNft,
    store: &dyn BlobStore,
    token_id: U256,
    secret: &SealingSecret,
    new_secret: &SealingSecret,
    agent: AgentKeyRotation,
    opts: &SealOptions,
) -> Result<Rekeyed, TransferError> {
    let owner_key = &new_secret.public_key();
    if agent == AgentKeyRotation::Keep && *owner_key != secret.public_key() {
        return Err(TransferError::Mismatch(
            "a new sealing key needs a new agent key: the old key opens the agent key",
        ));
    }
    let state = nft.state(token_id).await?;
    let token = nft.token_ref(token_id);
    let entries = nft.entries_for(token_id, state.owner).await?;
    let keys = open_keys(&entries, secret, &token)?;
    let old_agent = match agent {
        AgentKeyRotation::Keep => None,
        AgentKeyRotation::Replace => {
            Some(unseal_agent_key(store, &entries, secret, &token, opts).await?)
        }
    };
    let data = reencrypt_data(store, &entries, keys, owner_key, &token, opts).await?;
    let (agent_entry, new_agent) = match agent {
        AgentKeyRotation::Keep => (
            super::WireEntry::from_entry(&entries[EntryKind::AgentKey.index()]),
            None,
        ),
        AgentKeyRotation::Replace => {
            let (entry, address) = new_agent_entry(store, owner_key, &token, opts).await?;
            (entry, Some(address))
        }
    };
    let mut wire = vec![data.model, agent_entry, data.config];
    wire.extend(data.memory);
    let new_entries = wire
        .iter()
        .map(super::WireEntry::to_entry)
        .collect::<Result<Vec<EntryRef>, _>>()?;
    let update_tx = nft.update_data(token_id, &new_entries).await?;
    let (new_agent, swept) = match (new_agent, old_agent) {
        (Some(address), Some(old)) => {
            let tx = nft.set_agent(token_id, address).await?;
            let swept = sweep_agent_wallet(nft.provider(), &old, address).await?;
            (Some((address, tx)), swept)
        }
        _ => (None, None),
    };
    let reissued_grants = reissue_grants(nft, token_id, new_secret).await?;
    Ok(Rekeyed {
        update_tx,
        new_agent,
        swept,
        reissued_grants,
    })
}

/// Completes a re-keying that stopped between `updateData` and `setAgent`: if the agent key the
/// token holds (opened with `secret`) is not the registered agent, registers it. Returns the
/// `setAgent` transaction if one was needed.
pub async fn finish_agent_rotation(
    nft: &AgentNft,
    store: &dyn BlobStore,
    token_id: U256,
    secret: &SealingSecret,
    opts: &SealOptions,
) -> Result<Option<B256>, TransferError> {
    let state = nft.state(token_id).await?;
    let entries = nft.entries_for(token_id, state.owner).await?;
    let sealed = unseal_agent_key(store, &entries, secret, &nft.token_ref(token_id), opts).await?;
    if sealed.address() == state.agent {
        return Ok(None);
    }
    Ok(Some(nft.set_agent(token_id, sealed.address()).await?))
}
