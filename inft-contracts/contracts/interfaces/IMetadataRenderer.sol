// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IMetadataRenderer
/// @notice Renders an AgentNFT token's ERC-721 metadata JSON. A separate contract keeps the string
/// building out of AgentNFT (code-size limit); AgentNFT.tokenURI forwards to the installed one.
interface IMetadataRenderer {
    /// @notice The token's metadata as a `data:application/json;base64,` URI, read live from the
    /// NFT and its action log.
    function tokenURI(uint256 tokenId) external view returns (string memory);
}
