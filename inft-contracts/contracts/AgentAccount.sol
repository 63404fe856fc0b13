// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";

import {IAgentAccount, IAgentAccountFactory} from "./interfaces/IAgentAccount.sol";
import {IAgentNFT} from "./interfaces/IAgentNFT.sol";
import {Scopes} from "./interfaces/Scopes.sol";

/// @title AgentAccount
/// @notice Token-bound wallet of one agent token (see IAgentAccount). Deployed as a minimal proxy
/// whose immutable arguments are abi.encode(nft, tokenId); it keeps no storage of its own, so
/// who controls it is always read from the NFT.
contract AgentAccount is IAgentAccount, IERC1271, IERC721Receiver {
    /// @dev The implementation itself is not an account.
    address private immutable _implementation = address(this);

    /// @notice The account is used directly instead of through a clone.
    error NotAClone();
    /// @notice An account must not own its own token (the token would be locked forever).
    error OwnTokenRefused();

    receive() external payable {}

    /// @inheritdoc IAgentAccount
    function execute(address target, uint256 value, bytes calldata data)
        external
        payable
        returns (bytes memory result)
    {
        _checkCaller();
        result = _call(target, value, data);
    }

    /// @inheritdoc IAgentAccount
    function executeBatch(Call[] calldata calls) external payable returns (bytes[] memory results) {
        _checkCaller();
        results = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            results[i] = _call(calls[i].target, calls[i].value, calls[i].data);
        }
    }

    /// @inheritdoc IAgentAccount
    function token() public view returns (uint256 chainId, address nft, uint256 tokenId) {
        if (address(this) == _implementation) revert NotAClone();
        (nft, tokenId) = abi.decode(Clones.fetchCloneArgs(address(this)), (address, uint256));
        chainId = block.chainid;
    }

    /// @inheritdoc IAgentAccount
    function owner() external view returns (address o) {
        (, address nft, uint256 tokenId) = token();
        (o,,) = IAgentNFT(nft).controlOf(tokenId);
    }

    /// @notice ERC-1271: a signature by the token's owner, or by its agent while not paused.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (err == ECDSA.RecoverError.NoError) {
            (, address nft, uint256 tokenId) = token();
            (address o, address agent, bool paused) = IAgentNFT(nft).controlOf(tokenId);
            if (signer == o || (signer == agent && !paused)) return IERC1271.isValidSignature.selector;
        }
        return 0xffffffff;
    }

    /// @notice Accept ERC-721 tokens, except the account's own token.
    function onERC721Received(address, address, uint256 receivedId, bytes calldata) external view returns (bytes4) {
        (, address nft, uint256 tokenId) = token();
        if (msg.sender == nft && receivedId == tokenId) revert OwnTokenRefused();
        return IERC721Receiver.onERC721Received.selector;
    }

    /// @dev Owner always; agent or TRADE-authorized user only while the token is not paused.
    function _checkCaller() private view {
        (, address nft, uint256 tokenId) = token();
        (address o, address agent, bool paused) = IAgentNFT(nft).controlOf(tokenId);
        if (msg.sender == o) return;
        if (!paused && (msg.sender == agent || IAgentNFT(nft).isAuthorized(tokenId, msg.sender, Scopes.TRADE))) {
            return;
        }
        revert NotAllowed(msg.sender);
    }

    function _call(address target, uint256 value, bytes calldata data) private returns (bytes memory result) {
        if (target == address(this)) revert SelfCall();
        bool ok;
        (ok, result) = target.call{value: value}(data);
        if (!ok) {
            // Bubble the target's revert data so callers can decode it (e.g. a router's error).
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
        emit Executed(msg.sender, target, value, data.length >= 4 ? bytes4(data[:4]) : bytes4(0));
    }
}

/// @title AgentAccountFactory
/// @notice Deterministic, permissionless deployment of AgentAccount clones (see IAgentAccountFactory).
contract AgentAccountFactory is IAgentAccountFactory {
    /// @notice The AgentAccount implementation behind every clone.
    address public immutable implementation;
    /// @notice The NFT whose tokens get accounts.
    address public immutable nft;

    /// @param nft_ the AgentNFT
    constructor(address nft_) {
        nft = nft_;
        implementation = address(new AgentAccount());
    }

    /// @inheritdoc IAgentAccountFactory
    function accountOf(uint256 tokenId) public view returns (address) {
        return Clones.predictDeterministicAddressWithImmutableArgs(
            implementation, abi.encode(nft, tokenId), bytes32(tokenId)
        );
    }

    /// @inheritdoc IAgentAccountFactory
    function createAccount(uint256 tokenId) external returns (address account) {
        account = accountOf(tokenId);
        if (account.code.length != 0) return account;
        Clones.cloneDeterministicWithImmutableArgs(implementation, abi.encode(nft, tokenId), bytes32(tokenId));
        emit AccountCreated(tokenId, account);
    }
}
