//! Oracle-attested transfers: a re-encryption service, and the sender's side of talking to it.
//!
//! The sender hands the oracle the token's current model and config keys (and memory key, for a
//! token with memory), sealed to the oracle's published X25519 key and bound to the token and the
//! old blobs. The oracle checks the request against the chain, re-encrypts those entries for the
//! receiver's published key, makes a new agent key sealed to the receiver, and signs the EIP-712
//! `Attestation`. The sender checks the answer and submits `transferWithProof`; the receiver
//! takes no part.
//!
//! **Trust.** The oracle is meant to run inside a TEE whose attestation the verifier's owner
//! checked before registering its key. Without a TEE it is fully trusted: it sees the plaintext
//! model and config, and it makes (so could keep) the new agent key, which controls the agent's
//! token-bound account. What it can *not* do alone is move a token: `transferWithProof` accepts
//! only the owner (or an approved operator) as sender, with a proof bound to that owner, the
//! receiver, both data sets and a single-use nonce.
//!
//! **Who may ask, and how often.** A rotation re-encrypts a whole model, so the service is an
//! easy target for load. Every request carries the token owner's EIP-712 signature
//! ([`RotateRequest::owner_signature`] over [`rotate_request_digest`]: chain, contract, token,
//! receiver, the sale's market if it is one, the sealed keys and the deadline), checked against
//! the chain before any blob is fetched; the deadline may be at most [`MAX_VALIDITY_SECS`]
//! ahead. Bodies are capped at
//! [`MAX_REQUEST_BYTES`], at most [`OracleLimits::concurrent`] rotations run at once (more get
//! `503`), and each owner gets [`OracleLimits::per_owner_per_hour`] rotations an hour (more get
//! `429`). A signed request replayed within its deadline only re-encrypts again for the same
//! receiver, within the owner's quota.
//!
//! Anyone can make owners (a token costs a mint), and checking a signature against the chain
//! costs RPC calls, so two limits come before anything is read from the chain: requests from
//! all clients together ([`OracleLimits::requests_per_minute`]) and from one client address
//! ([`OracleLimits::per_client_per_minute`], HTTP only); more get `429`. What rotations write to
//! the blob store is capped too ([`OracleLimits::store_kib_per_hour`], counted from the sizes
//! of the blobs a rotation re-encrypts, before it writes any): a rotation over the budget gets
//! `503` and writes nothing.
//!
//! HTTP API (JSON): `GET /v1/info` → [`OracleInfo`]; `POST /v1/rotate` with a [`RotateRequest`]
//! → `200` [`RotateAnswer`], or `4xx`/`5xx` with the reason as plain text.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use alloy::primitives::{Address, B256, Bytes, Signature, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use axum::Json;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use inft_contracts::{ProofMode, proof_domain};
use sealing::{Commitment, SealOptions, SealedKey, SealingPublicKey, SealingSecret};
use serde::{Deserialize, Serialize};

use super::market::pending_sale;
use super::{
    Offer, SaleTerms, SignedRotation, TransferError, check_committed_model, check_signer,
    fresh_nonce, is_oracle, new_agent_entry, reencrypt_data, verifier_of,
};
use crate::blobstore::BlobStore;
use crate::blobstore::gateway::{GatewayHandle, serve_router};
use crate::pipeline::{EntryRef, PipelineError, TokenRef, fetch_entry, open_keys};
use crate::token::{AgentNft, TokenError};
use inft_types::config::EntryKind;

/// The largest request body the oracle reads (a request is a few sealed keys and addresses).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How far ahead a request's deadline may be: a signed request is good for at most a day.
pub const MAX_VALIDITY_SECS: u64 = 24 * 3600;

mod eip712 {
    #![allow(missing_docs)]
    alloy::sol! {
        /// What a token owner signs to ask the oracle for a rotation.
        struct InftRotateRequest {
            uint256 tokenId;
            address to;
            address market;
            bytes32 keysHash;
            uint256 deadline;
        }
    }
}

/// The EIP-712 digest the token's owner signs for `request` (its `owner_signature` aside).
/// Domain: name "inft oracle", version "1", the chain id and the AgentNFT as verifying
/// contract; `market` the sale's market (zero for a transfer that is no sale); `keysHash` =
/// keccak256 of model key ‖ config key ‖ memory key (if any).
pub fn rotate_request_digest(request: &RotateRequest) -> B256 {
    let domain: Eip712Domain = eip712_domain! {
        name: "inft oracle",
        version: "1",
        chain_id: request.chain_id,
        verifying_contract: request.nft,
    };
    let mut keys = Vec::new();
    keys.extend_from_slice(&request.model_key);
    keys.extend_from_slice(&request.config_key);
    if let Some(memory) = &request.memory_key {
        keys.extend_from_slice(memory);
    }
    eip712::InftRotateRequest {
        tokenId: request.token_id,
        to: request.to,
        market: request.market.unwrap_or(Address::ZERO),
        keysHash: keccak256(&keys),
        deadline: request.deadline,
    }
    .eip712_signing_hash(&domain)
}

/// How much work the oracle accepts (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OracleLimits {
    /// Rotations running at once; more are answered `503`.
    pub concurrent: usize,
    /// Rotations per token owner per hour; more are answered `429`.
    pub per_owner_per_hour: NonZeroU32,
    /// Requests per minute from all clients together, counted before any RPC call; more are
    /// answered `429`.
    pub requests_per_minute: NonZeroU32,
    /// Requests per minute from one client IP address (HTTP), counted before any RPC call;
    /// more are answered `429`.
    pub per_client_per_minute: NonZeroU32,
    /// KiB of blobs the oracle writes to its store per hour; a rotation that would write more
    /// is answered `503` before it writes anything.
    pub store_kib_per_hour: NonZeroU32,
}

impl Default for OracleLimits {
    fn default() -> Self {
        let n = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            concurrent: 2,
            per_owner_per_hour: n(30),
            requests_per_minute: n(120),
            per_client_per_minute: n(20),
            // 16 GiB: a few rotations of a large model an hour.
            store_kib_per_hour: n(16 << 20),
        }
    }
}

/// Why a request was answered `429`: a rate limit, not a fault of the request.
const OVER_QUOTA: &str = "quota";

/// Who the oracle is: its signing address and the X25519 key requests are sealed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleInfo {
    /// The attestation signer (registered in the TransferVerifier).
    pub address: Address,
    /// Its published X25519 sealing key.
    pub sealing_key: B256,
    /// The chain it serves.
    pub chain_id: u64,
    /// The AgentNFT it serves.
    pub nft: Address,
}

/// A sender's request: move `token_id` to `to`, with the current model and config keys sealed to
/// the oracle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    /// Chain id.
    pub chain_id: u64,
    /// The AgentNFT.
    pub nft: Address,
    /// The token.
    pub token_id: U256,
    /// The receiver.
    pub to: Address,
    /// The market whose pending sale to `to` this rotation completes, if it is a sale: the
    /// oracle then seals to the key the buyer committed there and binds the market and price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub market: Option<Address>,
    /// The model's current data key, sealed to the oracle (context: the current model hash).
    pub model_key: Bytes,
    /// The config's current data key, sealed to the oracle.
    pub config_key: Bytes,
    /// The memory's current data key, sealed to the oracle: required for a token with memory,
    /// absent otherwise (and from requests of runtimes before memory existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_key: Option<Bytes>,
    /// Last valid block timestamp for the attestation.
    pub deadline: U256,
    /// The token owner's signature over [`rotate_request_digest`] (65 bytes).
    pub owner_signature: Bytes,
}

/// The oracle's answer: the rotation and its attestation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateAnswer {
    /// The rotated model and config, the parties and the nonce.
    pub offer: Offer,
    /// The new agent entry and the attestation.
    pub signed: SignedRotation,
}

/// The re-encryption service.
pub struct OracleService {
    signer: PrivateKeySigner,
    secret: SealingSecret,
    nft: AgentNft,
    store: Arc<dyn BlobStore>,
    opts: SealOptions,
    running: Arc<tokio::sync::Semaphore>,
    per_owner: governor::DefaultKeyedRateLimiter<Address>,
    requests: governor::DefaultDirectRateLimiter,
    per_client: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    store_writes: governor::DefaultDirectRateLimiter,
}

impl std::fmt::Debug for OracleService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OracleService")
            .field("address", &self.signer.address())
            .field("nft", &self.nft.address())
            .finish_non_exhaustive()
    }
}

impl OracleService {
    /// An oracle signing with `signer`, opening requests with `secret` (whose public key it must
    /// have published on `nft`), and writing re-encrypted blobs to `store`.
    pub fn new(
        signer: PrivateKeySigner,
        secret: SealingSecret,
        nft: AgentNft,
        store: Arc<dyn BlobStore>,
        opts: SealOptions,
    ) -> Self {
        Self::with_limits(signer, secret, nft, store, opts, OracleLimits::default())
    }

    /// [`new`](Self::new) with other limits on how much work it accepts.
    pub fn with_limits(
        signer: PrivateKeySigner,
        secret: SealingSecret,
        nft: AgentNft,
        store: Arc<dyn BlobStore>,
        opts: SealOptions,
        limits: OracleLimits,
    ) -> Self {
        Self {
            signer,
            secret,
            nft,
            store,
            opts,
            running: Arc::new(tokio::sync::Semaphore::new(limits.concurrent.max(1))),
            per_owner: governor::RateLimiter::keyed(governor::Quota::per_hour(
                limits.per_owner_per_hour,
            )),
            requests: governor::RateLimiter::direct(governor::Quota::per_minute(
                limits.requests_per_minute,
            )),
            per_client: governor::RateLimiter::keyed(governor::Quota::per_minute(
                limits.per_client_per_minute,
            )),
            store_writes: governor::RateLimiter::direct(governor::Quota::per_hour(
                limits.store_kib_per_hour,
            )),
        }
    }

    /// Who this oracle is.
    pub fn info(&self) -> OracleInfo {
        OracleInfo {
            address: self.signer.address(),
            sealing_key: B256::from(*self.secret.public_key().as_bytes()),
            chain_id: self.nft.chain_id(),
            nft: self.nft.address(),
        }
    }

    /// Re-encrypts the token for the receiver and attests the rotation. Refuses a request for
    /// another chain or contract, not signed by the token's owner, with a deadline passed or
    /// too far ahead, over the owner's quota, for a receiver without a published key, or whose
    /// keys do not open the token's current blobs.
    pub async fn rotate(&self, request: &RotateRequest) -> Result<RotateAnswer, TransferError> {
        if self.requests.check().is_err() {
            return Err(TransferError::Busy(
                "the oracle's request quota for the minute is used up; try again in a minute",
            ));
        }
        if request.chain_id != self.nft.chain_id() || request.nft != self.nft.address() {
            return Err(TransferError::Mismatch(
                "the request is for another chain or contract",
            ));
        }
        let now = self.nft.chain_time().await?;
        if request.deadline <= U256::from(now)
            || request.deadline > U256::from(now + MAX_VALIDITY_SECS)
        {
            return Err(TransferError::Mismatch(
                "the request's deadline has passed or is more than a day ahead",
            ));
        }
        let state = self.nft.state(request.token_id).await?;
        let signer = Signature::try_from(request.owner_signature.as_ref())
            .map_err(|_| TransferError::Mismatch("the owner's signature is malformed"))?
            .recover_address_from_prehash(&rotate_request_digest(request))
            .map_err(|_| TransferError::Mismatch("the owner's signature does not recover"))?;
        if signer != state.owner {
            return Err(TransferError::WrongSigner {
                expected: state.owner,
                actual: signer,
            });
        }
        if self.per_owner.check_key(&state.owner).is_err() {
            return Err(TransferError::Busy(
                "this owner's rotation quota for the hour is used up",
            ));
        }
        let _running = self
            .running
            .clone()
            .try_acquire_owned()
            .map_err(|_| TransferError::Busy("the oracle is busy; try again shortly"))?;
        if request.to == state.owner || request.to == Address::ZERO {
            return Err(TransferError::Mismatch(
                "the receiver must be another account",
            ));
        }
        let (recipient, sale) =
            recipient_of(&self.nft, request.token_id, request.to, request.market).await?;
        let token = self.nft.token_ref(request.token_id);
        let entries = self.nft.entries_for(request.token_id, state.owner).await?;
        self.charge_store_writes(&entries).await?;
        // The current entries with the requester's keys (sealed to us) in place of the owner's.
        let has_memory = entries.len() > EntryKind::Memory.index();
        if has_memory != request.memory_key.is_some() {
            return Err(TransferError::Mismatch(
                "the request's memory key does not match the token's entries",
            ));
        }
        let mut ours = entries.clone();
        let keys = [
            (EntryKind::Model, Some(&request.model_key)),
            (EntryKind::Config, Some(&request.config_key)),
            (EntryKind::Memory, request.memory_key.as_ref()),
        ];
        for (kind, key) in keys {
            let Some(key) = key else { continue };
            ours[kind.index()].sealed_key = Some(
                SealedKey::from_bytes(key)
                    .map_err(|_| TransferError::Mismatch("a sealed key is malformed"))?,
            );
        }
        ours[EntryKind::AgentKey.index()].sealed_key = None;
        let keys = open_keys(&ours, &self.secret, &token)?;
        let data = reencrypt_data(
            self.store.as_ref(),
            &ours,
            keys,
            &recipient,
            &token,
            &self.opts,
        )
        .await?;
        // The attestation says this is the token's agent: its model must be the one the token
        // committed to at mint, not one its owner swapped in with `updateData`.
        check_committed_model(&self.nft, request.token_id, data.model_sha256).await?;
        let (agent_key, new_agent) =
            new_agent_entry(self.store.as_ref(), &recipient, &token, &self.opts).await?;
        let offer = Offer {
            chain_id: request.chain_id,
            nft: request.nft,
            token_id: request.token_id,
            from: state.owner,
            to: request.to,
            old_data_hashes: state.data_hashes,
            model: data.model,
            config: data.config,
            memory: data.memory,
            sealing_key: B256::from(*recipient.as_bytes()),
            sale,
            nonce: fresh_nonce(),
            deadline: request.deadline,
        };
        let domain = proof_domain(offer.chain_id, verifier_of(&self.nft).await?);
        let hash = offer
            .rotation(&agent_key, new_agent)
            .signing_hash(ProofMode::Oracle, &domain);
        let signature = self
            .signer
            .sign_hash_sync(&hash)
            .map_err(|e| TransferError::Sign(e.to_string()))?;
        tracing::info!(token = %request.token_id, to = %request.to, "rotation attested");
        Ok(RotateAnswer {
            offer,
            signed: SignedRotation {
                mode: ProofMode::Oracle,
                agent_key,
                new_agent,
                signature: Bytes::from(signature.as_bytes().to_vec()),
            },
        })
    }

    /// Takes what re-encrypting `entries` will write (the sizes of their blobs now; the
    /// agent key's entry is made anew and small) from the hour's store budget, or refuses.
    async fn charge_store_writes(&self, entries: &[EntryRef]) -> Result<(), TransferError> {
        let mut bytes = 0u64;
        for (kind, entry) in EntryKind::ALL.into_iter().zip(entries) {
            if kind == EntryKind::AgentKey {
                continue;
            }
            // Re-encrypting fetches the same blob right after, from the store's cache.
            let blob = fetch_entry(self.store.as_ref(), kind, entry).await?;
            bytes = bytes.saturating_add(blob.len);
        }
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let Some(kib) = NonZeroU32::new(kib) else {
            return Ok(());
        };
        match self.store_writes.check_n(kib) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(TransferError::Busy(
                "the oracle's store write budget for the hour is used up; try again later",
            )),
            Err(_) => Err(TransferError::Busy(
                "this token's data is larger than the oracle writes in an hour",
            )),
        }
    }

    /// Counts a request from `client` against its per-minute quota.
    fn admit_client(&self, client: std::net::IpAddr) -> Result<(), TransferError> {
        self.per_client.check_key(&client).map_err(|_| {
            TransferError::Busy("this client's request quota for the minute is used up")
        })
    }

    /// The HTTP routes.
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/v1/info", get(info))
            .route("/v1/rotate", post(rotate))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(self)
    }

    /// Serves the oracle on `addr` (port 0 picks a free port).
    pub async fn serve(self: Arc<Self>, addr: SocketAddr) -> std::io::Result<GatewayHandle> {
        let handle = serve_router(self.router(), addr).await?;
        tracing::info!(addr = %handle.local_addr(), "re-encryption oracle listening");
        Ok(handle)
    }
}

async fn info(State(oracle): State<Arc<OracleService>>) -> Json<OracleInfo> {
    Json(oracle.info())
}

async fn rotate(
    State(oracle): State<Arc<OracleService>>,
    extensions: Extensions,
    Json(request): Json<RotateRequest>,
) -> Response {
    // Served by `serve`, every request knows its peer; a router served otherwise skips the
    // per-client limit.
    let client = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let admitted = match client {
        Some(client) => oracle.admit_client(client),
        None => Ok(()),
    };
    let rotated = match admitted {
        Ok(()) => oracle.rotate(&request).await,
        Err(e) => Err(e),
    };
    match rotated {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => {
            let status = match &e {
                TransferError::Mismatch(_)
                | TransferError::ModelNotCommitted { .. }
                | TransferError::NoSealingKey(_)
                | TransferError::Pipeline(PipelineError::Key { .. })
                | TransferError::Pipeline(PipelineError::MissingKey { .. })
                | TransferError::Token(TokenError::NotFound(_)) => StatusCode::UNPROCESSABLE_ENTITY,
                TransferError::WrongSigner { .. } => StatusCode::FORBIDDEN,
                TransferError::Busy(reason) if reason.contains(OVER_QUOTA) => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                TransferError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!(error = %e, "rotation refused");
            (status, e.to_string()).into_response()
        }
    }
}

/// The sender's side: asks the oracle at `base_url` to rotate `token_id` (owned by `owner`, whose
/// sealing secret is `secret`) to `to`, signing the request as the owner, and checks the answer
/// before anything is submitted: the oracle is registered, its key is the one it published, the
/// rotation is exactly the one asked for, and the attestation is its signature.
pub async fn request_rotation(
    nft: &AgentNft,
    base_url: &str,
    token_id: U256,
    owner: &PrivateKeySigner,
    secret: &SealingSecret,
    to: Address,
    deadline: u64,
) -> Result<RotateAnswer, TransferError> {
    request(nft, base_url, token_id, owner, secret, to, None, deadline).await
}

/// [`request_rotation`] for the pending sale of `token_id` on `market`: to its buyer, sealed to
/// the key the buyer committed at the buy, bound to the market and the listed price.
pub async fn request_sale_rotation(
    nft: &AgentNft,
    base_url: &str,
    token_id: U256,
    owner: &PrivateKeySigner,
    secret: &SealingSecret,
    market: Address,
    deadline: u64,
) -> Result<RotateAnswer, TransferError> {
    let buyer = pending_sale(nft, market, token_id).await?.buyer;
    let market = Some(market);
    request(
        nft, base_url, token_id, owner, secret, buyer, market, deadline,
    )
    .await
}

#[allow(clippy::too_many_arguments)] // the public entry points' arguments, and the sale's market
async fn request(
    nft: &AgentNft,
    base_url: &str,
    token_id: U256,
    owner: &PrivateKeySigner,
    secret: &SealingSecret,
    to: Address,
    market: Option<Address>,
    deadline: u64,
) -> Result<RotateAnswer, TransferError> {
    let client = reqwest::Client::new();
    let base = base_url.trim_end_matches('/');
    let oracle_err = |e: reqwest::Error| TransferError::Oracle(e.to_string());
    let info: OracleInfo = client
        .get(format!("{base}/v1/info"))
        .send()
        .await
        .map_err(oracle_err)?
        .error_for_status()
        .map_err(oracle_err)?
        .json()
        .await
        .map_err(oracle_err)?;
    if info.chain_id != nft.chain_id() || info.nft != nft.address() {
        return Err(TransferError::Mismatch(
            "the oracle serves another chain or contract",
        ));
    }
    if !is_oracle(nft, info.address).await? {
        return Err(TransferError::NotAnOracle(info.address));
    }
    let published = nft
        .sealing_key_of(info.address)
        .await?
        .ok_or(TransferError::NoSealingKey(info.address))?;
    if B256::from(*published.as_bytes()) != info.sealing_key {
        return Err(TransferError::Mismatch(
            "the oracle's key is not the one it published",
        ));
    }

    let state = nft.state(token_id).await?;
    let entries = nft.entries_for(token_id, state.owner).await?;
    let token = nft.token_ref(token_id);
    let keys = open_keys(&entries, secret, &token)?;
    let reseal = |kind: EntryKind| -> Result<Bytes, TransferError> {
        reseal_for(&keys, &entries, kind, &published, &token)
    };
    let mut request = RotateRequest {
        chain_id: nft.chain_id(),
        nft: nft.address(),
        token_id,
        to,
        market,
        model_key: reseal(EntryKind::Model)?,
        config_key: reseal(EntryKind::Config)?,
        memory_key: if entries.len() > EntryKind::Memory.index() {
            Some(reseal(EntryKind::Memory)?)
        } else {
            None
        },
        deadline: U256::from(deadline),
        owner_signature: Bytes::new(),
    };
    request.owner_signature = Bytes::from(
        owner
            .sign_hash_sync(&rotate_request_digest(&request))
            .map_err(|e| TransferError::Sign(e.to_string()))?
            .as_bytes()
            .to_vec(),
    );
    let response = client
        .post(format!("{base}/v1/rotate"))
        .json(&request)
        .send()
        .await
        .map_err(oracle_err)?;
    if !response.status().is_success() {
        let status = response.status();
        let reason = response.text().await.unwrap_or_default();
        return Err(TransferError::Oracle(format!("{status}: {reason}")));
    }
    let answer: RotateAnswer = response.json().await.map_err(oracle_err)?;

    let offer = &answer.offer;
    if offer.chain_id != request.chain_id
        || offer.nft != request.nft
        || offer.token_id != token_id
        || offer.from != state.owner
        || offer.to != to
        || offer.old_data_hashes != state.data_hashes
        || offer.deadline != request.deadline
        || offer.memory.is_some() != request.memory_key.is_some()
        || answer.signed.mode != ProofMode::Oracle
    {
        return Err(TransferError::Mismatch(
            "the oracle answered for another rotation",
        ));
    }
    let (receiver_key, sale) = recipient_of(nft, token_id, to, market).await?;
    if offer.sealing_key != B256::from(*receiver_key.as_bytes()) {
        return Err(TransferError::Mismatch(
            "the oracle sealed to another key than the receiver's",
        ));
    }
    if offer.sale != sale {
        return Err(TransferError::Mismatch(
            "the oracle bound the rotation to another sale",
        ));
    }
    check_signer(nft, offer, &answer.signed, info.address).await?;
    Ok(answer)
}

/// The key a rotation of `token_id` to `to` is sealed to, and the sale it completes: for a sale
/// on `market`, the key the buyer committed at the buy (whatever it published since) and the
/// market and price; otherwise the receiver's published key.
async fn recipient_of(
    nft: &AgentNft,
    token_id: U256,
    to: Address,
    market: Option<Address>,
) -> Result<(SealingPublicKey, Option<SaleTerms>), TransferError> {
    let Some(market) = market else {
        let key = nft
            .sealing_key_of(to)
            .await?
            .ok_or(TransferError::NoSealingKey(to))?;
        return Ok((key, None));
    };
    let sale = pending_sale(nft, market, token_id).await?;
    if sale.buyer != to {
        return Err(TransferError::Mismatch("the rotation is not to the buyer"));
    }
    let key = SealingPublicKey::from_bytes(sale.sealing_key.0);
    Ok((key, Some(sale.terms)))
}

/// The data key of entry `kind` sealed anew to `oracle`, bound to the same token and blob.
fn reseal_for(
    keys: &[Option<sealing::DataKey>],
    entries: &[EntryRef],
    kind: EntryKind,
    oracle: &SealingPublicKey,
    token: &TokenRef,
) -> Result<Bytes, TransferError> {
    let key = keys[kind.index()]
        .as_ref()
        .ok_or(PipelineError::MissingKey { entry: kind.name() })?;
    let data_hash: Commitment = entries[kind.index()].data_hash;
    let sealed = SealedKey::seal(key, oracle, &token.key_context(data_hash)).map_err(|source| {
        PipelineError::Key {
            entry: kind.name(),
            source,
        }
    })?;
    Ok(Bytes::copy_from_slice(sealed.as_bytes()))
}
