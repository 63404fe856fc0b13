// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

import {Fixture} from "./utils/Fixture.sol";
import {AgentAccount} from "../contracts/AgentAccount.sol";
import {AgentMarket} from "../contracts/AgentMarket.sol";
import {IAgentAccount} from "../contracts/interfaces/IAgentAccount.sol";
import {IAgentMarket} from "../contracts/interfaces/IAgentMarket.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {TestToken} from "../contracts/TestToken.sol";
import {MockERC404, MockERC6909, MockPermit2, OZ1Token} from "./utils/Mocks.sol";
import {MarketFixture} from "./AgentMarket.t.sol";
import {TransferVerifier} from "../contracts/TransferVerifier.sol";

/// @dev The token's agent account is part of a market sale: the buyer pays for the account as it
/// was at the buy. Each attack is the seller's (or its delegates') taking of the account's funds
/// after the buyer escrowed.
contract MarketAccountAttacksTest is Fixture {
    AgentMarket internal market;
    uint256 internal id;
    AgentAccount internal account;
    TestToken internal usd;
    uint256 internal constant PRICE = 1 ether;
    uint32 internal constant WINDOW = 1 hours;

    function setUp() public override {
        super.setUp();
        market = new AgentMarket(nft);
        // alice creates, carol owns and sells, bob buys; the agent's account holds ETH and tUSD.
        vm.prank(alice);
        id = nft.mint(carol, 1, entries(1, 1), agent1, shares(500, 0, alice, 0), MODEL_SHA256);
        account = AgentAccount(payable(accounts.createAccount(id)));
        usd = new TestToken("Test USD", "tUSD", 18);
        usd.mint(address(account), 1000 ether);
        vm.deal(address(account), 5 ether);
        vm.deal(bob, 10 ether);
        _list(id);
    }

    function _list(uint256 tokenId) internal {
        vm.startPrank(carol);
        nft.approve(address(market), tokenId);
        market.list(tokenId, PRICE, WINDOW);
        vm.stopPrank();
    }

    function _buy(uint256 tokenId) internal {
        vm.prank(bob);
        market.buy{value: PRICE}(tokenId, BOB_SEALING_KEY, WINDOW);
    }

    /// The oracle-attested rotation (one entry) that completes the pending sale of `tokenId`.
    function _rotation(uint256 tokenId, uint256 seed)
        internal
        view
        returns (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p)
    {
        d = entries(1, seed);
        p = saleProof(market, tokenId, d, agent2, seed, block.timestamp + 10 minutes);
    }

    /// The seller lists, bob buys, then the seller takes the ETH and the tokens out of the agent
    /// account through `execute` and completes: refused, and bob gets his escrow back at once.
    function test_attack_sellerEmptiesAccountBetweenBuyAndComplete_completeRefused_buyerRefunded() public {
        uint256 s0 = account.state();
        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.AccountStateRecorded(id, address(account), s0);
        _buy(id);
        (address recorded, uint256 atBuy) = market.accountStateAtBuy(id);
        vm.assertEq(recorded, address(account), "the token's agent account");
        vm.assertEq(atBuy, s0, "its state at the buy");

        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](2);
        calls[0] = IAgentAccount.Call(carol, 5 ether, "");
        calls[1] = IAgentAccount.Call(address(usd), 0, abi.encodeCall(usd.transfer, (carol, 1000 ether)));
        vm.prank(carol);
        account.executeBatch(calls);
        vm.assertEq(address(account).balance, 0, "emptied");

        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _rotation(id, 10);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.AccountChanged.selector, address(account), s0, s0 + 1));
        market.complete(id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), carol, "not sold");
        vm.assertFalse(market.isLive(id), "the sale can no longer complete");

        // Before the deadline: the buyer need not wait for a sale that cannot complete.
        vm.assertLe(block.timestamp, uint256(market.listingOf(id).deadline), "deadline not reached");
        uint256 before = bob.balance;
        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.Refunded(id, bob, PRICE);
        vm.prank(bob);
        market.refund(id);
        vm.assertEq(bob.balance - before, PRICE, "the whole escrow back");
        vm.assertEq(address(market).balance, 0, "nothing left in the market");
        (recorded, atBuy) = market.accountStateAtBuy(id);
        vm.assertEq(recorded, address(0), "no pending sale, no record");
    }

    /// The same through the agent: a trade (or any call) of the agent after the buy changes the
    /// account, so the sale cannot complete on it.
    function test_attack_agentMovesFundsAfterBuy_completeRefused() public {
        _buy(id);
        uint256 s0 = account.state();
        vm.prank(agent1);
        account.execute(mallory, 5 ether, "", 0);
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _rotation(id, 11);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.AccountChanged.selector, address(account), s0, s0 + 1));
        market.complete(id, d, agent2, p);
        market.refund(id);
        vm.assertEq(address(market).balance, 0, "refunded");
    }

    /// The account is funded but not deployed at the buy (state 0); the seller deploys it after
    /// the buy and empties it: its state is no longer 0.
    function test_attack_sellerDeploysAccountAfterBuyAndEmptiesIt_completeRefused() public {
        vm.prank(alice);
        uint256 t = nft.mint(carol, 2, entries(1, 2), agent1, noShares(), MODEL_SHA256);
        address acct = accounts.accountOf(t);
        vm.deal(acct, 3 ether);
        _list(t);
        _buy(t);
        (address recorded, uint256 atBuy) = market.accountStateAtBuy(t);
        vm.assertEq(recorded, acct, "recorded before deployment");
        vm.assertEq(atBuy, 0, "not deployed: state 0");

        accounts.createAccount(t);
        vm.prank(carol);
        AgentAccount(payable(acct)).execute(carol, 3 ether, "", 0);

        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _rotation(t, 12);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.AccountChanged.selector, acct, 0, 1));
        market.complete(t, d, agent2, p);
        vm.prank(bob);
        market.refund(t);
        vm.assertEq(address(market).balance, 0, "refunded");
    }

    /// The seller approved an accomplice on the account before listing: the accomplice could
    /// empty the account after the buy without changing its state. A buy is refused while the
    /// account holds open approvals; once the seller closes them, the sale goes through with
    /// the account as bought.
    function test_attack_sellersSpenderDrainsAccountBetweenBuyAndComplete_buyRefused() public {
        vm.prank(carol);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, type(uint256).max)), 0);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.AccountApprovalsOpen.selector, address(account), 1));
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);

        vm.prank(carol);
        account.closeApprovals();
        _buy(id);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, mallory, 0, 1 ether));
        usd.transferFrom(address(account), mallory, 1 ether);

        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _rotation(id, 13);
        vm.prank(carol);
        market.complete(id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "sold");
        vm.assertEq(usd.balanceOf(address(account)), 1000 ether, "the account as bought");
        vm.assertEq(address(account).balance, 5 ether, "the account as bought");
    }

    /// Deposits into the account after the buy do not change its state: the sale completes (the
    /// buyer gets more, never less).
    function test_depositsAfterBuy_saleCompletes() public {
        _buy(id);
        vm.deal(address(this), 1 ether);
        (bool ok,) = address(account).call{value: 1 ether}("");
        vm.assertTrue(ok, "deposit");
        usd.mint(address(account), 1 ether);
        vm.assertTrue(market.isLive(id), "still live");
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) = _rotation(id, 14);
        vm.prank(carol);
        market.complete(id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "sold");
        vm.assertEq(address(account).balance, 6 ether, "deposit kept");
    }

    /// An unchanged account leaves the refund rule as it was: not before the deadline.
    function test_unchangedAccount_refundNotDueBeforeDeadline() public {
        _buy(id);
        uint64 deadline = market.listingOf(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.RefundNotDue.selector, deadline, block.timestamp));
        market.refund(id);
    }
}

/// @dev Approvals the account's ledger must see, and control of agent tokens the account holds.
contract LedgerCoverageAttacksTest is Fixture {
    uint256 internal id;
    AgentAccount internal account;
    uint256 internal nonce = 500;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
        account = AgentAccount(payable(accounts.createAccount(id)));
    }

    function _grantCarolTrade() internal {
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.TRADE, uint64(block.timestamp + 1 days), new bytes[](0));
    }

    function _revokeCarol() internal {
        vm.prank(alice);
        nft.revoke(id, carol);
    }

    /// A receiver-signed sale of the token from alice to bob.
    function _sell() internal {
        IAgentNFT.DataEntries memory d = entries(1, nonce);
        uint256 deadline = block.timestamp + 1 hours;
        Offer memory o = offer(id, id, alice, bob, d, agent2, nonce, deadline);
        IAgentNFT.Proof memory p =
            proof(Scopes.MODE_RECEIVER, nonce, deadline, signOffer(BOB_PK, Scopes.MODE_RECEIVER, o));
        ++nonce;
        vm.prank(alice);
        nft.transferWithProof(bob, id, d, agent2, p);
    }

    // ------------------------------------------------ increaseApproval (OpenZeppelin 1.x)

    /// A TRADE grantee gives an accomplice an allowance with `increaseApproval`, is revoked, and
    /// the accomplice drains the account: the grantee's call is refused.
    function test_attack_granteeIncreaseApprovalToAccomplice_drainsAfterRevoke_refused() public {
        OZ1Token t = new OZ1Token();
        t.mint(address(account), 100 ether);
        _grantCarolTrade();
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(t), mallory));
        account.execute(address(t), 0, abi.encodeCall(t.increaseApproval, (mallory, 100 ether)), 0);

        _revokeCarol();
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, mallory, 0, 100 ether));
        t.transferFrom(address(account), mallory, 100 ether);
    }

    /// The owner's `increaseApproval` is in the ledger, so the sale closes it.
    function test_attack_ownerIncreaseApprovalSurvivesSale_closedBySale() public {
        OZ1Token t = new OZ1Token();
        t.mint(address(account), 100 ether);
        vm.prank(alice);
        account.execute(address(t), 0, abi.encodeCall(t.increaseApproval, (mallory, 100 ether)), 0);
        IAgentAccount.OpenApproval[] memory open = account.openApprovals();
        vm.assertEq(open.length, 1, "recorded");
        vm.assertEq(uint256(open[0].kind), 1, "an ERC-20 allowance");

        _sell();
        vm.assertEq(t.allowance(address(account), mallory), 0, "closed by the sale");
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, mallory, 0, 100 ether));
        t.transferFrom(address(account), mallory, 100 ether);
    }

    // ------------------------------------------------------------------- ERC-6909

    /// A TRADE grantee gives an accomplice an ERC-6909 allowance or makes it operator: refused.
    function test_attack_granteeErc6909ApprovalOrOperator_refused() public {
        MockERC6909 m = new MockERC6909();
        m.mint(address(account), 1, 100);
        _grantCarolTrade();
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(m), mallory));
        account.execute(address(m), 0, abi.encodeCall(m.approve, (mallory, 1, 100)), 0);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(m), mallory));
        account.execute(address(m), 0, abi.encodeCall(m.setOperator, (mallory, true)), 0);

        _revokeCarol();
        vm.prank(mallory);
        vm.expectRevert(bytes("allowance"));
        m.transferFrom(address(account), mallory, 1, 100);
    }

    /// The owner's ERC-6909 allowance and operator are in the ledger, so the sale closes them.
    function test_attack_ownerErc6909ApprovalsSurviveSale_closedBySale() public {
        MockERC6909 m = new MockERC6909();
        m.mint(address(account), 1, 100);
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](2);
        calls[0] = IAgentAccount.Call(address(m), 0, abi.encodeCall(m.approve, (mallory, 1, 100)));
        calls[1] = IAgentAccount.Call(address(m), 0, abi.encodeCall(m.setOperator, (carol, true)));
        vm.prank(alice);
        account.executeBatch(calls);
        IAgentAccount.OpenApproval[] memory open = account.openApprovals();
        vm.assertEq(open.length, 2, "both recorded");
        vm.assertEq(uint256(open[0].kind), 5, "ERC-6909 allowance");
        vm.assertEq(open[0].id, 1, "its id");
        vm.assertEq(uint256(open[1].kind), 6, "ERC-6909 operator");

        _sell();
        vm.assertEq(m.allowance(address(account), mallory, 1), 0, "allowance closed");
        vm.assertFalse(m.isOperator(address(account), carol), "operator closed");
        vm.prank(mallory);
        vm.expectRevert(bytes("allowance"));
        m.transferFrom(address(account), mallory, 1, 100);
    }

    // ------------------------------------------------- ERC-404-style hybrid tokens

    /// The agent approves an accomplice for an NFT id of a hybrid token (ERC-20 and ERC-721 in
    /// one contract): the hybrid answers `allowance` with zero, but the id approval is open.
    function test_attack_agentApprovesHybridTokenIdToAccomplice_refused() public {
        MockERC404 h = new MockERC404();
        uint256 nftId = h.mintNft(address(account));
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(h), mallory));
        account.execute(address(h), 0, abi.encodeWithSelector(h.approve.selector, mallory, nftId), 0);
        vm.assertEq(h.getApproved(nftId), address(0), "no approval");

        // Its fungible side is still an ERC-20 allowance, which must be closed as usual.
        vm.prank(agent1);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(h), mallory));
        account.execute(address(h), 0, abi.encodeWithSelector(h.approve.selector, mallory, 0.5 ether), 0);
    }

    /// The owner's id approval on a hybrid is an ERC-721 entry of the ledger, closed by the sale.
    function test_attack_ownerHybridTokenIdApprovalSurvivesSale_closedBySale() public {
        MockERC404 h = new MockERC404();
        uint256 nftId = h.mintNft(address(account));
        vm.prank(alice);
        account.execute(address(h), 0, abi.encodeWithSelector(h.approve.selector, mallory, nftId), 0);
        IAgentAccount.OpenApproval[] memory open = account.openApprovals();
        vm.assertEq(open.length, 1, "recorded");
        vm.assertEq(uint256(open[0].kind), 2, "an ERC-721 approval");
        vm.assertEq(open[0].id, nftId, "of the id");

        _sell();
        vm.assertEq(h.getApproved(nftId), address(0), "closed by the sale");
        vm.prank(mallory);
        vm.expectRevert(bytes("not approved"));
        h.transferFrom(address(account), mallory, nftId);
    }

    // ------------------------------------------------- agent tokens the account holds

    /// An agent token held by the account (a child), with its own funded account.
    function _child() internal returns (uint256 child, AgentAccount childAccount) {
        vm.prank(bob);
        child = nft.mint(address(account), 9, entries(1, 9), agent3, noShares(), MODEL_SHA256);
        childAccount = AgentAccount(payable(accounts.createAccount(child)));
        vm.deal(address(childAccount), 2 ether);
    }

    /// A TRADE grantee makes itself the agent, or a TRADE / RUN grantee, of an agent token the
    /// account holds, to keep control of that token's account after its own grant is revoked:
    /// refused.
    function test_attack_granteeTakesControlOfHeldAgentToken_keepsItAfterRevoke_refused() public {
        (uint256 child, AgentAccount childAccount) = _child();
        _grantCarolTrade();
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(nft), carol));
        account.execute(address(nft), 0, abi.encodeCall(nft.setAgent, (child, carol)), 0);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(nft), carol));
        account.execute(
            address(nft),
            0,
            abi.encodeCall(nft.authorize, (child, carol, Scopes.TRADE, type(uint64).max, new bytes[](0))),
            0
        );
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.AllowanceLeftOpen.selector, address(nft), carol));
        account.execute(address(nft), 0, abi.encodeCall(nft.authorizeUsage, (child, carol)), 0);

        _revokeCarol();
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, carol));
        childAccount.execute(carol, 2 ether, "", 0);
        vm.assertEq(nft.agentOf(child), agent3, "the child's agent unchanged");
    }

    /// The agent token's owner administration that no ledger entry could take back is the
    /// owner's alone: the account's published sealing key (tokens sent to the account later
    /// would be sealed to it), its access assistant, a held token's data, pause flag or clones.
    function test_attack_granteeOwnerAdministrationOfHeldAgentToken_refused() public {
        (uint256 child,) = _child();
        _grantCarolTrade();
        bytes[] memory calls = new bytes[](4);
        calls[0] = abi.encodeCall(nft.setSealingKey, (keccak256("carol's key")));
        calls[1] = abi.encodeCall(nft.delegateAccess, (carol));
        calls[2] = abi.encodeCall(nft.updateData, (child, entries(1, 99)));
        calls[3] = abi.encodeCall(nft.setPaused, (child, true));
        for (uint256 i = 0; i < calls.length; ++i) {
            vm.prank(carol);
            vm.expectRevert(
                abi.encodeWithSelector(IAgentAccount.OwnerOnlyCall.selector, address(nft), bytes4(calls[i]))
            );
            account.execute(address(nft), 0, calls[i], 0);
        }
        vm.assertEq(nft.sealingKeyOf(address(account)), bytes32(0), "no key published for the account");
        // The owner may.
        vm.prank(alice);
        account.execute(address(nft), 0, calls[0], 0);
        vm.assertEq(nft.sealingKeyOf(address(account)), keccak256("carol's key"), "owner");
    }

    /// The owner makes itself agent, and an accomplice grantee, of an agent token the account
    /// holds, then sells the parent token: the sale takes both back, so the buyer alone controls
    /// the child and its account.
    function test_attack_ownerControlOfHeldAgentTokenSurvivesSale_closedBySale() public {
        (uint256 child, AgentAccount childAccount) = _child();
        IAgentAccount.Call[] memory calls = new IAgentAccount.Call[](2);
        calls[0] = IAgentAccount.Call(address(nft), 0, abi.encodeCall(nft.setAgent, (child, alice)));
        calls[1] = IAgentAccount.Call(
            address(nft),
            0,
            abi.encodeCall(nft.authorize, (child, mallory, Scopes.TRADE, type(uint64).max, new bytes[](0)))
        );
        vm.prank(alice);
        account.executeBatch(calls);
        IAgentAccount.OpenApproval[] memory open = account.openApprovals();
        vm.assertEq(open.length, 2, "both recorded");
        vm.assertEq(uint256(open[0].kind), 7, "the held token's agent");
        vm.assertEq(uint256(open[1].kind), 8, "a grant on the held token");
        vm.assertEq(open[1].id, child, "the held token");

        _sell();
        vm.assertEq(nft.agentOf(child), address(0), "agent cleared");
        (uint8 scopes,) = nft.authorizationOf(child, mallory);
        vm.assertEq(uint256(scopes), 0, "grant revoked");
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, alice));
        childAccount.execute(alice, 2 ether, "", 0);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentAccount.NotAllowed.selector, mallory));
        childAccount.execute(mallory, 2 ether, "", 0);

        // The buyer names the child's new agent through the account it now controls.
        vm.prank(bob);
        account.execute(address(nft), 0, abi.encodeCall(nft.setAgent, (child, agent3)), 0);
        vm.prank(agent3);
        childAccount.execute(bob, 2 ether, "", 0);
        vm.assertEq(address(childAccount).balance, 0, "the buyer's agent controls the child's account");
    }

    // ------------------------------------------------------------------- ERC-1271

    /// The agent signs a Permit2 allowance for an accomplice through the account's ERC-1271: the
    /// allowance would live in Permit2, unseen by the ledger, and revive after a sale as soon as
    /// the buyer approves Permit2. The account accepts only its owner's signature.
    function test_attack_agentSignsPermit2AllowanceThatRevivesAfterSale_refused() public {
        TestToken usd = new TestToken("Test USD", "tUSD", 18);
        usd.mint(address(account), 100 ether);
        MockPermit2 permit2 = new MockPermit2();
        bytes32 h = permit2.permitHash(address(account), address(usd), mallory, type(uint160).max, type(uint48).max);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(AGENT1_PK, account.messageHash(h));
        bytes memory byAgent = abi.encodePacked(r, s, v);
        vm.assertTrue(account.isValidSignature(h, byAgent) != IERC1271.isValidSignature.selector, "agent refused");
        vm.expectRevert(bytes("bad signature"));
        permit2.permit(address(account), address(usd), mallory, type(uint160).max, type(uint48).max, byAgent);

        _sell();
        vm.prank(bob);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (address(permit2), type(uint256).max)), 0);
        vm.prank(mallory);
        vm.expectRevert(bytes("expired"));
        permit2.transferFrom(address(account), mallory, 1, address(usd));

        // The owner (bob now) still signs for the account.
        h = permit2.permitHash(address(account), address(usd), carol, 1 ether, type(uint48).max);
        (v, r, s) = vm.sign(BOB_PK, account.messageHash(h));
        permit2.permit(address(account), address(usd), carol, 1 ether, type(uint48).max, abi.encodePacked(r, s, v));
        vm.prank(carol);
        permit2.transferFrom(address(account), carol, 1 ether, address(usd));
        vm.assertEq(usd.balanceOf(carol), 1 ether, "the owner's permit works");
    }
}

/// @dev A contract buyer whose ERC-721 receiver hook refuses every token.
contract RevertingBuyer {
    constructor(IAgentNFT n, bytes32 key) {
        n.setSealingKey(key);
    }

    function buy(AgentMarket m, uint256 tokenId, bytes32 key, uint32 window) external payable {
        m.buy{value: msg.value}(tokenId, key, window);
    }

    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        revert("no thanks");
    }

    receive() external payable {}
}

/// @dev Fair exchange: a buyer who could open the new keys has paid, and nothing the buyer does
/// after paying stops the completion. Each attack is the buyer's try to keep both.
contract FairSaleAttacksTest is MarketFixture {
    /// Receiver mode handed the buyer an offer it could open before it signed: it decrypted,
    /// never signed, and took its escrow back at the deadline. A sale takes no acceptance, so
    /// no seller hands out keys before the completion that pays it.
    function test_attack_buyerOpensOfferNeverAcceptsAndRefunds_acceptanceRefusedForSales() public {
        approveAndList(PRICE);
        bobBuys();
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, BOB_PK, Scopes.MODE_RECEIVER, 90, block.timestamp + 10 minutes);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.SaleNeedsAttestation.selector, Scopes.MODE_RECEIVER));
        market.complete(id, d, agent2, p);
        // Directly, past the market, the same: the NFT's sale path takes attestations only.
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.SaleNeedsAttestation.selector, Scopes.MODE_RECEIVER));
        nft.sellWithProof(bob, id, BOB_SEALING_KEY, PRICE, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), carol, "not moved");
    }

    /// The completion's calldata shows keys sealed to the buyer; the buyer front-runs it with a
    /// new published key so that it fails, then refunds. The sale seals to the key committed at
    /// the buy, so it completes and the buyer has nothing to refund.
    function test_attack_buyerFrontRunsCompletionWithNewSealingKey_saleCompletes() public {
        approveAndList(PRICE);
        bobBuys();
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 91, block.timestamp + 10 minutes);
        vm.prank(bob);
        nft.setSealingKey(keccak256("bob's new key"));
        uint256 carolBefore = carol.balance;
        vm.prank(carol);
        market.complete(id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "the buyer got the token");
        vm.assertEq(carol.balance - carolBefore, PRICE - PRICE * ROYALTY_BPS / 10_000, "seller paid");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NoPendingSale.selector, id));
        market.refund(id);
    }

    /// A contract buyer reverts in its ERC-721 receiver hook so that the completion fails after
    /// its keys were public, then refunds. A sale runs no hook: it completes.
    function test_attack_contractBuyerRevertsInReceiverHook_saleCompletes() public {
        bytes32 key = keccak256("reverting buyer key");
        RevertingBuyer b = new RevertingBuyer(nft, key);
        vm.deal(address(b), PRICE);
        approveAndList(PRICE);
        b.buy{value: PRICE}(market, id, key, WINDOW);
        IAgentNFT.DataEntries memory d = entries(2, 92);
        IAgentNFT.Proof memory p = saleProof(market, id, d, agent2, 92, block.timestamp + 10 minutes);
        vm.prank(carol);
        market.complete(id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), address(b), "the buyer holds the token");
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NoPendingSale.selector, id));
        market.refund(id);
    }

    /// With live listings on two markets, the attestation for the dearer sale settled the
    /// cheaper one. A sale's attestation names its market and price: it settles no other.
    function test_attack_attestationForOneSaleSettlesAnotherMarketOrPrice_refused() public {
        AgentMarket cheap = new AgentMarket(nft);
        vm.startPrank(carol);
        nft.setApprovalForAll(address(market), true);
        nft.setApprovalForAll(address(cheap), true);
        market.list(id, PRICE, WINDOW);
        cheap.list(id, PRICE / 2, WINDOW);
        vm.stopPrank();
        bobBuys();
        vm.prank(bob);
        cheap.buy{value: PRICE / 2}(id, BOB_SEALING_KEY, WINDOW);

        IAgentNFT.DataEntries memory d = entries(2, 93);
        uint256 deadline = block.timestamp + 10 minutes;
        IAgentNFT.Proof memory dear = saleProof(market, id, d, agent2, 93, deadline);
        vm.expectPartialRevert(TransferVerifier.UnknownOracle.selector);
        cheap.complete(id, d, agent2, dear);

        // Signed for the right market but another price: refused as well.
        Offer memory o = saleOffer(cheap, id, d, agent2, 94, deadline);
        o.price = PRICE;
        IAgentNFT.Proof memory wrongPrice =
            proof(Scopes.MODE_ORACLE, 94, deadline, signOffer(ORACLE_PK, Scopes.MODE_ORACLE, o));
        vm.expectPartialRevert(TransferVerifier.UnknownOracle.selector);
        cheap.complete(id, d, agent2, wrongPrice);

        // The dear sale's own attestation settles the dear sale.
        market.complete(id, d, agent2, dear);
        vm.assertEq(nft.ownerOf(id), bob, "sold on the market it was attested for");
    }
}
