// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {TransferValidityProof} from "../contracts/interfaces/IERC7857.sol";
import {AgentAccount} from "../contracts/AgentAccount.sol";
import {TestToken} from "../contracts/TestToken.sol";
import {AgentMarket} from "../contracts/AgentMarket.sol";

/// @dev Dedicated gas figures for `forge snapshot` (.gas-snapshot). Each test prepares and
/// ABI-encodes its inputs with gas metering paused, so the figure is the metered part only: one
/// CALL from the test contract (cold account access of the target) plus the contract's whole
/// execution, including cold storage and events. Not included: the 21,000 intrinsic gas of a transaction and its calldata cost
/// (16 gas per non-zero byte), which a real transaction pays on top (see README.md).
contract GasTest is Fixture {
    uint256 internal id;
    uint256 internal logged;
    address internal fresh = address(0xF4E5);
    /// A token whose owner left an ERC-20 approval open on its agent account.
    uint256 internal approved;
    TestToken internal usd;
    /// A token listed on the market and bought by bob (escrow held), waiting for its rotation.
    uint256 internal sold;
    AgentMarket internal market;

    function setUp() public override {
        super.setUp();
        id = mintAs(alice, alice, 1, 1, agent1);
        logged = mintAs(alice, alice, 2, 1, agent1);
        bytes32[] memory one = new bytes32[](1);
        one[0] = keccak256("first action");
        vm.prank(agent1);
        actionLog.logActions(logged, 1, one);

        approved = mintAs(alice, alice, 3, 1, agent1);
        usd = new TestToken("Test USD", "tUSD", 18);
        AgentAccount account = AgentAccount(payable(accounts.createAccount(approved)));
        vm.prank(alice);
        account.execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 1 ether)), 0);

        market = new AgentMarket(nft);
        vm.prank(carol);
        sold = nft.mint(alice, 4, entries(1, 4), agent1, shares(500, 0, carol, 0), MODEL_SHA256);
        vm.startPrank(alice);
        nft.approve(address(market), sold);
        market.list(sold, 1 ether, 1 hours);
        vm.stopPrank();
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        market.buy{value: 1 ether}(sold, BOB_SEALING_KEY, 1 hours);
        // Seller and creator hold ETH already, as real ones do (a payment to an empty account
        // would add 25,000 gas for creating it).
        vm.deal(alice, 1 ether);
        vm.deal(carol, 1 ether);
    }

    /// Mint of 1 data entry (81-byte sealed key, 77-byte URI) to an address that owns no token yet,
    /// no data contributors.
    function test_gas_mint_1entry() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 1000);
        IAgentNFT.Shares memory s = noShares();
        s.royaltyBps = 500;
        s.creatorBps = 1000;
        vm.prank(alice);
        _metered(address(nft), abi.encodeCall(nft.mint, (fresh, 1000, d, agent2, s, MODEL_SHA256)));
        vm.assertEq(nft.ownerOf(nft.tokenIdFor(alice, 1000)), fresh, "minted");
    }

    /// Mint of 1 data entry with one data contributor (one more storage slot: the contributors hash).
    function test_gas_mint_1entry_1contributor() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 1000);
        IAgentNFT.Shares memory s = shares(500, 1000, carol, 500);
        vm.prank(alice);
        _metered(address(nft), abi.encodeCall(nft.mint, (fresh, 1000, d, agent2, s, MODEL_SHA256)));
    }

    /// Mint of 3 data entries (model, agent key, config), as the runtime does.
    function test_gas_mint_3entries() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(3, 1000);
        IAgentNFT.Shares memory s = noShares();
        vm.prank(alice);
        _metered(address(nft), abi.encodeCall(nft.mint, (fresh, 1000, d, agent2, s, MODEL_SHA256)));
    }

    /// Transfer with a receiver-signed proof, 1 entry, to a receiver that owns no token yet and
    /// whose nonce word is fresh (the worst case: two zero-to-non-zero slots).
    function test_gas_transferWithProof_1entry_receiver() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 2000);
        uint256 deadline = block.timestamp + 1 hours;
        Offer memory o = offer(id, id, alice, bob, d, agent2, 1, deadline);
        IAgentNFT.Proof memory p = proof(Scopes.MODE_RECEIVER, 1, deadline, signOffer(BOB_PK, Scopes.MODE_RECEIVER, o));
        vm.prank(alice);
        _metered(address(nft), abi.encodeCall(nft.transferWithProof, (bob, id, d, agent2, p)));
        vm.assertEq(nft.ownerOf(id), bob, "moved");
    }

    /// The same receiver-signed transfer through ERC-7857's `iTransfer` (proof in the standard's
    /// encoding, see IAgentNFT.RotationEnvelope).
    function test_gas_iTransfer_1entry_receiver() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 2000);
        uint256 deadline = block.timestamp + 1 hours;
        Offer memory o = offer(id, id, alice, bob, d, agent2, 1, deadline);
        IAgentNFT.Proof memory p = proof(Scopes.MODE_RECEIVER, 1, deadline, signOffer(BOB_PK, Scopes.MODE_RECEIVER, o));
        TransferValidityProof[] memory ps =
            standardProofs(nft.dataHashesOf(id), d, nft.sealingKeyOf(bob), transferEnvelope(p, agent2));
        vm.prank(alice);
        _metered(address(nft), abi.encodeCall(nft.iTransfer, (bob, id, ps)));
        vm.assertEq(nft.ownerOf(id), bob, "moved");
    }

    /// Same with an oracle attestation.
    function test_gas_transferWithProof_1entry_oracle() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 2000);
        uint256 deadline = block.timestamp + 1 hours;
        Offer memory o = offer(id, id, alice, bob, d, agent2, 1, deadline);
        IAgentNFT.Proof memory p =
            proof(Scopes.MODE_ORACLE, 1, deadline, signOffer(ORACLE_PK, Scopes.MODE_ORACLE, o));
        vm.prank(alice);
        _metered(address(nft), abi.encodeCall(nft.transferWithProof, (bob, id, d, agent2, p)));
        vm.assertEq(nft.ownerOf(id), bob, "moved");
    }

    /// A receiver-signed sale whose seller left one ERC-20 approval open on the agent account:
    /// the NFT finds the account and closes it in the same transaction (H1).
    /// (The approval is made in setUp, a transaction of its own, so that nothing it touched is
    /// warm here.)
    function test_gas_transferWithProof_1entry_closes1Approval() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 2000);
        uint256 deadline = block.timestamp + 1 hours;
        Offer memory o = offer(approved, approved, alice, bob, d, agent2, 1, deadline);
        IAgentNFT.Proof memory p = proof(Scopes.MODE_RECEIVER, 1, deadline, signOffer(BOB_PK, Scopes.MODE_RECEIVER, o));
        vm.prank(alice);
        _metered(address(nft), abi.encodeCall(nft.transferWithProof, (bob, approved, d, agent2, p)));
        vm.assertEq(usd.allowance(accounts.accountOf(approved), mallory), 0, "closed");
    }

    /// A market sale completing: the oracle-attested rotation of 1 entry to the buyer, then the
    /// ERC-2981 royalty pushed to the creator and the rest to the seller (both EOAs holding ETH).
    function test_gas_completeSale_1entry_oracle() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 2000);
        uint256 deadline = block.timestamp + 1 hours;
        IAgentNFT.Proof memory p = saleProof(market, sold, d, agent2, 1, deadline);
        vm.prank(alice);
        _metered(address(market), abi.encodeCall(market.complete, (sold, d, agent2, p)));
        vm.assertEq(nft.ownerOf(sold), bob, "moved");
        vm.assertEq(carol.balance, 1.05 ether, "royalty paid");
    }

    /// One action appended to a chain that already has actions (the steady state).
    function test_gas_logActions_1() public {
        vm.pauseGasMetering();
        bytes32[] memory hs = _hashes(1);
        vm.prank(agent1);
        _metered(address(actionLog), abi.encodeCall(actionLog.logActions, (logged, 2, hs)));
    }

    /// The very first action of a token (head and seq slots go from zero to non-zero).
    function test_gas_logActions_1_firstEver() public {
        vm.pauseGasMetering();
        bytes32[] memory hs = _hashes(1);
        vm.prank(agent1);
        _metered(address(actionLog), abi.encodeCall(actionLog.logActions, (id, 1, hs)));
    }

    /// A batch of 32 actions (steady state); per action = figure / 32.
    function test_gas_logActions_32() public {
        vm.pauseGasMetering();
        bytes32[] memory hs = _hashes(32);
        vm.prank(agent1);
        _metered(address(actionLog), abi.encodeCall(actionLog.logActions, (logged, 2, hs)));
    }

    /// @dev The metered part: one CALL with calldata already encoded (the ABI encoding of nested
    /// arrays in a Solidity test would otherwise add ~14k gas that a real transaction does not pay).
    function _metered(address target, bytes memory callData) internal {
        vm.resumeGasMetering();
        (bool ok, bytes memory ret) = target.call(callData);
        vm.pauseGasMetering();
        if (!ok) {
            assembly {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }

    function _hashes(uint256 n) internal pure returns (bytes32[] memory hs) {
        hs = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            hs[i] = keccak256(abi.encode("action", i));
        }
    }
}

/// @dev A market sale of a token whose agent account is deployed and was used: the market reads
/// the account's ERC-6551 state at completion (cold account, its implementation, its state slot)
/// to check that it did not change since the buy. A contract of its own, so that GasTest's
/// figures stay comparable with earlier snapshots.
contract GasTestSaleWithAccount is Fixture {
    uint256 internal sold;
    AgentMarket internal market;

    function setUp() public override {
        super.setUp();
        market = new AgentMarket(nft);
        vm.prank(carol);
        sold = nft.mint(alice, 4, entries(1, 4), agent1, shares(500, 0, carol, 0), MODEL_SHA256);
        AgentAccount account = AgentAccount(payable(accounts.createAccount(sold)));
        vm.deal(address(account), 1 ether);
        vm.prank(agent1);
        account.execute(agent1, 0.5 ether, "", 0);
        vm.startPrank(alice);
        nft.approve(address(market), sold);
        market.list(sold, 1 ether, 1 hours);
        vm.stopPrank();
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        market.buy{value: 1 ether}(sold, BOB_SEALING_KEY, 1 hours);
        vm.deal(alice, 1 ether);
        vm.deal(carol, 1 ether);
    }

    /// As GasTest's completeSale (1 entry, oracle-attested, royalty and proceeds pushed to two
    /// EOAs holding ETH), with the account check reading a deployed account.
    function test_gas_completeSale_1entry_oracle_deployedAccount() public {
        vm.pauseGasMetering();
        IAgentNFT.DataEntries memory d = entries(1, 2000);
        uint256 deadline = block.timestamp + 1 hours;
        IAgentNFT.Proof memory p = saleProof(market, sold, d, agent2, 1, deadline);
        vm.prank(alice);
        vm.resumeGasMetering();
        (bool ok, bytes memory ret) = address(market).call(abi.encodeCall(market.complete, (sold, d, agent2, p)));
        vm.pauseGasMetering();
        if (!ok) {
            assembly {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        vm.assertEq(nft.ownerOf(sold), bob, "moved");
        vm.assertEq(carol.balance, 1.05 ether, "royalty paid");
    }
}
