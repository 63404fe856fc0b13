// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {IActionLog} from "../contracts/interfaces/IActionLog.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";

contract ActionLogTest is Fixture {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
    }

    function _hashes(uint256 n, uint256 seed) internal pure returns (bytes32[] memory hs) {
        hs = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            hs[i] = keccak256(abi.encode(seed, i));
        }
    }

    function _chain(bytes32 head, bytes32[] memory hs) internal pure returns (bytes32) {
        for (uint256 i = 0; i < hs.length; ++i) {
            head = keccak256(abi.encode(head, hs[i]));
        }
        return head;
    }

    function test_agentAppends_headAndSeqFollowTheRule() public {
        bytes32[] memory a = _hashes(3, 1);
        bytes32 expected = _chain(bytes32(0), a);
        vm.expectEmit(true, true, true, true, address(actionLog));
        emit IActionLog.ActionsLogged(id, 1, agent1, bytes32(0), expected, a);
        vm.prank(agent1);
        actionLog.logActions(id, 1, a);
        (bytes32 head, uint64 seq) = actionLog.chainOf(id);
        vm.assertEq(head, expected, "head");
        vm.assertEq(uint256(seq), 3, "seq = number of actions");

        bytes32[] memory b = _hashes(2, 2);
        bytes32 expected2 = _chain(expected, b);
        vm.expectEmit(true, true, true, true, address(actionLog));
        emit IActionLog.ActionsLogged(id, 4, agent1, expected, expected2, b);
        vm.prank(agent1);
        actionLog.logActions(id, 4, b);
        (head, seq) = actionLog.chainOf(id);
        vm.assertEq(head, expected2, "head 2");
        vm.assertEq(uint256(seq), 5, "seq 2");
    }

    function test_stranger_reverts() public {
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, id, mallory));
        actionLog.logActions(id, 1, _hashes(1, 1));
    }

    function test_repeatedSequence_reverts() public {
        bytes32[] memory a = _hashes(2, 1);
        vm.prank(agent1);
        actionLog.logActions(id, 1, a);
        // the same batch retried after it landed
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.SequenceMismatch.selector, 3, 1));
        actionLog.logActions(id, 1, a);
        // a batch overlapping the last action
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.SequenceMismatch.selector, 3, 2));
        actionLog.logActions(id, 2, a);
        // and a gap
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.SequenceMismatch.selector, 3, 4));
        actionLog.logActions(id, 4, a);
    }

    function test_firstSeqZero_reverts() public {
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.SequenceMismatch.selector, 1, 0));
        actionLog.logActions(id, 0, _hashes(1, 1));
    }

    function test_emptyBatch_reverts() public {
        vm.prank(agent1);
        vm.expectRevert(IActionLog.EmptyBatch.selector);
        actionLog.logActions(id, 1, new bytes32[](0));
    }

    function test_authorizedExecutor_and_owner_mayAppend() public {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.LOG, uint64(block.timestamp + 100), new bytes[](0));
        vm.prank(carol);
        actionLog.logActions(id, 1, _hashes(1, 1));
        vm.prank(alice);
        actionLog.logActions(id, 2, _hashes(1, 2));
        (, uint64 seq) = actionLog.chainOf(id);
        vm.assertEq(uint256(seq), 2, "both appended");
    }

    function test_grantWithoutLogScope_reverts() public {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.RUN | Scopes.TRADE, uint64(block.timestamp + 100), new bytes[](0));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, id, carol));
        actionLog.logActions(id, 1, _hashes(1, 1));
    }

    function test_expiredExecutor_reverts() public {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.LOG, uint64(block.timestamp + 100), new bytes[](0));
        vm.warp(block.timestamp + 100);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, id, carol));
        actionLog.logActions(id, 1, _hashes(1, 1));
    }

    function test_afterTransfer_oldAgentOut_newAgentIn() public {
        vm.prank(agent1);
        actionLog.logActions(id, 1, _hashes(1, 1));
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.LOG, uint64(block.timestamp + 1 days), new bytes[](0));
        receiverTransfer(id, bob, BOB_PK, 9, agent2, 1);

        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, id, agent1));
        actionLog.logActions(id, 2, _hashes(1, 2));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, id, carol));
        actionLog.logActions(id, 2, _hashes(1, 2));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, id, alice));
        actionLog.logActions(id, 2, _hashes(1, 2));

        vm.prank(agent2);
        actionLog.logActions(id, 2, _hashes(1, 2));
        (, uint64 seq) = actionLog.chainOf(id);
        vm.assertEq(uint256(seq), 2, "chain continues across the transfer");
    }

    /// L9: while the owner has paused the token, the agent and LOG grantees cannot log (the
    /// owner still can); unpausing lets the agent continue where it stopped.
    function test_attack_pausedAgentAndLogGranteeLog_reverts() public {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.LOG, uint64(block.timestamp + 1 days), new bytes[](0));
        vm.prank(alice);
        nft.setPaused(id, true);

        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.TokenPaused.selector, id, agent1));
        actionLog.logActions(id, 1, _hashes(1, 1));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.TokenPaused.selector, id, carol));
        actionLog.logActions(id, 1, _hashes(1, 1));
        // A stranger still gets the authorization error, not the pause.
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, id, mallory));
        actionLog.logActions(id, 1, _hashes(1, 1));

        vm.prank(alice);
        actionLog.logActions(id, 1, _hashes(1, 1));

        vm.prank(alice);
        nft.setPaused(id, false);
        vm.prank(agent1);
        actionLog.logActions(id, 2, _hashes(1, 2));
        (, uint64 seq) = actionLog.chainOf(id);
        vm.assertEq(uint256(seq), 2, "logging resumed");
    }

    /// An owner who is also the agent wallet may log while paused (the owner may always log).
    function test_paused_ownerAsAgent_mayLog() public {
        vm.prank(alice);
        nft.setAgent(id, alice);
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.prank(alice);
        actionLog.logActions(id, 1, _hashes(1, 1));
    }

    function test_unmintedToken_reverts() public {
        uint256 none = nft.tokenIdFor(mallory, 5);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IActionLog.NotAgentOrExecutor.selector, none, mallory));
        actionLog.logActions(none, 1, _hashes(1, 1));
    }

    /// Splitting a sequence into batches anywhere gives the same head as logging it at once.
    function testFuzz_batchingDoesNotChangeHead(uint8 total, uint8 cut, uint256 seed) public {
        uint256 n = bound(total, 1, 40);
        uint256 k = bound(cut, 0, n - 1);
        bytes32[] memory all = _hashes(n, seed);
        bytes32[] memory first = new bytes32[](k + 1);
        bytes32[] memory second = new bytes32[](n - k - 1);
        for (uint256 i = 0; i < n; ++i) {
            if (i <= k) first[i] = all[i];
            else second[i - k - 1] = all[i];
        }
        uint256 other = mintAs(alice, alice, 99, 1, agent1);
        vm.startPrank(agent1);
        actionLog.logActions(id, 1, all);
        actionLog.logActions(other, 1, first);
        if (second.length > 0) actionLog.logActions(other, uint64(k + 2), second);
        vm.stopPrank();
        (bytes32 h1, uint64 s1) = actionLog.chainOf(id);
        (bytes32 h2, uint64 s2) = actionLog.chainOf(other);
        vm.assertEq(h1, h2, "same head");
        vm.assertEq(uint256(s1), uint256(s2), "same seq");
        vm.assertEq(h1, _chain(bytes32(0), all), "matches the rule");
    }
}
