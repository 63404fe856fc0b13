// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

import {IActionLog} from "./interfaces/IActionLog.sol";
import {IAgentNFT} from "./interfaces/IAgentNFT.sol";
import {IMetadataRenderer} from "./interfaces/IMetadataRenderer.sol";

/// @title AgentMetadata
/// @notice Renders an AgentNFT token's ERC-721 metadata JSON from the chain, live: name,
/// description, model SHA-256, data hashes, agent wallet, owner, creator, royalty, epoch, pause
/// flag, and the action log's head and count. Every value is public state, so anyone can check the
/// document against the views it comes from; the NFT emits ERC-4906 `MetadataUpdate` whenever one
/// of them changes. Stateless apart from the two addresses.
contract AgentMetadata is IMetadataRenderer {
    using Strings for uint256;
    using Strings for address;

    /// @notice The NFT whose tokens this renders.
    IAgentNFT public immutable nft;

    /// @param nft_ the AgentNFT
    constructor(IAgentNFT nft_) {
        nft = nft_;
    }

    /// @inheritdoc IMetadataRenderer
    function tokenURI(uint256 tokenId) external view returns (string memory) {
        IAgentNFT.TokenInfo memory t = nft.tokenInfo(tokenId);
        address log = nft.actionLog();
        (bytes32 head, uint64 count) = log == address(0) ? (bytes32(0), uint64(0)) : IActionLog(log).chainOf(tokenId);
        string memory logJson = string.concat(
            ',"action_log":{"address":"',
            log.toHexString(),
            '","head":"',
            uint256(head).toHexString(32),
            '","count":',
            uint256(count).toString(),
            "}"
        );
        string memory json = string.concat(
            '{"name":"inft agent ',
            tokenId.toString(),
            '","description":"An AI agent sealed in an ERC-7857 token: its model, key, config and memory are ',
            'encrypted to the owner, and every action it takes is logged on chain in a hash chain.",',
            _identity(tokenId, t),
            logJson,
            ',"attributes":[',
            _attributes(t, count),
            "]}"
        );
        return string.concat("data:application/json;base64,", Base64.encode(bytes(json)));
    }

    /// @dev The token's commitments and parties.
    function _identity(uint256 tokenId, IAgentNFT.TokenInfo memory t) private view returns (string memory) {
        string memory commitments = string.concat(
            '"token_id":"',
            tokenId.toString(),
            '","model_sha256":"',
            uint256(nft.modelHashOf(tokenId)).toHexString(32),
            '","data_hashes":[',
            _hashList(nft.dataHashesOf(tokenId)),
            "]"
        );
        string memory parties = string.concat(
            ',"agent":"', t.agent.toHexString(), '","owner":"', t.owner.toHexString(), '","creator":"', t.creator.toHexString()
        );
        return string.concat(
            commitments,
            parties,
            '","royalty_bps":',
            uint256(t.royaltyBps).toString(),
            ',"epoch":',
            uint256(t.epoch).toString(),
            ',"paused":',
            t.paused ? "true" : "false"
        );
    }

    /// @dev OpenSea-style attributes, for marketplaces that show only those.
    function _attributes(IAgentNFT.TokenInfo memory t, uint64 count) private pure returns (string memory) {
        return string.concat(
            '{"trait_type":"Royalty (bps)","display_type":"number","value":',
            uint256(t.royaltyBps).toString(),
            '},{"trait_type":"Actions logged","display_type":"number","value":',
            uint256(count).toString(),
            '},{"trait_type":"Transfers","display_type":"number","value":',
            uint256(t.epoch).toString(),
            '},{"trait_type":"Paused","value":"',
            t.paused ? "yes" : "no",
            '"}'
        );
    }

    function _hashList(bytes32[] memory hashes) private pure returns (string memory out) {
        for (uint256 i = 0; i < hashes.length; ++i) {
            out = string.concat(out, i == 0 ? '"' : ',"', uint256(hashes[i]).toHexString(32), '"');
        }
    }
}
