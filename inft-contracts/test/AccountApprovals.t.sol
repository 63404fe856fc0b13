// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

import {Fixture} from "./utils/Fixture.sol";
import {AgentAccount, AgentAccountFactory} from "../contracts/AgentAccount.sol";
import {AgentNFT} from "../contracts/AgentNFT.sol";
import {IAgentAccount, IAgentAccountFactory} from "../contracts/interfaces/IAgentAccount.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {TestToken} from "../contracts/TestToken.sol";
import {ApproveOnly, LegacyToken, MockERC721, MockPermit2, MockRouter, NoZeroApproveToken} from "./utils/Mocks.sol";

/// @dev H1: approvals made through the agent account never outlive the context that made them.
/// Callers other than the owner must leave every approval closed at the end of their call or
/// batch; the owner's open approvals are closed by the sale (transferWithProof).
contract AgentAccountApprovalsTest is Fixture {
    uint256 internal id;
    AgentAccount internal account;
    TestToken internal usd;
    TestToken internal gld;
    MockRouter internal router;
    MockERC721 internal collectible;
    MockPermit2 internal permit2;
    uint256 internal nonce = 100;

    uint8 internal constant KIND_ERC20 = 1;
    uint8 internal constant KIND_ERC721 = 2;
    uint8 internal constant KIND_OPERATOR = 3;
    uint8 internal constant KIND_PERMIT2 = 4;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
        account = AgentAccount(payable(accounts.createAccount(id)));
        usd = new TestToken("Test USD", "tUSD", 18);
        gld = new TestToken("Test Gold", "tGLD", 18);
        router = new MockRouter();
        collectible = new MockERC721();
        permit2 = new MockPermit2();
        usd.mint(address(account), 1000 ether);
        gld.mint(address(router), 1000 ether);
        collectible.mint(address(account), 7);
    }

    // ------------------------------------------------------------------ helpers

    function _call(address target, bytes memory data) internal pure returns (IAgentAccount.Call memory) {
        return IAgentAccount.Call(target, 0, data);
    }

    function _approve(address spender, uint256 amount) internal view returns (IAgentAccount.Call memory) {
        return _call(address(usd), abi.encodeCall(usd.approve, (spender, amount)));
    }

    function _swap(uint256 amountIn) internal view returns (IAgentAccount.Call memory) {
        return _call(address(router), abi.encodeCall(router.swap, (usd, gld, amountIn, address(account))));
    }

    /// The runtime's trade (strategies/src/trading/exec.rs): approve exactly amountIn, swap it.
    function _trade(uint256 amountIn) internal view returns (IAgentAccount.Call[] memory calls) {
        calls = new IAgentAccount.Call[](2);
        calls[0] = _approve(address(router), amountIn);
        calls[1] = _swap(amountIn);
    }

    function _one(IAgentAccount.Call memory c) internal pure returns (IAgentAccount.Call[] memory calls) {
        calls = new IAgentAccount.Call[](1);
        calls[0] = c;
    }

    /// A receiver-signed sale of the token to bob, prepared (signature and all) so that the next
    /// call the test makes is the transferWithProof itself.
    function _sale() internal returns (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) {
        d = entries(1, nonce);
        uint256 deadline = block.timestamp + 1 hours;
        Offer memory o = offer(id, id, nft.ownerOf(id), bob, d, agent2, nonce, deadline);
        p = proof(Scopes.MODE_RECEIVER, nonce, deadline, signOffer(BOB_PK, Scopes.MODE_RECEIVER, o));
        ++nonce;
    }

    function _sell() internal {
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _sale();
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    function _grant(address user, uint8 scopes, uint64 expiry) internal {
        vm.prank(alice);
        nft.authorize(id, user, scopes, expiry, new bytes[](0));
    }

    // -------------------------------------------------- the owner's approvals and the sale

    /// The attack of the review: the owner approves a second address for the max, sells, and
    /// that address drains the account, including what the buyer deposits later.
    function test_attack_ownerApprovesAttackerThenSells_attackerCannotDrain() public {
        vm.prank(alice);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, type(uint256).max)), 0);
        vm.assertEq(usd.allowance(address(account), mallory), type(uint256).max, "approved");
        vm.assertTrue(nft.approvalsOpenOf(id), "the NFT knows the account has open approvals");
        IAgentAccount.OpenApproval[] memory open = account.openApprovals();
        vm.assertEq(open.length, 1, "ledger");
        vm.assertEq(uint256(open[0].kind), KIND_ERC20, "kind");
        vm.assertEq(open[0].target, address(usd), "target");
        vm.assertEq(open[0].spender, mallory, "spender");

        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _sale();
        vm.expectEmit(true, true, true, true, address(account));
        emit IAgentAccount.OpenApprovalsClosed(address(nft), 1);
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);

        vm.assertEq(nft.ownerOf(id), bob, "sold");
        vm.assertEq(usd.allowance(address(account), mallory), 0, "closed by the sale");
        vm.assertFalse(nft.approvalsOpenOf(id), "flag cleared");
        vm.assertEq(account.openApprovals().length, 0, "ledger empty");

        vm.prank(mallory);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, mallory, 0, 1000 ether)
        );
        usd.transferFrom(address(account), mallory, 1000 ether);

        // The buyer funds the account; the seller's spender still cannot take it.
        usd.mint(address(account), 500 ether);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, mallory, 0, 1 ether));
        usd.transferFrom(address(account), mallory, 1 ether);
        vm.assertEq(usd.balanceOf(address(account)), 1500 ether, "everything stays with the token");
    }

    /// Every recognised kind the owner leaves open is closed by the sale: an ERC-20 allowance,
    /// increaseAllowance, an ERC-721 single-token approval, an operator (setApprovalForAll) and a
    /// Permit2 allowance.
    function test_attack_ownerLeavesEveryKindOpenThenSells_allClosed() public {
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](5);
        calls[0] = _approve(address(permit2), type(uint256).max);
        calls[1] = _call(address(gld), abi.encodeCall(gld.approve, (mallory, 5 ether)));
        calls[2] = _call(address(collectible), abi.encodeCall(collectible.approve, (mallory, 7)));
        calls[3] = _call(address(collectible), abi.encodeCall(collectible.setApprovalForAll, (carol, true)));
        calls[4] = _call(
            address(permit2),
            abi.encodeCall(permit2.approve, (address(usd), mallory, type(uint160).max, type(uint48).max))
        );
        vm.prank(alice);
        account.executeBatch(calls);

        IAgentAccount.OpenApproval[] memory open = account.openApprovals();
        vm.assertEq(open.length, 5, "five open approvals");
        vm.assertEq(uint256(open[2].kind), KIND_ERC721, "ERC-721 approval told apart from ERC-20");
        vm.assertEq(open[2].id, 7, "token id");
        vm.assertEq(uint256(open[3].kind), KIND_OPERATOR, "operator");
        vm.assertEq(uint256(open[4].kind), KIND_PERMIT2, "Permit2");
        vm.assertEq(open[4].id, uint256(uint160(address(usd))), "Permit2 token");

        _sell();

        vm.assertEq(usd.allowance(address(account), address(permit2)), 0, "ERC-20 to Permit2");
        vm.assertEq(gld.allowance(address(account), mallory), 0, "ERC-20");
        vm.assertEq(collectible.getApproved(7), address(0), "ERC-721 approval");
        vm.assertFalse(collectible.isApprovedForAll(address(account), carol), "operator");
        (uint160 amount,,) = permit2.allowance(address(account), address(usd), mallory);
        vm.assertEq(uint256(amount), 0, "Permit2 allowance");
        vm.assertEq(account.openApprovals().length, 0, "ledger empty");

        // Permit2 cannot pull for the seller's spender, even after the buyer approves Permit2
        // again (a Permit2 allowance left open would revive then).
        vm.prank(bob);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (address(permit2), type(uint256).max)), 0);
        vm.prank(mallory);
        vm.expectRevert(bytes("allowance"));
        permit2.transferFrom(address(account), mallory, 1, address(usd));
    }

    /// A token that refuses approve(spender, 0) cannot have its allowance closed: the sale
    /// reverts with a clear error instead of completing with the allowance open.
    function test_attack_tokenRefusingZeroApprove_saleReverts() public {
        NoZeroApproveToken nz = new NoZeroApproveToken();
        nz.mint(address(account), 100 ether);
        vm.prank(alice);
        account.execute(address(nz), 0, abi.encodeCall(nz.approve, (mallory, 100 ether)), 0);

        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _sale();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.ApprovalNotClosed.selector, address(nz), mallory));
        nft.transferWithProof(bob, id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), alice, "not sold");
        vm.assertEq(nz.allowance(address(account), mallory), 100 ether, "nothing changed");

        // Once the spender used it up, the entry is closed and the sale goes through.
        vm.prank(mallory);
        nz.transferFrom(address(account), mallory, 100 ether);
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "sold");
    }

    /// The owner's own exact approve + swap leaves nothing in the ledger, and an approval the
    /// owner sets back to zero leaves it.
    function test_ownerClosedApprovals_leaveTheLedger() public {
        vm.prank(alice);
        account.executeBatch(_trade(10 ether));
        vm.assertEq(account.openApprovals().length, 0, "exact trade: nothing open");
        vm.assertFalse(nft.approvalsOpenOf(id), "no flag");

        vm.prank(alice);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 5)), 0);
        vm.assertEq(account.openApprovals().length, 1, "open");
        vm.expectEmit(true, true, true, true, address(account));
        emit IAgentAccount.OpenApprovalDropped(KIND_ERC20, address(usd), mallory, 0);
        vm.prank(alice);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 0)), 0);
        vm.assertEq(account.openApprovals().length, 0, "dropped");
    }

    /// The owner may close the ledger itself; nobody else may (a stranger, the agent, a grantee).
    function test_closeApprovals_ownerOrNftOnly() public {
        vm.prank(alice);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 5)), 0);
        _grant(carol, Scopes.TRADE, uint64(block.timestamp + 1 days));
        address[3] memory outsiders = [mallory, agent1, carol];
        for (uint256 i = 0; i < outsiders.length; ++i) {
            vm.prank(outsiders[i]);
            vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, outsiders[i]));
            account.closeApprovals();
        }
        vm.prank(alice);
        vm.assertEq(account.closeApprovals(), 1, "one closed");
        vm.assertEq(usd.allowance(address(account), mallory), 0, "closed");
    }

    /// At most 16 open approvals are tracked (so that the sale can always close them); entries
    /// that closed in the meantime make room.
    function test_ledgerBound_17thOpenApprovalReverts() public {
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](16);
        for (uint256 i = 0; i < 16; ++i) {
            calls[i] = _approve(address(uint160(0x5000 + i)), 1 ether);
        }
        vm.prank(alice);
        account.executeBatch(calls);
        vm.assertEq(account.openApprovals().length, 16, "full");

        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.TooManyOpenApprovals.selector, 16));
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 1)), 0);

        // Spender 0x5003 uses its allowance up: its entry is closed and gives way.
        vm.prank(address(uint160(0x5003)));
        usd.transferFrom(address(account), address(0x5003), 1 ether);
        vm.prank(alice);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 1)), 0);
        vm.assertEq(account.openApprovals().length, 16, "pruned and added");

        // Closing all 16 fits easily in a transfer.
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _sale();
        vm.prank(alice);
        uint256 before = gasleft();
        nft.transferWithProof(bob, id, d, agent2, p);
        vm.assertLe(before - gasleft(), 800_000, "sale closing 16 approvals");
        vm.assertEq(account.openApprovals().length, 0, "all closed");
    }

    /// A repeated approval of the same spender is one ledger entry.
    function test_ledger_sameApprovalOnce() public {
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](2);
        calls[0] = _approve(mallory, 1);
        calls[1] = _approve(mallory, 2);
        vm.prank(alice);
        account.executeBatch(calls);
        vm.prank(alice);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 3)), 0);
        vm.assertEq(account.openApprovals().length, 1, "one entry");
    }

    // ------------------------------------------------- callers other than the owner

    /// The runtime's trade path still works for the agent: exact approve, swap, nothing left.
    function test_agentApproveExactAndSwap_works() public {
        vm.prank(agent1);
        account.executeBatch(_trade(10 ether));
        vm.assertEq(gld.balanceOf(address(account)), 10 ether, "swapped");
        vm.assertEq(usd.allowance(address(account), address(router)), 0, "nothing left");
        vm.assertEq(account.openApprovals().length, 0, "nothing recorded");
        vm.assertFalse(nft.approvalsOpenOf(id), "no flag");
    }

    /// The agent approves more than the swap uses: the whole batch reverts.
    function test_attack_agentApprovesMoreThanSwapUses_batchReverts() public {
        IAgentAccount.Call[] memory calls = _trade(10 ether);
        calls[0] = _approve(address(router), 11 ether);
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(usd), address(router)));
        account.executeBatch(calls);
        vm.assertEq(usd.balanceOf(address(account)), 1000 ether, "nothing happened");
    }

    /// A TRADE grantee leaves an approval to itself open inside a batch (to drain the account
    /// after its grant ends): the batch reverts.
    function test_attack_tradeGranteeLeavesApprovalOpen_batchReverts() public {
        _grant(carol, Scopes.TRADE, uint64(block.timestamp + 1 days));
        IAgentAccount.Call[] memory calls = _trade(10 ether);
        IAgentAccount.Call[] memory sneaky = new IAgentAccount.Call[](3);
        (sneaky[0], sneaky[1], sneaky[2]) = (calls[0], calls[1], _approve(carol, type(uint256).max));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(usd), carol));
        account.executeBatch(sneaky);

        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(usd), carol));
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (carol, 1)), 0);
        vm.assertEq(usd.allowance(address(account), carol), 0, "no allowance");
    }

    /// A grantee (or the agent) makes itself operator of the account's NFTs: refused.
    function test_attack_granteeSetApprovalForAll_reverts() public {
        _grant(carol, Scopes.TRADE, uint64(block.timestamp + 1 days));
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(collectible), carol));
        account.execute(address(collectible), 0, abi.encodeCall(collectible.setApprovalForAll, (carol, true)), 0);

        // The same on the agent NFT itself (the account may hold other agent tokens).
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(nft), agent1));
        account.execute(address(nft), 0, abi.encodeCall(nft.setApprovalForAll, (agent1, true)), 0);
    }

    /// The other approval kinds by a caller other than the owner: an ERC-721 approval, a
    /// Permit2 allowance, an ERC-1363 approveAndCall.
    function test_attack_agentOtherApprovalKinds_revert() public {
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(collectible), mallory));
        account.execute(address(collectible), 0, abi.encodeCall(collectible.approve, (mallory, 7)), 0);

        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(permit2), mallory));
        account.execute(
            address(permit2), 0, abi.encodeCall(permit2.approve, (address(usd), mallory, 1, type(uint48).max)), 0
        );

        // increaseAllowance and ERC-1363 approveAndCall: the allowance is read back.
        LegacyToken legacy = new LegacyToken();
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(legacy), mallory));
        account.execute(address(legacy), 0, abi.encodeCall(legacy.increaseAllowance, (mallory, 1)), 0);
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(legacy), mallory));
        account.execute(address(legacy), 0, abi.encodeWithSignature("approveAndCall(address,uint256)", mallory, 1), 0);
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(legacy), mallory));
        account.execute(
            address(legacy), 0, abi.encodeWithSignature("approveAndCall(address,uint256,bytes)", mallory, 1, ""), 0
        );
        // The owner's increaseAllowance is an ERC-20 entry of the ledger.
        vm.prank(alice);
        account.execute(address(legacy), 0, abi.encodeCall(legacy.increaseAllowance, (mallory, 1)), 0);
        vm.assertEq(uint256(account.openApprovals()[0].kind), KIND_ERC20, "ledger");

        // An ERC-721 approval set and cleared within one batch is fine.
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](2);
        calls[0] = _call(address(collectible), abi.encodeCall(collectible.approve, (mallory, 7)));
        calls[1] = _call(address(collectible), abi.encodeCall(collectible.approve, (address(0), 7)));
        vm.prank(agent1);
        account.executeBatch(calls);
        vm.assertEq(collectible.getApproved(7), address(0), "cleared");
    }

    /// An approve-shaped call whose result cannot be read back is refused for non-owners.
    function test_attack_agentUnverifiableApproval_reverts() public {
        ApproveOnly t = new ApproveOnly();
        vm.prank(agent1);
        vm.expectRevert(
            abi.encodeWithSelector(IAgentAccount.UnverifiableApproval.selector, address(t), bytes4(0x095ea7b3))
        );
        account.execute(address(t), 0, abi.encodeWithSelector(0x095ea7b3, mallory, 1), 0);

        vm.prank(agent1);
        vm.expectRevert(
            abi.encodeWithSelector(IAgentAccount.UnverifiableApproval.selector, address(usd), bytes4(0x095ea7b3))
        );
        account.execute(address(usd), 0, abi.encodePacked(bytes4(0x095ea7b3), bytes32(uint256(uint160(mallory)))), 0);
    }

    /// After a revoke, an expiry or a pause, a former grantee holds no allowance and cannot
    /// call; it traded normally while its grant was live.
    function test_grantee_afterRevokeExpiryPause_holdsNothingAndCannotCall() public {
        uint64 expiry = uint64(block.timestamp + 1 days);
        _grant(carol, Scopes.TRADE, expiry);
        vm.prank(carol);
        account.executeBatch(_trade(10 ether));
        vm.assertEq(usd.allowance(address(account), address(router)), 0, "no allowance after the trade");
        vm.assertEq(usd.allowance(address(account), carol), 0, "none to the grantee");

        uint256 snap = vm.snapshotState();
        vm.prank(alice);
        nft.revoke(id, carol);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, carol));
        account.executeBatch(_trade(1 ether));

        vm.revertToState(snap);
        vm.warp(expiry);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, carol));
        account.executeBatch(_trade(1 ether));

        vm.revertToState(snap);
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, carol));
        account.executeBatch(_trade(1 ether));
    }

    // ------------------------------------------------------------ NFT wiring

    /// Only the token's own account may raise the NFT's open-approvals flag.
    function test_attack_strangerMarksApprovalsOpen_reverts() public {
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenAccount.selector, id, mallory));
        nft.markApprovalsOpen(id);
        // Another token's account is not this token's.
        uint256 other = mintAs(bob, bob, 2, 1, agent3);
        address otherAccount = accounts.createAccount(other);
        vm.prank(otherAccount);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.NotTokenAccount.selector, id, otherAccount));
        nft.markApprovalsOpen(id);
    }

    /// The account factory is set by the admin, once, and must serve this NFT.
    function test_setAccountFactory_adminOnceAndForThisNft() public {
        vm.assertEq(address(nft.accountFactory()), address(accounts), "installed by the fixture");
        AgentAccountFactory other = new AgentAccountFactory(address(nft));
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, mallory));
        nft.setAccountFactory(other);
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.AccountFactoryAlreadySet.selector, address(accounts)));
        nft.setAccountFactory(other);

        (AgentNFT fresh,) = deployNft(admin);
        AgentAccountFactory foreign = new AgentAccountFactory(address(0xBEEF));
        vm.prank(admin);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.WrongAccountFactory.selector, address(foreign)));
        fresh.setAccountFactory(foreign);
        vm.prank(admin);
        vm.expectRevert(IAgentNFT.ZeroAddress.selector);
        fresh.setAccountFactory(IAgentAccountFactory(address(0)));
    }

    /// Without an account factory the owner cannot open an approval the NFT would not close.
    function test_noAccountFactory_ownerApprovalRefused() public {
        (AgentNFT fresh,) = deployNft(admin);
        AgentAccountFactory f = new AgentAccountFactory(address(fresh));
        vm.prank(alice);
        uint256 t = fresh.mint(alice, 1, entries(1, 1), agent1, noShares(), MODEL_SHA256);
        AgentAccount a = AgentAccount(payable(f.createAccount(t)));
        usd.mint(address(a), 1 ether);
        vm.prank(alice);
        vm.expectRevert(IAgentNFT.NoAccountFactory.selector);
        a.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 1)), 0);
    }
}
