// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {IEarningsSplitter} from "../contracts/interfaces/IEarningsSplitter.sol";
import {TestToken} from "../contracts/TestToken.sol";

contract EarningsSplitterTest is Fixture {
    uint256 internal id;
    address internal contributor = address(0xC0);
    address[] internal cs;
    uint16[] internal bps;

    function setUp() public override {
        super.setUp();
        // creator alice 10%, contributor 2.5%, holder bob the rest
        vm.prank(alice);
        id = nft.mint(bob, 1, entries(1, 1), agent1, shares(500, 1000, contributor, 250), MODEL_SHA256);
        cs.push(contributor);
        bps.push(250);
        vm.deal(address(this), 1000 ether);
    }

    function test_ethDeposit_splitsToTheWei() public {
        uint256 amount = 1 ether + 7; // not divisible: the holder gets the rounding remainder
        vm.expectEmit(true, true, true, true, address(splitter));
        emit IEarningsSplitter.Deposited(id, address(0), address(this), amount);
        splitter.deposit{value: amount}(id, cs, bps);
        uint256 creator = amount * 1000 / 10_000;
        uint256 contrib = amount * 250 / 10_000;
        vm.assertEq(splitter.balanceOf(alice, address(0)), creator, "creator 10%");
        vm.assertEq(splitter.balanceOf(contributor, address(0)), contrib, "contributor 2.5%");
        vm.assertEq(splitter.balanceOf(bob, address(0)), amount - creator - contrib, "holder rest");
        vm.assertEq(
            splitter.balanceOf(alice, address(0)) + splitter.balanceOf(contributor, address(0))
                + splitter.balanceOf(bob, address(0)),
            amount,
            "sum exact"
        );
    }

    function testFuzz_split_sumsExactly(uint256 amount, uint16 creatorBps, uint16 c1, uint16 c2) public {
        amount = bound(amount, 1, 1e30);
        creatorBps = uint16(bound(creatorBps, 0, 10_000));
        c1 = uint16(bound(c1, 0, 10_000 - creatorBps));
        c2 = uint16(bound(c2, 0, 10_000 - creatorBps - c1));
        IAgentNFT.Shares memory s;
        s.creatorBps = creatorBps;
        s.contributors = new address[](2);
        s.contributors[0] = address(0xC1);
        s.contributors[1] = address(0xC2);
        s.contributorBps = new uint16[](2);
        s.contributorBps[0] = c1;
        s.contributorBps[1] = c2;
        vm.prank(carol);
        uint256 t = nft.mint(mallory, 5, entries(1, 5), agent1, s, MODEL_SHA256);
        vm.deal(address(this), amount);
        splitter.deposit{value: amount}(t, s.contributors, s.contributorBps);

        uint256 gotCreator = splitter.balanceOf(carol, address(0));
        uint256 got1 = splitter.balanceOf(address(0xC1), address(0));
        uint256 got2 = splitter.balanceOf(address(0xC2), address(0));
        uint256 gotHolder = splitter.balanceOf(mallory, address(0));
        vm.assertEq(gotCreator, amount * creatorBps / 10_000, "creator floor");
        vm.assertEq(got1, amount * c1 / 10_000, "c1 floor");
        vm.assertEq(got2, amount * c2 / 10_000, "c2 floor");
        vm.assertEq(gotCreator + got1 + got2 + gotHolder, amount, "sum exact");
        vm.assertEq(address(splitter).balance, amount, "all held");
    }

    function test_wrongContributors_reverts() public {
        address[] memory fake = new address[](1);
        fake[0] = mallory;
        vm.expectRevert(abi.encodeWithSelector(IEarningsSplitter.WrongContributors.selector, id));
        splitter.deposit{value: 1 ether}(id, fake, bps);
        uint16[] memory moreBps = new uint16[](1);
        moreBps[0] = 251;
        vm.expectRevert(abi.encodeWithSelector(IEarningsSplitter.WrongContributors.selector, id));
        splitter.deposit{value: 1 ether}(id, cs, moreBps);
        vm.expectRevert(abi.encodeWithSelector(IEarningsSplitter.WrongContributors.selector, id));
        splitter.deposit{value: 1 ether}(id, new address[](0), new uint16[](0));
    }

    function test_noContributors_emptyLists() public {
        uint256 t = mintAs(alice, carol, 9, 1, agent1);
        splitter.deposit{value: 100}(t, new address[](0), new uint16[](0));
        vm.assertEq(splitter.balanceOf(carol, address(0)), 100, "holder gets all (creator bps 0)");
    }

    function test_zeroDeposit_reverts() public {
        vm.expectRevert(IEarningsSplitter.ZeroAmount.selector);
        splitter.deposit{value: 0}(id, cs, bps);
    }

    function test_holderIsOwnerAtDepositTime() public {
        splitter.deposit{value: 10_000}(id, cs, bps);
        receiverTransfer(id, carol, CAROL_PK, 3, agent2, 1);
        splitter.deposit{value: 10_000}(id, cs, bps);
        vm.assertEq(splitter.balanceOf(bob, address(0)), 8_750, "old holder keeps the first deposit");
        vm.assertEq(splitter.balanceOf(carol, address(0)), 8_750, "new holder gets the second");
        vm.assertEq(splitter.balanceOf(alice, address(0)), 2_000, "creator both");
    }

    function test_withdraw_paysOutOnce() public {
        splitter.deposit{value: 1 ether}(id, cs, bps);
        uint256 owed = splitter.balanceOf(contributor, address(0));
        address payable to = payable(address(0xBEEF));
        vm.expectEmit(true, true, true, true, address(splitter));
        emit IEarningsSplitter.Withdrawn(contributor, address(0), to, owed);
        vm.prank(contributor);
        splitter.withdraw(address(0), to);
        vm.assertEq(to.balance, owed, "paid");
        vm.assertEq(splitter.balanceOf(contributor, address(0)), 0, "cleared");
        vm.prank(contributor);
        vm.expectRevert(IEarningsSplitter.ZeroAmount.selector);
        splitter.withdraw(address(0), to);
    }

    function test_withdrawToContractThatRejectsEth_reverts_andKeepsBalance() public {
        splitter.deposit{value: 1 ether}(id, cs, bps);
        uint256 owed = splitter.balanceOf(alice, address(0));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IEarningsSplitter.EthSendFailed.selector, address(nft)));
        splitter.withdraw(address(0), address(nft));
        vm.assertEq(splitter.balanceOf(alice, address(0)), owed, "still owed");
    }

    function test_erc20Deposit_andWithdraw() public {
        TestToken usd = new TestToken("Test USD", "tUSD", 6);
        usd.mint(address(this), 2_000_000);
        usd.approve(address(splitter), type(uint256).max);
        splitter.depositToken(id, address(usd), 1_000_001, cs, bps);
        vm.assertEq(splitter.balanceOf(alice, address(usd)), 100_000, "creator");
        vm.assertEq(splitter.balanceOf(contributor, address(usd)), 25_000, "contributor");
        vm.assertEq(splitter.balanceOf(bob, address(usd)), 875_001, "holder");
        vm.prank(bob);
        splitter.withdraw(address(usd), bob);
        vm.assertEq(usd.balanceOf(bob), 875_001, "withdrawn");
    }

    function test_depositForUnmintedToken_reverts() public {
        uint256 none = nft.tokenIdFor(mallory, 1);
        vm.expectRevert();
        splitter.deposit{value: 1}(none, cs, bps);
    }
}
