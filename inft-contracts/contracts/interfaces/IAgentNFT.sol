// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAgentAccountFactory} from "./IAgentAccount.sol";
import {ITransferVerifier} from "./ITransferVerifier.sol";
import {TransferValidityProof} from "./IERC7857.sol";

/// @title IAgentNFT
/// @notice ERC-721 token whose metadata commits to an encrypted AI agent (ERC-7857 idea).
///
/// Storage keeps only what must be checked on chain: per entry the data hash (a Merkle root over the
/// sealed blob's ciphertext chunks), per token one packed slot (agent, epoch, shares, flags).
/// Storage URIs and sealed keys are emitted in {DataSet} events; a client rebuilds them from the
/// latest {DataSet} of the token and checks its `dataHashes` against {dataHashesOf}.
///
/// Token ids: `tokenId = uint256(uint160(minter)) << 96 | salt` (see {tokenIdFor}). A minter owns
/// its id namespace, so it knows the id before minting (the sealed key binds it) and nobody can
/// take it first.
interface IAgentNFT {
    // ------------------------------------------------------------------ types

    /// @notice Private data entries of a token, index-aligned.
    /// @param dataHashes commitment per entry (Merkle root of the sealed blob); never zero
    /// @param sealedKeys the entry's data key sealed to the holder's X25519 key; never empty
    /// @param uris where the sealed blob is stored (content address or URL)
    struct DataEntries {
        bytes32[] dataHashes;
        bytes[] sealedKeys;
        string[] uris;
    }

    /// @notice Revenue shares fixed at mint.
    /// @param royaltyBps ERC-2981 royalty on sales, paid to the creator
    /// @param creatorBps creator's share of the agent's earnings (EarningsSplitter)
    /// @param contributors data contributors paid by the EarningsSplitter
    /// @param contributorBps each contributor's share; the holder gets what is left
    struct Shares {
        uint16 royaltyBps;
        uint16 creatorBps;
        address[] contributors;
        uint16[] contributorBps;
    }

    /// @notice A transfer/clone proof as supplied by the caller.
    /// @param mode Scopes.MODE_RECEIVER (0, the receiver signs) or Scopes.MODE_ORACLE (1, an oracle signs)
    /// @param nonce the signer's nonce, usable once forever
    /// @param deadline last valid block timestamp (inclusive)
    /// @param signature 65-byte ECDSA signature, or ERC-1271 data for a contract receiver
    struct Proof {
        uint8 mode;
        uint256 nonce;
        uint256 deadline;
        bytes signature;
    }

    /// @notice What ERC-7857's `iTransfer`/`iClone` carry besides the entries: abi-encoded in
    /// `_proofs[0].accessProof.proof`. Per entry `i`, `_proofs[i].ownershipProof` holds the old
    /// and new data hash, the new sealed key and the receiver's X25519 sealing key
    /// (`encryptedPubKey`, 32 bytes), `_proofs[i].ownershipProof.proof` the entry's new storage
    /// URI (UTF-8), and `_proofs[i].accessProof` repeats the two hashes. The `nonce` and
    /// `oracleType` fields are not read: the signer's nonce is in `proof` and the EIP-712
    /// signature covers every entry (see inft-contracts/README.md, "ERC-7857").
    /// @param proof our proof: receiver acceptance (mode 0) or oracle attestation (mode 1)
    /// @param newAgent the rotated agent wallet
    /// @param salt clone only: the new token id is `tokenIdFor(caller, salt)` (zero for transfers)
    /// @param shares clone only: the original's shares, restated (empty for transfers)
    struct RotationEnvelope {
        Proof proof;
        address newAgent;
        uint96 salt;
        Shares shares;
    }

    /// @notice Everything stored about a token, in one view.
    struct TokenInfo {
        address owner;
        address creator;
        address agent;
        uint64 epoch;
        uint16 royaltyBps;
        uint16 creatorBps;
        uint8 entryCount;
        bool paused;
        bytes32 contributorsHash;
    }

    // ----------------------------------------------------------------- events

    /// @notice The data contributors fixed at mint, or copied by a clone (emitted only when there
    /// are any: the NFT stores just their hash, and EarningsSplitter deposits need the list).
    /// Royalty and creator bps are in storage ({tokenInfo}); the creator is in the token id
    /// ({creatorOf}) or, for a clone, the original's.
    event ContributorsSet(uint256 indexed tokenId, address[] contributors, uint16[] contributorBps);
    /// @notice The token holds the model whose plaintext (GGUF) SHA-256 is `modelSha256`: fixed
    /// at mint, inherited by clones. Buyers check the model they receive against it.
    event ModelCommitted(uint256 indexed tokenId, bytes32 modelSha256);
    /// @notice The token's private data as of `epoch` (mint, transfer, clone or update).
    event DataSet(
        uint256 indexed tokenId, uint64 indexed epoch, bytes32[] dataHashes, bytes[] sealedKeys, string[] uris
    );
    /// @notice The token's agent wallet changed (mint, transfer, clone, {setAgent}).
    event AgentSet(uint256 indexed tokenId, address indexed agent, uint64 indexed epoch);
    /// @notice The token moved with a verified proof; `epoch` is the new epoch. Every usage grant
    /// of an earlier epoch ended with it (grants are tied to the epoch they were given in, see
    /// {UsageAuthorized}: no per-grant event is emitted). If the token was paused, a
    /// `PauseSet(tokenId, false)` precedes it; the owner's open approvals on the agent account
    /// were closed (the account emits `OpenApprovalsClosed`).
    event TransferredWithProof(
        uint256 indexed tokenId,
        address indexed from,
        address indexed to,
        uint64 epoch,
        uint8 mode,
        address signer,
        uint256 nonce
    );
    /// @notice A copy of `tokenId`'s agent was minted as `newTokenId` for `to` (ours; ERC-7857's
    /// {Cloned} is emitted next to it).
    event ClonedWithProof(
        uint256 indexed tokenId,
        uint256 indexed newTokenId,
        address indexed to,
        uint8 mode,
        address signer,
        uint256 nonce
    );
    /// @notice `user` may use the token with `scopes` until `expiry`, while the epoch is `epoch`.
    /// `sealedKeys` optionally carries the data keys sealed to the user's X25519 key.
    event UsageAuthorized(
        uint256 indexed tokenId,
        address indexed user,
        uint64 indexed epoch,
        uint8 scopes,
        uint64 expiry,
        bytes[] sealedKeys
    );
    /// @notice The owner revoked `user`'s authorization.
    event UsageRevoked(uint256 indexed tokenId, address indexed user, uint64 indexed epoch);
    /// @notice The owner paused or unpaused the agent (read by the runtime's policy firewall and
    /// enforced by the agent account and the action log). Also emitted with `false` when a paused
    /// token is transferred (a transfer resets the flag).
    event PauseSet(uint256 indexed tokenId, bool paused);
    /// @notice `account` published its X25519 sealing public key.
    event SealingKeySet(address indexed account, bytes32 key);
    /// @notice The admin installed a new transfer verifier.
    event VerifierSet(address indexed verifier);
    /// @notice The admin installed the agent-account factory (once).
    event AccountFactorySet(address indexed factory);
    /// @notice The token's agent account recorded an open approval of the owner; the next proof
    /// transfer closes the account's open approvals.
    event ApprovalsOpen(uint256 indexed tokenId, address indexed account);

    // ERC-7857 events (IERC7857.sol), emitted next to ours: {Transferred} and {PublishedSealedKey}
    // with every proof transfer, {Cloned} and {PublishedSealedKey} with every clone,
    // {Authorization} / {AuthorizationRevoked} with every grant / revocation.

    /// @notice ERC-7857: `tokenId` moved from `_from` to `_to` with a proof.
    event Transferred(uint256 _tokenId, address indexed _from, address indexed _to);
    /// @notice ERC-7857: `_tokenId` was cloned as `_newTokenId` for `_to`.
    event Cloned(uint256 indexed _tokenId, uint256 indexed _newTokenId, address _from, address _to);
    /// @notice ERC-7857: the data keys of `_tokenId`, sealed to `_to`'s X25519 key.
    event PublishedSealedKey(address indexed _to, uint256 indexed _tokenId, bytes[] _sealedKeys);
    /// @notice ERC-7857: the owner `_from` authorized `_to` to use `_tokenId` (see {UsageAuthorized}).
    event Authorization(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    /// @notice ERC-7857: the owner `_from` revoked `_to`'s authorization for `_tokenId`.
    event AuthorizationRevoked(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    /// @notice ERC-7857: `_user` named `_assistant` as its access assistant (zero: none).
    event DelegateAccess(address indexed _user, address indexed _assistant);
    /// @notice The admin installed the contract that renders {tokenURI}'s JSON.
    event MetadataRendererSet(address indexed renderer);

    // ----------------------------------------------------------------- errors

    /// @notice Plain ERC-721 transfers of private tokens are refused: use {transferWithProof}.
    error PrivateTokenTransfer(uint256 tokenId);
    /// @notice The token id is already minted.
    error TokenIdTaken(uint256 tokenId);
    /// @notice The caller is neither the owner nor (where allowed) an approved operator.
    error NotTokenOwner(uint256 tokenId, address caller);
    /// @notice Entry arrays empty, too long (> 255) or of different lengths.
    error BadEntries();
    /// @notice A token must commit to its model's plaintext hash.
    error NoModelHash();
    /// @notice A data hash is zero or a sealed key is empty.
    error EmptyEntry(uint256 index);
    /// @notice A rotation must replace every data hash: entry `index` kept its old hash.
    error DataNotRotated(uint256 index);
    /// @notice A rotation must replace the agent wallet.
    error AgentNotRotated(address agent);
    /// @notice The number of new entries differs from the token's.
    error EntryCountMismatch(uint256 expected, uint256 got);
    /// @notice Share configuration invalid (bps sum > 10000, lengths differ, zero address).
    error BadShares();
    /// @notice The receiver has not published an X25519 sealing key.
    error NoSealingKey(address account);
    /// @notice `to` is the zero address, or equals `from` for a transfer.
    error BadReceiver(address to);
    /// @notice The proof's deadline has passed.
    error ProofExpired(uint256 deadline, uint256 nowTs);
    /// @notice A sale completes only with an oracle attestation (proof mode 1), not `mode`.
    error SaleNeedsAttestation(uint8 mode);
    /// @notice No verifier installed.
    error NoVerifier();
    /// @notice A zero address where an address is required.
    error ZeroAddress();
    /// @notice Authorization scopes must be non-zero and only use known bits.
    error BadScopes(uint8 scopes);
    /// @notice Authorization expiry must be in the future.
    error BadExpiry(uint64 expiry);
    /// @notice The shares given to {cloneWithProof} are not the original token's.
    error SharesMismatch(uint256 tokenId);
    /// @notice The account factory is installed already (it is set once).
    error AccountFactoryAlreadySet(address factory);
    /// @notice The account factory serves another NFT.
    error WrongAccountFactory(address factory);
    /// @notice No account factory installed.
    error NoAccountFactory();
    /// @notice The caller is not the agent account of `tokenId`.
    error NotTokenAccount(uint256 tokenId, address caller);
    /// @notice An ERC-7857 proof element `index` disagrees with itself, the token or the receiver
    /// (see {RotationEnvelope} for the encoding).
    error BadStandardProof(uint256 index);
    /// @notice An ERC-7857 proof element names `got` as entry `index`'s old data hash, but the
    /// token holds `expected`: the proof was made for an earlier state.
    error StaleDataHash(uint256 index, bytes32 expected, bytes32 got);
    /// @notice The caller is not the NFT's action log.
    error NotActionLog(address caller);

    // ------------------------------------------------------------- constants

    // Scope bits for {authorize} / {isAuthorized} (constants in Scopes.sol):
    // SCOPE_RUN    = 1: unseal and run the agent
    // SCOPE_TRADE  = 2: operate the agent's account (AgentAccount.execute)
    // SCOPE_CREATE = 4: produce creative output in the agent's name
    // SCOPE_LOG    = 8: append to the agent's ActionLog (executors / relayers)

    // ------------------------------------------------------------- minting

    /// @notice Mint a private token with id `tokenIdFor(msg.sender, salt)` to `to`.
    /// The caller becomes the token's creator (ERC-2981 receiver, creator share). `modelSha256`
    /// commits to the plaintext model (see {ModelCommitted}): the sealed data is private, so this
    /// public hash is what lets a buyer check that a transfer hands over the agent's own model.
    function mint(
        address to,
        uint96 salt,
        DataEntries calldata data,
        address agent,
        Shares calldata shares,
        bytes32 modelSha256
    ) external returns (uint256 tokenId);

    /// @notice The token id `minter` gets for `salt`.
    function tokenIdFor(address minter, uint96 salt) external pure returns (uint256);

    // -------------------------------------------------- transfer and clone

    /// @notice Move `tokenId` to `to`, replacing every data entry (new hash, new sealed key for
    /// `to`) and the agent wallet, with a proof checked by the installed verifier. Clears every
    /// usage authorization and the pause flag (the epoch increments), and closes the owner's open
    /// approvals on the token's agent account (reverts if one cannot be closed). Caller: owner or
    /// approved.
    function transferWithProof(
        address to,
        uint256 tokenId,
        DataEntries calldata data,
        address newAgent,
        Proof calldata proof
    ) external;

    /// @notice A market completes a sale of `tokenId` to `to` at `price`: {transferWithProof},
    /// except that the proof must be an oracle attestation binding the caller as the market and
    /// `price` (so it settles no other sale), the data is sealed to `sealingKey` (the buyer's
    /// published key as the market recorded it at the buy, whatever the buyer published since),
    /// and no ERC-721 receiver hook runs: nothing the buyer does after paying can make the
    /// completion fail. Caller: approved (the market) or the owner.
    function sellWithProof(
        address to,
        uint256 tokenId,
        bytes32 sealingKey,
        uint256 price,
        DataEntries calldata data,
        address newAgent,
        Proof calldata proof
    ) external;

    /// @notice Mint a copy of `tokenId`'s agent for `to` as `tokenIdFor(msg.sender, salt)` with
    /// re-encrypted data and a new agent wallet, with a proof. The clone keeps the original creator
    /// and revenue shares: `shares` must restate them (royalty and creator bps as stored, the
    /// contributor list whose hash is stored, see the original's {ContributorsSet}), else
    /// {SharesMismatch}; the clone emits its own {ContributorsSet}. Caller: owner of `tokenId`.
    function cloneWithProof(
        address to,
        uint256 tokenId,
        uint96 salt,
        DataEntries calldata data,
        address newAgent,
        Shares calldata shares,
        Proof calldata proof
    ) external returns (uint256 newTokenId);

    /// @notice ERC-7857 `iTransferFrom`: {transferWithProof} of `from`'s token with the proof in
    /// the standard's encoding (see {RotationEnvelope}); `from` must be the owner.
    function iTransferFrom(
        address from,
        address to,
        uint256 tokenId,
        TransferValidityProof[] calldata proofs
    ) external;

    /// @notice ERC-7857 `iCloneFrom`: {cloneWithProof} with the proof in the standard's encoding;
    /// `from` must be the owner and the caller (a clone copies the agent: owner only).
    function iCloneFrom(
        address from,
        address to,
        uint256 tokenId,
        TransferValidityProof[] calldata proofs
    ) external returns (uint256 newTokenId);

    /// @notice The owner replaces the token's data (e.g. new memory, or a key rotation after a
    /// leak). Authorizations stay. The entry count may change.
    function updateData(uint256 tokenId, DataEntries calldata data) external;

    // ------------------------------------------------------ agent and usage

    /// @notice The owner sets the agent wallet (the address of the agent key sealed in the data).
    function setAgent(uint256 tokenId, address agent) external;

    /// @notice The owner pauses/unpauses the agent. Reset to false on transfer.
    function setPaused(uint256 tokenId, bool paused) external;

    /// @notice The owner grants `user` the `scopes` until `expiry` (unix seconds) for the current
    /// epoch; replaces any earlier grant. `sealedKeys` (optional) are emitted for the user.
    function authorize(uint256 tokenId, address user, uint8 scopes, uint64 expiry, bytes[] calldata sealedKeys)
        external;

    /// @notice The owner revokes `user`'s grant.
    function revoke(uint256 tokenId, address user) external;

    /// @notice Publish the caller's X25519 sealing public key (zero to withdraw it).
    function setSealingKey(bytes32 key) external;

    /// @notice Called by the NFT's action log as it appends to `tokenId`'s chain: the token's
    /// metadata (action-log head and count) changes, so the NFT emits ERC-4906 `MetadataUpdate`,
    /// where indexers listen. Returns what {agentStateOf} returns, which the log checks.
    function noteActionsLogged(uint256 tokenId) external returns (address agent, bool paused);

    /// @notice Called by `tokenId`'s agent account when the owner leaves an approval open: the
    /// next proof transfer will close the account's open approvals. Caller: the account at
    /// `accountFactory().accountOf(tokenId)`.
    function markApprovalsOpen(uint256 tokenId) external;

    // ----------------------------------------------------------------- views

    /// @notice The agent wallet of `tokenId` (zero if none or if the token does not exist).
    function agentOf(uint256 tokenId) external view returns (address);

    /// @notice (agent, paused) from one storage slot, for the action log (zero, false if unminted).
    function agentStateOf(uint256 tokenId) external view returns (address agent, bool paused);

    /// @notice (owner, agent, paused) in one call, for agent accounts. Reverts for unminted tokens.
    function controlOf(uint256 tokenId) external view returns (address owner, address agent, bool paused);

    /// @notice True if `user` owns `tokenId` or holds a live grant containing every bit of `scopes`.
    function isAuthorized(uint256 tokenId, address user, uint8 scopes) external view returns (bool);

    /// @notice `user`'s live grant (zero if none, expired, revoked or from an earlier epoch).
    function authorizationOf(uint256 tokenId, address user) external view returns (uint8 scopes, uint64 expiry);

    /// @notice Whether the owner paused the agent.
    function isPaused(uint256 tokenId) external view returns (bool);

    /// @notice The transfer epoch (increments on every proof transfer).
    function epochOf(uint256 tokenId) external view returns (uint64);

    /// @notice The token's data hashes, in entry order.
    function dataHashesOf(uint256 tokenId) external view returns (bytes32[] memory);

    /// @notice The creator (ERC-2981 receiver and creator-share payee).
    function creatorOf(uint256 tokenId) external view returns (address);

    /// @notice Everything stored about the token.
    function tokenInfo(uint256 tokenId) external view returns (TokenInfo memory);

    /// @notice `account`'s published X25519 sealing public key (zero if none).
    function sealingKeyOf(address account) external view returns (bytes32);

    /// @notice The installed transfer verifier.
    function verifier() external view returns (ITransferVerifier);

    /// @notice The ActionLog this NFT deployed in its constructor (one per NFT).
    function actionLog() external view returns (address);

    /// @notice The contract that renders {tokenURI} (zero: `tokenURI` is empty).
    function metadataRenderer() external view returns (address);

    /// @notice The installed agent-account factory (zero until the admin sets it).
    function accountFactory() external view returns (IAgentAccountFactory);

    /// @notice Whether the token's agent account may hold open approvals of the owner (closed,
    /// and the flag cleared, by the next proof transfer).
    function approvalsOpenOf(uint256 tokenId) external view returns (bool);

    /// @notice keccak256(abi.encode(contributors, contributorBps)) fixed at mint (zero if none).
    function contributorsHashOf(uint256 tokenId) external view returns (bytes32);

    /// @notice SHA-256 of the token's plaintext model, committed at mint (see {ModelCommitted}).
    function modelHashOf(uint256 tokenId) external view returns (bytes32);

    /// @notice (creator, creatorBps, contributorsHash, holder) for the EarningsSplitter, in one call.
    function splitOf(uint256 tokenId)
        external
        view
        returns (address creator, uint16 creatorBps, bytes32 contributorsHash, address holder);
}
