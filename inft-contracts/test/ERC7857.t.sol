// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {IMetadataRenderer} from "../contracts/interfaces/IMetadataRenderer.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {TransferVerifier} from "../contracts/TransferVerifier.sol";
import {
    IERC7857,
    IERC7857Metadata,
    IntelligentData,
    TransferValidityProof
} from "../contracts/interfaces/IERC7857.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC721Metadata} from "@openzeppelin/contracts/token/ERC721/extensions/IERC721Metadata.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC4906} from "@openzeppelin/contracts/interfaces/IERC4906.sol";

/// @dev AgentNFT driven only through the ERC-7857 interfaces as the specification writes them
/// (contracts/interfaces/IERC7857.sol is the spec's text): transfer and clone with proofs in the
/// standard's shape, usage authorization, access delegation, metadata, ERC-165 ids; and the
/// ERC-4906 events of every change.
contract ERC7857Test is Fixture {
    IERC7857 internal std;
    IERC7857Metadata internal meta;
    uint256 internal id;

    // The standard's events, to expect them.
    event Transferred(uint256 _tokenId, address indexed _from, address indexed _to);
    event Cloned(uint256 indexed _tokenId, uint256 indexed _newTokenId, address _from, address _to);
    event PublishedSealedKey(address indexed _to, uint256 indexed _tokenId, bytes[] _sealedKeys);
    event Authorization(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    event AuthorizationRevoked(address indexed _from, address indexed _to, uint256 indexed _tokenId);
    event DelegateAccess(address indexed _user, address indexed _assistant);
    event MetadataUpdate(uint256 _tokenId);

    function setUp() public override {
        super.setUp();
        std = IERC7857(address(nft));
        meta = IERC7857Metadata(address(nft));
        id = mintAs(alice, alice, 1, 3, agent1);
    }

    /// Proofs for moving `id` to `to` with `signerPk` signing in `mode`.
    function _proofsFor(address to, uint256 signerPk, uint8 mode, uint256 seed, uint256 nonce, uint256 deadline)
        internal
        view
        returns (TransferValidityProof[] memory ps, IAgentNFT.DataEntries memory d)
    {
        d = entries(3, seed);
        Offer memory o = offer(id, id, nft.ownerOf(id), to, d, agent2, nonce, deadline);
        IAgentNFT.Proof memory p = proof(mode, nonce, deadline, signOffer(signerPk, mode, o));
        ps = standardProofs(nft.dataHashesOf(id), d, nft.sealingKeyOf(to), transferEnvelope(p, agent2));
    }

    function _hashesOf(uint256 tokenId) internal view returns (bytes32[] memory hashes) {
        IntelligentData[] memory data = meta.intelligentDataOf(tokenId);
        hashes = new bytes32[](data.length);
        for (uint256 i = 0; i < data.length; ++i) {
            hashes[i] = data[i].dataHash;
        }
    }

    // ------------------------------------------------------------------ ERC-165

    function test_supportsInterface_answersEachId() public view {
        IERC165 n = IERC165(address(nft));
        vm.assertTrue(n.supportsInterface(type(IERC7857).interfaceId), "IERC7857");
        vm.assertTrue(n.supportsInterface(type(IERC7857Metadata).interfaceId), "IERC7857Metadata");
        vm.assertTrue(n.supportsInterface(bytes4(0x49064906)), "ERC-4906");
        vm.assertTrue(n.supportsInterface(type(IERC721).interfaceId), "IERC721");
        vm.assertTrue(n.supportsInterface(type(IERC721Metadata).interfaceId), "IERC721Metadata");
        vm.assertTrue(n.supportsInterface(type(IERC2981).interfaceId), "IERC2981");
        vm.assertTrue(n.supportsInterface(type(IERC165).interfaceId), "IERC165");
        vm.assertTrue(n.supportsInterface(type(IAgentNFT).interfaceId), "IAgentNFT");
        vm.assertFalse(n.supportsInterface(0xdeadbeef), "random id");
        vm.assertFalse(n.supportsInterface(0xffffffff), "ERC-165 invalid id");
    }

    // ----------------------------------------------------------------- metadata

    function test_metadata_nameSymbolAndIntelligentData() public view {
        vm.assertEq(meta.name(), "inft Agent", "meta.name()");
        vm.assertEq(meta.symbol(), "INFT", "meta.symbol()");
        IntelligentData[] memory data = meta.intelligentDataOf(id);
        vm.assertEq(data.length, 3, "one per entry");
        vm.assertEq(data[0].dataDescription, "model", "data[0].dataDescription");
        vm.assertEq(data[1].dataDescription, "agent-key", "data[1].dataDescription");
        vm.assertEq(data[2].dataDescription, "config", "data[2].dataDescription");
        vm.assertEq(_hashesOf(id), nft.dataHashesOf(id), "the stored hashes");
        vm.assertEq(address(std.verifier()), address(verifier), "verifier");
    }

    // ------------------------------------------------------------------ iTransfer

    function test_iTransfer_receiverProof_movesTokenAndRotatesData() public {
        uint256 deadline = block.timestamp + 1 hours;
        (TransferValidityProof[] memory ps, IAgentNFT.DataEntries memory d) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, deadline);
        vm.expectEmit(address(nft));
        emit Transferred(id, alice, bob);
        vm.expectEmit(address(nft));
        emit PublishedSealedKey(bob, id, d.sealedKeys);
        vm.expectEmit(address(nft));
        emit MetadataUpdate(id);
        vm.prank(alice);
        std.iTransfer(bob, id, ps);

        vm.assertEq(std.ownerOf(id), bob, "owner");
        vm.assertEq(_hashesOf(id), d.dataHashes, "rotated data");
        vm.assertEq(nft.agentOf(id), agent2, "rotated agent");
        vm.assertEq(nft.epochOf(id), 1, "new epoch");
    }

    function test_iTransfer_oracleProof_moves() public {
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, ORACLE_PK, Scopes.MODE_ORACLE, 100, 7, block.timestamp + 1 hours);
        vm.prank(alice);
        std.iTransfer(bob, id, ps);
        vm.assertEq(std.ownerOf(id), bob, "std.ownerOf(id)");
    }

    function test_iTransferFrom_byApprovedOperator() public {
        vm.prank(alice);
        std.approve(carol, id);
        vm.assertEq(std.getApproved(id), carol, "std.getApproved(id)");
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(carol);
        nft.iTransferFrom(alice, bob, id, ps);
        vm.assertEq(std.ownerOf(id), bob, "std.ownerOf(id)");
        vm.assertEq(std.getApproved(id), address(0), "approval cleared");
    }

    function test_iTransferFrom_refusesWrongFrom() public {
        vm.prank(alice);
        std.setApprovalForAll(carol, true);
        vm.assertTrue(std.isApprovedForAll(alice, carol), "operator");
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, carol));
        nft.iTransferFrom(carol, bob, id, ps);
    }

    function test_iTransfer_refusesStranger() public {
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, mallory));
        std.iTransfer(bob, id, ps);
    }

    function test_iTransfer_refusesReplayedProof() public {
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        std.iTransfer(bob, id, ps);
        // Bob hands it back, then the first proof is replayed: it names the data hashes it
        // rotated away from.
        receiverTransfer(id, alice, ALICE_PK, 200, agent3, 1);
        vm.prank(alice);
        vm.expectPartialRevert(IAgentNFT.StaleDataHash.selector);
        std.iTransfer(bob, id, ps);
    }

    function test_iTransfer_refusesReusedNonce() public {
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        std.iTransfer(bob, id, ps);
        receiverTransfer(id, alice, ALICE_PK, 200, agent3, 1);
        // A fresh proof for the current state, but with bob's spent nonce 1.
        (ps,) = _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 300, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.NonceAlreadyUsed.selector, bob, 1));
        std.iTransfer(bob, id, ps);
    }

    function test_iTransfer_refusesExpiredProof() public {
        uint256 deadline = block.timestamp + 1 hours;
        (TransferValidityProof[] memory ps,) = _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, deadline);
        vm.warp(deadline + 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.ProofExpired.selector, deadline, deadline + 1));
        std.iTransfer(bob, id, ps);
    }

    function test_iTransfer_refusesProofSignedByAnotherParty() public {
        // Mallory signs "bob accepts": receiver mode needs bob's own signature.
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, MALLORY_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        std.iTransfer(bob, id, ps);
        // And an oracle mode proof from a key that is not a registered oracle.
        (ps,) = _proofsFor(bob, MALLORY_PK, Scopes.MODE_ORACLE, 100, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.UnknownOracle.selector, mallory));
        std.iTransfer(bob, id, ps);
    }

    function test_iTransfer_refusesProofForAnotherReceiver() public {
        // Bob's acceptance (data sealed to bob) sent to carol.
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadStandardProof.selector, 0));
        std.iTransfer(carol, id, ps);
    }

    function test_iTransfer_refusesInconsistentElements() public {
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        // The access proof of entry 1 disagrees with its ownership proof.
        ps[1].accessProof.newDataHash = keccak256("other");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadStandardProof.selector, 1));
        std.iTransfer(bob, id, ps);
    }

    function test_iTransfer_refusesTamperedEntry() public {
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        // Another sealed key than the one the receiver accepted: the signature no longer covers it.
        ps[2].ownershipProof.sealedKey = hex"01deadbeef";
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        std.iTransfer(bob, id, ps);
    }

    function test_iTransfer_refusesMissingEntry() public {
        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        TransferValidityProof[] memory two = new TransferValidityProof[](2);
        (two[0], two[1]) = (ps[0], ps[1]);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.EntryCountMismatch.selector, 3, 2));
        std.iTransfer(bob, id, two);
    }

    // --------------------------------------------------------------------- iClone

    function _cloneProofs(address to, uint256 signerPk, uint8 mode, uint96 salt, uint256 nonce, uint256 deadline)
        internal
        view
        returns (TransferValidityProof[] memory ps, IAgentNFT.DataEntries memory d, uint256 newId)
    {
        newId = nft.tokenIdFor(alice, salt);
        d = entries(3, 500);
        Offer memory o = offer(id, newId, alice, to, d, agent3, nonce, deadline);
        IAgentNFT.RotationEnvelope memory env = transferEnvelope(proof(mode, nonce, deadline, signOffer(signerPk, mode, o)), agent3);
        env.salt = salt;
        ps = standardProofs(nft.dataHashesOf(id), d, nft.sealingKeyOf(to), env);
    }

    function test_iClone_mintsACopyForTheReceiver() public {
        (TransferValidityProof[] memory ps, IAgentNFT.DataEntries memory d, uint256 newId) =
            _cloneProofs(bob, ORACLE_PK, Scopes.MODE_ORACLE, 9, 1, block.timestamp + 1 hours);
        vm.expectEmit(address(nft));
        emit Cloned(id, newId, alice, bob);
        vm.prank(alice);
        uint256 got = std.iClone(bob, id, ps);
        vm.assertEq(got, newId, "id from the salt");
        vm.assertEq(std.ownerOf(newId), bob, "clone owner");
        vm.assertEq(std.ownerOf(id), alice, "original stays");
        vm.assertEq(_hashesOf(newId), d.dataHashes, "clone's data");
        vm.assertEq(nft.creatorOf(newId), alice, "creator kept");
    }

    function test_iCloneFrom_ownerOnly() public {
        (TransferValidityProof[] memory ps,, uint256 newId) =
            _cloneProofs(bob, BOB_PK, Scopes.MODE_RECEIVER, 9, 1, block.timestamp + 1 hours);
        // An approved operator may move the token but not copy the agent.
        vm.prank(alice);
        std.setApprovalForAll(carol, true);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, alice));
        nft.iCloneFrom(alice, bob, id, ps);
        vm.prank(alice);
        vm.assertEq(nft.iCloneFrom(alice, bob, id, ps), newId, "std.iCloneFrom(alice");
        // Replayed: the id is taken, and the nonce is spent.
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.TokenIdTaken.selector, newId));
        std.iClone(bob, id, ps);
    }

    function test_iTransfer_refusesACloneEnvelope() public {
        (TransferValidityProof[] memory ps,,) =
            _cloneProofs(bob, BOB_PK, Scopes.MODE_RECEIVER, 9, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadStandardProof.selector, 0));
        std.iTransfer(bob, id, ps);
    }

    // ------------------------------------------------------- usage and delegation

    function test_authorizeUsage_listsAndRevokes() public {
        vm.expectEmit(address(nft));
        emit Authorization(alice, bob, id);
        vm.prank(alice);
        std.authorizeUsage(id, bob);
        vm.prank(alice);
        std.authorizeUsage(id, carol);
        address[] memory users = std.authorizedUsersOf(id);
        vm.assertEq(users.length, 2, "users.length");
        vm.assertEq(users[0], bob, "users[0]");
        vm.assertEq(users[1], carol, "users[1]");
        vm.assertTrue(nft.isAuthorized(id, bob, Scopes.RUN), "bob may run");
        vm.assertFalse(nft.isAuthorized(id, bob, Scopes.TRADE), "but not trade");

        vm.expectEmit(address(nft));
        emit AuthorizationRevoked(alice, bob, id);
        vm.prank(alice);
        std.revokeAuthorization(id, bob);
        users = std.authorizedUsersOf(id);
        vm.assertEq(users.length, 1, "users.length");
        vm.assertEq(users[0], carol, "users[0]");
        vm.assertFalse(nft.isAuthorized(id, bob, Scopes.RUN), "revoked");
    }

    function test_authorizeUsage_ownerOnly_andEndsWithTransfer() public {
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, mallory));
        std.authorizeUsage(id, mallory);

        vm.prank(alice);
        std.authorizeUsage(id, carol);
        // An expiring grant from `authorize` is listed only while live.
        vm.prank(alice);
        nft.authorize(id, mallory, Scopes.RUN, uint64(block.timestamp + 60), new bytes[](0));
        vm.assertEq(std.authorizedUsersOf(id).length, 2, "std.authorizedUsersOf(id).length");
        vm.warp(block.timestamp + 61);
        vm.assertEq(std.authorizedUsersOf(id).length, 1, "expired grant not listed");

        (TransferValidityProof[] memory ps,) =
            _proofsFor(bob, BOB_PK, Scopes.MODE_RECEIVER, 100, 1, block.timestamp + 1 hours);
        vm.prank(alice);
        std.iTransfer(bob, id, ps);
        vm.assertEq(std.authorizedUsersOf(id).length, 0, "grants end with the transfer");
        vm.assertFalse(nft.isAuthorized(id, carol, Scopes.RUN), "old grant ended");
    }

    function test_delegateAccess_recordsTheAssistant() public {
        vm.expectEmit(address(nft));
        emit DelegateAccess(bob, carol);
        vm.prank(bob);
        std.delegateAccess(carol);
        vm.assertEq(std.getDelegateAccess(bob), carol, "std.getDelegateAccess(bob)");
        vm.prank(bob);
        std.delegateAccess(address(0));
        vm.assertEq(std.getDelegateAccess(bob), address(0), "withdrawn");
    }

    // ----------------------------------------------------------------- ERC-4906

    function test_metadataUpdate_onEveryChange() public {
        vm.startPrank(alice);
        vm.expectEmit(address(nft));
        emit MetadataUpdate(id);
        nft.setAgent(id, agent3);
        vm.expectEmit(address(nft));
        emit MetadataUpdate(id);
        nft.setPaused(id, true);
        vm.expectEmit(address(nft));
        emit MetadataUpdate(id);
        nft.setPaused(id, false);
        vm.expectEmit(address(nft));
        emit MetadataUpdate(id);
        nft.updateData(id, entries(4, 42));
        vm.stopPrank();

        bytes32[] memory one = new bytes32[](1);
        one[0] = keccak256("action");
        vm.expectEmit(address(nft));
        emit MetadataUpdate(id);
        vm.prank(agent3);
        actionLog.logActions(id, 1, one);

        vm.expectEmit(address(nft));
        emit IERC4906.BatchMetadataUpdate(0, type(uint256).max);
        vm.prank(admin);
        nft.setMetadataRenderer(metadata);
    }

    function test_noteActionsLogged_onlyTheActionLog() public {
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotActionLog.selector, mallory));
        nft.noteActionsLogged(id);
        vm.assertEq(nft.actionLog(), address(actionLog), "nft.actionLog()");
        vm.assertEq(actionLog.nft(), address(nft), "actionLog.nft()");
    }

    function test_tokenURI_isABase64JsonDocument() public view {
        string memory uri = nft.tokenURI(id);
        bytes memory prefix = bytes("data:application/json;base64,");
        bytes memory b = bytes(uri);
        vm.assertGt(b.length, prefix.length + 100, "b.length");
        for (uint256 i = 0; i < prefix.length; ++i) {
            vm.assertEq(uint8(b[i]), uint8(prefix[i]), "data URI prefix");
        }
    }

    function test_tokenURI_refusesUnmintedAndIsEmptyWithoutRenderer() public {
        vm.expectRevert();
        nft.tokenURI(12345);
        vm.prank(admin);
        nft.setMetadataRenderer(IMetadataRenderer(address(0)));
        vm.assertEq(nft.tokenURI(id), "", "no renderer, no document");
    }
}
