// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "./Test.sol";
import {AgentNFT} from "../../contracts/AgentNFT.sol";
import {TransferVerifier} from "../../contracts/TransferVerifier.sol";
import {ActionLog} from "../../contracts/ActionLog.sol";
import {AgentMetadata} from "../../contracts/AgentMetadata.sol";
import {EarningsSplitter} from "../../contracts/EarningsSplitter.sol";
import {AgentAccountFactory} from "../../contracts/AgentAccount.sol";
import {IAgentNFT} from "../../contracts/interfaces/IAgentNFT.sol";
import {IAgentMarket} from "../../contracts/interfaces/IAgentMarket.sol";
import {
    AccessProof, OracleType, OwnershipProof, TransferValidityProof
} from "../../contracts/interfaces/IERC7857.sol";
import {Scopes} from "../../contracts/interfaces/Scopes.sol";

/// @dev Proof-signing and data helpers over a deployed system. The EIP-712 hashing here is written
/// out independently of TransferVerifier.hashRotation, so tests check the contract's encoding
/// against a second implementation (the Rust tests add a third: alloy's).
abstract contract Signing is Test {
    AgentNFT internal nft;
    TransferVerifier internal verifier;
    ActionLog internal actionLog;
    AgentMetadata internal metadata;
    EarningsSplitter internal splitter;
    AgentAccountFactory internal accounts;

    address internal admin = address(0xAD);

    uint256 internal constant ALICE_PK = 0xA11CE;
    uint256 internal constant BOB_PK = 0xB0B;
    uint256 internal constant CAROL_PK = 0xCA501;
    uint256 internal constant ORACLE_PK = 0x0AC1E;
    uint256 internal constant MALLORY_PK = 0xBAD;
    uint256 internal constant AGENT1_PK = 0xA6E1;
    uint256 internal constant AGENT2_PK = 0xA6E2;
    uint256 internal constant AGENT3_PK = 0xA6E3;

    address internal alice;
    address internal bob;
    address internal carol;
    address internal oracle;
    address internal mallory;
    address internal agent1;
    address internal agent2;
    address internal agent3;

    bytes32 internal constant BOB_SEALING_KEY = keccak256("bob x25519 public key");
    // keccak256, not sha256: a sha256 constant is a precompile call at each use, which would eat
    // a pending vm.prank.
    bytes32 internal constant MODEL_SHA256 = keccak256("the agent's GGUF weights");
    bytes32 internal constant ALICE_SEALING_KEY = keccak256("alice x25519 public key");
    bytes32 internal constant CAROL_SEALING_KEY = keccak256("carol x25519 public key");

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant ACCEPTANCE_TYPEHASH = keccak256(
        "Acceptance(address nft,uint256 tokenId,uint256 newTokenId,address from,address to,bytes32[] oldDataHashes,bytes32[] newDataHashes,bytes[] sealedKeys,string[] uris,bytes32 sealingKey,address newAgent,address market,uint256 price,uint256 nonce,uint256 deadline)"
    );
    bytes32 internal constant ATTESTATION_TYPEHASH = keccak256(
        "Attestation(address nft,uint256 tokenId,uint256 newTokenId,address from,address to,bytes32[] oldDataHashes,bytes32[] newDataHashes,bytes[] sealedKeys,string[] uris,bytes32 sealingKey,address newAgent,address market,uint256 price,uint256 nonce,uint256 deadline)"
    );

    /// @dev What a signer signs, with the arrays in clear.
    struct Offer {
        address nft;
        uint256 tokenId;
        uint256 newTokenId;
        address from;
        address to;
        bytes32[] oldDataHashes;
        bytes32[] newDataHashes;
        bytes[] sealedKeys;
        string[] uris;
        bytes32 sealingKey;
        address newAgent;
        address market;
        uint256 price;
        uint256 nonce;
        uint256 deadline;
    }

    function initActors() internal {
        alice = vm.addr(ALICE_PK);
        bob = vm.addr(BOB_PK);
        carol = vm.addr(CAROL_PK);
        oracle = vm.addr(ORACLE_PK);
        mallory = vm.addr(MALLORY_PK);
        agent1 = vm.addr(AGENT1_PK);
        agent2 = vm.addr(AGENT2_PK);
        agent3 = vm.addr(AGENT3_PK);
    }

    function deployNft(address owner) internal returns (AgentNFT n, TransferVerifier v) {
        n = new AgentNFT(owner);
        v = new TransferVerifier(address(n), owner);
        vm.startPrank(owner);
        n.setVerifier(v);
        v.setOracle(vm.addr(ORACLE_PK), true);
        vm.stopPrank();
    }

    // ------------------------------------------------------------ data helpers

    function entries(uint256 n, uint256 seed) internal pure returns (IAgentNFT.DataEntries memory d) {
        d.dataHashes = new bytes32[](n);
        d.sealedKeys = new bytes[](n);
        d.uris = new string[](n);
        for (uint256 i = 0; i < n; ++i) {
            d.dataHashes[i] = keccak256(abi.encode("data", seed, i));
            // 81 bytes, like the sealing crate's sealed key (version | ephemeral key | tag | wrapped key)
            d.sealedKeys[i] = abi.encodePacked(
                bytes1(0x01), keccak256(abi.encode("eph", seed, i)), keccak256(abi.encode("ct", seed, i)), bytes16(0)
            );
            d.uris[i] = string(abi.encodePacked("inft://blob/", _hex(d.dataHashes[i])));
        }
    }

    function noShares() internal pure returns (IAgentNFT.Shares memory s) {
        s.contributors = new address[](0);
        s.contributorBps = new uint16[](0);
    }

    function shares(uint16 royalty, uint16 creator, address contributor, uint16 contributorBps)
        internal
        pure
        returns (IAgentNFT.Shares memory s)
    {
        s.royaltyBps = royalty;
        s.creatorBps = creator;
        s.contributors = new address[](1);
        s.contributors[0] = contributor;
        s.contributorBps = new uint16[](1);
        s.contributorBps[0] = contributorBps;
    }

    function mintAs(address minter, address to, uint96 salt, uint256 nEntries, address agent)
        internal
        returns (uint256 tokenId)
    {
        vm.prank(minter);
        tokenId = nft.mint(to, salt, entries(nEntries, salt), agent, noShares(), MODEL_SHA256);
    }

    // ------------------------------------------------------------ proof helpers

    function offer(
        uint256 tokenId,
        uint256 newTokenId,
        address from,
        address to,
        IAgentNFT.DataEntries memory d,
        address newAgent,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (Offer memory o) {
        o.nft = address(nft);
        o.tokenId = tokenId;
        o.newTokenId = newTokenId;
        o.from = from;
        o.to = to;
        o.oldDataHashes = nft.dataHashesOf(tokenId);
        o.newDataHashes = d.dataHashes;
        o.sealedKeys = d.sealedKeys;
        o.uris = d.uris;
        o.sealingKey = nft.sealingKeyOf(to);
        o.newAgent = newAgent;
        o.nonce = nonce;
        o.deadline = deadline;
    }

    function domainSeparator(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256("inft TransferVerifier"), keccak256("1"), chainId, verifyingContract
            )
        );
    }

    function structHash(uint8 mode, Offer memory o) internal pure returns (bytes32) {
        bytes32[] memory k = new bytes32[](o.sealedKeys.length);
        for (uint256 i = 0; i < k.length; ++i) {
            k[i] = keccak256(o.sealedKeys[i]);
        }
        bytes32[] memory u = new bytes32[](o.uris.length);
        for (uint256 i = 0; i < u.length; ++i) {
            u[i] = keccak256(bytes(o.uris[i]));
        }
        bytes memory head = abi.encode(
            mode == Scopes.MODE_RECEIVER ? ACCEPTANCE_TYPEHASH : ATTESTATION_TYPEHASH,
            o.nft,
            o.tokenId,
            o.newTokenId,
            o.from,
            o.to
        );
        bytes memory tail = abi.encode(
            keccak256(abi.encodePacked(o.oldDataHashes)),
            keccak256(abi.encodePacked(o.newDataHashes)),
            keccak256(abi.encodePacked(k)),
            keccak256(abi.encodePacked(u)),
            o.sealingKey,
            o.newAgent,
            o.market,
            o.price,
            o.nonce,
            o.deadline
        );
        return keccak256(bytes.concat(head, tail));
    }

    function digestFor(uint8 mode, Offer memory o, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(chainId, verifyingContract), structHash(mode, o)));
    }

    function signOffer(uint256 pk, uint8 mode, Offer memory o) internal view returns (bytes memory) {
        return signOfferFor(pk, mode, o, block.chainid, address(verifier));
    }

    function signOfferFor(uint256 pk, uint8 mode, Offer memory o, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digestFor(mode, o, chainId, verifyingContract));
        return abi.encodePacked(r, s, v);
    }

    function proof(uint8 mode, uint256 nonce, uint256 deadline, bytes memory sig)
        internal
        pure
        returns (IAgentNFT.Proof memory p)
    {
        p = IAgentNFT.Proof({mode: mode, nonce: nonce, deadline: deadline, signature: sig});
    }

    /// @dev The rotation that completes the pending sale of `tokenId` on market `m`, as an oracle
    /// attests it: from the seller to the buyer, sealed to the key the buyer committed, bound to
    /// the market and the listed price.
    function saleOffer(
        IAgentMarket m,
        uint256 tokenId,
        IAgentNFT.DataEntries memory d,
        address newAgent,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (Offer memory o) {
        IAgentMarket.Listing memory l = m.listingOf(tokenId);
        o = offer(tokenId, tokenId, l.seller, l.buyer, d, newAgent, nonce, deadline);
        o.sealingKey = l.sealingKey;
        o.market = address(m);
        o.price = l.price;
    }

    /// @dev {saleOffer} signed by the registered oracle.
    function saleProof(
        IAgentMarket m,
        uint256 tokenId,
        IAgentNFT.DataEntries memory d,
        address newAgent,
        uint256 nonce,
        uint256 deadline
    ) internal view returns (IAgentNFT.Proof memory) {
        Offer memory o = saleOffer(m, tokenId, d, newAgent, nonce, deadline);
        return proof(Scopes.MODE_ORACLE, nonce, deadline, signOffer(ORACLE_PK, Scopes.MODE_ORACLE, o));
    }

    /// @dev A complete receiver-signed transfer of `tokenId` from its owner to `to`.
    function receiverTransfer(uint256 tokenId, address to, uint256 toPk, uint256 seed, address newAgent, uint256 nonce)
        internal
    {
        address from = nft.ownerOf(tokenId);
        IAgentNFT.DataEntries memory d = entries(nft.dataHashesOf(tokenId).length, seed);
        uint256 deadline = block.timestamp + 1 hours;
        Offer memory o = offer(tokenId, tokenId, from, to, d, newAgent, nonce, deadline);
        bytes memory sig = signOffer(toPk, Scopes.MODE_RECEIVER, o);
        vm.prank(from);
        nft.transferWithProof(to, tokenId, d, newAgent, proof(Scopes.MODE_RECEIVER, nonce, deadline, sig));
    }

    /// @dev Our rotation in ERC-7857's encoding (IAgentNFT.RotationEnvelope): per entry the hashes,
    /// sealed key, receiver's sealing key and URI; the envelope in element 0's access proof.
    function standardProofs(
        bytes32[] memory oldHashes,
        IAgentNFT.DataEntries memory d,
        bytes32 sealingKey,
        IAgentNFT.RotationEnvelope memory env
    ) internal pure returns (TransferValidityProof[] memory ps) {
        ps = new TransferValidityProof[](d.dataHashes.length);
        for (uint256 i = 0; i < ps.length; ++i) {
            ps[i].ownershipProof = OwnershipProof({
                oracleType: OracleType.TEE,
                oldDataHash: oldHashes[i],
                newDataHash: d.dataHashes[i],
                sealedKey: d.sealedKeys[i],
                encryptedPubKey: abi.encodePacked(sealingKey),
                nonce: "",
                proof: bytes(d.uris[i])
            });
            ps[i].accessProof = AccessProof({
                oldDataHash: oldHashes[i],
                newDataHash: d.dataHashes[i],
                nonce: "",
                encryptedPubKey: "",
                proof: i == 0 ? abi.encode(env) : bytes("")
            });
        }
    }

    /// @dev A transfer's envelope (no salt, no shares).
    function transferEnvelope(IAgentNFT.Proof memory p, address newAgent)
        internal
        pure
        returns (IAgentNFT.RotationEnvelope memory env)
    {
        env.proof = p;
        env.newAgent = newAgent;
        env.shares = noShares();
    }

    function _hex(bytes32 v) internal pure returns (bytes memory out) {
        bytes16 digits = "0123456789abcdef";
        out = new bytes(64);
        for (uint256 i = 0; i < 32; ++i) {
            out[2 * i] = digits[uint8(v[i]) >> 4];
            out[2 * i + 1] = digits[uint8(v[i]) & 0x0f];
        }
    }
}

/// @dev Deploys the whole system (NFT, verifier with one oracle, action log, splitter, account
/// factory) and publishes sealing keys for alice, bob and carol.
abstract contract Fixture is Signing {
    function setUp() public virtual {
        initActors();
        vm.warp(1_700_000_000);

        (nft, verifier) = deployNft(admin);
        actionLog = ActionLog(nft.actionLog());
        splitter = new EarningsSplitter(nft);
        accounts = new AgentAccountFactory(address(nft));
        metadata = new AgentMetadata(nft);
        vm.startPrank(admin);
        nft.setAccountFactory(accounts);
        nft.setMetadataRenderer(metadata);
        vm.stopPrank();

        vm.prank(alice);
        nft.setSealingKey(ALICE_SEALING_KEY);
        vm.prank(bob);
        nft.setSealingKey(BOB_SEALING_KEY);
        vm.prank(carol);
        nft.setSealingKey(CAROL_SEALING_KEY);
    }
}
