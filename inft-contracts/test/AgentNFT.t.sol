// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Test.sol";
import {AgentNFT} from "../contracts/AgentNFT.sol";
import {TransferVerifier} from "../contracts/TransferVerifier.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {ITransferVerifier} from "../contracts/interfaces/ITransferVerifier.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {IERC721Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MockContractWallet, NonReceiver} from "./utils/Mocks.sol";

contract AgentNFTMintTest is Fixture {
    function test_mint_storesOwnerDataAgentAndEmits() public {
        IAgentNFT.DataEntries memory d = entries(3, 7);
        uint256 expectedId = nft.tokenIdFor(alice, 7);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.DataSet(expectedId, 0, d.dataHashes, d.sealedKeys, d.uris);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.AgentSet(expectedId, agent1, 0);
        vm.prank(alice);
        uint256 id = nft.mint(bob, 7, d, agent1, shares(500, 1000, carol, 250), MODEL_SHA256);

        vm.assertEq(id, expectedId, "token id is (minter << 96) | salt");
        vm.assertEq(id, (uint256(uint160(alice)) << 96) | 7, "id layout");
        vm.assertEq(nft.ownerOf(id), bob, "owner");
        vm.assertEq(nft.creatorOf(id), alice, "creator = minter");
        vm.assertEq(nft.agentOf(id), agent1, "agent");
        vm.assertEq(uint256(nft.epochOf(id)), 0, "epoch");
        bytes32[] memory hs = nft.dataHashesOf(id);
        vm.assertEq(hs.length, 3, "entries");
        for (uint256 i = 0; i < 3; ++i) {
            vm.assertEq(hs[i], d.dataHashes[i], "data hash");
        }
        IAgentNFT.TokenInfo memory info = nft.tokenInfo(id);
        vm.assertEq(info.owner, bob, "info owner");
        vm.assertEq(uint256(info.royaltyBps), 500, "royalty");
        vm.assertEq(uint256(info.creatorBps), 1000, "creator bps");
        vm.assertEq(uint256(info.entryCount), 3, "count");
        address[] memory cs = new address[](1);
        cs[0] = carol;
        uint16[] memory bps = new uint16[](1);
        bps[0] = 250;
        vm.assertEq(info.contributorsHash, keccak256(abi.encode(cs, bps)), "contributors hash");
        vm.assertEq(nft.modelHashOf(id), MODEL_SHA256, "model commitment");
    }

    /// Security M2: the plaintext model hash is public and fixed, so a buyer can check the model
    /// a transfer hands over; a token without one cannot be minted.
    function test_mint_commitsTheModelHash_andRefusesNone() public {
        uint256 expectedId = nft.tokenIdFor(alice, 9);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.ModelCommitted(expectedId, MODEL_SHA256);
        vm.prank(alice);
        nft.mint(alice, 9, entries(1, 9), agent1, noShares(), MODEL_SHA256);
        vm.assertEq(nft.modelHashOf(expectedId), MODEL_SHA256, "committed");

        vm.prank(alice);
        vm.expectRevert(IAgentNFT.NoModelHash.selector);
        nft.mint(alice, 10, entries(1, 10), agent1, noShares(), bytes32(0));
    }

    function test_mint_sameSaltDifferentMinters_differentIds() public {
        uint256 a = mintAs(alice, alice, 1, 1, agent1);
        uint256 b = mintAs(bob, bob, 1, 1, agent2);
        vm.assertTrue(a != b, "namespaces differ");
        vm.assertEq(nft.creatorOf(b), bob, "creator from namespace");
    }

    function test_mint_takenId_reverts() public {
        uint256 id = mintAs(alice, alice, 1, 1, agent1);
        IAgentNFT.DataEntries memory d = entries(1, 2);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.TokenIdTaken.selector, id));
        nft.mint(bob, 1, d, agent1, noShares(), MODEL_SHA256);
    }

    function test_mint_badEntries_revert() public {
        IAgentNFT.DataEntries memory d = entries(0, 1);
        vm.startPrank(alice);
        vm.expectRevert(IAgentNFT.BadEntries.selector);
        nft.mint(alice, 1, d, agent1, noShares(), MODEL_SHA256);

        d = entries(2, 1);
        d.uris = new string[](1);
        vm.expectRevert(IAgentNFT.BadEntries.selector);
        nft.mint(alice, 1, d, agent1, noShares(), MODEL_SHA256);

        d = entries(2, 1);
        d.dataHashes[1] = bytes32(0);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.EmptyEntry.selector, 1));
        nft.mint(alice, 1, d, agent1, noShares(), MODEL_SHA256);

        d = entries(2, 1);
        d.sealedKeys[0] = "";
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.EmptyEntry.selector, 0));
        nft.mint(alice, 1, d, agent1, noShares(), MODEL_SHA256);

        d = entries(1, 1);
        vm.expectRevert(IAgentNFT.ZeroAddress.selector);
        nft.mint(address(0), 1, d, agent1, noShares(), MODEL_SHA256);
        vm.stopPrank();
    }

    function test_mint_badShares_revert() public {
        IAgentNFT.DataEntries memory d = entries(1, 1);
        vm.startPrank(alice);
        vm.expectRevert(IAgentNFT.BadShares.selector);
        nft.mint(alice, 1, d, agent1, shares(10_001, 0, carol, 0), MODEL_SHA256);
        vm.expectRevert(IAgentNFT.BadShares.selector);
        nft.mint(alice, 1, d, agent1, shares(0, 9_000, carol, 1_001), MODEL_SHA256);
        vm.expectRevert(IAgentNFT.BadShares.selector);
        nft.mint(alice, 1, d, agent1, shares(0, 100, address(0), 100), MODEL_SHA256);
        IAgentNFT.Shares memory s = shares(0, 100, carol, 100);
        s.contributorBps = new uint16[](0);
        vm.expectRevert(IAgentNFT.BadShares.selector);
        nft.mint(alice, 1, d, agent1, s, MODEL_SHA256);
        vm.stopPrank();
    }

    function test_royaltyInfo_paysCreator() public {
        vm.prank(alice);
        uint256 id = nft.mint(bob, 1, entries(1, 1), agent1, shares(750, 0, carol, 0), MODEL_SHA256);
        (address receiver, uint256 amount) = nft.royaltyInfo(id, 1 ether);
        vm.assertEq(receiver, alice, "royalty receiver");
        vm.assertEq(amount, 0.075 ether, "royalty amount");
        vm.assertTrue(nft.supportsInterface(type(IERC2981).interfaceId), "ERC-2981");
        vm.assertTrue(nft.supportsInterface(type(IERC721).interfaceId), "ERC-721");
    }

    function testFuzz_tokenIdFor_roundTrips(address minter, uint96 salt) public view {
        uint256 id = nft.tokenIdFor(minter, salt);
        vm.assertEq(address(uint160(id >> 96)), minter, "minter");
        vm.assertEq(uint256(uint96(id)), uint256(salt), "salt");
    }
}

contract AgentNFTPlainTransferTest is Fixture {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
    }

    function test_transferFrom_privateToken_reverts() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.PrivateTokenTransfer.selector, id));
        nft.transferFrom(alice, bob, id);
    }

    function test_safeTransferFrom_privateToken_reverts() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.PrivateTokenTransfer.selector, id));
        nft.safeTransferFrom(alice, bob, id);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.PrivateTokenTransfer.selector, id));
        nft.safeTransferFrom(alice, bob, id, "");
    }

    function test_transferFrom_byApprovedOperator_reverts() public {
        vm.prank(alice);
        nft.setApprovalForAll(carol, true);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.PrivateTokenTransfer.selector, id));
        nft.transferFrom(alice, bob, id);
        vm.assertEq(nft.ownerOf(id), alice, "did not move");
    }
}

contract AgentNFTProofTransferTest is Fixture {
    uint256 internal id;
    uint256 internal id2;
    uint256 internal deadline;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
        id2 = mintAs(alice, alice, 2, 1, agent1);
        deadline = block.timestamp + 1 hours;
    }

    function _signed(uint256 pk, uint8 mode, uint256 tokenId, address to, uint256 seed, address newAgent, uint256 nonce)
        internal
        view
        returns (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p)
    {
        d = entries(1, seed);
        Offer memory o = offer(tokenId, tokenId, nft.ownerOf(tokenId), to, d, newAgent, nonce, deadline);
        p = proof(mode, nonce, deadline, signOffer(pk, mode, o));
    }

    function test_receiverMode_movesTokenRotatesDataAndAgent() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.prank(alice);
        nft.approve(carol, id);

        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.DataSet(id, 1, d.dataHashes, d.sealedKeys, d.uris);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.AgentSet(id, agent2, 1);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.TransferredWithProof(id, alice, bob, 1, Scopes.MODE_RECEIVER, bob, 1);
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);

        vm.assertEq(nft.ownerOf(id), bob, "new owner");
        vm.assertEq(nft.agentOf(id), agent2, "agent rotated");
        vm.assertEq(uint256(nft.epochOf(id)), 1, "epoch bumped");
        vm.assertEq(nft.dataHashesOf(id)[0], d.dataHashes[0], "data rotated");
        vm.assertEq(nft.getApproved(id), address(0), "approval cleared");
        vm.assertTrue(verifier.isNonceUsed(bob, 1), "nonce consumed");
        vm.assertEq(nft.creatorOf(id), alice, "creator unchanged");
    }

    /// L2: a transfer resets the pause flag; a listener sees it as PauseSet(false), and the new
    /// epoch in TransferredWithProof is the documented end of every earlier grant.
    function test_transferOfPausedToken_emitsPauseSetFalse() public {
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.RUN, uint64(block.timestamp + 1 days), new bytes[](0));
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.PauseSet(id, false);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.TransferredWithProof(id, alice, bob, 1, Scopes.MODE_RECEIVER, bob, 1);
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        vm.assertFalse(nft.isPaused(id), "pause reset");
        (uint8 scopes,) = nft.authorizationOf(id, carol);
        vm.assertEq(uint256(scopes), 0, "grant of epoch 0 ended");
    }

    /// No PauseSet when the token was not paused (nothing changed).
    function test_transferOfUnpausedToken_emitsNoPauseSet() public {
        vm.recordLogs();
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            vm.assertTrue(logs[i].topics[0] != IAgentNFT.PauseSet.selector, "no PauseSet");
        }
    }

    function test_oracleMode_movesToken() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(ORACLE_PK, Scopes.MODE_ORACLE, id, bob, 100, agent2, 9);
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "new owner");
        vm.assertTrue(verifier.isNonceUsed(oracle, 9), "oracle nonce consumed");
    }

    function test_approvedOperator_canSubmit() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.prank(alice);
        nft.setApprovalForAll(carol, true);
        vm.prank(carol);
        nft.transferWithProof(bob, id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "moved by operator");
    }

    function test_stranger_cannotSubmit() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, bob));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    /// A replay: the token comes back to alice with the very same data and agent, so every signed
    /// field matches again; only the used nonce stops the old acceptance.
    function test_replayedProof_reverts() public {
        IAgentNFT.DataEntries memory original = entries(1, 1);
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);

        // bob sends it back to alice, restoring the original data hashes and agent
        Offer memory back = offer(id, id, bob, alice, original, agent1, 1, deadline);
        bytes memory sig = signOffer(ALICE_PK, Scopes.MODE_RECEIVER, back);
        vm.prank(bob);
        nft.transferWithProof(alice, id, original, agent1, proof(Scopes.MODE_RECEIVER, 1, deadline, sig));
        vm.assertEq(nft.dataHashesOf(id)[0], original.dataHashes[0], "state restored");

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.NonceAlreadyUsed.selector, bob, 1));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_replayedOracleProof_reverts() public {
        IAgentNFT.DataEntries memory original = entries(1, 1);
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(ORACLE_PK, Scopes.MODE_ORACLE, id, bob, 100, agent2, 5);
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);
        Offer memory back = offer(id, id, bob, alice, original, agent1, 6, deadline);
        vm.prank(bob);
        nft.transferWithProof(
            alice,
            id,
            original,
            agent1,
            proof(Scopes.MODE_ORACLE, 6, deadline, signOffer(ORACLE_PK, Scopes.MODE_ORACLE, back))
        );
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.NonceAlreadyUsed.selector, oracle, 5));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_proofForAnotherToken_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id2, d, agent2, p);
    }

    function test_oracleProofForAnotherToken_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(ORACLE_PK, Scopes.MODE_ORACLE, id, bob, 100, agent2, 1);
        vm.prank(alice);
        // the recovered key is some random address, not the oracle
        vm.expectRevert();
        nft.transferWithProof(bob, id2, d, agent2, p);
        vm.assertEq(nft.ownerOf(id2), alice, "not moved");
    }

    function test_proofForAnotherContract_reverts() public {
        (AgentNFT otherNft, TransferVerifier otherVerifier) = deployNft(admin);
        IAgentNFT.DataEntries memory d = entries(1, 100);
        Offer memory o = offer(id, id, alice, bob, d, agent2, 1, deadline);
        // same token id, parties and data, but made for the other deployment
        o.nft = address(otherNft);
        bytes memory sig = signOfferFor(BOB_PK, Scopes.MODE_RECEIVER, o, block.chainid, address(otherVerifier));
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, sig));

        // and only the nft field changed, domain kept: still refused
        sig = signOfferFor(BOB_PK, Scopes.MODE_RECEIVER, o, block.chainid, address(verifier));
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, sig));
    }

    function test_proofForAnotherChain_reverts() public {
        IAgentNFT.DataEntries memory d = entries(1, 100);
        Offer memory o = offer(id, id, alice, bob, d, agent2, 1, deadline);
        bytes memory sig = signOfferFor(BOB_PK, Scopes.MODE_RECEIVER, o, block.chainid + 1, address(verifier));
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, sig));
    }

    function test_proofSignedBeforeChainFork_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.chainId(block.chainid + 10);
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_expiredDeadline_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.warp(deadline + 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.ProofExpired.selector, deadline, deadline + 1));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_deadlineIsInclusive() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.warp(deadline);
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "valid at the deadline");
    }

    function test_wrongReceiverSignature_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(MALLORY_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_wrongOracleSignature_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(MALLORY_PK, Scopes.MODE_ORACLE, id, bob, 100, agent2, 1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.UnknownOracle.selector, mallory));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_removedOracle_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(ORACLE_PK, Scopes.MODE_ORACLE, id, bob, 100, agent2, 1);
        vm.prank(admin);
        verifier.setOracle(oracle, false);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.UnknownOracle.selector, oracle));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_receiverSignatureInOracleMode_reverts() public {
        // bob's acceptance replayed as an "attestation": distinct EIP-712 types, and bob is no oracle
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        p.mode = Scopes.MODE_ORACLE;
        vm.prank(alice);
        vm.expectRevert();
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_malleableSignature_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        bytes memory sig = p.signature;
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        // (r, n - s, v ^ 1) is the same signature in its high-s form
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        p.signature = abi.encodePacked(r, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_unsupportedMode_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        p.mode = 7;
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.UnsupportedMode.selector, 7));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    /// Any field changed after signing invalidates the acceptance.
    function testFuzz_tamperedField_reverts(uint8 which) public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        address newAgent = agent2;
        uint256 k = bound(which, 0, 5);
        if (k == 0) d.dataHashes[0] = keccak256("other");
        else if (k == 1) d.sealedKeys[0] = hex"0102";
        else if (k == 2) d.uris[0] = "inft://elsewhere";
        else if (k == 3) newAgent = agent3;
        else if (k == 4) p.nonce = 2;
        else p.deadline = deadline + 1;
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, newAgent, p);
    }

    function test_receiverChangedSealingKey_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        // the keys were sealed to bob's old key; bob has published a new one since
        vm.prank(bob);
        nft.setSealingKey(keccak256("bob's new key"));
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_receiverWithoutSealingKey_reverts() public {
        IAgentNFT.DataEntries memory d = entries(1, 100);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NoSealingKey.selector, mallory));
        nft.transferWithProof(mallory, id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, ""));
    }

    function test_dataNotRotated_reverts() public {
        IAgentNFT.DataEntries memory d = entries(1, 1); // same seed as the mint
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.DataNotRotated.selector, 0));
        nft.transferWithProof(bob, id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, ""));
    }

    function test_agentNotRotated_reverts() public {
        IAgentNFT.DataEntries memory d = entries(1, 100);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.AgentNotRotated.selector, agent1));
        nft.transferWithProof(bob, id, d, agent1, proof(Scopes.MODE_RECEIVER, 1, deadline, ""));
    }

    function test_entryCountMismatch_reverts() public {
        IAgentNFT.DataEntries memory d = entries(2, 100);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.EntryCountMismatch.selector, 1, 2));
        nft.transferWithProof(bob, id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, ""));
    }

    function test_badReceiver_reverts() public {
        IAgentNFT.DataEntries memory d = entries(1, 100);
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadReceiver.selector, alice));
        nft.transferWithProof(alice, id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, ""));
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadReceiver.selector, address(0)));
        nft.transferWithProof(address(0), id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, ""));
        vm.stopPrank();
    }

    function test_noVerifier_reverts() public {
        AgentNFT bare = new AgentNFT(admin);
        vm.prank(alice);
        uint256 t = bare.mint(alice, 1, entries(1, 1), agent1, noShares(), MODEL_SHA256);
        vm.prank(bob);
        bare.setSealingKey(BOB_SEALING_KEY);
        vm.prank(alice);
        vm.expectRevert(IAgentNFT.NoVerifier.selector);
        bare.transferWithProof(bob, t, entries(1, 2), agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, ""));
    }

    function test_cancelledNonce_reverts() public {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            _signed(BOB_PK, Scopes.MODE_RECEIVER, id, bob, 100, agent2, 1);
        vm.prank(bob);
        verifier.cancelNonce(1);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.NonceAlreadyUsed.selector, bob, 1));
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function test_verifier_onlyNftMayVerify() public {
        ITransferVerifier.Rotation memory r;
        r.nft = address(nft);
        r.deadline = deadline;
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(TransferVerifier.OnlyNFT.selector, mallory));
        verifier.verifyRotation(Scopes.MODE_RECEIVER, r, "");
    }

    function test_contractHashMatchesIndependentEncoding() public view {
        IAgentNFT.DataEntries memory d = entries(1, 100);
        Offer memory o = offer(id, id, alice, bob, d, agent2, 1, deadline);
        ITransferVerifier.Rotation memory r = ITransferVerifier.Rotation({
            nft: address(nft),
            tokenId: id,
            newTokenId: id,
            from: alice,
            to: bob,
            oldDataHashes: keccak256(abi.encodePacked(o.oldDataHashes)),
            newDataHashes: keccak256(abi.encodePacked(o.newDataHashes)),
            sealedKeys: keccak256(abi.encodePacked(keccak256(o.sealedKeys[0]))),
            uris: keccak256(abi.encodePacked(keccak256(bytes(o.uris[0])))),
            sealingKey: BOB_SEALING_KEY,
            newAgent: agent2,
            market: address(0),
            price: 0,
            nonce: 1,
            deadline: deadline
        });
        vm.assertEq(
            verifier.hashRotation(Scopes.MODE_RECEIVER, r),
            digestFor(Scopes.MODE_RECEIVER, o, block.chainid, address(verifier)),
            "acceptance digest"
        );
        vm.assertEq(
            verifier.hashRotation(Scopes.MODE_ORACLE, r),
            digestFor(Scopes.MODE_ORACLE, o, block.chainid, address(verifier)),
            "attestation digest"
        );
    }

    function test_contractReceiver_erc1271() public {
        MockContractWallet wallet = new MockContractWallet(bob);
        wallet.publishKey(nft, keccak256("wallet key"));
        IAgentNFT.DataEntries memory d = entries(1, 100);
        Offer memory o = offer(id, id, alice, address(wallet), d, agent2, 1, deadline);
        bytes memory sig = signOffer(BOB_PK, Scopes.MODE_RECEIVER, o);
        vm.prank(alice);
        nft.transferWithProof(address(wallet), id, d, agent2, proof(Scopes.MODE_RECEIVER, 1, deadline, sig));
        vm.assertEq(nft.ownerOf(id), address(wallet), "contract receiver");
    }

    function test_contractReceiverWithoutERC721Support_reverts() public {
        NonReceiver sink = new NonReceiver();
        sink.publishKey(nft, keccak256("sink key"));
        IAgentNFT.DataEntries memory d = entries(1, 100);
        Offer memory o = offer(id, id, alice, address(sink), d, agent2, 1, deadline);
        bytes memory sig = signOffer(ORACLE_PK, Scopes.MODE_ORACLE, o);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721InvalidReceiver.selector, address(sink)));
        nft.transferWithProof(address(sink), id, d, agent2, proof(Scopes.MODE_ORACLE, 1, deadline, sig));
    }

    function test_setVerifier_onlyAdmin() public {
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, mallory));
        nft.setVerifier(ITransferVerifier(address(1)));
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, mallory));
        verifier.setOracle(mallory, true);
    }
}

contract AgentNFTCloneTest is Fixture {
    uint256 internal id;
    uint256 internal deadline;

    function setUp() public override {
        super.setUp();
        vm.prank(alice);
        id = nft.mint(alice, 1, entries(2, 1), agent1, originalShares(), MODEL_SHA256);
        deadline = block.timestamp + 1 hours;
    }

    function originalShares() internal view returns (IAgentNFT.Shares memory) {
        return shares(500, 1000, carol, 300);
    }

    function test_clone_mintsCopyWithNewDataAndAgent() public {
        IAgentNFT.DataEntries memory d = entries(2, 200);
        uint256 newId = nft.tokenIdFor(alice, 77);
        Offer memory o = offer(id, newId, alice, bob, d, agent2, 3, deadline);
        bytes memory sig = signOffer(BOB_PK, Scopes.MODE_RECEIVER, o);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.ClonedWithProof(id, newId, bob, Scopes.MODE_RECEIVER, bob, 3);
        vm.prank(alice);
        uint256 got =
            nft.cloneWithProof(bob, id, 77, d, agent2, originalShares(), proof(Scopes.MODE_RECEIVER, 3, deadline, sig));

        vm.assertEq(got, newId, "clone id");
        vm.assertEq(nft.ownerOf(newId), bob, "clone owner");
        vm.assertEq(nft.ownerOf(id), alice, "original stays");
        vm.assertEq(nft.agentOf(newId), agent2, "clone agent");
        vm.assertEq(nft.agentOf(id), agent1, "original agent");
        vm.assertEq(nft.dataHashesOf(newId)[1], d.dataHashes[1], "clone data");
        vm.assertEq(nft.creatorOf(newId), alice, "creator kept");
        (address r, uint256 amt) = nft.royaltyInfo(newId, 10_000);
        vm.assertEq(r, alice, "royalty receiver kept");
        vm.assertEq(amt, 500, "royalty kept");
        vm.assertEq(nft.contributorsHashOf(newId), nft.contributorsHashOf(id), "contributors kept");
    }

    /// L2: the clone announces its contributors, so the EarningsSplitter (which takes the list
    /// from ContributorsSet) can settle the clone's earnings.
    function test_clone_emitsContributorsSetForTheNewId() public {
        IAgentNFT.DataEntries memory d = entries(2, 200);
        uint256 newId = nft.tokenIdFor(alice, 77);
        Offer memory o = offer(id, newId, alice, bob, d, agent2, 3, deadline);
        bytes memory sig = signOffer(BOB_PK, Scopes.MODE_RECEIVER, o);
        IAgentNFT.Shares memory s = originalShares();
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.ContributorsSet(newId, s.contributors, s.contributorBps);
        vm.prank(alice);
        nft.cloneWithProof(bob, id, 77, d, agent2, s, proof(Scopes.MODE_RECEIVER, 3, deadline, sig));

        // The splitter accepts the list for the clone.
        vm.deal(address(this), 1 ether);
        splitter.deposit{value: 1 ether}(newId, s.contributors, s.contributorBps);
        // A clone is the same agent: it inherits the model commitment.
        vm.assertEq(nft.modelHashOf(newId), nft.modelHashOf(id), "clone's model commitment");
    }

    /// The shares restated for a clone must be the original's (else the clone would announce a
    /// contributor list that does not match its stored hash, or other bps).
    function test_clone_otherShares_reverts() public {
        IAgentNFT.DataEntries memory d = entries(2, 200);
        IAgentNFT.Shares[4] memory wrong =
            [shares(500, 1000, mallory, 300), shares(500, 1000, carol, 301), shares(0, 1000, carol, 300), noShares()];
        wrong[3].royaltyBps = 500;
        wrong[3].creatorBps = 1000;
        for (uint256 i = 0; i < wrong.length; ++i) {
            vm.prank(alice);
            vm.expectRevert(abi.encodeWithSelector(IAgentNFT.SharesMismatch.selector, id));
            nft.cloneWithProof(bob, id, 77, d, agent2, wrong[i], proof(Scopes.MODE_RECEIVER, 3, deadline, ""));
        }
    }

    /// A token without contributors clones with no list and emits no ContributorsSet.
    function test_clone_withoutContributors_emitsNoContributorsSet() public {
        uint256 plain = mintAs(alice, alice, 2, 1, agent1);
        IAgentNFT.DataEntries memory d = entries(1, 300);
        uint256 newId = nft.tokenIdFor(alice, 78);
        Offer memory o = offer(plain, newId, alice, bob, d, agent2, 4, deadline);
        bytes memory sig = signOffer(BOB_PK, Scopes.MODE_RECEIVER, o);
        vm.recordLogs();
        vm.prank(alice);
        nft.cloneWithProof(bob, plain, 78, d, agent2, noShares(), proof(Scopes.MODE_RECEIVER, 4, deadline, sig));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            vm.assertTrue(logs[i].topics[0] != IAgentNFT.ContributorsSet.selector, "no ContributorsSet");
        }
    }

    function test_clone_cloneProofCannotTransfer() public {
        IAgentNFT.DataEntries memory d = entries(2, 200);
        uint256 newId = nft.tokenIdFor(alice, 77);
        Offer memory o = offer(id, newId, alice, bob, d, agent2, 3, deadline);
        bytes memory sig = signOffer(BOB_PK, Scopes.MODE_RECEIVER, o);
        vm.prank(alice);
        vm.expectRevert(TransferVerifier.InvalidSignature.selector);
        nft.transferWithProof(bob, id, d, agent2, proof(Scopes.MODE_RECEIVER, 3, deadline, sig));
    }

    function test_clone_sameAgent_reverts() public {
        IAgentNFT.DataEntries memory d = entries(2, 200);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.AgentNotRotated.selector, agent1));
        nft.cloneWithProof(bob, id, 77, d, agent1, originalShares(), proof(Scopes.MODE_RECEIVER, 3, deadline, ""));
    }

    function test_clone_approvedOperator_reverts() public {
        vm.prank(alice);
        nft.setApprovalForAll(carol, true);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, carol));
        nft.cloneWithProof(
            bob, id, 77, entries(2, 200), agent2, originalShares(), proof(Scopes.MODE_RECEIVER, 3, deadline, "")
        );
    }

    function test_clone_takenId_reverts() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.TokenIdTaken.selector, id));
        nft.cloneWithProof(
            bob, id, 1, entries(2, 200), agent2, originalShares(), proof(Scopes.MODE_RECEIVER, 3, deadline, "")
        );
    }
}

contract AgentNFTUsageTest is Fixture {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
    }

    function test_authorize_scopesAndExpiry() public {
        uint64 expiry = uint64(block.timestamp + 100);
        bytes[] memory keys = new bytes[](1);
        keys[0] = hex"01020304";
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.UsageAuthorized(id, carol, 0, Scopes.RUN | Scopes.CREATE, expiry, keys);
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.RUN | Scopes.CREATE, expiry, keys);

        vm.assertTrue(nft.isAuthorized(id, carol, Scopes.RUN), "run");
        vm.assertTrue(nft.isAuthorized(id, carol, Scopes.RUN | Scopes.CREATE), "run+create");
        vm.assertFalse(nft.isAuthorized(id, carol, Scopes.TRADE), "no trade");
        vm.assertFalse(nft.isAuthorized(id, carol, Scopes.RUN | Scopes.TRADE), "not all of run+trade");
        vm.assertFalse(nft.isAuthorized(id, carol, 0), "empty scope query");
        vm.assertTrue(nft.isAuthorized(id, alice, Scopes.ALL), "owner has every scope");
        vm.assertFalse(nft.isAuthorized(id, bob, Scopes.RUN), "stranger");
        (uint8 s, uint64 e) = nft.authorizationOf(id, carol);
        vm.assertEq(uint256(s), uint256(Scopes.RUN | Scopes.CREATE), "scopes view");
        vm.assertEq(uint256(e), uint256(expiry), "expiry view");

        vm.warp(expiry - 1);
        vm.assertTrue(nft.isAuthorized(id, carol, Scopes.RUN), "live before expiry");
        vm.warp(expiry);
        vm.assertFalse(nft.isAuthorized(id, carol, Scopes.RUN), "expired at expiry");
        (s, e) = nft.authorizationOf(id, carol);
        vm.assertEq(uint256(s), 0, "expired view");
    }

    function test_revoke() public {
        vm.startPrank(alice);
        nft.authorize(id, carol, Scopes.RUN, uint64(block.timestamp + 100), new bytes[](0));
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.UsageRevoked(id, carol, 0);
        nft.revoke(id, carol);
        vm.stopPrank();
        vm.assertFalse(nft.isAuthorized(id, carol, Scopes.RUN), "revoked");
    }

    function test_authorizationClearedOnTransfer() public {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.ALL, uint64(block.timestamp + 1 days), new bytes[](0));
        vm.prank(alice);
        nft.setPaused(id, true);
        receiverTransfer(id, bob, BOB_PK, 50, agent2, 1);
        vm.assertFalse(nft.isAuthorized(id, carol, Scopes.RUN), "grant cleared");
        (uint8 s,) = nft.authorizationOf(id, carol);
        vm.assertEq(uint256(s), 0, "grant view cleared");
        vm.assertFalse(nft.isPaused(id), "pause reset");
        vm.assertFalse(nft.isAuthorized(id, alice, Scopes.RUN), "old owner out");
        vm.assertTrue(nft.isAuthorized(id, bob, Scopes.RUN), "new owner in");
        // a fresh grant by the new owner works in the new epoch
        vm.prank(bob);
        nft.authorize(id, carol, Scopes.RUN, uint64(block.timestamp + 1 days), new bytes[](0));
        vm.assertTrue(nft.isAuthorized(id, carol, Scopes.RUN), "new grant");
    }

    function test_authorize_guards() public {
        uint64 expiry = uint64(block.timestamp + 100);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, bob));
        nft.authorize(id, carol, Scopes.RUN, expiry, new bytes[](0));
        vm.startPrank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadScopes.selector, 0));
        nft.authorize(id, carol, 0, expiry, new bytes[](0));
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadScopes.selector, 16));
        nft.authorize(id, carol, 16, expiry, new bytes[](0));
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.BadExpiry.selector, uint64(block.timestamp)));
        nft.authorize(id, carol, Scopes.RUN, uint64(block.timestamp), new bytes[](0));
        vm.expectRevert(IAgentNFT.ZeroAddress.selector);
        nft.authorize(id, address(0), Scopes.RUN, expiry, new bytes[](0));
        vm.stopPrank();
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, bob));
        nft.revoke(id, carol);
    }

    function test_approvedOperator_cannotAuthorize() public {
        vm.prank(alice);
        nft.setApprovalForAll(bob, true);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, bob));
        nft.authorize(id, bob, Scopes.RUN, uint64(block.timestamp + 100), new bytes[](0));
    }

    function testFuzz_isAuthorized_matchesGrant(uint8 granted, uint8 asked, uint32 ttl, uint32 elapsed) public {
        granted = uint8(bound(granted, 1, Scopes.ALL));
        asked = uint8(bound(asked, 1, Scopes.ALL));
        ttl = uint32(bound(ttl, 1, type(uint32).max));
        vm.prank(alice);
        nft.authorize(id, carol, granted, uint64(block.timestamp + ttl), new bytes[](0));
        vm.warp(block.timestamp + elapsed);
        bool expected = (granted & asked) == asked && elapsed < ttl;
        vm.assertEq(nft.isAuthorized(id, carol, asked), expected, "grant semantics");
    }

    function test_pause_ownerOnly() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, bob));
        nft.setPaused(id, true);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.PauseSet(id, true);
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.assertTrue(nft.isPaused(id), "paused");
    }

    function test_setAgent_ownerOnly() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, bob));
        nft.setAgent(id, bob);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.AgentSet(id, agent3, 0);
        vm.prank(alice);
        nft.setAgent(id, agent3);
        vm.assertEq(nft.agentOf(id), agent3, "agent changed");
    }

    function test_sealingKey_published() public {
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.SealingKeySet(mallory, bytes32(uint256(42)));
        vm.prank(mallory);
        nft.setSealingKey(bytes32(uint256(42)));
        vm.assertEq(nft.sealingKeyOf(mallory), bytes32(uint256(42)), "published");
    }

    function test_updateData_ownerReplacesEntries() public {
        IAgentNFT.DataEntries memory d = entries(3, 9);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenOwner.selector, id, bob));
        nft.updateData(id, d);
        vm.expectEmit(true, true, true, true, address(nft));
        emit IAgentNFT.DataSet(id, 0, d.dataHashes, d.sealedKeys, d.uris);
        vm.prank(alice);
        nft.updateData(id, d);
        vm.assertEq(nft.dataHashesOf(id).length, 3, "count changed");
        vm.assertEq(nft.dataHashesOf(id)[2], d.dataHashes[2], "hash");
    }

    function test_views_revertForUnminted() public {
        uint256 none = nft.tokenIdFor(mallory, 1);
        vm.assertEq(nft.agentOf(none), address(0), "agentOf is zero for unminted");
        vm.assertFalse(nft.isAuthorized(none, mallory, Scopes.RUN), "nothing authorized");
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, none));
        nft.dataHashesOf(none);
        vm.expectRevert(abi.encodeWithSelector(IERC721Errors.ERC721NonexistentToken.selector, none));
        nft.controlOf(none);
    }
}
