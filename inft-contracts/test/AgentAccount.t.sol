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
        bytes memory ret = account.execute(address(target), 1 ether, abi.encodeCall(Target.set, (21)), 0);
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
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)), 0);
    }

    function test_revertDataBubbles() public {
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(Target.Nope.selector, 7));
        account.execute(address(target), 0, abi.encodeCall(Target.fail, (7)), 0);
    }

    function test_selfCall_reverts() public {
        vm.prank(alice);
        vm.expectRevert(IAgentAccount.SelfCall.selector);
        account.execute(address(account), 0, "", 0);
    }

    function test_paused_agentOut_ownerIn() public {
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, agent1));
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)), 0);
        vm.prank(alice);
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)), 0);
        vm.assertEq(target.value(), 1, "owner may act while paused");
    }

    function test_tradeScopedUser() public {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.RUN, uint64(block.timestamp + 100), new bytes[](0));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, carol));
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)), 0);
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.TRADE, uint64(block.timestamp + 100), new bytes[](0));
        vm.prank(carol);
        account.execute(address(target), 0, abi.encodeCall(Target.set, (1)), 0);
    }

    /// The funds stay with the token; control moves with the transfer, atomically.
    function test_transfer_movesControl() public {
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, agent1));
        account.execute(bob, 1 ether, "", 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, alice));
        account.execute(alice, 1 ether, "", 0);
        vm.prank(agent2);
        account.execute(bob, 1 ether, "", 0);
        vm.assertEq(bob.balance, 1 ether, "new agent moves funds");
        vm.assertEq(address(account).balance, 4 ether, "rest stays with the token");
        vm.assertEq(account.owner(), bob, "new owner");
    }

    bytes32 internal constant ACCOUNT_MESSAGE_TYPEHASH = keccak256("AgentAccountMessage(bytes32 hash)");

    /// The digest a signer signs for `acct` (EIP-712, written out independently of the contract).
    function accountDigest(address acct, bytes32 h) internal view returns (bytes32) {
        bytes32 domain =
            keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("AgentAccount"), keccak256("1"), block.chainid, acct));
        return keccak256(abi.encodePacked(hex"1901", domain, keccak256(abi.encode(ACCOUNT_MESSAGE_TYPEHASH, h))));
    }

    function sig1271(uint256 pk, address acct, bytes32 h) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, accountDigest(acct, h));
        return abi.encodePacked(r, s, v);
    }

    function valid(AgentAccount acct, bytes32 h, bytes memory sig) internal view returns (bool) {
        return acct.isValidSignature(h, sig) == IERC1271.isValidSignature.selector;
    }

    /// ERC-1271 accepts the owner only: the agent executes but does not sign (a permit it signed
    /// would create an allowance the account never sees).
    function test_erc1271_ownerOnly() public {
        bytes32 h = keccak256("message");
        vm.assertEq(account.messageHash(h), accountDigest(address(account), h), "digest encoding");
        vm.assertTrue(valid(account, h, sig1271(ALICE_PK, address(account), h)), "owner");
        vm.assertFalse(valid(account, h, sig1271(AGENT1_PK, address(account), h)), "agent refused");
        vm.assertFalse(valid(account, h, sig1271(MALLORY_PK, address(account), h)), "stranger");
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.assertTrue(valid(account, h, sig1271(ALICE_PK, address(account), h)), "owner while paused");
    }

    /// L6: one owner signature was valid for every account of that owner. Now a signature is
    /// bound to one account (and chain): account B of the same owner refuses A's signature, and
    /// a bare signature over the hash is refused by both.
    function test_attack_signatureForOneAccountReplayedOnAnother_refused() public {
        uint256 id2 = mintAs(alice, alice, 2, 1, agent2);
        AgentAccount accountB = AgentAccount(payable(accounts.createAccount(id2)));
        bytes32 h = keccak256("pay 100 tUSD to mallory");

        bytes memory forA = sig1271(ALICE_PK, address(account), h);
        vm.assertTrue(valid(account, h, forA), "valid for A");
        vm.assertFalse(valid(accountB, h, forA), "refused by B");

        (uint8 v, bytes32 r, bytes32 s) = vm.sign(ALICE_PK, h);
        bytes memory bare = abi.encodePacked(r, s, v);
        vm.assertFalse(valid(account, h, bare), "bare signature refused by A");
        vm.assertFalse(valid(accountB, h, bare), "bare signature refused by B");

        // Another chain (same account address after a fork) refuses it too.
        vm.chainId(block.chainid + 1);
        vm.assertFalse(valid(account, h, forA), "refused on another chain");
    }

    function test_ownTokenRefused() public {
        vm.prank(address(nft));
        vm.expectRevert(AgentAccount.OwnTokenRefused.selector);
        account.onERC721Received(alice, alice, id, "");
    }

    function test_implementationIsNotAnAccount() public {
        AgentAccount impl = AgentAccount(payable(accounts.implementation()));
        vm.expectRevert(AgentAccount.NotAClone.selector);
        impl.execute(address(target), 0, "", 0);
    }

    /// ERC-6551 state: a batch moves it once; the owner's own closing of open approvals moves it
    /// (closing nothing does not); the NFT closing them during a proof transfer does not.
    function test_state_batch_and_closeApprovals() public {
        uint256 s0 = account.state();
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](2);
        calls[0] = IAgentAccount.Call(address(target), 0, abi.encodeCall(Target.set, (1)));
        calls[1] = IAgentAccount.Call(address(target), 0, abi.encodeCall(Target.set, (2)));
        vm.prank(agent1);
        account.executeBatch(calls);
        vm.assertEq(account.state(), s0 + 1, "one batch, one change");

        vm.prank(alice);
        account.execute(address(token), 0, abi.encodeCall(token.approve, (mallory, 1)), 0);
        vm.assertEq(account.state(), s0 + 2, "owner execute");
        vm.prank(alice);
        vm.assertEq(account.closeApprovals(), 1, "closed one");
        vm.assertEq(account.state(), s0 + 3, "owner closed an approval");
        vm.prank(alice);
        account.closeApprovals();
        vm.assertEq(account.state(), s0 + 3, "nothing closed, nothing changed");

        vm.prank(alice);
        account.execute(address(token), 0, abi.encodeCall(token.approve, (mallory, 1)), 0);
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        vm.assertEq(token.allowance(address(account), mallory), 0, "closed by the transfer");
        vm.assertEq(account.state(), s0 + 4, "the transfer's closing is not an account change");
    }

    function test_supportsInterface_agentAccount() public view {
        vm.assertTrue(account.supportsInterface(type(IAgentAccount).interfaceId), "IAgentAccount");
    }
}
