// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {AgentMarket} from "../contracts/AgentMarket.sol";
import {IAgentMarket} from "../contracts/interfaces/IAgentMarket.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";

/// @dev A creator + seller contract: mints, lists, and on receiving a payment tries to re-enter
/// the market (refund, cancel, complete, withdraw), recording what happened. Accepts the payment.
contract ReentrantSeller {
    AgentMarket internal immutable market;
    IAgentNFT internal immutable nft;
    uint256 public tokenId;
    /// 1 = nothing tried yet, 2 = every reentry was refused, 3 = a reentry succeeded.
    uint256 public reentry = 1;
    bool public acceptPayments = true;

    constructor(AgentMarket m, IAgentNFT n) {
        market = m;
        nft = n;
    }

    function mintAndList(IAgentNFT.DataEntries memory d, address agent, IAgentNFT.Shares memory s, uint256 price)
        external
    {
        tokenId = nft.mint(address(this), 1, d, agent, s, keccak256("the agent's GGUF weights"));
        (bool ok,) = address(nft).call(abi.encodeWithSignature("approve(address,uint256)", address(market), tokenId));
        require(ok, "approve");
        market.list(tokenId, price, 1 hours);
    }

    function setAcceptPayments(bool v) external {
        acceptPayments = v;
    }

    function pull(address payable to) external {
        market.withdraw(to);
    }

    receive() external payable {
        require(acceptPayments, "no payments");
        bool any;
        try market.refund(tokenId) {
            any = true;
        } catch {}
        try market.cancel(tokenId) {
            any = true;
        } catch {}
        try market.withdraw(payable(address(this))) {
            any = true;
        } catch {}
        reentry = any ? 3 : 2;
    }
}

/// @dev A contract buyer whose ERC-721 receiver hook tries to re-enter the market.
contract ReentrantBuyer is IERC721Receiver {
    AgentMarket internal immutable market;
    bool public reentered;
    bool public tried;

    constructor(AgentMarket m, IAgentNFT n, bytes32 key) {
        market = m;
        n.setSealingKey(key);
    }

    function buy(uint256 tokenId, bytes32 key) external payable {
        market.buy{value: msg.value}(tokenId, key, 1 hours);
    }

    function onERC721Received(address, address, uint256 tokenId, bytes calldata) external returns (bytes4) {
        tried = true;
        try market.refund(tokenId) {
            reentered = true;
        } catch {}
        return IERC721Receiver.onERC721Received.selector;
    }

    receive() external payable {}
}

abstract contract MarketFixture is Fixture {
    AgentMarket internal market;
    uint256 internal id;
    uint256 internal constant PRICE = 1 ether + 7;
    uint16 internal constant ROYALTY_BPS = 750;
    uint32 internal constant WINDOW = 1 hours;

    function setUp() public virtual override {
        super.setUp();
        market = new AgentMarket(nft);
        // alice creates (royalty receiver), carol owns and sells, bob buys.
        vm.prank(alice);
        id = nft.mint(carol, 1, entries(2, 1), agent1, shares(ROYALTY_BPS, 0, alice, 0), MODEL_SHA256);
        vm.deal(bob, 10 ether);
        vm.deal(mallory, 10 ether);
    }

    function approveAndList(uint256 price) internal {
        vm.startPrank(carol);
        nft.approve(address(market), id);
        market.list(id, price, WINDOW);
        vm.stopPrank();
    }

    function bobBuys() internal {
        vm.prank(bob);
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);
    }

    /// @dev The rotation of the listed token to `to`, for a sale on this market at the listed
    /// price, signed by `pk` in `mode`.
    function rotation(address to, uint256 pk, uint8 mode, uint256 seed, uint256 deadline)
        internal
        view
        returns (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p)
    {
        d = entries(2, seed);
        Offer memory o = offer(id, id, nft.ownerOf(id), to, d, agent2, seed, deadline);
        o.market = address(market);
        o.price = market.listingOf(id).price;
        p = proof(mode, seed, deadline, signOffer(pk, mode, o));
    }
}

contract AgentMarketSaleTest is MarketFixture {
    function test_listBuyComplete_paysRoyaltyAndSellerToTheWei_andRotates() public {
        approveAndList(PRICE);
        vm.assertTrue(market.isLive(id), "live");

        uint64 deadline = uint64(block.timestamp) + WINDOW;
        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.Bought(id, bob, carol, PRICE, BOB_SEALING_KEY, deadline);
        bobBuys();
        vm.assertEq(address(market).balance, PRICE, "escrowed");

        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 77, block.timestamp + 10 minutes);
        uint256 royalty = PRICE * ROYALTY_BPS / 10_000;
        uint256 aliceBefore = alice.balance;
        uint256 carolBefore = carol.balance;
        uint256 bobBefore = bob.balance;

        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.Sold(id, carol, bob, PRICE, alice, royalty);
        vm.prank(carol);
        market.complete(id, d, agent2, p);

        vm.assertEq(alice.balance - aliceBefore, royalty, "creator gets exactly the royalty");
        vm.assertEq(carol.balance - carolBefore, PRICE - royalty, "seller gets the rest");
        vm.assertEq(bob.balance, bobBefore, "buyer paid at buy, not again");
        vm.assertEq(address(market).balance, 0, "nothing left in the market");
        vm.assertEq(nft.ownerOf(id), bob, "token moved");
        vm.assertEq(nft.dataHashesOf(id)[0], d.dataHashes[0], "data rotated");
        vm.assertEq(nft.dataHashesOf(id)[1], d.dataHashes[1], "data rotated");
        vm.assertEq(nft.agentOf(id), agent2, "agent rotated");
        vm.assertEq(nft.getApproved(id), address(0), "approval cleared by the move");
        vm.assertEq(market.listingOf(id).seller, address(0), "listing gone");
    }

    function test_complete_oracleMode_anyCaller() public {
        approveAndList(PRICE);
        bobBuys();
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 78, block.timestamp + 10 minutes);
        uint256 carolBefore = carol.balance;
        // A relayer (anyone) may submit: the proof is the authorization, the payees are fixed.
        vm.prank(mallory);
        market.complete(id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), bob, "moved");
        vm.assertEq(carol.balance - carolBefore, PRICE - PRICE * ROYALTY_BPS / 10_000, "seller paid");
    }

    function test_complete_twice_refused() public {
        approveAndList(PRICE);
        bobBuys();
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 79, block.timestamp + 10 minutes);
        vm.prank(carol);
        market.complete(id, d, agent2, p);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NoPendingSale.selector, id));
        market.complete(id, d, agent2, p);
    }

    function test_complete_withoutBuy_refused() public {
        approveAndList(PRICE);
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 80, block.timestamp + 10 minutes);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NoPendingSale.selector, id));
        market.complete(id, d, agent2, p);
    }

    function test_complete_expiredProof_refused() public {
        approveAndList(PRICE);
        bobBuys();
        uint256 proofDeadline = block.timestamp + 1 minutes;
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 81, proofDeadline);
        vm.warp(proofDeadline + 1);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentNFT.ProofExpired.selector, proofDeadline, proofDeadline + 1));
        market.complete(id, d, agent2, p);
        vm.assertEq(address(market).balance, PRICE, "escrow kept");
    }

    function test_complete_proofForAnotherReceiver_refused() public {
        approveAndList(PRICE);
        bobBuys();
        // A rotation signed by anyone but a registered oracle does not verify.
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, MALLORY_PK, Scopes.MODE_ORACLE, 82, block.timestamp + 10 minutes);
        vm.prank(carol);
        vm.expectRevert();
        market.complete(id, d, agent2, p);
        vm.assertEq(nft.ownerOf(id), carol, "not moved");
    }

    function test_complete_afterDeadline_refused() public {
        approveAndList(PRICE);
        bobBuys();
        uint64 deadline = market.listingOf(id).deadline;
        vm.warp(uint256(deadline) + 1);
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 83, block.timestamp + 10 minutes);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.SaleExpired.selector, deadline, uint256(deadline) + 1));
        market.complete(id, d, agent2, p);
    }

    function testFuzz_complete_splitSumsToPrice(uint96 price, uint16 bps) public {
        price = uint96(bound(price, 1, 1_000_000 ether));
        bps = uint16(bound(bps, 0, 10_000));
        vm.prank(alice);
        uint256 tid = nft.mint(carol, 2, entries(1, 2), agent1, shares(bps, 0, alice, 0), MODEL_SHA256);
        vm.startPrank(carol);
        nft.approve(address(market), tid);
        market.list(tid, price, WINDOW);
        vm.stopPrank();
        vm.deal(bob, price);
        vm.prank(bob);
        market.buy{value: price}(tid, BOB_SEALING_KEY, WINDOW);
        IAgentNFT.DataEntries memory d = entries(1, 3);
        uint256 deadline = block.timestamp + 1 hours;
        IAgentNFT.Proof memory p = saleProof(market, tid, d, agent2, 5, deadline);
        uint256 a = alice.balance;
        uint256 c = carol.balance;
        market.complete(tid, d, agent2, p);
        vm.assertEq(alice.balance - a, uint256(price) * bps / 10_000, "royalty");
        vm.assertEq((alice.balance - a) + (carol.balance - c), price, "sums to the price");
        vm.assertEq(address(market).balance, 0, "no dust");
    }

    function test_supportsInterface() public view {
        vm.assertTrue(market.supportsInterface(type(IAgentMarket).interfaceId), "IAgentMarket");
        vm.assertTrue(market.supportsInterface(type(IERC165).interfaceId), "ERC-165");
        vm.assertFalse(market.supportsInterface(0xffffffff), "not 0xffffffff");
    }
}

contract AgentMarketListingTest is MarketFixture {
    function test_list_byNonOwner_refused() public {
        vm.prank(carol);
        nft.approve(address(market), id);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NotSeller.selector, id, mallory));
        market.list(id, PRICE, WINDOW);
    }

    function test_list_withoutApproval_refused() public {
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.MarketNotApproved.selector, id));
        market.list(id, PRICE, WINDOW);
    }

    function test_list_operatorApproval_andBadArgs() public {
        vm.startPrank(carol);
        nft.setApprovalForAll(address(market), true);
        vm.expectRevert(IAgentMarket.ZeroPrice.selector);
        market.list(id, 0, WINDOW);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.BadWindow.selector, uint32(1)));
        market.list(id, PRICE, 1);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.BadWindow.selector, uint32(31 days)));
        market.list(id, PRICE, 31 days);
        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.Listed(id, carol, PRICE, WINDOW, 0);
        market.list(id, PRICE, WINDOW);
        vm.stopPrank();
        vm.assertTrue(market.isLive(id), "live with operator approval");
    }

    function test_buy_wrongPrice_refused() public {
        approveAndList(PRICE);
        vm.startPrank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.WrongPayment.selector, PRICE, PRICE - 1));
        market.buy{value: PRICE - 1}(id, BOB_SEALING_KEY, WINDOW);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.WrongPayment.selector, PRICE, PRICE + 1));
        market.buy{value: PRICE + 1}(id, BOB_SEALING_KEY, WINDOW);
        vm.stopPrank();
    }

    function test_buy_wrongSealingKey_refused() public {
        approveAndList(PRICE);
        vm.prank(bob);
        vm.expectRevert(
            abi.encodeWithSelector(IAgentMarket.SealingKeyMismatch.selector, CAROL_SEALING_KEY, BOB_SEALING_KEY)
        );
        market.buy{value: PRICE}(id, CAROL_SEALING_KEY, WINDOW);
        // mallory has published no key: zero is refused.
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.SealingKeyMismatch.selector, bytes32(0), bytes32(0)));
        market.buy{value: PRICE}(id, bytes32(0), WINDOW);
    }

    function test_buy_twice_andBySeller_andUnlisted_refused() public {
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NotListed.selector, id));
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);

        approveAndList(PRICE);
        vm.deal(carol, PRICE);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.SellerIsBuyer.selector, carol));
        market.buy{value: PRICE}(id, CAROL_SEALING_KEY, WINDOW);

        bobBuys();
        vm.prank(alice);
        vm.deal(alice, PRICE);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.SalePending.selector, id, bob));
        market.buy{value: PRICE}(id, ALICE_SEALING_KEY, WINDOW);
    }

    function test_relistOrPriceChange_whilePending_refused() public {
        approveAndList(PRICE);
        bobBuys();
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.SalePending.selector, id, bob));
        market.list(id, PRICE * 2, WINDOW);
        vm.assertEq(market.listingOf(id).price, PRICE, "price fixed once bought");
    }

    function test_windowChangeBeforeBuy_refused() public {
        approveAndList(PRICE);
        // The seller lengthens the window (locking a buyer's escrow longer) just before bob's buy.
        vm.prank(carol);
        market.list(id, PRICE, 30 days);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.WrongWindow.selector, uint32(30 days), WINDOW));
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);
    }

    function test_priceChangeBeforeBuy_buyerProtectedByExactValue() public {
        approveAndList(PRICE);
        // The seller raises the price just before bob's buy lands: bob's buy fails, he pays nothing.
        vm.prank(carol);
        market.list(id, PRICE * 2, WINDOW);
        uint256 before = bob.balance;
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.WrongPayment.selector, PRICE * 2, PRICE));
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);
        vm.assertEq(bob.balance, before, "nothing taken");
    }

    function test_cancel_unsold() public {
        approveAndList(PRICE);
        vm.prank(mallory);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NotSeller.selector, id, mallory));
        market.cancel(id);
        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.Cancelled(id, carol);
        vm.prank(carol);
        market.cancel(id);
        vm.assertFalse(market.isLive(id), "gone");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NotListed.selector, id));
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);
        vm.prank(carol);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NotListed.selector, id));
        market.cancel(id);
    }

    function test_cancel_pending_refundsBuyer() public {
        approveAndList(PRICE);
        uint256 before = bob.balance;
        bobBuys();
        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.Refunded(id, bob, PRICE);
        vm.prank(carol);
        market.cancel(id);
        vm.assertEq(bob.balance, before, "refunded in full");
        vm.assertEq(address(market).balance, 0, "empty");
    }

    function test_abandonedSale_refundsAfterDeadline_notBefore() public {
        approveAndList(PRICE);
        uint256 before = bob.balance;
        bobBuys();
        uint64 deadline = market.listingOf(id).deadline;
        vm.assertEq(uint256(deadline), block.timestamp + WINDOW, "deadline");

        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.RefundNotDue.selector, deadline, uint256(deadline)));
        market.refund(id);

        vm.warp(uint256(deadline) + 1);
        vm.expectEmit(true, true, true, true, address(market));
        emit IAgentMarket.Refunded(id, bob, PRICE);
        vm.prank(mallory); // anyone may trigger it; the escrow goes to the buyer
        market.refund(id);
        vm.assertEq(bob.balance, before, "refunded in full");
        vm.assertEq(nft.ownerOf(id), carol, "seller keeps the token");
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NoPendingSale.selector, id));
        market.refund(id);
    }

    function test_voidListing_approvalWithdrawn() public {
        approveAndList(PRICE);
        vm.prank(carol);
        nft.approve(address(0), id);
        vm.assertFalse(market.isLive(id), "void");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.ListingVoid.selector, id));
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);
    }

    function test_voidListing_afterBuy_refundsAtOnce() public {
        approveAndList(PRICE);
        uint256 before = bob.balance;
        bobBuys();
        // The seller sells elsewhere (a direct proof transfer to alice): the sale cannot complete
        // and bob need not wait for the deadline.
        receiverTransfer(id, alice, ALICE_PK, 90, agent3, 90);
        vm.assertFalse(market.isLive(id), "void");
        (IAgentNFT.DataEntries memory d, IAgentNFT.Proof memory p) =
            rotation(bob, ORACLE_PK, Scopes.MODE_ORACLE, 91, block.timestamp + 10 minutes);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.ListingVoid.selector, id));
        market.complete(id, d, agent2, p);
        // alice cannot list over bob's escrow; bob's refund comes first.
        vm.startPrank(alice);
        nft.approve(address(market), id);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.SalePending.selector, id, bob));
        market.list(id, PRICE, WINDOW);
        vm.stopPrank();
        market.refund(id);
        vm.assertEq(bob.balance, before, "refunded");
        vm.prank(alice);
        market.list(id, PRICE, WINDOW);
    }

    function test_voidListing_tokenLeftAndCameBack() public {
        approveAndList(PRICE);
        receiverTransfer(id, alice, ALICE_PK, 92, agent2, 92);
        receiverTransfer(id, carol, CAROL_PK, 93, agent3, 93);
        vm.prank(carol);
        nft.approve(address(market), id);
        vm.assertFalse(market.isLive(id), "another epoch: not the listed token state");
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.ListingVoid.selector, id));
        market.buy{value: PRICE}(id, BOB_SEALING_KEY, WINDOW);
    }
}

contract AgentMarketReentrancyTest is MarketFixture {
    function test_payeeReentry_refused_andSaleCompletes() public {
        ReentrantSeller s = new ReentrantSeller(market, nft);
        s.mintAndList(entries(1, 5), agent1, shares(ROYALTY_BPS, 0, address(s), 0), PRICE);
        uint256 tid = s.tokenId();
        vm.prank(bob);
        market.buy{value: PRICE}(tid, BOB_SEALING_KEY, WINDOW);
        IAgentNFT.DataEntries memory d = entries(1, 6);
        uint256 deadline = block.timestamp + 1 hours;
        IAgentNFT.Proof memory p = saleProof(market, tid, d, agent2, 6, deadline);
        market.complete(tid, d, agent2, p);
        vm.assertEq(s.reentry(), 2, "every reentry refused");
        vm.assertEq(address(s).balance, PRICE, "creator + seller paid in full");
        vm.assertEq(nft.ownerOf(tid), bob, "moved");
    }

    /// A sale runs no ERC-721 receiver hook (a buyer's hook that reverts must not block the
    /// completion that publishes the keys): a contract buyer's hook is never reached.
    function test_sale_runsNoBuyerHook() public {
        bytes32 key = keccak256("buyer contract key");
        ReentrantBuyer b = new ReentrantBuyer(market, nft, key);
        vm.deal(address(b), PRICE);
        approveAndList(PRICE);
        b.buy{value: PRICE}(id, key);
        IAgentNFT.DataEntries memory d = entries(2, 7);
        uint256 deadline = block.timestamp + 1 hours;
        IAgentNFT.Proof memory p = saleProof(market, id, d, agent2, 7, deadline);
        uint256 carolBefore = carol.balance;
        vm.prank(carol);
        market.complete(id, d, agent2, p);
        vm.assertFalse(b.tried(), "no hook ran");
        vm.assertEq(nft.ownerOf(id), address(b), "contract buyer holds it");
        vm.assertEq(carol.balance - carolBefore, PRICE - PRICE * ROYALTY_BPS / 10_000, "seller paid");
    }

    function test_revertingPayee_isCredited_andWithdraws() public {
        ReentrantSeller s = new ReentrantSeller(market, nft);
        s.mintAndList(entries(1, 5), agent1, shares(ROYALTY_BPS, 0, address(s), 0), PRICE);
        s.setAcceptPayments(false);
        uint256 tid = s.tokenId();
        vm.prank(bob);
        market.buy{value: PRICE}(tid, BOB_SEALING_KEY, WINDOW);
        IAgentNFT.DataEntries memory d = entries(1, 6);
        uint256 deadline = block.timestamp + 1 hours;
        IAgentNFT.Proof memory p = saleProof(market, tid, d, agent2, 6, deadline);
        market.complete(tid, d, agent2, p);
        vm.assertEq(nft.ownerOf(tid), bob, "a refusing payee cannot block the sale");
        vm.assertEq(market.owed(address(s)), PRICE, "royalty + proceeds credited");
        vm.expectRevert(abi.encodeWithSelector(IAgentMarket.NothingToWithdraw.selector, address(this)));
        market.withdraw(payable(address(this)));
        s.pull(payable(mallory));
        vm.assertEq(mallory.balance, 10 ether + PRICE, "withdrawn to the chosen address");
        vm.assertEq(market.owed(address(s)), 0, "cleared");
    }

}
