// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Utils} from "@openzeppelin/contracts/token/ERC721/utils/ERC721Utils.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IAgentAccount, IAgentAccountFactory} from "./interfaces/IAgentAccount.sol";
import {ActionLog} from "./ActionLog.sol";
import {IActionLog} from "./interfaces/IActionLog.sol";
import {IAgentNFT} from "./interfaces/IAgentNFT.sol";
import {
    IERC7857, IERC7857Metadata, IntelligentData, TransferValidityProof, OwnershipProof
} from "./interfaces/IERC7857.sol";
import {IMetadataRenderer} from "./interfaces/IMetadataRenderer.sol";
import {ITransferVerifier} from "./interfaces/ITransferVerifier.sol";
import {Scopes} from "./interfaces/Scopes.sol";

/// @title AgentNFT
/// @notice ERC-721 agent tokens with private data that only move with a proof that rotates the data.
/// See IAgentNFT for the API and README.md for the design decisions and their reasons.
///
/// ERC-7857: every function of the standard's IERC7857 (and IERC7857Metadata) is here with the
/// standard's signature, on top of the same rotation rules (README.md, "ERC-7857"). The contract
/// does not inherit IERC7857 because the standard types `verifier()` as an IERC7857DataVerifier;
/// ours returns the address of the installed ITransferVerifier, which checks our EIP-712 proofs.
contract AgentNFT is ERC721, IERC2981, IERC4906, IAgentNFT, Ownable2Step, ReentrancyGuardTransient {
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @dev Everything per token except data hashes, in one storage slot (160+40+8+8+8+16+16 = 256
    /// bits): a mint writes one slot here, a transfer rewrites it. `approvalsOpen`: the token's
    /// agent account may hold open approvals of the owner (set by the account, see
    /// {markApprovalsOpen}); a proof transfer then closes them and clears the flag.
    struct Packed {
        address agent;
        uint40 epoch;
        uint8 entryCount;
        bool paused;
        bool approvalsOpen;
        uint16 royaltyBps;
        uint16 creatorBps;
    }

    /// @dev A usage grant, valid only while `epoch` equals the token's epoch (one slot).
    struct Grant {
        uint48 epoch;
        uint64 expiry;
        uint8 scopes;
    }

    uint256 private constant BPS = 10_000;
    uint256 private constant MAX_ENTRIES = 255;

    mapping(uint256 tokenId => Packed) private _tokens;
    mapping(uint256 tokenId => mapping(uint256 index => bytes32)) private _dataHashes;
    /// @dev Only written for tokens with data contributors.
    mapping(uint256 tokenId => bytes32) private _contributorsHash;
    /// @dev SHA-256 of the plaintext model, fixed at mint (see IAgentNFT.ModelCommitted).
    mapping(uint256 tokenId => bytes32) private _modelHashes;
    /// @dev Only written for clones: their creator is the original's, not the id's namespace.
    mapping(uint256 tokenId => address) private _cloneCreator;
    mapping(uint256 tokenId => mapping(address user => Grant)) private _grants;
    mapping(address account => bytes32) private _sealingKeys;
    /// @dev Users granted in an epoch (ERC-7857 `authorizedUsersOf`); a grant's liveness is in _grants.
    mapping(uint256 tokenId => mapping(uint256 epoch => EnumerableSet.AddressSet)) private _grantees;
    /// @dev ERC-7857 access assistants.
    mapping(address user => address assistant) private _assistants;
    ITransferVerifier private _verifier;
    IAgentAccountFactory private _accountFactory;
    /// @dev Created with the NFT: an immutable address lets every append notify the NFT (for
    /// ERC-4906) without a storage read.
    IActionLog private immutable _actionLog;
    IMetadataRenderer private _renderer;

    /// @param admin may install the transfer verifier (two-step ownership)
    /// Deploys the token's ActionLog (see {actionLog}).
    constructor(address admin) ERC721("inft Agent", "INFT") Ownable(admin) {
        _actionLog = new ActionLog(this);
    }

    // ---------------------------------------------------------------- admin

    /// @notice Install the transfer verifier. The admin cannot move tokens: every transfer still
    /// needs the owner's (or approved operator's) transaction and the NFT's own checks.
    function setVerifier(ITransferVerifier newVerifier) external onlyOwner {
        if (address(newVerifier) == address(0)) revert ZeroAddress();
        _verifier = newVerifier;
        emit VerifierSet(address(newVerifier));
    }

    /// @notice Install the agent-account factory, once: the NFT asks it where a token's account
    /// is, to close the owner's open approvals on a proof transfer. Set once so that nobody can
    /// later point the NFT at other accounts.
    function setAccountFactory(IAgentAccountFactory factory) external onlyOwner {
        if (address(factory) == address(0)) revert ZeroAddress();
        if (address(_accountFactory) != address(0)) revert AccountFactoryAlreadySet(address(_accountFactory));
        if (factory.nft() != address(this)) revert WrongAccountFactory(address(factory));
        _accountFactory = factory;
        emit AccountFactorySet(address(factory));
    }

    /// @notice Install the metadata renderer (display only: it reads the public state and cannot
    /// change it). Every token's metadata changes with it (ERC-4906 batch event).
    function setMetadataRenderer(IMetadataRenderer renderer) external onlyOwner {
        _renderer = renderer;
        emit MetadataRendererSet(address(renderer));
        emit BatchMetadataUpdate(0, type(uint256).max);
    }

    // -------------------------------------------------------------- minting

    /// @inheritdoc IAgentNFT
    function mint(
        address to,
        uint96 salt,
        DataEntries calldata data,
        address agent,
        Shares calldata shares,
        bytes32 modelSha256
    ) external returns (uint256 tokenId) {
        if (to == address(0)) revert ZeroAddress();
        if (modelSha256 == bytes32(0)) revert NoModelHash();
        tokenId = _idFor(msg.sender, salt);
        if (_ownerOf(tokenId) != address(0)) revert TokenIdTaken(tokenId);
        uint8 n = _checkEntries(data);
        bytes32 contributorsHash = _checkShares(shares);

        _tokens[tokenId] = Packed({
            agent: agent,
            epoch: 0,
            entryCount: n,
            paused: false,
            approvalsOpen: false,
            royaltyBps: shares.royaltyBps,
            creatorBps: shares.creatorBps
        });
        _storeHashes(tokenId, data.dataHashes);
        if (contributorsHash != bytes32(0)) _contributorsHash[tokenId] = contributorsHash;
        _modelHashes[tokenId] = modelSha256;
        _mint(to, tokenId);

        if (contributorsHash != bytes32(0)) {
            emit ContributorsSet(tokenId, shares.contributors, shares.contributorBps);
        }
        emit ModelCommitted(tokenId, modelSha256);
        emit DataSet(tokenId, 0, data.dataHashes, data.sealedKeys, data.uris);
        emit AgentSet(tokenId, agent, 0);
    }

    /// @inheritdoc IAgentNFT
    function tokenIdFor(address minter, uint96 salt) external pure returns (uint256) {
        return _idFor(minter, salt);
    }

    // ------------------------------------------------- transfer and clone

    /// @inheritdoc IAgentNFT
    function transferWithProof(
        address to,
        uint256 tokenId,
        DataEntries calldata data,
        address newAgent,
        Proof calldata proof
    ) external nonReentrant {
        _transfer(_requireOwned(tokenId), to, tokenId, data, newAgent, proof, _noSale());
    }

    /// @inheritdoc IAgentNFT
    function sellWithProof(
        address to,
        uint256 tokenId,
        bytes32 sealingKey,
        uint256 price,
        DataEntries calldata data,
        address newAgent,
        Proof calldata proof
    ) external nonReentrant {
        // A receiver's acceptance is signed after it saw keys it can open: it could keep them
        // and never sign. Only an attested rotation puts the keys on chain with the payment.
        if (proof.mode != Scopes.MODE_ORACLE) revert SaleNeedsAttestation(proof.mode);
        if (sealingKey == bytes32(0)) revert NoSealingKey(to);
        _transfer(
            _requireOwned(tokenId),
            to,
            tokenId,
            data,
            newAgent,
            proof,
            Sale({market: msg.sender, price: price, sealingKey: sealingKey})
        );
    }

    /// @notice ERC-7857: {transferWithProof} with the proof in the standard's encoding (see
    /// {RotationEnvelope}).
    function iTransfer(address to, uint256 tokenId, TransferValidityProof[] calldata proofs) external nonReentrant {
        (DataEntries memory data, RotationEnvelope memory env) = _fromStandard(to, tokenId, proofs, false);
        _transfer(_requireOwned(tokenId), to, tokenId, data, env.newAgent, env.proof, _noSale());
    }

    /// @inheritdoc IAgentNFT
    function iTransferFrom(address from, address to, uint256 tokenId, TransferValidityProof[] calldata proofs)
        external
        nonReentrant
    {
        address owner = _requireOwned(tokenId);
        if (from != owner) revert NotTokenOwner(tokenId, from);
        (DataEntries memory data, RotationEnvelope memory env) = _fromStandard(to, tokenId, proofs, false);
        _transfer(owner, to, tokenId, data, env.newAgent, env.proof, _noSale());
    }

    /// @dev What a sale binds beyond a transfer: the market completing it (the caller), the
    /// price, and the receiver's sealing key as the market recorded it at the buy. All zero for
    /// a transfer that is not a sale.
    struct Sale {
        address market;
        uint256 price;
        bytes32 sealingKey;
    }

    /// @dev Not a sale: the receiver's key is its published one, and its ERC-721 hook runs.
    function _noSale() private pure returns (Sale memory) {
        return Sale({market: address(0), price: 0, sealingKey: bytes32(0)});
    }

    /// @dev The one transfer path: `from` is the owner; the caller must be it or approved.
    function _transfer(
        address from,
        address to,
        uint256 tokenId,
        DataEntries memory data,
        address newAgent,
        Proof memory proof,
        Sale memory sale
    ) private {
        if (!_isAuthorized(from, msg.sender, tokenId)) revert NotTokenOwner(tokenId, msg.sender);
        if (to == address(0) || to == from) revert BadReceiver(to);
        Packed memory t = _tokens[tokenId];

        (address signer) = _verifyRotation(tokenId, tokenId, from, to, t, data, newAgent, proof, sale);

        // Effects: new epoch (ends every grant), new agent, pause and approval flags reset,
        // rotated data, new owner.
        uint40 epoch = t.epoch + 1;
        _tokens[tokenId] = Packed({
            agent: newAgent,
            epoch: epoch,
            entryCount: t.entryCount,
            paused: false,
            approvalsOpen: false,
            royaltyBps: t.royaltyBps,
            creatorBps: t.creatorBps
        });
        _storeHashes(tokenId, data.dataHashes);
        // auth = 0: the proof path is the only way a private token moves (see _update).
        _update(to, tokenId, address(0));

        // The seller's open approvals on the agent account end with the sale, in this
        // transaction: a spender of the seller must not drain the account (nor what the buyer
        // deposits later). A failure (e.g. a token refusing approve(spender, 0)) reverts the
        // transfer with the account's ApprovalNotClosed(target, spender).
        if (t.approvalsOpen) IAgentAccount(_accountFactory.accountOf(tokenId)).closeApprovals();

        emit DataSet(tokenId, epoch, data.dataHashes, data.sealedKeys, data.uris);
        emit AgentSet(tokenId, newAgent, epoch);
        if (t.paused) emit PauseSet(tokenId, false);
        emit TransferredWithProof(tokenId, from, to, epoch, proof.mode, signer, proof.nonce);
        emit Transferred(tokenId, from, to);
        emit PublishedSealedKey(to, tokenId, data.sealedKeys);
        emit MetadataUpdate(tokenId);

        // ERC-721 receiver check for contract receivers (an EOA is a no-op), after all effects.
        // Not for a sale: the buyer chose to buy, and a hook that reverts must not let it block
        // the completion that pays the seller after the keys it delivers are public.
        if (sale.market == address(0)) ERC721Utils.checkOnERC721Received(msg.sender, from, to, tokenId, "");
    }

    /// @inheritdoc IAgentNFT
    function cloneWithProof(
        address to,
        uint256 tokenId,
        uint96 salt,
        DataEntries calldata data,
        address newAgent,
        Shares calldata shares,
        Proof calldata proof
    ) external nonReentrant returns (uint256) {
        return _clone(to, tokenId, salt, data, newAgent, shares, proof);
    }

    /// @notice ERC-7857: {cloneWithProof} with the proof in the standard's encoding (see
    /// {RotationEnvelope}: its `salt` and `shares` are the clone's).
    function iClone(address to, uint256 tokenId, TransferValidityProof[] calldata proofs)
        external
        nonReentrant
        returns (uint256)
    {
        (DataEntries memory data, RotationEnvelope memory env) = _fromStandard(to, tokenId, proofs, true);
        return _clone(to, tokenId, env.salt, data, env.newAgent, env.shares, env.proof);
    }

    /// @inheritdoc IAgentNFT
    function iCloneFrom(address from, address to, uint256 tokenId, TransferValidityProof[] calldata proofs)
        external
        nonReentrant
        returns (uint256)
    {
        if (from != msg.sender) revert NotTokenOwner(tokenId, from);
        (DataEntries memory data, RotationEnvelope memory env) = _fromStandard(to, tokenId, proofs, true);
        return _clone(to, tokenId, env.salt, data, env.newAgent, env.shares, env.proof);
    }

    /// @dev The one clone path.
    function _clone(
        address to,
        uint256 tokenId,
        uint96 salt,
        DataEntries memory data,
        address newAgent,
        Shares memory shares,
        Proof memory proof
    ) private returns (uint256 newTokenId) {
        // Owner only: an ERC-721 approval is a right to move the token, not to copy the agent.
        address from = _requireOwned(tokenId);
        if (from != msg.sender) revert NotTokenOwner(tokenId, msg.sender);
        if (to == address(0)) revert BadReceiver(to);
        newTokenId = _idFor(msg.sender, salt);
        if (_ownerOf(newTokenId) != address(0)) revert TokenIdTaken(newTokenId);
        Packed memory t = _tokens[tokenId];
        // The clone keeps the original's shares; the caller restates them so that the clone's
        // ContributorsSet can carry the list (the NFT stores only its hash).
        bytes32 contributorsHash = _contributorsHash[tokenId];
        if (
            shares.royaltyBps != t.royaltyBps || shares.creatorBps != t.creatorBps
                || _hashContributors(shares) != contributorsHash
        ) revert SharesMismatch(tokenId);

        address signer = _verifyRotation(tokenId, newTokenId, from, to, t, data, newAgent, proof, _noSale());

        _tokens[newTokenId] = Packed({
            agent: newAgent,
            epoch: 0,
            entryCount: t.entryCount,
            paused: false,
            approvalsOpen: false,
            royaltyBps: t.royaltyBps,
            creatorBps: t.creatorBps
        });
        _storeHashes(newTokenId, data.dataHashes);
        _cloneCreator[newTokenId] = creatorOf(tokenId);
        if (contributorsHash != bytes32(0)) _contributorsHash[newTokenId] = contributorsHash;
        _modelHashes[newTokenId] = _modelHashes[tokenId];
        _mint(to, newTokenId);

        if (contributorsHash != bytes32(0)) {
            emit ContributorsSet(newTokenId, shares.contributors, shares.contributorBps);
        }
        emit ModelCommitted(newTokenId, _modelHashes[tokenId]);
        emit DataSet(newTokenId, 0, data.dataHashes, data.sealedKeys, data.uris);
        emit AgentSet(newTokenId, newAgent, 0);
        emit ClonedWithProof(tokenId, newTokenId, to, proof.mode, signer, proof.nonce);
        emit Cloned(tokenId, newTokenId, from, to);
        emit PublishedSealedKey(to, newTokenId, data.sealedKeys);

        ERC721Utils.checkOnERC721Received(msg.sender, address(0), to, newTokenId, "");
    }

    /// @inheritdoc IAgentNFT
    function updateData(uint256 tokenId, DataEntries calldata data) external {
        _requireOwner(tokenId);
        uint8 n = _checkEntries(data);
        Packed storage t = _tokens[tokenId];
        t.entryCount = n;
        uint40 epoch = t.epoch;
        _storeHashes(tokenId, data.dataHashes);
        emit DataSet(tokenId, epoch, data.dataHashes, data.sealedKeys, data.uris);
        emit MetadataUpdate(tokenId);
    }

    // -------------------------------------------------------- agent and usage

    /// @inheritdoc IAgentNFT
    function setAgent(uint256 tokenId, address agent) external {
        _requireOwner(tokenId);
        Packed storage t = _tokens[tokenId];
        t.agent = agent;
        emit AgentSet(tokenId, agent, t.epoch);
        emit MetadataUpdate(tokenId);
    }

    /// @inheritdoc IAgentNFT
    function setPaused(uint256 tokenId, bool paused) external {
        _requireOwner(tokenId);
        _tokens[tokenId].paused = paused;
        emit PauseSet(tokenId, paused);
        emit MetadataUpdate(tokenId);
    }

    /// @inheritdoc IAgentNFT
    function authorize(uint256 tokenId, address user, uint8 scopes, uint64 expiry, bytes[] calldata sealedKeys)
        external
    {
        _grant(tokenId, user, scopes, expiry, sealedKeys);
    }

    /// @notice ERC-7857: the owner lets `user` run the agent (Scopes.RUN) until revoked or the
    /// token moves. No data keys are sealed to the user: it runs through a sealed executor, or
    /// the owner calls {authorize} with sealed keys.
    function authorizeUsage(uint256 tokenId, address user) external {
        _grant(tokenId, user, Scopes.RUN, type(uint64).max, new bytes[](0));
    }

    /// @inheritdoc IAgentNFT
    function revoke(uint256 tokenId, address user) external {
        _revoke(tokenId, user);
    }

    /// @notice ERC-7857: same as {revoke}.
    function revokeAuthorization(uint256 tokenId, address user) external {
        _revoke(tokenId, user);
    }

    /// @notice ERC-7857: `user` names `assistant` (zero: none) to sign access proofs for it.
    /// Recorded for sealed executors and off-chain tools; our receiver proofs are still signed by
    /// the receiver itself (or its ERC-1271 wallet), see README.md, "ERC-7857".
    function delegateAccess(address assistant) external {
        _assistants[msg.sender] = assistant;
        emit DelegateAccess(msg.sender, assistant);
    }

    /// @inheritdoc IAgentNFT
    function setSealingKey(bytes32 key) external {
        _sealingKeys[msg.sender] = key;
        emit SealingKeySet(msg.sender, key);
    }

    /// @inheritdoc IAgentNFT
    function markApprovalsOpen(uint256 tokenId) external {
        IAgentAccountFactory f = _accountFactory;
        if (address(f) == address(0)) revert NoAccountFactory();
        if (msg.sender != f.accountOf(tokenId)) revert NotTokenAccount(tokenId, msg.sender);
        _requireOwned(tokenId);
        _tokens[tokenId].approvalsOpen = true;
        emit ApprovalsOpen(tokenId, msg.sender);
    }

    /// @inheritdoc IAgentNFT
    function noteActionsLogged(uint256 tokenId) external returns (address agent, bool paused) {
        if (msg.sender != address(_actionLog)) revert NotActionLog(msg.sender);
        emit MetadataUpdate(tokenId);
        Packed storage t = _tokens[tokenId];
        (agent, paused) = (t.agent, t.paused);
    }

    // ------------------------------------------------------------------ views

    /// @notice ERC-721 metadata: a JSON document rendered by the installed renderer (empty if
    /// none), read live from the chain.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        IMetadataRenderer r = _renderer;
        return address(r) == address(0) ? "" : r.tokenURI(tokenId);
    }

    /// @notice ERC-7857: the token's data hashes, described by their place in inft's layout
    /// (model, agent key, config, memory).
    function intelligentDataOf(uint256 tokenId) external view returns (IntelligentData[] memory data) {
        _requireOwned(tokenId);
        uint256 n = _tokens[tokenId].entryCount;
        data = new IntelligentData[](n);
        string[4] memory names = ["model", "agent-key", "config", "memory"];
        for (uint256 i = 0; i < n; ++i) {
            data[i] = IntelligentData({dataDescription: i < 4 ? names[i] : "extra", dataHash: _dataHashes[tokenId][i]});
        }
    }

    /// @notice ERC-7857: the users holding a live grant in the token's current epoch.
    function authorizedUsersOf(uint256 tokenId) external view returns (address[] memory users) {
        _requireOwned(tokenId);
        uint48 epoch = _tokens[tokenId].epoch;
        address[] memory all = _grantees[tokenId][epoch].values();
        users = new address[](all.length);
        uint256 live;
        for (uint256 i = 0; i < all.length; ++i) {
            Grant memory g = _grants[tokenId][all[i]];
            if (g.epoch == epoch && g.expiry > block.timestamp) users[live++] = all[i];
        }
        assembly ("memory-safe") {
            mstore(users, live)
        }
    }

    /// @notice ERC-7857: `user`'s access assistant (zero if none).
    function getDelegateAccess(address user) external view returns (address) {
        return _assistants[user];
    }

    /// @inheritdoc IAgentNFT
    function actionLog() external view returns (address) {
        return address(_actionLog);
    }

    /// @inheritdoc IAgentNFT
    function metadataRenderer() external view returns (address) {
        return address(_renderer);
    }

    /// @inheritdoc IAgentNFT
    function agentOf(uint256 tokenId) external view returns (address) {
        return _tokens[tokenId].agent;
    }

    /// @inheritdoc IAgentNFT
    function agentStateOf(uint256 tokenId) external view returns (address agent, bool paused) {
        Packed storage t = _tokens[tokenId];
        (agent, paused) = (t.agent, t.paused);
    }

    /// @inheritdoc IAgentNFT
    function controlOf(uint256 tokenId) external view returns (address owner, address agent, bool paused) {
        owner = _requireOwned(tokenId);
        Packed storage t = _tokens[tokenId];
        (agent, paused) = (t.agent, t.paused);
    }

    /// @inheritdoc IAgentNFT
    function isAuthorized(uint256 tokenId, address user, uint8 scopes) external view returns (bool) {
        if (user == address(0)) return false;
        if (_ownerOf(tokenId) == user) return true;
        Grant memory g = _grants[tokenId][user];
        return scopes != 0 && g.scopes & scopes == scopes && g.expiry > block.timestamp
            && g.epoch == _tokens[tokenId].epoch;
    }

    /// @inheritdoc IAgentNFT
    function authorizationOf(uint256 tokenId, address user) external view returns (uint8 scopes, uint64 expiry) {
        Grant memory g = _grants[tokenId][user];
        if (g.expiry > block.timestamp && g.epoch == _tokens[tokenId].epoch && _ownerOf(tokenId) != address(0)) {
            return (g.scopes, g.expiry);
        }
        return (0, 0);
    }

    /// @inheritdoc IAgentNFT
    function isPaused(uint256 tokenId) external view returns (bool) {
        return _tokens[tokenId].paused;
    }

    /// @inheritdoc IAgentNFT
    function epochOf(uint256 tokenId) external view returns (uint64) {
        _requireOwned(tokenId);
        return _tokens[tokenId].epoch;
    }

    /// @inheritdoc IAgentNFT
    function dataHashesOf(uint256 tokenId) external view returns (bytes32[] memory hashes) {
        _requireOwned(tokenId);
        uint256 n = _tokens[tokenId].entryCount;
        hashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            hashes[i] = _dataHashes[tokenId][i];
        }
    }

    /// @inheritdoc IAgentNFT
    function creatorOf(uint256 tokenId) public view returns (address) {
        _requireOwned(tokenId);
        address c = _cloneCreator[tokenId];
        // The top 160 bits of the id are the minter (see _idFor), so the cast cannot truncate.
        // forge-lint: disable-next-line(unsafe-typecast)
        return c != address(0) ? c : address(uint160(tokenId >> 96));
    }

    /// @inheritdoc IAgentNFT
    function tokenInfo(uint256 tokenId) external view returns (TokenInfo memory info) {
        Packed memory t = _tokens[tokenId];
        info = TokenInfo({
            owner: _requireOwned(tokenId),
            creator: creatorOf(tokenId),
            agent: t.agent,
            epoch: t.epoch,
            royaltyBps: t.royaltyBps,
            creatorBps: t.creatorBps,
            entryCount: t.entryCount,
            paused: t.paused,
            contributorsHash: _contributorsHash[tokenId]
        });
    }

    /// @inheritdoc IAgentNFT
    function sealingKeyOf(address account) external view returns (bytes32) {
        return _sealingKeys[account];
    }

    /// @inheritdoc IAgentNFT
    function verifier() external view returns (ITransferVerifier) {
        return _verifier;
    }

    /// @inheritdoc IAgentNFT
    function accountFactory() external view returns (IAgentAccountFactory) {
        return _accountFactory;
    }

    /// @inheritdoc IAgentNFT
    function approvalsOpenOf(uint256 tokenId) external view returns (bool) {
        return _tokens[tokenId].approvalsOpen;
    }

    /// @inheritdoc IAgentNFT
    function modelHashOf(uint256 tokenId) external view returns (bytes32) {
        _requireOwned(tokenId);
        return _modelHashes[tokenId];
    }

    /// @inheritdoc IAgentNFT
    function contributorsHashOf(uint256 tokenId) external view returns (bytes32) {
        _requireOwned(tokenId);
        return _contributorsHash[tokenId];
    }

    /// @inheritdoc IAgentNFT
    function splitOf(uint256 tokenId)
        external
        view
        returns (address creator, uint16 creatorBps, bytes32 contributorsHash, address holder)
    {
        holder = _requireOwned(tokenId);
        creator = creatorOf(tokenId);
        creatorBps = _tokens[tokenId].creatorBps;
        contributorsHash = _contributorsHash[tokenId];
    }

    /// @notice ERC-2981: the creator receives `royaltyBps` of the sale price (fixed at mint).
    function royaltyInfo(uint256 tokenId, uint256 salePrice) external view returns (address, uint256) {
        return (creatorOf(tokenId), salePrice * _tokens[tokenId].royaltyBps / BPS);
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, IERC165) returns (bool) {
        return interfaceId == type(IERC2981).interfaceId || interfaceId == type(IAgentNFT).interfaceId
            || interfaceId == type(IERC7857).interfaceId || interfaceId == type(IERC7857Metadata).interfaceId
            || interfaceId == bytes4(0x49064906) || super.supportsInterface(interfaceId);
    }

    // --------------------------------------------------------------- internal

    /// @dev Every external ERC-721 transfer path (transferFrom and both safeTransferFrom) passes
    /// the caller as `auth`; mint and the proof paths pass zero. All tokens carry private data, so
    /// a plain transfer is always refused: the token would move without a rotation, and the
    /// previous owner would keep the data keys.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        if (auth != address(0)) revert PrivateTokenTransfer(tokenId);
        return super._update(to, tokenId, auth);
    }

    /// @dev A grant, in our rules and in ERC-7857's user list.
    function _grant(uint256 tokenId, address user, uint8 scopes, uint64 expiry, bytes[] memory sealedKeys) private {
        _requireOwner(tokenId);
        if (user == address(0)) revert ZeroAddress();
        if (scopes == 0 || scopes & ~Scopes.ALL != 0) revert BadScopes(scopes);
        if (expiry <= block.timestamp) revert BadExpiry(expiry);
        uint48 epoch = _tokens[tokenId].epoch;
        _grants[tokenId][user] = Grant({epoch: epoch, expiry: expiry, scopes: scopes});
        _grantees[tokenId][epoch].add(user);
        emit UsageAuthorized(tokenId, user, epoch, scopes, expiry, sealedKeys);
        emit Authorization(msg.sender, user, tokenId);
    }

    function _revoke(uint256 tokenId, address user) private {
        _requireOwner(tokenId);
        uint48 epoch = _tokens[tokenId].epoch;
        delete _grants[tokenId][user];
        _grantees[tokenId][epoch].remove(user);
        emit UsageRevoked(tokenId, user, epoch);
        emit AuthorizationRevoked(msg.sender, user, tokenId);
    }

    /// @dev Decodes ERC-7857 proofs into our entries and envelope (encoding: {RotationEnvelope}),
    /// checking that each element agrees with itself, the token's current hashes and `to`'s
    /// sealing key. The signature inside the envelope is checked later, like any other proof.
    function _fromStandard(address to, uint256 tokenId, TransferValidityProof[] calldata proofs, bool clone)
        private
        view
        returns (DataEntries memory data, RotationEnvelope memory env)
    {
        uint256 n = proofs.length;
        if (n == 0) revert BadEntries();
        env = abi.decode(proofs[0].accessProof.proof, (RotationEnvelope));
        if (!clone && (env.salt != 0 || env.shares.contributors.length != 0)) revert BadStandardProof(0);
        data = DataEntries({dataHashes: new bytes32[](n), sealedKeys: new bytes[](n), uris: new string[](n)});
        bytes32 sealingKey = _sealingKeys[to];
        for (uint256 i = 0; i < n; ++i) {
            OwnershipProof calldata o = proofs[i].ownershipProof;
            bytes32 stored = _dataHashes[tokenId][i];
            if (o.oldDataHash != stored) revert StaleDataHash(i, stored, o.oldDataHash);
            if (
                proofs[i].accessProof.oldDataHash != o.oldDataHash || proofs[i].accessProof.newDataHash != o.newDataHash
                    || o.encryptedPubKey.length != 32 || bytes32(o.encryptedPubKey) != sealingKey
                    || (i > 0 && proofs[i].accessProof.proof.length != 0)
            ) revert BadStandardProof(i);
            data.dataHashes[i] = o.newDataHash;
            data.sealedKeys[i] = o.sealedKey;
            data.uris[i] = string(o.proof);
        }
    }

    function _idFor(address minter, uint96 salt) private pure returns (uint256) {
        return (uint256(uint160(minter)) << 96) | uint256(salt);
    }

    function _requireOwner(uint256 tokenId) private view {
        if (_requireOwned(tokenId) != msg.sender) revert NotTokenOwner(tokenId, msg.sender);
    }

    function _checkEntries(DataEntries memory data) private pure returns (uint8) {
        uint256 n = data.dataHashes.length;
        if (n == 0 || n > MAX_ENTRIES || data.sealedKeys.length != n || data.uris.length != n) revert BadEntries();
        for (uint256 i = 0; i < n; ++i) {
            if (data.dataHashes[i] == bytes32(0) || data.sealedKeys[i].length == 0) revert EmptyEntry(i);
        }
        // n <= MAX_ENTRIES (255), checked above.
        // forge-lint: disable-next-line(unsafe-typecast)
        return uint8(n);
    }

    function _checkShares(Shares calldata shares) private pure returns (bytes32) {
        uint256 n = shares.contributors.length;
        if (shares.royaltyBps > BPS || shares.contributorBps.length != n) revert BadShares();
        uint256 sum = shares.creatorBps;
        for (uint256 i = 0; i < n; ++i) {
            if (shares.contributors[i] == address(0)) revert BadShares();
            sum += shares.contributorBps[i];
        }
        if (sum > BPS) revert BadShares();
        return _hashContributors(shares);
    }

    /// @dev keccak256(abi.encode(contributors, contributorBps)), or zero without contributors.
    function _hashContributors(Shares memory shares) private pure returns (bytes32) {
        if (shares.contributors.length == 0 && shares.contributorBps.length == 0) return bytes32(0);
        return keccak256(abi.encode(shares.contributors, shares.contributorBps));
    }

    function _storeHashes(uint256 tokenId, bytes32[] memory hashes) private {
        mapping(uint256 => bytes32) storage slot = _dataHashes[tokenId];
        for (uint256 i = 0; i < hashes.length; ++i) {
            slot[i] = hashes[i];
        }
    }

    /// @dev Fills the EIP-712 array members of `r` (bytes32[] -> keccak of the concatenation;
    /// bytes[] / string[] -> keccak of the concatenated element hashes) and checks that every entry
    /// was rotated.
    function _hashEntries(ITransferVerifier.Rotation memory r, uint256 tokenId, uint256 n, DataEntries memory data)
        private
        view
    {
        bytes32[] memory old = new bytes32[](n);
        bytes32[] memory keyHashes = new bytes32[](n);
        bytes32[] memory uriHashes = new bytes32[](n);
        mapping(uint256 => bytes32) storage stored = _dataHashes[tokenId];
        for (uint256 i = 0; i < n; ++i) {
            bytes32 h = stored[i];
            if (data.dataHashes[i] == h) revert DataNotRotated(i);
            old[i] = h;
            keyHashes[i] = keccak256(data.sealedKeys[i]);
            uriHashes[i] = keccak256(bytes(data.uris[i]));
        }
        r.oldDataHashes = keccak256(abi.encodePacked(old));
        r.newDataHashes = keccak256(abi.encodePacked(data.dataHashes));
        r.sealedKeys = keccak256(abi.encodePacked(keyHashes));
        r.uris = keccak256(abi.encodePacked(uriHashes));
    }

    /// @dev The checks shared by transfer and clone, then the verifier. Returns the proof signer.
    function _verifyRotation(
        uint256 tokenId,
        uint256 newTokenId,
        address from,
        address to,
        Packed memory t,
        DataEntries memory data,
        address newAgent,
        Proof memory proof,
        Sale memory sale
    ) private returns (address) {
        if (block.timestamp > proof.deadline) revert ProofExpired(proof.deadline, block.timestamp);
        ITransferVerifier v = _verifier;
        if (address(v) == address(0)) revert NoVerifier();
        _checkEntries(data);
        uint256 n = t.entryCount;
        if (data.dataHashes.length != n) revert EntryCountMismatch(n, data.dataHashes.length);
        if (newAgent != address(0) && newAgent == t.agent) revert AgentNotRotated(newAgent);
        // A sale seals to the key the buyer committed when it paid: changing its published key
        // afterwards must not make the completion fail.
        bytes32 sealingKey = sale.market == address(0) ? _sealingKeys[to] : sale.sealingKey;
        if (sealingKey == bytes32(0)) revert NoSealingKey(to);

        ITransferVerifier.Rotation memory r;
        r.nft = address(this);
        r.tokenId = tokenId;
        r.newTokenId = newTokenId;
        r.from = from;
        r.to = to;
        r.sealingKey = sealingKey;
        r.newAgent = newAgent;
        r.market = sale.market;
        r.price = sale.price;
        r.nonce = proof.nonce;
        r.deadline = proof.deadline;
        _hashEntries(r, tokenId, n, data);
        return v.verifyRotation(proof.mode, r, proof.signature);
    }
}
