//! Agent tokens on chain: who may use a token, its data entries, and the writes that mint,
//! authorize and update its data.
//!
//! Storage holds per entry only the data hash; the sealed keys and URIs travel in events
//! (`DataSet` for the holder, `UsageAuthorized` for an authorized user). [`AgentNft::entries_for`]
//! rebuilds the entries from the latest event of the token's current epoch and checks them
//! against storage, so a stale or forged event is never used.

use alloy::primitives::aliases::U96;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use inft_contracts::bindings::{AgentNFT, IAgentNFT};
use inft_contracts::{ContractRevert, Deployment, revert_of};
use sealing::{Commitment, SealedKey, SealingPublicKey};

use crate::pipeline::{EntryRef, TokenRef};
use inft_types::config::EntryKind;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token does not exist.
    #[error("token {0} does not exist")]
    NotFound(U256),
    /// The account is neither the owner nor holds a live authorization with the scope.
    #[error(
        "{account} is neither the owner of token {token} nor authorized for it (scope {scope:#04b})"
    )]
    Unauthorized {
        /// The token.
        token: U256,
        /// The account that asked.
        account: Address,
        /// The scope bits asked for.
        scope: u8,
    },
    /// An authorized user's grant carries no sealed keys, so there is nothing it can unseal.
    #[error("{account}'s authorization for token {token} carries no sealed keys")]
    NoKeysForUser {
        /// The token.
        token: U256,
        /// The user.
        account: Address,
    },
    /// No `DataSet` event matches the token's stored data.
    #[error("token {token}: no data event for epoch {epoch} matches the stored data hashes")]
    MissingData {
        /// The token.
        token: U256,
        /// Its epoch.
        epoch: u64,
    },
    /// An event carries a sealed key of the wrong shape.
    #[error("token {token}: sealed key {index} is malformed")]
    BadSealedKey {
        /// The token.
        token: U256,
        /// Entry index.
        index: usize,
    },
    /// The contract reverted with one of its typed errors.
    #[error("contract reverted: {0:?}")]
    Revert(ContractRevert),
    /// Any other RPC or transaction failure.
    #[error("rpc: {0}")]
    Rpc(String),
}

impl From<alloy::contract::Error> for TokenError {
    fn from(e: alloy::contract::Error) -> Self {
        match revert_of(&e) {
            Some(revert) => TokenError::Revert(revert),
            None => TokenError::Rpc(e.to_string()),
        }
    }
}

fn rpc<E: std::fmt::Display>(e: E) -> TokenError {
    TokenError::Rpc(e.to_string())
}

/// How an account may use a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// It owns the token.
    Owner,
    /// The owner authorized it with these scopes until `expiry` (unix seconds).
    Authorized {
        /// Scope bits granted.
        scopes: u8,
        /// When the grant ends.
        expiry: u64,
    },
}

/// A live usage grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveGrant {
    /// Who may use the token.
    pub user: Address,
    /// Scope bits.
    pub scopes: u8,
    /// Unix time the grant ends.
    pub expiry: u64,
}

/// What the chain says about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenState {
    /// The holder.
    pub owner: Address,
    /// The creator (royalty receiver).
    pub creator: Address,
    /// The agent wallet (signs records and logs actions).
    pub agent: Address,
    /// Transfer epoch (authorizations of earlier epochs are void).
    pub epoch: u64,
    /// Whether the owner paused the agent.
    pub paused: bool,
    /// The stored data hashes, in entry order.
    pub data_hashes: Vec<B256>,
}

/// Revenue shares fixed at mint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shares {
    /// ERC-2981 royalty on sales, paid to the creator.
    pub royalty_bps: u16,
    /// Creator's share of earnings.
    pub creator_bps: u16,
    /// Data contributors and their shares of earnings.
    pub contributors: Vec<(Address, u16)>,
}

/// The AgentNFT contract of a deployment, through one provider (whose wallet signs writes).
#[derive(Clone, Debug)]
pub struct AgentNft {
    provider: DynProvider,
    chain_id: u64,
    nft: Address,
    start_block: u64,
}

impl AgentNft {
    /// The deployment's AgentNFT through `provider`.
    pub fn new(provider: DynProvider, deployment: &Deployment) -> Self {
        Self {
            provider,
            chain_id: deployment.chain_id,
            nft: deployment.agent_nft,
            start_block: deployment.start_block,
        }
    }

    /// The provider (and wallet) this client sends with. Send other transactions of the same
    /// wallet through it too: it tracks the wallet's nonces.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The contract address.
    pub fn address(&self) -> Address {
        self.nft
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn contract(&self) -> AgentNFT::AgentNFTInstance<&DynProvider> {
        AgentNFT::new(self.nft, &self.provider)
    }

    /// The latest block's timestamp: deadlines are checked against it, not the local clock.
    pub async fn chain_time(&self) -> Result<u64, TokenError> {
        let block = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(rpc)?
            .ok_or_else(|| TokenError::Rpc("the node has no latest block".into()))?;
        Ok(block.header.timestamp)
    }

    /// What sealed keys of `token_id` are bound to.
    pub fn token_ref(&self, token_id: U256) -> TokenRef {
        TokenRef {
            chain_id: self.chain_id,
            nft: self.nft,
            token_id,
        }
    }

    /// The id `minter` gets for `salt` (known before minting, so keys can be sealed to it).
    pub fn token_id_for(&self, minter: Address, salt: u64) -> U256 {
        inft_contracts::token_id_for(minter, U96::from(salt))
    }

    /// The token's owner, agent, epoch, pause flag and data hashes.
    pub async fn state(&self, token_id: U256) -> Result<TokenState, TokenError> {
        let nft = self.contract();
        let info = match nft.tokenInfo(token_id).call().await {
            Ok(info) => info,
            Err(e) => {
                return Err(match revert_of(&e) {
                    Some(ContractRevert::AgentNft(
                        AgentNFT::AgentNFTErrors::ERC721NonexistentToken(_),
                    )) => TokenError::NotFound(token_id),
                    _ => e.into(),
                });
            }
        };
        let data_hashes = nft.dataHashesOf(token_id).call().await?;
        Ok(TokenState {
            owner: info.owner,
            creator: info.creator,
            agent: info.agent,
            epoch: info.epoch,
            paused: info.paused,
            data_hashes,
        })
    }

    /// How `account` may use the token with `scope`: as its owner, or through a live grant that
    /// includes every bit of `scope`. Checked before anything is fetched or decrypted.
    pub async fn access(
        &self,
        token_id: U256,
        account: Address,
        scope: u8,
    ) -> Result<Access, TokenError> {
        let state = self.state(token_id).await?;
        if state.owner == account {
            return Ok(Access::Owner);
        }
        let grant = self
            .contract()
            .authorizationOf(token_id, account)
            .call()
            .await?;
        if grant.scopes != 0 && grant.scopes & scope == scope {
            Ok(Access::Authorized {
                scopes: grant.scopes,
                expiry: grant.expiry,
            })
        } else {
            Err(TokenError::Unauthorized {
                token: token_id,
                account,
                scope,
            })
        }
    }

    async fn logs<E: SolEvent>(&self, topics: Filter) -> Result<Vec<(E, Option<u64>)>, TokenError> {
        let filter = topics
            .address(self.nft)
            .event_signature(E::SIGNATURE_HASH)
            .from_block(self.start_block);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        logs.into_iter()
            .map(|log| {
                let block = log.block_number;
                log.log_decode::<E>()
                    .map(|l| (l.inner.data, block))
                    .map_err(rpc)
            })
            .collect()
    }

    /// The SHA-256 of the token's plaintext model, committed at mint: what a buyer checks the
    /// model it receives against.
    pub async fn model_hash_of(&self, token_id: U256) -> Result<B256, TokenError> {
        Ok(self.contract().modelHashOf(token_id).call().await?)
    }

    /// The users holding a live grant on the token now (this epoch, not expired, not revoked),
    /// with their scopes and expiry.
    pub async fn live_grants(&self, token_id: U256) -> Result<Vec<LiveGrant>, TokenError> {
        let state = self.state(token_id).await?;
        let granted = self
            .logs::<AgentNFT::UsageAuthorized>(
                Filter::new()
                    .topic1(B256::from(token_id))
                    .topic3(B256::from(U256::from(state.epoch))),
            )
            .await?;
        let mut users: Vec<Address> = granted.into_iter().map(|(g, _)| g.user).collect();
        users.sort();
        users.dedup();
        let mut live = Vec::new();
        for user in users {
            let grant = self
                .contract()
                .authorizationOf(token_id, user)
                .call()
                .await?;
            if grant.scopes != 0 {
                live.push(LiveGrant {
                    user,
                    scopes: grant.scopes,
                    expiry: grant.expiry,
                });
            }
        }
        Ok(live)
    }

    /// The tokens `owner` holds now (found through the `Transfer` events to it).
    pub async fn tokens_of(&self, owner: Address) -> Result<Vec<U256>, TokenError> {
        let received = self
            .logs::<AgentNFT::Transfer>(Filter::new().topic2(owner.into_word()))
            .await?;
        let mut ids: Vec<U256> = received.into_iter().map(|(t, _)| t.tokenId).collect();
        ids.sort();
        ids.dedup();
        let mut held = Vec::new();
        for id in ids {
            match self.state(id).await {
                Ok(state) if state.owner == owner => held.push(id),
                Ok(_) | Err(TokenError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(held)
    }

    /// The token's data entries for `account`: the holder's sealed keys, or, for an authorized
    /// user, the keys the owner sealed to it in its grant. Hashes and URIs come from the latest
    /// `DataSet` of the current epoch, checked against storage.
    ///
    /// A user never gets a key for the memory entry (it is the owner's, and its hash changes
    /// with every update, so a grant's key for it would go stale): a grant with keys for the
    /// three agent entries opens a token with memory, whose memory entry then has no key.
    pub async fn entries_for(
        &self,
        token_id: U256,
        account: Address,
    ) -> Result<Vec<EntryRef>, TokenError> {
        let state = self.state(token_id).await?;
        let epoch_topic = B256::from(U256::from(state.epoch));
        let data_sets = self
            .logs::<AgentNFT::DataSet>(
                Filter::new()
                    .topic1(B256::from(token_id))
                    .topic2(epoch_topic),
            )
            .await?;
        let data = data_sets
            .into_iter()
            .rev()
            .map(|(event, _)| event)
            .find(|event| event.dataHashes == state.data_hashes)
            .ok_or(TokenError::MissingData {
                token: token_id,
                epoch: state.epoch,
            })?;
        let sealed_keys: Vec<Bytes> = if state.owner == account {
            data.sealedKeys
        } else {
            // A grant carries one key per entry, the agent-key slot empty (see `authorize`).
            let grants = self
                .logs::<AgentNFT::UsageAuthorized>(
                    Filter::new()
                        .topic1(B256::from(token_id))
                        .topic2(account.into_word())
                        .topic3(epoch_topic),
                )
                .await?;
            let mut keys = grants
                .into_iter()
                .next_back()
                .map(|(g, _)| g.sealedKeys)
                .unwrap_or_default();
            let required = EntryKind::REQUIRED.len();
            let with_memory = data.dataHashes.len() > required && keys.len() == required;
            if keys.len() != data.dataHashes.len() && !with_memory {
                return Err(TokenError::NoKeysForUser {
                    token: token_id,
                    account,
                });
            }
            keys.truncate(required);
            keys.resize(data.dataHashes.len(), Bytes::new());
            keys
        };
        data.dataHashes
            .iter()
            .zip(sealed_keys)
            .zip(data.uris)
            .enumerate()
            .map(|(index, ((hash, key), uri))| {
                let sealed_key = if key.is_empty() {
                    None
                } else {
                    Some(
                        SealedKey::from_bytes(&key).map_err(|_| TokenError::BadSealedKey {
                            token: token_id,
                            index,
                        })?,
                    )
                };
                Ok(EntryRef {
                    data_hash: Commitment::from_bytes(hash.0),
                    sealed_key,
                    uri,
                })
            })
            .collect()
    }

    /// The X25519 sealing key `account` published, if any.
    pub async fn sealing_key_of(
        &self,
        account: Address,
    ) -> Result<Option<SealingPublicKey>, TokenError> {
        let key = self.contract().sealingKeyOf(account).call().await?;
        Ok((key != B256::ZERO).then(|| SealingPublicKey::from_bytes(key.0)))
    }

    /// Publishes the signer's sealing key (skipped if already published). Returns the
    /// transaction hash when one was sent.
    pub async fn publish_sealing_key(
        &self,
        owner: Address,
        key: &SealingPublicKey,
    ) -> Result<Option<B256>, TokenError> {
        if self.sealing_key_of(owner).await?.as_ref() == Some(key) {
            return Ok(None);
        }
        let nft = self.contract();
        let receipt = nft
            .setSealingKey(B256::from(*key.as_bytes()))
            .send()
            .await?
            .get_receipt()
            .await
            .map_err(rpc)?;
        Ok(Some(receipt.transaction_hash))
    }

    /// Mints token `tokenIdFor(signer, salt)` to `to` with `entries`, the agent wallet `agent`,
    /// revenue `shares` and the commitment to the plaintext model's SHA-256. Returns the token
    /// id and the transaction hash.
    pub async fn mint(
        &self,
        to: Address,
        salt: u64,
        entries: &[EntryRef],
        agent: Address,
        shares: &Shares,
        model_sha256: B256,
    ) -> Result<(U256, B256), TokenError> {
        let salt = U96::from(salt);
        let data = data_entries(entries);
        let shares = IAgentNFT::Shares {
            royaltyBps: shares.royalty_bps,
            creatorBps: shares.creator_bps,
            contributors: shares.contributors.iter().map(|(a, _)| *a).collect(),
            contributorBps: shares.contributors.iter().map(|(_, bps)| *bps).collect(),
        };
        let nft = self.contract();
        let call = nft.mint(to, salt, data, agent, shares, model_sha256);
        let token_id = call.call().await?;
        let receipt = call.send().await?.get_receipt().await.map_err(rpc)?;
        if !receipt.status() {
            return Err(TokenError::Rpc(format!(
                "mint transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        Ok((token_id, receipt.transaction_hash))
    }

    /// Grants `user` the `scopes` until `expiry` (unix seconds), emitting `sealed_keys` (the
    /// token's data keys sealed to the user, in entry order; `None` for an entry the user must
    /// not read — the agent key, always) with the grant.
    pub async fn authorize(
        &self,
        token_id: U256,
        user: Address,
        scopes: u8,
        expiry: u64,
        sealed_keys: &[Option<SealedKey>],
    ) -> Result<B256, TokenError> {
        let keys = sealed_keys
            .iter()
            .map(|k| {
                k.as_ref()
                    .map_or_else(Bytes::new, |k| Bytes::copy_from_slice(k.as_bytes()))
            })
            .collect();
        let nft = self.contract();
        let call = nft.authorize(token_id, user, scopes, expiry, keys);
        call.call().await?;
        let receipt = call.send().await?.get_receipt().await.map_err(rpc)?;
        Ok(receipt.transaction_hash)
    }

    /// Replaces the token's data with `entries` (owner only; same epoch, so grants stay valid
    /// for the entries whose hashes are unchanged) and returns the transaction hash. The call is
    /// simulated first, so a refusal (not the owner, an empty entry) is a typed revert and costs
    /// no gas.
    pub async fn update_data(
        &self,
        token_id: U256,
        entries: &[EntryRef],
    ) -> Result<B256, TokenError> {
        let nft = self.contract();
        let call = nft.updateData(token_id, data_entries(entries));
        call.call().await?;
        let receipt = call.send().await?.get_receipt().await.map_err(rpc)?;
        if !receipt.status() {
            return Err(TokenError::Rpc(format!(
                "updateData transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        Ok(receipt.transaction_hash)
    }

    /// Registers `agent` as the token's agent wallet (owner only), the one that signs and logs
    /// its actions and operates its account.
    pub async fn set_agent(&self, token_id: U256, agent: Address) -> Result<B256, TokenError> {
        let nft = self.contract();
        let call = nft.setAgent(token_id, agent);
        call.call().await?;
        let receipt = call.send().await?.get_receipt().await.map_err(rpc)?;
        if !receipt.status() {
            return Err(TokenError::Rpc(format!(
                "setAgent transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        Ok(receipt.transaction_hash)
    }

    /// Revokes `user`'s grant.
    pub async fn revoke(&self, token_id: U256, user: Address) -> Result<B256, TokenError> {
        let nft = self.contract();
        let call = nft.revoke(token_id, user);
        call.call().await?;
        let receipt = call.send().await?.get_receipt().await.map_err(rpc)?;
        Ok(receipt.transaction_hash)
    }
}

/// The contract's view of entries.
pub fn data_entries(entries: &[EntryRef]) -> IAgentNFT::DataEntries {
    IAgentNFT::DataEntries {
        dataHashes: entries
            .iter()
            .map(|e| B256::from(*e.data_hash.as_bytes()))
            .collect(),
        sealedKeys: entries
            .iter()
            .map(|e| {
                e.sealed_key
                    .as_ref()
                    .map_or_else(Bytes::new, |k| Bytes::copy_from_slice(k.as_bytes()))
            })
            .collect(),
        uris: entries.iter().map(|e| e.uri.clone()).collect(),
    }
}
