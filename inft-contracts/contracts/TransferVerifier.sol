// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {ITransferVerifier} from "./interfaces/ITransferVerifier.sol";
import {Scopes} from "./interfaces/Scopes.sol";

/// @title TransferVerifier
/// @notice Receiver-verified and oracle-attested rotation proofs for one AgentNFT.
///
/// - MODE_RECEIVER: the receiver (`to`) signs an EIP-712 `Acceptance` after its own runtime checked
///   that the new sealed keys open the new blobs and that the commitments match. EOAs sign with
///   ECDSA (OZ, malleable `s` refused); contract receivers answer ERC-1271.
/// - MODE_ORACLE: a registered re-encryption oracle (meant to run in a TEE) signs an EIP-712
///   `Attestation`. The owner of this verifier registers and removes oracle keys.
///
/// Nonces: per signer, each usable once forever, kept in a bitmap (256 nonces per storage word).
/// A signer can burn its own nonce ({cancelNonce}) to withdraw an acceptance it handed out.
contract TransferVerifier is ITransferVerifier, EIP712, Ownable2Step {
    /// @notice EIP-712 type of a receiver's acceptance.
    bytes32 public constant ACCEPTANCE_TYPEHASH = keccak256(
        "Acceptance(address nft,uint256 tokenId,uint256 newTokenId,address from,address to,bytes32[] oldDataHashes,bytes32[] newDataHashes,bytes[] sealedKeys,string[] uris,bytes32 sealingKey,address newAgent,address market,uint256 price,uint256 nonce,uint256 deadline)"
    );
    /// @notice EIP-712 type of an oracle's attestation (same fields, distinct type).
    bytes32 public constant ATTESTATION_TYPEHASH = keccak256(
        "Attestation(address nft,uint256 tokenId,uint256 newTokenId,address from,address to,bytes32[] oldDataHashes,bytes32[] newDataHashes,bytes[] sealedKeys,string[] uris,bytes32 sealingKey,address newAgent,address market,uint256 price,uint256 nonce,uint256 deadline)"
    );

    /// @notice The only NFT this verifier serves (and the only caller of {verifyRotation}).
    address public immutable nft;

    mapping(address oracle => bool) private _oracles;
    mapping(address signer => mapping(uint256 word => uint256 bits)) private _nonceBits;

    /// @notice `signer` consumed or cancelled `nonce`.
    event NonceUsed(address indexed signer, uint256 indexed nonce);
    /// @notice An oracle key was registered (`allowed`) or removed.
    event OracleSet(address indexed oracle, bool allowed);

    /// @notice Only the NFT may ask for a verification (which consumes nonces).
    error OnlyNFT(address caller);
    /// @notice The rotation names another NFT.
    error WrongNFT(address nft);
    /// @notice The signature does not verify for the expected signer.
    error InvalidSignature();
    /// @notice The recovered key is not a registered oracle.
    error UnknownOracle(address signer);
    /// @notice The nonce was already used or cancelled.
    error NonceAlreadyUsed(address signer, uint256 nonce);
    /// @notice Unknown proof mode.
    error UnsupportedMode(uint8 mode);
    /// @notice The proof's deadline has passed.
    error ProofExpired(uint256 deadline, uint256 nowTs);
    /// @notice Zero address given.
    error ZeroAddress();

    /// @param nft_ the AgentNFT this verifier serves
    /// @param admin manages the oracle registry (two-step ownership)
    constructor(address nft_, address admin) EIP712("inft TransferVerifier", "1") Ownable(admin) {
        if (nft_ == address(0)) revert ZeroAddress();
        nft = nft_;
    }

    /// @inheritdoc ITransferVerifier
    function verifyRotation(uint8 mode, Rotation calldata r, bytes calldata signature)
        external
        returns (address signer)
    {
        if (msg.sender != nft) revert OnlyNFT(msg.sender);
        if (r.nft != nft) revert WrongNFT(r.nft);
        if (block.timestamp > r.deadline) revert ProofExpired(r.deadline, block.timestamp);
        bytes32 digest = hashRotation(mode, r);
        if (mode == Scopes.MODE_RECEIVER) {
            signer = r.to;
            if (!SignatureChecker.isValidSignatureNow(signer, digest, signature)) revert InvalidSignature();
        } else {
            // mode is MODE_ORACLE here (hashRotation refused any other)
            (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
            if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
            if (!_oracles[recovered]) revert UnknownOracle(recovered);
            signer = recovered;
        }
        _useNonce(signer, r.nonce);
    }

    /// @notice The EIP-712 digest the signer signs for `r` in `mode`.
    function hashRotation(uint8 mode, Rotation calldata r) public view returns (bytes32) {
        bytes32 typeHash;
        if (mode == Scopes.MODE_RECEIVER) typeHash = ACCEPTANCE_TYPEHASH;
        else if (mode == Scopes.MODE_ORACLE) typeHash = ATTESTATION_TYPEHASH;
        else revert UnsupportedMode(mode);
        // Rotation has only static members, so abi.encode(typeHash, r) is exactly EIP-712's
        // encodeData: the type hash followed by one 32-byte word per member, in declaration order.
        return _hashTypedDataV4(keccak256(abi.encode(typeHash, r)));
    }

    /// @notice Burn the caller's `nonce` so a signature using it can never be used.
    function cancelNonce(uint256 nonce) external {
        _useNonce(msg.sender, nonce);
    }

    /// @notice Whether `signer`'s `nonce` was used or cancelled.
    function isNonceUsed(address signer, uint256 nonce) external view returns (bool) {
        // forge-lint: disable-next-line(incorrect-shift)
        return _nonceBits[signer][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @notice Register (`allowed`) or remove an oracle key.
    function setOracle(address oracle, bool allowed) external onlyOwner {
        if (oracle == address(0)) revert ZeroAddress();
        _oracles[oracle] = allowed;
        emit OracleSet(oracle, allowed);
    }

    /// @notice Whether `oracle` is a registered oracle key.
    function isOracle(address oracle) external view returns (bool) {
        return _oracles[oracle];
    }

    /// @notice The EIP-712 domain separator (chain id and this contract bound in).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    function _useNonce(address signer, uint256 nonce) private {
        // Bit (nonce mod 256) of word (nonce / 256).
        // forge-lint: disable-next-line(incorrect-shift)
        uint256 bit = 1 << (nonce & 0xff);
        mapping(uint256 => uint256) storage words = _nonceBits[signer];
        uint256 word = words[nonce >> 8];
        if (word & bit != 0) revert NonceAlreadyUsed(signer, nonce);
        words[nonce >> 8] = word | bit;
        emit NonceUsed(signer, nonce);
    }
}
