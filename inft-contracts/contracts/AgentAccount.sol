// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {IERC1155Receiver} from "@openzeppelin/contracts/token/ERC1155/IERC1155Receiver.sol";

import {IAgentAccount, IAgentAccountFactory} from "./interfaces/IAgentAccount.sol";
import {IERC6551Account, IERC6551Executable} from "./interfaces/IERC6551.sol";
import {IAgentNFT} from "./interfaces/IAgentNFT.sol";
import {IERC7857} from "./interfaces/IERC7857.sol";
import {Scopes} from "./interfaces/Scopes.sol";

/// @title AgentAccount
/// @notice ERC-6551 token bound account of one agent token (see IAgentAccount). Deployed by
/// {AgentAccountFactory} (or any ERC-6551 registry) as an ERC-1167 proxy whose code ends with
/// abi.encode(salt, chainId, nft, tokenId). Who controls it is always read from the NFT; its only
/// storage is the ERC-6551 state counter and the ledger of the owner's open approvals (ERC-7201
/// namespace).
contract AgentAccount is
    IAgentAccount,
    IERC6551Account,
    IERC6551Executable,
    IERC1271,
    IERC721Receiver,
    IERC1155Receiver,
    EIP712
{
    /// @dev The implementation itself is not an account.
    address private immutable _implementation = address(this);

    /// @dev At most this many open approvals of the owner are tracked (closing them all must fit
    /// in a transfer's gas).
    uint256 private constant MAX_OPEN_APPROVALS = 16;

    // Kinds of OpenApproval (see IAgentAccount.OpenApproval). KIND_APPROVE is
    // `approve(address,uint256)` before the call's result tells an ERC-20 allowance (1) from an
    // ERC-721 single-token approval (2).
    uint8 private constant KIND_APPROVE = 0;
    uint8 private constant KIND_ERC20 = 1;
    uint8 private constant KIND_ERC721 = 2;
    uint8 private constant KIND_OPERATOR = 3;
    uint8 private constant KIND_PERMIT2 = 4;
    uint8 private constant KIND_ERC6909 = 5; // ERC-6909 allowance of one id
    uint8 private constant KIND_ERC6909_OPERATOR = 6; // ERC-6909 operator
    uint8 private constant KIND_AGENT = 7; // agent wallet of an agent token the account holds
    uint8 private constant KIND_GRANT = 8; // usage grant on an agent token the account holds

    // Approval-creating selectors.
    bytes4 private constant APPROVE = 0x095ea7b3; // approve(address,uint256): ERC-20 and ERC-721
    bytes4 private constant INCREASE_ALLOWANCE = 0x39509351; // increaseAllowance(address,uint256)
    bytes4 private constant INCREASE_APPROVAL = 0xd73dd623; // increaseApproval(address,uint256): OZ 1.x tokens
    bytes4 private constant APPROVE_AND_CALL = 0x3177029f; // ERC-1363 approveAndCall(address,uint256)
    bytes4 private constant APPROVE_AND_CALL_DATA = 0xcae9ca51; // approveAndCall(address,uint256,bytes)
    bytes4 private constant SET_APPROVAL_FOR_ALL = 0xa22cb465; // setApprovalForAll(address,bool)
    bytes4 private constant PERMIT2_APPROVE = 0x87517c45; // approve(address,address,uint160,uint48)
    bytes4 private constant ERC6909_APPROVE = 0x426a8493; // approve(address,uint256,uint256)
    bytes4 private constant ERC6909_SET_OPERATOR = 0x558a7297; // setOperator(address,bool)
    // An agent token's control, given to someone else (the account may hold agent tokens).
    bytes4 private constant SET_AGENT = IAgentNFT.setAgent.selector; // setAgent(uint256,address)
    bytes4 private constant AUTHORIZE = IAgentNFT.authorize.selector; // authorize(uint256,address,uint8,uint64,bytes[])
    bytes4 private constant AUTHORIZE_USAGE = IERC7857.authorizeUsage.selector; // authorizeUsage(uint256,address)

    // Read-back queries.
    bytes4 private constant ALLOWANCE = 0xdd62ed3e; // allowance(address,address)
    bytes4 private constant GET_APPROVED = 0x081812fc; // getApproved(uint256)
    bytes4 private constant OWNER_OF = 0x6352211e; // ownerOf(uint256)
    bytes4 private constant IS_APPROVED_FOR_ALL = 0xe985e9c5; // isApprovedForAll(address,address)
    bytes4 private constant PERMIT2_ALLOWANCE = 0x927da105; // allowance(address,address,address)
    bytes4 private constant ERC6909_ALLOWANCE = 0x598af9e7; // allowance(address,address,uint256)
    bytes4 private constant ERC6909_IS_OPERATOR = 0xb6363cf2; // isOperator(address,address)
    bytes4 private constant AGENT_OF = IAgentNFT.agentOf.selector; // agentOf(uint256)
    bytes4 private constant AUTHORIZATION_OF = IAgentNFT.authorizationOf.selector; // authorizationOf(uint256,address)

    // Closing an agent token's grant (its agent is closed with setAgent(id, 0)).
    bytes4 private constant REVOKE = IAgentNFT.revoke.selector; // revoke(uint256,address)

    bytes32 private constant MESSAGE_TYPEHASH = keccak256("AgentAccountMessage(bytes32 hash)");

    /// @dev The only operation `execute` supports.
    uint8 private constant OP_CALL = 0;

    /// @dev An approval-creating call of `execute` / `executeBatch`, noted for {_settle}, with the
    /// selector that made it (named if its result cannot be read back).
    struct Touched {
        OpenApproval approval;
        bytes4 selector;
    }

    // Who a caller or signer is (see {_roleOf}).
    uint8 private constant ROLE_NONE = 0;
    uint8 private constant ROLE_OWNER = 1;
    uint8 private constant ROLE_OPERATOR = 2; // the agent or a TRADE grantee, token not paused

    /// @custom:storage-location erc7201:inft.storage.AgentAccount
    /// @dev `state` (ERC-6551) has a slot of its own: a transfer that empties the ledger then
    /// clears `count`'s slot (and gets its refund).
    struct Ledger {
        uint256 count;
        OpenApproval[MAX_OPEN_APPROVALS] entries;
        uint256 state;
    }

    // keccak256(abi.encode(uint256(keccak256("inft.storage.AgentAccount")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 private constant LEDGER_SLOT = 0x2cca1eec26224f547418ebbec38b930479b2097a5a02cc5b924d74d0e1ceff00;

    /// @notice The account is used directly instead of through a clone.
    error NotAClone();
    /// @notice An account must not own its own token (the token would be locked forever).
    error OwnTokenRefused();

    constructor() EIP712("AgentAccount", "1") {}

    receive() external payable {}

    /// @notice ERC-6551 execution: a CALL (operation 0) of `to` with `value` and `data` by the
    /// owner, or by the agent or a TRADE grantee while the token is not paused; bubbles the
    /// target's revert data. DELEGATECALL, CREATE and CREATE2 revert with {UnsupportedOperation}.
    /// Under the approval rules of IAgentAccount: an approval-creating call is read back after
    /// it (a caller other than the owner must leave it closed, the owner's open one enters the
    /// ledger), and an agent token's owner administration is refused to callers other than the
    /// owner ({OwnerOnlyCall}).
    function execute(address to, uint256 value, bytes calldata data, uint8 operation)
        external
        payable
        returns (bytes memory result)
    {
        if (operation != OP_CALL) revert UnsupportedOperation(operation);
        (bool byOwner, address nft, uint256 tokenId) = _enter();
        Touched[] memory touched = new Touched[](1);
        uint256 n;
        (result, n) = _call(to, value, data, touched, 0, byOwner);
        _settle(touched, n, byOwner, nft, tokenId);
    }

    /// @inheritdoc IAgentAccount
    function executeBatch(Call[] calldata calls) external payable returns (bytes[] memory results) {
        (bool byOwner, address nft, uint256 tokenId) = _enter();
        Touched[] memory touched = new Touched[](calls.length);
        uint256 n;
        results = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (results[i], n) = _call(calls[i].target, calls[i].value, calls[i].data, touched, n, byOwner);
        }
        _settle(touched, n, byOwner, nft, tokenId);
    }

    /// @inheritdoc IAgentAccount
    function openApprovals() external view returns (OpenApproval[] memory open) {
        Ledger storage l = _ledger();
        uint256 n = l.count;
        open = new OpenApproval[](n);
        uint256 k;
        for (uint256 i = 0; i < n; ++i) {
            OpenApproval memory a = l.entries[i];
            if (_isOpen(a)) open[k++] = a;
        }
        assembly ("memory-safe") {
            mstore(open, k)
        }
    }

    /// @inheritdoc IAgentAccount
    function closeApprovals() external returns (uint256 closed) {
        (uint256 chainId, address nft,) = token();
        if (msg.sender != nft || chainId != block.chainid) {
            (uint8 role,,) = _roleOf(msg.sender);
            if (role != ROLE_OWNER) revert NotAllowed(msg.sender);
        }
        Ledger storage l = _ledger();
        uint256 n = l.count;
        // Empty the ledger first and work on a copy: an entry recorded while closing (a reentrant
        // owner call) lands in the fresh ledger and is closed next time.
        OpenApproval[] memory entries = new OpenApproval[](n);
        for (uint256 i = 0; i < n; ++i) {
            entries[i] = l.entries[i];
        }
        l.count = 0;
        for (uint256 i = 0; i < n; ++i) {
            OpenApproval memory a = entries[i];
            if (!_isOpen(a)) continue;
            _close(a);
            if (_isOpen(a)) revert ApprovalNotClosed(a.target, a.spender);
            ++closed;
        }
        // A proof transfer's closing is part of the transfer (the NFT's events show it); the
        // owner's own closing is a change of the account.
        if (closed != 0 && msg.sender != nft) ++l.state;
        emit OpenApprovalsClosed(msg.sender, closed);
    }

    /// @notice ERC-6551: (chain id, NFT, token id) this account belongs to, read from the
    /// account's own code (the footer `abi.encode(salt, chainId, tokenContract, tokenId)` after
    /// the 45-byte ERC-1167 proxy), so it never changes.
    function token() public view returns (uint256 chainId, address tokenContract, uint256 tokenId) {
        if (address(this) == _implementation) revert NotAClone();
        assembly ("memory-safe") {
            let m := mload(0x40)
            extcodecopy(address(), m, 0x4d, 0x60) // skip the proxy (0x2d) and the salt (0x20)
            chainId := mload(m)
            tokenContract := shr(96, shl(96, mload(add(m, 0x20))))
            tokenId := mload(add(m, 0x40))
        }
    }

    /// @notice ERC-6551: a counter bumped by every `execute` / `executeBatch` and by every
    /// {closeApprovals} of the owner that closed something (a buyer or market checks that it did
    /// not change between a buy and the sale's completion: AgentMarket does). The NFT closing the
    /// seller's approvals during a proof transfer does not bump it: the transfer itself is the
    /// change.
    function state() external view returns (uint256) {
        return _ledger().state;
    }

    /// @notice ERC-6551: `0x523e3260` for whoever may execute through the account now (the owner;
    /// the agent or a TRADE grantee while the token is not paused), else 0. `context` is ignored.
    function isValidSigner(address signer, bytes calldata) external view returns (bytes4) {
        (uint8 role,,) = _roleOf(signer);
        return role == ROLE_NONE ? bytes4(0) : IERC6551Account.isValidSigner.selector;
    }

    /// @inheritdoc IAgentAccount
    function owner() external view returns (address o) {
        (uint256 chainId, address nft, uint256 tokenId) = token();
        if (chainId == block.chainid) (o,,) = IAgentNFT(nft).controlOf(tokenId);
    }

    /// @notice ERC-165: IERC165, IERC6551Account, IERC6551Executable, IERC1271, IERC721Receiver,
    /// IERC1155Receiver, IAgentAccount.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IERC165).interfaceId || interfaceId == type(IERC6551Account).interfaceId
            || interfaceId == type(IERC6551Executable).interfaceId || interfaceId == type(IERC1271).interfaceId
            || interfaceId == type(IERC721Receiver).interfaceId || interfaceId == type(IERC1155Receiver).interfaceId
            || interfaceId == type(IAgentAccount).interfaceId;
    }

    /// @inheritdoc IAgentAccount
    function messageHash(bytes32 hash) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(MESSAGE_TYPEHASH, hash)));
    }

    /// @notice ERC-1271: a signature by the token's owner, and only the owner, over
    /// {messageHash}`(hash)`, which binds this account and the chain (a signature for one account
    /// is not valid for another account of the same owner). Checked with OpenZeppelin's
    /// SignatureChecker: ECDSA for an EOA, ERC-1271 for a contract (e.g. a multisig owning the
    /// token). The agent and TRADE grantees may execute but do not sign: a signed permit (an
    /// ERC-2612 or Permit2 allowance) creates an approval the account never sees, which would
    /// outlive their control (a Permit2 allowance revives whenever the account approves Permit2
    /// again, e.g. after a sale).
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (uint256 chainId, address nft, uint256 tokenId) = token();
        if (chainId == block.chainid) {
            (address o,,) = IAgentNFT(nft).controlOf(tokenId);
            if (SignatureChecker.isValidSignatureNowCalldata(o, messageHash(hash), signature)) {
                return IERC1271.isValidSignature.selector;
            }
        }
        return 0xffffffff;
    }

    /// @notice Accept ERC-721 tokens, except the account's own token.
    function onERC721Received(address, address, uint256 receivedId, bytes calldata) external view returns (bytes4) {
        (uint256 chainId, address nft, uint256 tokenId) = token();
        if (msg.sender == nft && receivedId == tokenId && chainId == block.chainid) revert OwnTokenRefused();
        return IERC721Receiver.onERC721Received.selector;
    }

    /// @notice Accept ERC-1155 tokens.
    function onERC1155Received(address, address, uint256, uint256, bytes calldata) external pure returns (bytes4) {
        return IERC1155Receiver.onERC1155Received.selector;
    }

    /// @notice Accept ERC-1155 batches.
    function onERC1155BatchReceived(address, address, uint256[] calldata, uint256[] calldata, bytes calldata)
        external
        pure
        returns (bytes4)
    {
        return IERC1155Receiver.onERC1155BatchReceived.selector;
    }

    // ---------------------------------------------------------------- internal

    /// @dev What `who` may do now: ROLE_OWNER for the token's owner; ROLE_OPERATOR for its agent
    /// or a TRADE grantee while the token is not paused; else ROLE_NONE. An account of a token on
    /// another chain has no one.
    function _roleOf(address who) private view returns (uint8 role, address nft, uint256 tokenId) {
        uint256 chainId;
        (chainId, nft, tokenId) = token();
        if (chainId != block.chainid || who == address(0)) return (ROLE_NONE, nft, tokenId);
        (address o, address agent, bool paused) = IAgentNFT(nft).controlOf(tokenId);
        if (who == o) return (ROLE_OWNER, nft, tokenId);
        if (!paused && (who == agent || IAgentNFT(nft).isAuthorized(tokenId, who, Scopes.TRADE))) {
            return (ROLE_OPERATOR, nft, tokenId);
        }
        return (ROLE_NONE, nft, tokenId);
    }

    /// @dev Start of every `execute` / `executeBatch`: checks the caller and bumps the ERC-6551 state.
    function _enter() private returns (bool byOwner, address nft, uint256 tokenId) {
        uint8 role;
        (role, nft, tokenId) = _roleOf(msg.sender);
        if (role == ROLE_NONE) revert NotAllowed(msg.sender);
        ++_ledger().state;
        return (role == ROLE_OWNER, nft, tokenId);
    }

    /// @dev The one path every call of `execute`/`executeBatch` takes: refuses an agent token's
    /// owner administration to callers other than the owner, notes an approval-creating call in
    /// `touched[n]` (checked by {_settle} after the last call), then calls.
    function _call(
        address target,
        uint256 value,
        bytes calldata data,
        Touched[] memory touched,
        uint256 n,
        bool byOwner
    ) private returns (bytes memory result, uint256) {
        if (target == address(this)) revert SelfCall();
        bytes4 selector = data.length >= 4 ? bytes4(data[:4]) : bytes4(0);
        if (!byOwner && _ownerOnly(selector)) revert OwnerOnlyCall(target, selector);
        (bool isApproval, OpenApproval memory a) = _approvalOf(target, selector, data);
        if (isApproval) touched[n++] = Touched(a, selector);
        bool ok;
        (ok, result) = target.call{value: value}(data);
        if (!ok) {
            // Bubble the target's revert data so callers can decode it (e.g. a router's error).
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
        emit Executed(msg.sender, target, value, selector);
        return (result, n);
    }

    /// @dev An agent token's owner administration that hands out something no ledger entry
    /// could take back: the account's published sealing key (tokens sent to the account later
    /// would be sealed to it), its ERC-7857 access assistant, a token's data, its pause flag, or a
    /// copy of its agent (a clone). The owner may call these; the agent and TRADE grantees, whose
    /// control ends with their grant, may not.
    function _ownerOnly(bytes4 selector) private pure returns (bool) {
        return selector == IAgentNFT.setSealingKey.selector || selector == IERC7857.delegateAccess.selector
            || selector == IAgentNFT.updateData.selector || selector == IAgentNFT.setPaused.selector
            || selector == IAgentNFT.cloneWithProof.selector || selector == IERC7857.iClone.selector
            || selector == IAgentNFT.iCloneFrom.selector;
    }

    /// @dev Recognises an approval-creating call by its selector and decodes what it approves.
    function _approvalOf(address target, bytes4 selector, bytes calldata data)
        private
        pure
        returns (bool, OpenApproval memory a)
    {
        uint8 kind;
        if (selector == APPROVE) {
            kind = KIND_APPROVE;
        } else if (
            selector == INCREASE_ALLOWANCE || selector == INCREASE_APPROVAL || selector == APPROVE_AND_CALL
                || selector == APPROVE_AND_CALL_DATA
        ) {
            kind = KIND_ERC20;
        } else if (selector == SET_APPROVAL_FOR_ALL) {
            kind = KIND_OPERATOR;
        } else if (selector == PERMIT2_APPROVE) {
            kind = KIND_PERMIT2;
        } else if (selector == ERC6909_APPROVE) {
            kind = KIND_ERC6909;
        } else if (selector == ERC6909_SET_OPERATOR) {
            kind = KIND_ERC6909_OPERATOR;
        } else if (selector == SET_AGENT) {
            kind = KIND_AGENT;
        } else if (selector == AUTHORIZE || selector == AUTHORIZE_USAGE) {
            kind = KIND_GRANT;
        } else {
            return (false, a);
        }
        if (data.length < 68) revert UnverifiableApproval(target, selector);
        uint256 first = uint256(bytes32(data[4:36]));
        uint256 second = uint256(bytes32(data[36:68]));
        a.kind = kind;
        a.target = target;
        // Address arguments: the low 160 bits, as a Solidity target reads them.
        if (kind == KIND_PERMIT2) {
            // approve(token, spender, amount, expiration): Permit2 is the target, the token the id.
            // forge-lint: disable-next-line(unsafe-typecast)
            a.spender = address(uint160(second));
            // forge-lint: disable-next-line(unsafe-typecast)
            a.id = uint160(first);
        } else if (kind == KIND_AGENT || kind == KIND_GRANT) {
            // setAgent(tokenId, agent), authorize(tokenId, user, …), authorizeUsage(tokenId, user).
            // forge-lint: disable-next-line(unsafe-typecast)
            a.spender = address(uint160(second));
            a.id = first;
        } else {
            // forge-lint: disable-next-line(unsafe-typecast)
            a.spender = address(uint160(first));
            // approve(spender, amountOrId) and ERC-6909 approve(spender, id, amount).
            if (kind == KIND_APPROVE || kind == KIND_ERC6909) a.id = second;
        }
        // Approving the zero address is how ERC-721 clears an approval, setting agent zero how an
        // agent token drops its agent; nobody can spend or act as zero.
        return (a.spender != address(0), a);
    }

    /// @dev After the last call: a caller other than the owner must have left every approval it
    /// touched closed; the owner's open ones enter the ledger, closed ones leave it.
    function _settle(Touched[] memory touched, uint256 n, bool byOwner, address nft, uint256 tokenId) private {
        bool recorded;
        for (uint256 i = 0; i < n; ++i) {
            OpenApproval memory a = touched[i].approval;
            bool open = _resolve(a, touched[i].selector);
            if (!byOwner) {
                if (open) revert AllowanceLeftOpen(a.target, a.spender);
            } else if (open) {
                if (_record(a)) recorded = true;
            } else {
                _drop(a);
            }
        }
        // The NFT closes the ledger on the next proof transfer.
        if (recorded) IAgentNFT(nft).markApprovalsOpen(tokenId);
    }

    /// @dev Whether `a` is open after the call. For `approve(address,uint256)` it first tells
    /// which approval the call made: an ERC-721 single-token approval if the target reports
    /// `spender` approved for the id, which the account holds (asked first: an ERC-404-style
    /// hybrid answers `allowance` too, and an id approval leaves that allowance at zero); else an
    /// ERC-20 allowance if the target answers `allowance`; else an ERC-721 approval that is closed
    /// if it answers `getApproved`. A target whose answer cannot be read is refused
    /// ({UnverifiableApproval}): its approval could never be shown closed.
    function _resolve(OpenApproval memory a, bytes4 selector) private view returns (bool) {
        address t = a.target;
        if (a.kind != KIND_APPROVE) {
            (bool answered, bool open) = _status(a);
            if (!answered) revert UnverifiableApproval(t, selector);
            return open;
        }
        if (t.code.length == 0) return false;
        (bool idAnswered, uint256 approved) = _query(t, abi.encodeWithSelector(GET_APPROVED, a.id));
        if (idAnswered && approved == uint256(uint160(a.spender))) {
            (bool held, uint256 holder) = _query(t, abi.encodeWithSelector(OWNER_OF, a.id));
            if (held && holder == uint256(uint160(address(this)))) {
                a.kind = KIND_ERC721;
                return true;
            }
        }
        (bool ok, uint256 word) = _query(t, abi.encodeWithSelector(ALLOWANCE, address(this), a.spender));
        if (ok) {
            (a.kind, a.id) = (KIND_ERC20, 0);
            return word != 0;
        }
        if (idAnswered) {
            a.kind = KIND_ERC721;
            return false;
        }
        revert UnverifiableApproval(t, selector);
    }

    /// @dev Whether the target still reports `a` open. A target without code holds nothing; an
    /// answer that cannot be read counts as open.
    function _isOpen(OpenApproval memory a) private view returns (bool) {
        (bool answered, bool open) = _status(a);
        return !answered || open;
    }

    /// @dev What the target reports about `a`: whether it answered the read-back query, and
    /// whether `a` is open. A target without code holds nothing.
    function _status(OpenApproval memory a) private view returns (bool answered, bool open) {
        address t = a.target;
        if (t.code.length == 0) return (true, false);
        uint8 kind = a.kind;
        uint256 word;
        if (kind == KIND_ERC20) {
            (answered, word) = _query(t, abi.encodeWithSelector(ALLOWANCE, address(this), a.spender));
            return (answered, word != 0);
        }
        if (kind == KIND_ERC721 || kind == KIND_AGENT || kind == KIND_GRANT) {
            // A token the account no longer holds has lost its approval, its agent and its grants
            // with it (cleared on transfer: for an agent token the transfer rotates the agent and
            // ends every grant); a target that does not answer `ownerOf` holds no token for it.
            (answered, word) = _query(t, abi.encodeWithSelector(OWNER_OF, a.id));
            if (!answered || word != uint256(uint160(address(this)))) return (true, false);
            if (kind == KIND_ERC721) {
                (answered, word) = _query(t, abi.encodeWithSelector(GET_APPROVED, a.id));
                return (answered, word == uint256(uint160(a.spender)));
            }
            if (kind == KIND_AGENT) {
                (answered, word) = _query(t, abi.encodeWithSelector(AGENT_OF, a.id));
                return (answered, word == uint256(uint160(a.spender)));
            }
            // authorizationOf(tokenId, user) -> (scopes, expiry): a live grant has scopes.
            (answered, word) = _query(t, abi.encodeWithSelector(AUTHORIZATION_OF, a.id, a.spender));
            return (answered, word != 0);
        }
        if (kind == KIND_OPERATOR) {
            (answered, word) = _query(t, abi.encodeWithSelector(IS_APPROVED_FOR_ALL, address(this), a.spender));
            return (answered, word != 0);
        }
        if (kind == KIND_ERC6909) {
            (answered, word) = _query(t, abi.encodeWithSelector(ERC6909_ALLOWANCE, address(this), a.spender, a.id));
            return (answered, word != 0);
        }
        if (kind == KIND_ERC6909_OPERATOR) {
            (answered, word) = _query(t, abi.encodeWithSelector(ERC6909_IS_OPERATOR, address(this), a.spender));
            return (answered, word != 0);
        }
        // Permit2: allowance(user, token, spender) -> (uint160 amount, uint48 expiration, uint48 nonce),
        // usable while amount > 0 and block.timestamp <= expiration.
        bytes memory q = abi.encodeWithSelector(PERMIT2_ALLOWANCE, address(this), address(uint160(a.id)), a.spender);
        uint256 amount;
        uint256 expiration;
        assembly ("memory-safe") {
            answered := staticcall(gas(), t, add(q, 0x20), mload(q), 0x00, 0x40)
            answered := and(answered, gt(returndatasize(), 0x5f))
            amount := mload(0x00)
            expiration := mload(0x20)
        }
        return (answered, amount != 0 && expiration >= block.timestamp);
    }

    /// @dev Sets `a` to zero / off. The outcome is checked by reading it back, so the call's own
    /// result (a revert, `false`, or no return value) is ignored here.
    function _close(OpenApproval memory a) private {
        bytes memory c;
        uint8 kind = a.kind;
        if (kind == KIND_ERC20) {
            c = abi.encodeWithSelector(APPROVE, a.spender, 0);
        } else if (kind == KIND_ERC721) {
            c = abi.encodeWithSelector(APPROVE, address(0), a.id);
        } else if (kind == KIND_OPERATOR) {
            c = abi.encodeWithSelector(SET_APPROVAL_FOR_ALL, a.spender, false);
        } else if (kind == KIND_ERC6909) {
            c = abi.encodeWithSelector(ERC6909_APPROVE, a.spender, a.id, 0);
        } else if (kind == KIND_ERC6909_OPERATOR) {
            c = abi.encodeWithSelector(ERC6909_SET_OPERATOR, a.spender, false);
        } else if (kind == KIND_AGENT) {
            c = abi.encodeWithSelector(SET_AGENT, a.id, address(0));
        } else if (kind == KIND_GRANT) {
            c = abi.encodeWithSelector(REVOKE, a.id, a.spender);
        } else {
            c = abi.encodeWithSelector(PERMIT2_APPROVE, address(uint160(a.id)), a.spender, 0, 0);
        }
        address t = a.target;
        assembly ("memory-safe") {
            pop(call(gas(), t, 0, add(c, 0x20), mload(c), 0x00, 0x00))
        }
    }

    /// @dev A static call's first return word; `ok` is false if it reverted or returned less.
    /// Copies at most one word (a target cannot make the account pay for a huge return).
    function _query(address target, bytes memory q) private view returns (bool ok, uint256 word) {
        assembly ("memory-safe") {
            ok := staticcall(gas(), target, add(q, 0x20), mload(q), 0x00, 0x20)
            ok := and(ok, gt(returndatasize(), 0x1f))
            word := mload(0x00)
        }
    }

    /// @dev Adds `a` to the ledger unless it is there; returns whether it was added. A full ledger
    /// first drops the entries that are closed by now.
    function _record(OpenApproval memory a) private returns (bool) {
        Ledger storage l = _ledger();
        uint256 n = l.count;
        if (_indexOf(l, n, a) < n) return false;
        if (n == MAX_OPEN_APPROVALS) {
            n = _prune(l, n);
            if (n == MAX_OPEN_APPROVALS) revert TooManyOpenApprovals(MAX_OPEN_APPROVALS);
        }
        l.entries[n] = a;
        l.count = n + 1;
        emit OpenApprovalRecorded(a.kind, a.target, a.spender, a.id);
        return true;
    }

    /// @dev Removes `a` from the ledger if it is there (the owner closed it).
    function _drop(OpenApproval memory a) private {
        Ledger storage l = _ledger();
        uint256 n = l.count;
        uint256 i = _indexOf(l, n, a);
        if (i == n) return;
        if (i != n - 1) l.entries[i] = l.entries[n - 1];
        l.count = n - 1;
        emit OpenApprovalDropped(a.kind, a.target, a.spender, a.id);
    }

    /// @dev Keeps only the entries still open; returns the new count.
    function _prune(Ledger storage l, uint256 n) private returns (uint256 k) {
        for (uint256 i = 0; i < n; ++i) {
            OpenApproval memory a = l.entries[i];
            if (_isOpen(a)) {
                if (k != i) l.entries[k] = a;
                ++k;
            } else {
                emit OpenApprovalDropped(a.kind, a.target, a.spender, a.id);
            }
        }
        l.count = k;
    }

    function _indexOf(Ledger storage l, uint256 n, OpenApproval memory a) private view returns (uint256 i) {
        for (; i < n; ++i) {
            OpenApproval storage e = l.entries[i];
            if (e.target == a.target && e.kind == a.kind && e.spender == a.spender && e.id == a.id) return i;
        }
    }

    function _ledger() private pure returns (Ledger storage l) {
        assembly ("memory-safe") {
            l.slot := LEDGER_SLOT
        }
    }
}

/// @title AgentAccountFactory
/// @notice The ERC-6551 registry of one NFT's agent accounts (see IAgentAccountFactory). Accounts
/// are built exactly as the canonical ERC-6551 registry builds them, with this contract as the
/// CREATE2 deployer.
contract AgentAccountFactory is IAgentAccountFactory {
    /// @notice The AgentAccount implementation behind every account.
    address public immutable implementation;
    /// @notice The NFT whose tokens get accounts.
    address public immutable nft;

    /// @param nft_ the AgentNFT
    constructor(address nft_) {
        nft = nft_;
        implementation = address(new AgentAccount());
    }

    /// @notice ERC-6551: the address of the account (implementation, salt, chainId,
    /// tokenContract, tokenId) made by this contract, deployed or not (any arguments).
    function account(address implementation_, bytes32 salt, uint256 chainId, address tokenContract, uint256 tokenId)
        public
        view
        returns (address)
    {
        return _addressOf(keccak256(_initCode(implementation_, salt, chainId, tokenContract, tokenId)), salt);
    }

    /// @inheritdoc IAgentAccountFactory
    function accountOf(uint256 tokenId) external view returns (address) {
        return account(implementation, bytes32(0), block.chainid, nft, tokenId);
    }

    /// @notice ERC-6551: deploy the account if needed and return its address. Only this NFT's
    /// accounts on this chain, with this implementation and salt 0 (= {accountOf}); anything else
    /// reverts with {UnsupportedAccount}.
    function createAccount(address implementation_, bytes32 salt, uint256 chainId, address tokenContract, uint256 tokenId)
        public
        returns (address)
    {
        if (implementation_ != implementation || salt != 0 || chainId != block.chainid || tokenContract != nft) {
            revert UnsupportedAccount(implementation_, salt, chainId, tokenContract);
        }
        bytes memory code = _initCode(implementation_, salt, chainId, tokenContract, tokenId);
        address predicted = _addressOf(keccak256(code), salt);
        if (predicted.code.length != 0) return predicted;
        address deployed;
        assembly ("memory-safe") {
            deployed := create2(0, add(code, 0x20), mload(code), salt)
        }
        if (deployed == address(0)) revert AccountCreationFailed();
        emit ERC6551AccountCreated(deployed, implementation_, salt, chainId, tokenContract, tokenId);
        return deployed;
    }

    /// @inheritdoc IAgentAccountFactory
    function createAccount(uint256 tokenId) external returns (address) {
        return createAccount(implementation, bytes32(0), block.chainid, nft, tokenId);
    }

    /// @dev The canonical registry's init code: a 10-byte constructor returning the 173-byte
    /// runtime, the ERC-1167 proxy of `implementation_`, and the footer.
    function _initCode(address implementation_, bytes32 salt, uint256 chainId, address tokenContract, uint256 tokenId)
        private
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(
            hex"3d60ad80600a3d3981f3363d3d373d3d3d363d73",
            implementation_,
            hex"5af43d82803e903d91602b57fd5bf3",
            abi.encode(salt, chainId, tokenContract, tokenId)
        );
    }

    function _addressOf(bytes32 codeHash, bytes32 salt) private view returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, codeHash)))));
    }
}
