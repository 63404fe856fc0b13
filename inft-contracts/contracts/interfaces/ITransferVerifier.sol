// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title ITransferVerifier
/// @notice Checks the proof that lets a private token move (or be cloned) with rotated data.
///
/// The NFT builds a {Rotation} from its own storage (old data hashes, current owner) and the
/// caller's arguments, and asks the verifier to check the signature over its EIP-712 hash and to
/// consume the signer's nonce. The NFT itself checks the semantic bindings (owner, entry count,
/// rotation, receiver's published sealing key, deadline) so that no verifier can skip them.
///
/// EIP-712 (domain: name "inft TransferVerifier", version "1", chainId, verifyingContract = the
/// verifier). The two modes use distinct primary types with the same fields:
///   Acceptance(address nft,uint256 tokenId,uint256 newTokenId,address from,address to,
///     bytes32[] oldDataHashes,bytes32[] newDataHashes,bytes[] sealedKeys,string[] uris,
///     bytes32 sealingKey,address newAgent,address market,uint256 price,uint256 nonce,
///     uint256 deadline)
///   Attestation(... same fields ...)
/// `market` and `price` are zero except for a sale: then the market that completes it and the
/// price it settles, so a proof made for one sale settles no other.
/// Array members are hashed as EIP-712 prescribes: `bytes32[]` as keccak256 of the concatenated
/// elements, `bytes[]` / `string[]` as keccak256 of the concatenated keccak256 of each element.
interface ITransferVerifier {
    /// @notice A transfer (newTokenId == tokenId) or a clone (newTokenId != tokenId), with array
    /// members already hashed as EIP-712 encodes them.
    struct Rotation {
        address nft;
        uint256 tokenId;
        uint256 newTokenId;
        address from;
        address to;
        bytes32 oldDataHashes;
        bytes32 newDataHashes;
        bytes32 sealedKeys;
        bytes32 uris;
        bytes32 sealingKey;
        address newAgent;
        address market;
        uint256 price;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice Check `signature` over `r` in `mode`, consume the signer's nonce, return the signer.
    /// Reverts on any failure. Only the NFT the verifier serves may call it.
    function verifyRotation(uint8 mode, Rotation calldata r, bytes calldata signature)
        external
        returns (address signer);
}
