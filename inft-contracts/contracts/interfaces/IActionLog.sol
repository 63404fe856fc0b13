// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IActionLog
/// @notice Per token, an append-only hash chain of the agent's action hashes.
///
/// Chain rule: `head_0 = 0`, `head_n = keccak256(abi.encode(head_{n-1}, actionHash_n))`; the
/// sequence number `seq` is the number of actions logged so far, so the n-th action has seq n.
/// A batch must start at `seq + 1`: a retried batch that already landed reverts with
/// {SequenceMismatch} (retries are safe and idempotent).
interface IActionLog {
    /// @notice A batch was appended: actions `firstSeq .. firstSeq + actionHashes.length - 1`.
    event ActionsLogged(
        uint256 indexed tokenId,
        uint64 indexed firstSeq,
        address indexed sender,
        bytes32 prevHead,
        bytes32 newHead,
        bytes32[] actionHashes
    );

    /// @notice The caller is neither the token's agent nor authorized with SCOPE_LOG (or its owner).
    error NotAgentOrExecutor(uint256 tokenId, address caller);
    /// @notice The owner paused the token: only the owner may log until it is unpaused.
    error TokenPaused(uint256 tokenId, address caller);
    /// @notice `firstSeq` is not `seq + 1`.
    error SequenceMismatch(uint64 expected, uint64 got);
    /// @notice An empty batch.
    error EmptyBatch();

    /// @notice Append `actionHashes` to `tokenId`'s chain, the first one with sequence `firstSeq`.
    /// Caller: the token's agent or a LOG grantee (the owner counts); only the owner while the
    /// token is paused ({TokenPaused}).
    function logActions(uint256 tokenId, uint64 firstSeq, bytes32[] calldata actionHashes) external;

    /// @notice The chain head and the sequence number of the last logged action (0 if none).
    function chainOf(uint256 tokenId) external view returns (bytes32 head, uint64 seq);

    /// @notice The NFT whose agents log here.
    function nft() external view returns (address);
}
