// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IAgentNFT} from "../../contracts/interfaces/IAgentNFT.sol";

/// @dev A contract wallet (ERC-1271) whose signer is one EOA; accepts ERC-721 tokens.
contract MockContractWallet is IERC1271, IERC721Receiver {
    address public immutable signer;

    constructor(address signer_) {
        signer = signer_;
    }

    function publishKey(IAgentNFT nft, bytes32 key) external {
        nft.setSealingKey(key);
    }

    function isValidSignature(bytes32 hash, bytes calldata sig) external view returns (bytes4) {
        return ECDSA.recover(hash, sig) == signer ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }

    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return IERC721Receiver.onERC721Received.selector;
    }
}

/// @dev A contract that cannot hold ERC-721 tokens.
contract NonReceiver {
    function publishKey(IAgentNFT nft, bytes32 key) external {
        nft.setSealingKey(key);
    }
}

/// @dev A call target for agent-account tests.
contract Target {
    uint256 public value;
    address public lastCaller;

    error Nope(uint256 code);

    function set(uint256 v) external payable returns (uint256) {
        value = v;
        lastCaller = msg.sender;
        return v * 2;
    }

    function fail(uint256 code) external pure {
        revert Nope(code);
    }
}
