// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IAgentAccount
/// @notice A token-bound wallet (ERC-6551 idea): it holds the agent's funds, and control over it
/// follows the token. Callers: the token's current agent (`nft.agentOf(tokenId)`) or a user the
/// owner authorized with SCOPE_TRADE while the token is not paused; the token's owner always.
/// Because control is read from the NFT on every call, a proof transfer moves it atomically; if
/// the transfer fails, nothing moves and the funds stay usable by the current owner.
///
/// Approvals never outlive the context that made them. Calls that create an approval are
/// recognised by selector: ERC-20 / ERC-721 `approve(address,uint256)`,
/// `increaseAllowance(address,uint256)`, ERC-1363 `approveAndCall(address,uint256[,bytes])`,
/// ERC-721 / ERC-1155 `setApprovalForAll(address,bool)` and Permit2
/// `approve(address,address,uint160,uint48)`. After a call or batch:
/// - by the agent or a TRADE grantee: every approval it touched must be closed again (allowance
///   zero, operator off), else the whole call reverts with {AllowanceLeftOpen};
/// - by the owner: approvals left open are kept in a ledger of at most 16 entries
///   ({openApprovals}); a proof transfer of the token closes them all ({closeApprovals}) in the
///   same transaction, or reverts.
interface IAgentAccount {
    /// @notice One call of a batch.
    struct Call {
        address target;
        uint256 value;
        bytes data;
    }

    /// @notice An approval the owner left open (see the kinds below).
    /// @param kind 1 ERC-20 allowance, 2 ERC-721 single-token approval, 3 ERC-721/1155 operator,
    /// 4 Permit2 allowance
    /// @param target the token (kinds 1-3) or the Permit2 contract (kind 4)
    /// @param spender the spender, approved address or operator
    /// @param id the ERC-721 token id (kind 2), the token as uint160 (kind 4), else 0
    struct OpenApproval {
        uint8 kind;
        address target;
        address spender;
        uint256 id;
    }

    /// @notice `caller` made the account call `target` with `value` (selector = first 4 data bytes).
    event Executed(address indexed caller, address indexed target, uint256 value, bytes4 selector);
    /// @notice The owner left an approval open; it is in the ledger until closed.
    event OpenApprovalRecorded(uint8 kind, address indexed target, address indexed spender, uint256 id);
    /// @notice The owner closed an approval of the ledger itself; it left the ledger.
    event OpenApprovalDropped(uint8 kind, address indexed target, address indexed spender, uint256 id);
    /// @notice `caller` (the owner, or the NFT during a proof transfer) closed the ledger's
    /// approvals; `closed` of them were still open.
    event OpenApprovalsClosed(address indexed caller, uint256 closed);

    /// @notice The caller may not operate this account (or the token is paused and it is not the owner).
    error NotAllowed(address caller);
    /// @notice The call target is the account itself.
    error SelfCall();
    /// @notice A caller other than the owner left an approval open at the end of its call or batch.
    error AllowanceLeftOpen(address target, address spender);
    /// @notice An approval-creating call whose result cannot be read back (the target answers
    /// neither the ERC-20 nor the ERC-721 query, or the call data is too short).
    error UnverifiableApproval(address target, bytes4 selector);
    /// @notice Closing an open approval failed (the target reverted or the approval stayed open).
    error ApprovalNotClosed(address target, address spender);
    /// @notice The ledger of the owner's open approvals is full (close some first).
    error TooManyOpenApprovals(uint256 max);

    /// @notice Call `target` with `value` and `data`; bubbles the target's revert data.
    function execute(address target, uint256 value, bytes calldata data) external payable returns (bytes memory);

    /// @notice Several calls in order, all or nothing.
    function executeBatch(Call[] calldata calls) external payable returns (bytes[] memory results);

    /// @notice The owner's approvals that are still open (ledger entries whose target still
    /// reports them open).
    function openApprovals() external view returns (OpenApproval[] memory);

    /// @notice Close every approval in the ledger (allowance 0, operator off) and empty it.
    /// Caller: the owner, or the NFT during a proof transfer. Reverts with {ApprovalNotClosed} if
    /// one cannot be closed. Returns how many were still open.
    function closeApprovals() external returns (uint256 closed);

    /// @notice (chain id, NFT, token id) this account belongs to.
    function token() external view returns (uint256 chainId, address nft, uint256 tokenId);

    /// @notice The token's current owner.
    function owner() external view returns (address);

    /// @notice The EIP-712 digest a signer signs so that {IERC1271-isValidSignature} accepts
    /// `hash` for this account: `AgentAccountMessage(bytes32 hash)` under the domain
    /// `{name: "AgentAccount", version: "1", chainId, verifyingContract: this account}`.
    function messageHash(bytes32 hash) external view returns (bytes32);
}

/// @title IAgentAccountFactory
/// @notice Deploys one AgentAccount per token at a deterministic address (minimal proxy with the
/// NFT and token id as immutable arguments, CREATE2 salt = token id). The address is known before
/// deployment, so funds may be sent to it first; deployment is permissionless and idempotent.
interface IAgentAccountFactory {
    /// @notice An account was deployed for `tokenId`.
    event AccountCreated(uint256 indexed tokenId, address account);

    /// @notice The NFT whose tokens get accounts.
    function nft() external view returns (address);

    /// @notice The account address of `tokenId` (deployed or not).
    function accountOf(uint256 tokenId) external view returns (address);

    /// @notice Deploy `tokenId`'s account if needed; returns its address.
    function createAccount(uint256 tokenId) external returns (address);
}
