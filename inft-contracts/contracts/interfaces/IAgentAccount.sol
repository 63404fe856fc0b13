// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC6551Registry} from "./IERC6551.sol";

/// @title IAgentAccount
/// @notice An ERC-6551 token bound account of one agent token: it holds the agent's funds, and
/// control over it follows the token. Valid signers ({IERC6551Account-isValidSigner}) and callers
/// of {IERC6551Executable-execute} / {executeBatch}: the token's owner always; the token's current
/// agent (`nft.agentOf(tokenId)`) or a user the owner authorized with SCOPE_TRADE while the token
/// is not paused. An account whose `token()` names another chain has no valid signer. Because
/// control is read from the NFT on every call, a proof transfer moves it atomically; if the
/// transfer fails, nothing moves and the funds stay usable by the current owner.
///
/// ERC-6551: an AgentAccount also implements IERC6551Account (`token`, `state`,
/// `isValidSigner`, `receive`) and IERC6551Executable (`execute`), declared in IERC6551.sol and
/// not inherited here (IERC6551Account's `receive()` would make every IAgentAccount reference
/// payable). `token()` is read from the account's own code (the ERC-1167 proxy's footer
/// `abi.encode(salt, chainId, tokenContract, tokenId)`); `state()` changes with every `execute` /
/// `executeBatch` and with every {closeApprovals} of the owner that closed something;
/// `execute(to, value, data, operation)` supports only operation 0 (CALL): DELEGATECALL, CREATE
/// and CREATE2 revert with {UnsupportedOperation} (foreign code running as the account could
/// approve anything and rewrite the ledger below). ERC-165 ids answered: IERC165,
/// IERC6551Account (0x6faff5f1), IERC6551Executable (0x51945447), IERC1271, IERC721Receiver,
/// IERC1155Receiver and IAgentAccount. ERC-1271 signatures: the owner's only (an EOA or, through
/// ERC-1271, a contract), over {messageHash}; the agent and TRADE grantees may execute but do not
/// sign (a signed permit creates an allowance the account never sees, which would outlive their
/// control).
///
/// Approvals never outlive the context that made them. Calls that create an approval are
/// recognised by selector, on any target: ERC-20 / ERC-721 `approve(address,uint256)`,
/// `increaseAllowance(address,uint256)`, `increaseApproval(address,uint256)` (OpenZeppelin 1.x
/// tokens), ERC-1363 `approveAndCall(address,uint256[,bytes])`, ERC-721 / ERC-1155
/// `setApprovalForAll(address,bool)`, Permit2 `approve(address,address,uint160,uint48)`, ERC-6909
/// `approve(address,uint256,uint256)` and `setOperator(address,bool)`, and, for agent tokens the
/// account holds, `setAgent(uint256,address)`, `authorize(uint256,address,uint8,uint64,bytes[])`
/// and `authorizeUsage(uint256,address)` (control of the held token's own account and agent).
/// After a call or batch each is read back from the target ({UnverifiableApproval} if it cannot
/// be), and:
/// - by the agent or a TRADE grantee: every approval it touched must be closed again (allowance
///   zero, operator off, agent and grant gone), else the whole call reverts with
///   {AllowanceLeftOpen};
/// - by the owner: approvals left open are kept in a ledger of at most 16 entries
///   ({openApprovals}); a proof transfer of the token closes them all ({closeApprovals}) in the
///   same transaction, or reverts.
/// An agent token's owner administration that no ledger entry could take back (`setSealingKey`,
/// `delegateAccess`, `updateData`, `setPaused`, `cloneWithProof`, `iClone`, `iCloneFrom`) is the
/// owner's alone: the agent and TRADE grantees get {OwnerOnlyCall}.
interface IAgentAccount {
    /// @notice One call of a batch.
    struct Call {
        address target;
        uint256 value;
        bytes data;
    }

    /// @notice An approval the owner left open (see the kinds below).
    /// @param kind 1 ERC-20 allowance, 2 ERC-721 single-token approval, 3 ERC-721/1155 operator,
    /// 4 Permit2 allowance, 5 ERC-6909 allowance, 6 ERC-6909 operator, 7 agent wallet of an agent
    /// token the account holds, 8 usage grant on an agent token the account holds
    /// @param target the token (kinds 1-3, 5, 6), the Permit2 contract (kind 4) or the agent NFT
    /// (kinds 7, 8)
    /// @param spender the spender, approved address, operator, agent or grantee
    /// @param id the token id (kinds 2, 5, 7, 8), the token as uint160 (kind 4), else 0
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
    /// @notice An approval-creating call whose result cannot be read back (the target does not
    /// answer the query of its kind, e.g. neither the ERC-20 nor the ERC-721 one for `approve`, or
    /// the call data is too short).
    error UnverifiableApproval(address target, bytes4 selector);
    /// @notice Closing an open approval failed (the target reverted or the approval stayed open).
    error ApprovalNotClosed(address target, address spender);
    /// @notice The ledger of the owner's open approvals is full (close some first).
    error TooManyOpenApprovals(uint256 max);
    /// @notice `execute` was asked for an operation other than 0 (CALL).
    error UnsupportedOperation(uint8 operation);
    /// @notice A caller other than the owner called an agent token's owner administration
    /// (`selector` on `target`): what it hands out would outlive the caller's control.
    error OwnerOnlyCall(address target, bytes4 selector);

    /// @notice Several calls in order, all or nothing (each a CALL, as through
    /// {IERC6551Executable-execute} with operation 0, and under the same rules).
    function executeBatch(Call[] calldata calls) external payable returns (bytes[] memory results);

    /// @notice The owner's approvals that are still open (ledger entries whose target still
    /// reports them open).
    function openApprovals() external view returns (OpenApproval[] memory);

    /// @notice Close every approval in the ledger (allowance 0, operator off, a held agent
    /// token's agent set to zero and grants revoked) and empty it.
    /// Caller: the owner, or the NFT during a proof transfer. Reverts with {ApprovalNotClosed} if
    /// one cannot be closed. Returns how many were still open.
    function closeApprovals() external returns (uint256 closed);

    /// @notice The token's current owner (zero for an account whose `token()` names another chain).
    function owner() external view returns (address);

    /// @notice The EIP-712 digest a signer signs so that {IERC1271-isValidSignature} accepts
    /// `hash` for this account: `AgentAccountMessage(bytes32 hash)` under the domain
    /// `{name: "AgentAccount", version: "1", chainId, verifyingContract: this account}`.
    function messageHash(bytes32 hash) external view returns (bytes32);
}

/// @title IAgentAccountFactory
/// @notice The ERC-6551 registry of one NFT's agent accounts: one AgentAccount per token at a
/// deterministic address, built exactly as the canonical ERC-6551 registry builds accounts
/// (ERC-1167 proxy with the `(salt, chainId, tokenContract, tokenId)` footer, CREATE2 by this
/// contract), with salt 0, this chain and this NFT. The address is known before deployment, so
/// funds may be sent to it first; deployment is permissionless and idempotent. The NFT trusts
/// exactly `accountOf(tokenId)`, so {IERC6551Registry-createAccount} refuses every other
/// implementation, salt, chain or token contract ({UnsupportedAccount}); `account(...)` computes
/// any address, as the specification's registry does.
interface IAgentAccountFactory is IERC6551Registry {
    /// @notice `createAccount` was asked for an account this factory does not make (another
    /// implementation, a salt other than 0, another chain or another token contract).
    error UnsupportedAccount(address implementation, bytes32 salt, uint256 chainId, address tokenContract);

    /// @notice The NFT whose tokens get accounts.
    function nft() external view returns (address);

    /// @notice The AgentAccount implementation behind every account.
    function implementation() external view returns (address);

    /// @notice The account address of `tokenId` (deployed or not):
    /// `account(implementation(), 0, block.chainid, nft(), tokenId)`.
    function accountOf(uint256 tokenId) external view returns (address);

    /// @notice Deploy `tokenId`'s account if needed; returns its address (= {accountOf}).
    function createAccount(uint256 tokenId) external returns (address);
}
