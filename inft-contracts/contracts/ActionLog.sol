// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IActionLog} from "./interfaces/IActionLog.sol";
import {IAgentNFT} from "./interfaces/IAgentNFT.sol";
import {Scopes} from "./interfaces/Scopes.sol";

/// @title ActionLog
/// @notice Per-token hash chain of agent actions. See IActionLog for the chain rule.
/// Appenders: the token's current agent wallet (`nft.agentOf`), or an account the owner
/// authorized with Scopes.LOG (the owner itself counts); while the token is paused, only its
/// owner. After a transfer the old agent key and old grants are out (the NFT rotates the agent
/// and bumps the epoch).
contract ActionLog is IActionLog {
    /// @dev Two slots: the full 256-bit head, and the sequence number.
    struct Chain {
        bytes32 head;
        uint64 seq;
    }

    IAgentNFT private immutable _nft;

    mapping(uint256 tokenId => Chain) private _chains;

    /// @param nft_ the AgentNFT (which deploys its ActionLog in its constructor)
    constructor(IAgentNFT nft_) {
        _nft = nft_;
    }

    /// @inheritdoc IActionLog
    function nft() external view returns (address) {
        return address(_nft);
    }

    /// @inheritdoc IActionLog
    function logActions(uint256 tokenId, uint64 firstSeq, bytes32[] calldata actionHashes) external {
        uint256 n = actionHashes.length;
        if (n == 0) revert EmptyBatch();
        // Also tells the NFT that the token's metadata (head, count) changes (ERC-4906).
        (address agent, bool paused) = _nft.noteActionsLogged(tokenId);
        if (msg.sender != agent && !_nft.isAuthorized(tokenId, msg.sender, Scopes.LOG)) {
            revert NotAgentOrExecutor(tokenId, msg.sender);
        }
        // While the owner has paused the agent, only the owner logs.
        if (paused) {
            (address owner,,) = _nft.controlOf(tokenId);
            if (msg.sender != owner) revert TokenPaused(tokenId, msg.sender);
        }
        Chain storage c = _chains[tokenId];
        uint64 seq = c.seq;
        if (firstSeq != seq + 1) revert SequenceMismatch(seq + 1, firstSeq);
        bytes32 prev = c.head;
        bytes32 h = prev;
        // head = keccak256(abi.encode(head, actionHash)), computed in scratch space.
        assembly ("memory-safe") {
            let p := actionHashes.offset
            let end := add(p, shl(5, n))
            for {} lt(p, end) { p := add(p, 0x20) } {
                mstore(0x00, h)
                mstore(0x20, calldataload(p))
                h := keccak256(0x00, 0x40)
            }
        }
        c.head = h;
        // n is bounded by the calldata size, far below 2^64.
        // forge-lint: disable-next-line(unsafe-typecast)
        c.seq = seq + uint64(n);
        emit ActionsLogged(tokenId, firstSeq, msg.sender, prev, h, actionHashes);
    }

    /// @inheritdoc IActionLog
    function chainOf(uint256 tokenId) external view returns (bytes32 head, uint64 seq) {
        Chain storage c = _chains[tokenId];
        return (c.head, c.seq);
    }
}
