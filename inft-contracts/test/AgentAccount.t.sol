// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {AgentAccount} from "../contracts/AgentAccount.sol";
import {IAgentAccount} from "../contracts/interfaces/IAgentAccount.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {TestToken} from "../contracts/TestToken.sol";
import {Target} from "./utils/Mocks.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

contract AgentAccountTest is Fixture {
    uint256 internal id;
    AgentAccount internal account;
    Target internal target;
    TestToken internal token;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
        address predicted = accounts.accountOf(id);
        // funds may arrive before the account exists
        vm.deal(predicted, 5 ether);
        account = AgentAccount(payable(accounts.createAccount(id)));
        vm.assertEq(address(account), predicted, "deterministic address");
        target = new Target();
        token = new TestToken("Token", "TKN", 18);
        token.mint(address(account), 1000 ether);
    }

    function test_factory_idempotent_andBound() public {
        vm.assertEq(accounts.createAccount(id), address(account), "idempotent");
        (uint256 chainId, address n, uint256 t) = account.token();
        vm.assertEq(chainId, block.chainid, "chain");
        vm.assertEq(n, address(nft), "nft");
        vm.assertEq(t, id, "token");
        vm.assertEq(account.owner(), alice, "owner");
        vm.assertTrue(accounts.accountOf(id + 1) != address(account), "one account per token");
    }

    function test_agentExecutes() public {
        vm.prank(agent1);
        bytes memory ret = account.execute(address(target), 1 ether, abi.encodeCall(Target.set, (21)));
        vm.assertEq(abi.decode(ret, (uint256)), 42, "return data");
        vm.assertEq(target.lastCaller(), address(account), "called from the account");
        vm.assertEq(address(target).balance, 1 ether, "value sent");
    }

    function test_batch_approveAndTransfer() public {
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](2);
        calls[0] = IAgentAccount.Call(address(token), 0, abi.encodeCall(token.transfer, (bob, 1 ether)));
        calls[1] = IAgentAccount.Call(address(target), 0, abi.encodeCall(Target.set, (1)));
        vm.prank(agent1);
        account.executeBatch(calls);
        vm.assertEq(token.balanceOf(bob), 1 ether, "token moved");
        vm.assertEq(target.value(), 1, "second call");
    }

    function test_stranger_reverts() public {
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, mallory));
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)));
    }

    function test_revertDataBubbles() public {
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(Target.Nope.selector, 7));
        account.execute(address(target), 0, abi.encodeCall(Target.fail, (7)));
    }

    function test_selfCall_reverts() public {
        vm.prank(alice);
        vm.expectRevert(IAgentAccount.SelfCall.selector);
        account.execute(address(account), 0, "");
    }

    function test_paused_agentOut_ownerIn() public {
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, agent1));
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)));
        vm.prank(alice);
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)));
        vm.assertEq(target.value(), 1, "owner may act while paused");
    }

    function test_tradeScopedUser() public {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.RUN, uint64(block.timestamp + 100), new bytes[](0));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, carol));
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)));
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.TRADE, uint64(block.timestamp + 100), new bytes[](0));
        vm.prank(carol);
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)));
    }

    /// The funds stay with the token; control moves with the transfer, atomically.
    function test_transfer_movesControl() public {
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, agent1));
        account.execute(bob, 1 ether, "");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, alice));
        account.execute(alice, 1 ether, "");
        vm.prank(agent2);
        account.execute(bob, 1 ether, "");
        vm.assertEq(bob.balance, 1 ether, "new agent moves funds");
        vm.assertEq(address(account).balance, 4 ether, "rest stays with the token");
        vm.assertEq(account.owner(), bob, "new owner");
    }

    function test_erc1271_agentAndOwner() public {
        bytes32 h = keccak256("message");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(AGENT1_PK, h);
        vm.assertEq(uint256(uint32(account.isValidSignature(h, abi.encodePacked(r, s, v)))),
            uint256(uint32(IERC1271.isValidSignature.selector)), "agent signature valid");
        (v, r, s) = vm.sign(MALLORY_PK, h);
        vm.assertEq(uint256(uint32(account.isValidSignature(h, abi.encodePacked(r, s, v)))), 0xffffffff, "stranger");
        vm.prank(alice);
        nft.setPaused(id, true);
        (v, r, s) = vm.sign(AGENT1_PK, h);
        vm.assertEq(uint256(uint32(account.isValidSignature(h, abi.encodePacked(r, s, v)))), 0xffffffff, "paused agent");
        (v, r, s) = vm.sign(ALICE_PK, h);
        vm.assertEq(uint256(uint32(account.isValidSignature(h, abi.encodePacked(r, s, v)))),
            uint256(uint32(IERC1271.isValidSignature.selector)), "owner");
    }

    function test_ownTokenRefused() public {
        vm.prank(address(nft));
        vm.expectRevert(AgentAccount.OwnTokenRefused.selector);
        account.onERC721Received(alice, alice, id, "");
    }

    function test_implementationIsNotAnAccount() public {
        AgentAccount impl = AgentAccount(payable(accounts.implementation()));
        vm.expectRevert(AgentAccount.NotAClone.selector);
        impl.execute(address(target), 0, "");
    }
}
