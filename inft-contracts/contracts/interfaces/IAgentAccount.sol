// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IAgentAccount
/// @notice A token-bound wallet (ERC-6551 idea): it holds the agent's funds, and control over it
/// follows the token. Callers: the token's current agent (`nft.agentOf(tokenId)`) or a user the
/// owner authorized with SCOPE_TRADE while the token is not paused; the token's owner always.
/// Because control is read from the NFT on every call, a proof transfer moves it atomically; if
/// the transfer fails, nothing moves and the funds stay usable by the current owner.
interface IAgentAccount {
    /// @notice One call of a batch.
    struct Call {
        address target;
        uint256 value;
        bytes data;
    }

    /// @notice `caller` made the account call `target` with `value` (selector = first 4 data bytes).
    event Executed(address indexed caller, address indexed target, uint256 value, bytes4 selector);

    /// @notice The caller may not operate this account (or the token is paused and it is not the owner).
    error NotAllowed(address caller);
    /// @notice The call target is the account itself.
    error SelfCall();

    /// @notice Call `target` with `value` and `data`; bubbles the target's revert data.
    function execute(address target, uint256 value, bytes calldata data) external payable returns (bytes memory);

    /// @notice Several calls in order, all or nothing.
    function executeBatch(Call[] calldata calls) external payable returns (bytes[] memory results);

    /// @notice (chain id, NFT, token id) this account belongs to.
    function token() external view returns (uint256 chainId, address nft, uint256 tokenId);

    /// @notice The token's current owner.
    function owner() external view returns (address);
}

/// @title IAgentAccountFactory
/// @notice Deploys one AgentAccount per token at a deterministic address (minimal proxy with the
/// NFT and token id as immutable arguments, CREATE2 salt = token id). The address is known before
/// deployment, so funds may be sent to it first; deployment is permissionless and idempotent.
interface IAgentAccountFactory {
    /// @notice An account was deployed for `tokenId`.
    event AccountCreated(uint256 indexed tokenId, address account);

    /// @notice The account address of `tokenId` (deployed or not).
    function accountOf(uint256 tokenId) external view returns (address);

    /// @notice Deploy `tokenId`'s account if needed; returns its address.
    function createAccount(uint256 tokenId) external returns (address);
}
