// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {MockContractWallet} from "./utils/Mocks.sol";
import {Target} from "./utils/Mocks.sol";
import {TestToken} from "../contracts/TestToken.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";
import {IERC6551Account, IERC6551Executable, IERC6551Registry} from "../contracts/interfaces/IERC6551.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// ERC-6551 conformance of the agent account, driven only through the specification's interfaces
/// (IERC6551Registry, IERC6551Account, IERC6551Executable) and ERC-165 / ERC-1271. The NFT is
/// used only to set up who controls the token (mint, authorize, pause, transfer).
contract AgentAccount6551Test is Fixture {
    // Values the specification states (not computed from our code).
    bytes4 internal constant IERC165_ID = 0x01ffc9a7;
    bytes4 internal constant IERC6551_ACCOUNT_ID = 0x6faff5f1;
    bytes4 internal constant IERC6551_EXECUTABLE_ID = 0x51945447;
    bytes4 internal constant IERC1271_ID = 0x1626ba7e;
    bytes4 internal constant IERC721_RECEIVER_ID = 0x150b7a02;
    bytes4 internal constant IERC1155_RECEIVER_ID = 0x4e2312e0;
    bytes4 internal constant VALID_SIGNER = 0x523e3260;
    bytes4 internal constant VALID_SIGNATURE = 0x1626ba7e;

    /// The canonical ERC-6551 registry's init code, from the specification's deployment transaction.
    bytes internal constant CANONICAL_REGISTRY_INITCODE =
        hex"608060405234801561001057600080fd5b5061023b806100206000396000f3fe608060405234801561001057600080fd5b50600436106100365760003560e01c8063246a00211461003b5780638a54c52f1461006a575b600080fd5b61004e6100493660046101b7565b61007d565b6040516001600160a01b03909116815260200160405180910390f35b61004e6100783660046101b7565b6100e1565b600060806024608c376e5af43d82803e903d91602b57fd5bf3606c5285605d52733d60ad80600a3d3981f3363d3d373d3d3d363d7360495260ff60005360b76055206035523060601b60015284601552605560002060601b60601c60005260206000f35b600060806024608c376e5af43d82803e903d91602b57fd5bf3606c5285605d52733d60ad80600a3d3981f3363d3d373d3d3d363d7360495260ff60005360b76055206035523060601b600152846015526055600020803b61018b578560b760556000f580610157576320188a596000526004601cfd5b80606c52508284887f79f19b3655ee38b1ce526556b7731a20c8f218fbda4a3990b6cc4172fdf887226060606ca46020606cf35b8060601b60601c60005260206000f35b80356001600160a01b03811681146101b257600080fd5b919050565b600080600080600060a086880312156101cf57600080fd5b6101d88661019b565b945060208601359350604086013592506101f46060870161019b565b94979396509194608001359291505056fea2646970667358221220ea2fe53af507453c64dd7c1db05549fa47a298dfb825d6d11e1689856135f16764736f6c63430008110033";

    /// Error selectors of our account and factory, written out as signatures (no import of them).
    bytes4 internal constant NOT_ALLOWED = bytes4(keccak256("NotAllowed(address)"));
    bytes4 internal constant UNSUPPORTED_OPERATION = bytes4(keccak256("UnsupportedOperation(uint8)"));
    bytes4 internal constant UNSUPPORTED_ACCOUNT = bytes4(keccak256("UnsupportedAccount(address,bytes32,uint256,address)"));
    bytes4 internal constant NOT_TOKEN_ACCOUNT = bytes4(keccak256("NotTokenAccount(uint256,address)"));

    IERC6551Registry internal registry;
    address internal implementation;
    uint256 internal id;
    address payable internal acct;
    Target internal target;

    function setUp() public override {
        super.setUp();
        registry = IERC6551Registry(address(accounts));
        implementation = accounts.implementation();
        id = mintAs(alice, alice, 1, 1, agent1);
        acct = payable(registry.createAccount(implementation, bytes32(0), block.chainid, address(nft), id));
        vm.deal(acct, 5 ether);
        target = new Target();
    }

    function account() internal view returns (IERC6551Account) {
        return IERC6551Account(acct);
    }

    function executable() internal view returns (IERC6551Executable) {
        return IERC6551Executable(acct);
    }

    function signer(address who) internal view returns (bytes4) {
        return account().isValidSigner(who, "");
    }

    function callSet(address caller, uint256 v) internal returns (bytes memory) {
        vm.prank(caller);
        return executable().execute(address(target), 0, abi.encodeCall(Target.set, (v)), 0);
    }

    function expectNotAllowed(address caller) internal {
        vm.prank(caller);
        vm.expectRevert(abi.encodeWithSelector(NOT_ALLOWED, caller));
        executable().execute(address(target), 0, abi.encodeCall(Target.set, (1)), 0);
    }

    // ------------------------------------------------------------------ registry

    /// The account address of the canonical registry's scheme (written out from the specification).
    function specAddress(address deployer, bytes32 salt, uint256 chainId, address tokenContract, uint256 tokenId)
        internal
        view
        returns (address)
    {
        bytes memory init = abi.encodePacked(
            hex"3d60ad80600a3d3981f3363d3d373d3d3d363d73",
            implementation,
            hex"5af43d82803e903d91602b57fd5bf3",
            abi.encode(salt, chainId, tokenContract, tokenId)
        );
        return address(uint160(uint256(keccak256(abi.encodePacked(hex"ff", deployer, salt, keccak256(init))))));
    }

    function test_registry_createAccount_and_account_agree() public {
        uint256 id2 = mintAs(alice, bob, 2, 1, agent2);
        address predicted = registry.account(implementation, bytes32(0), block.chainid, address(nft), id2);
        vm.assertEq(predicted, specAddress(address(registry), bytes32(0), block.chainid, address(nft), id2), "spec address");
        vm.assertEq(predicted, accounts.accountOf(id2), "accountOf agrees");
        vm.assertEq(predicted.code.length, 0, "counterfactual");

        vm.expectEmit(true, true, true, true, address(registry));
        emit IERC6551Registry.ERC6551AccountCreated(predicted, implementation, bytes32(0), block.chainid, address(nft), id2);
        address created = registry.createAccount(implementation, bytes32(0), block.chainid, address(nft), id2);
        vm.assertEq(created, predicted, "created at the computed address");

        // Idempotent: the same address, no second event.
        vm.recordLogs();
        vm.assertEq(registry.createAccount(implementation, bytes32(0), block.chainid, address(nft), id2), predicted, "again");
        vm.assertEq(vm.getRecordedLogs().length, 0, "no event the second time");
        vm.assertEq(accounts.createAccount(id2), predicted, "createAccount(tokenId) agrees");
    }

    /// The deployed code is the specification's: ERC-1167 proxy, then (salt, chainId, tokenContract, tokenId).
    function test_account_code_layout() public view {
        bytes memory expected = abi.encodePacked(
            hex"363d3d373d3d3d363d73",
            implementation,
            hex"5af43d82803e903d91602b57fd5bf3",
            abi.encode(bytes32(0), block.chainid, address(nft), id)
        );
        vm.assertEq(acct.code, expected, "ERC-6551 bytecode");
    }

    function test_registry_refuses_foreign_accounts() public {
        address other = address(new Target());
        bytes memory err;
        err = abi.encodeWithSelector(UNSUPPORTED_ACCOUNT, other, bytes32(0), block.chainid, address(nft));
        vm.expectRevert(err);
        registry.createAccount(other, bytes32(0), block.chainid, address(nft), id);
        err = abi.encodeWithSelector(UNSUPPORTED_ACCOUNT, implementation, bytes32(uint256(1)), block.chainid, address(nft));
        vm.expectRevert(err);
        registry.createAccount(implementation, bytes32(uint256(1)), block.chainid, address(nft), id);
        err = abi.encodeWithSelector(UNSUPPORTED_ACCOUNT, implementation, bytes32(0), block.chainid + 1, address(nft));
        vm.expectRevert(err);
        registry.createAccount(implementation, bytes32(0), block.chainid + 1, address(nft), id);
        err = abi.encodeWithSelector(UNSUPPORTED_ACCOUNT, implementation, bytes32(0), block.chainid, other);
        vm.expectRevert(err);
        registry.createAccount(implementation, bytes32(0), block.chainid, other, id);
        // account() still computes any address, as the specification's registry does.
        address foreign = registry.account(implementation, bytes32(0), block.chainid + 1, address(nft), id);
        vm.assertEq(foreign, specAddress(address(registry), bytes32(0), block.chainid + 1, address(nft), id), "computed");
        vm.assertTrue(foreign != acct, "another chain, another address");
    }

    // ------------------------------------------------------------------ account

    function test_token_isConstant() public {
        (uint256 chainId, address tokenContract, uint256 tokenId) = account().token();
        vm.assertEq(chainId, block.chainid, "chain");
        vm.assertEq(tokenContract, address(nft), "token contract");
        vm.assertEq(tokenId, id, "token id");
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        vm.chainId(block.chainid + 5);
        (uint256 c2, address t2, uint256 i2) = account().token();
        vm.assertEq(c2, chainId, "same chain id after a transfer and on a fork");
        vm.assertEq(t2, tokenContract, "same contract");
        vm.assertEq(i2, tokenId, "same id");
    }

    function test_receivesEther() public {
        vm.deal(bob, 1 ether);
        vm.prank(bob);
        (bool ok,) = acct.call{value: 1 ether}("");
        vm.assertTrue(ok, "receive");
        vm.assertEq(acct.balance, 6 ether, "balance");
    }

    function test_isValidSigner_followsTheToken() public {
        vm.assertEq(signer(alice), VALID_SIGNER, "owner");
        vm.assertEq(signer(agent1), VALID_SIGNER, "agent");
        vm.assertEq(signer(mallory), bytes4(0), "stranger");
        vm.assertEq(signer(address(0)), bytes4(0), "zero address");
        vm.assertEq(account().isValidSigner(alice, hex"c0ffee"), VALID_SIGNER, "context ignored");

        // An executor: a TRADE grant, live until its expiry; a RUN-only grant is not enough.
        vm.startPrank(alice);
        nft.authorize(id, carol, Scopes.TRADE, uint64(block.timestamp + 100), new bytes[](0));
        nft.authorize(id, bob, Scopes.RUN, uint64(block.timestamp + 100), new bytes[](0));
        vm.stopPrank();
        vm.assertEq(signer(carol), VALID_SIGNER, "TRADE executor");
        vm.assertEq(signer(bob), bytes4(0), "RUN only");
        vm.warp(block.timestamp + 100);
        vm.assertEq(signer(carol), bytes4(0), "expired executor");

        // Paused: only the owner.
        vm.prank(alice);
        nft.setPaused(id, true);
        vm.assertEq(signer(agent1), bytes4(0), "paused agent");
        vm.assertEq(signer(alice), VALID_SIGNER, "owner while paused");

        // After a transfer: the new owner and agent, nobody of before.
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        vm.assertEq(signer(alice), bytes4(0), "old owner");
        vm.assertEq(signer(agent1), bytes4(0), "old agent");
        vm.assertEq(signer(bob), VALID_SIGNER, "new owner");
        vm.assertEq(signer(agent2), VALID_SIGNER, "new agent");
    }

    function test_execute_ownerAgentExecutor() public {
        bytes memory ret = callSet(alice, 1);
        vm.assertEq(abi.decode(ret, (uint256)), 2, "owner call result");
        callSet(agent1, 2);
        vm.assertEq(target.lastCaller(), acct, "called from the account");
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.TRADE, uint64(block.timestamp + 100), new bytes[](0));
        callSet(carol, 3);
        vm.assertEq(target.value(), 3, "executor call");

        vm.prank(agent1);
        executable().execute(bob, 1 ether, "", 0);
        vm.assertEq(bob.balance, 1 ether, "value sent");
    }

    function test_execute_refused_strangerExpiredTransferred() public {
        expectNotAllowed(mallory);
        vm.prank(alice);
        nft.authorize(id, carol, Scopes.TRADE, uint64(block.timestamp + 100), new bytes[](0));
        vm.warp(block.timestamp + 100);
        expectNotAllowed(carol);

        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        expectNotAllowed(alice);
        expectNotAllowed(agent1);
        callSet(bob, 4);
        callSet(agent2, 5);
        vm.assertEq(target.value(), 5, "new controllers");
    }

    function test_execute_bubblesRevert() public {
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Target.Nope.selector, 9));
        executable().execute(address(target), 0, abi.encodeCall(Target.fail, (9)), 0);
    }

    /// DELEGATECALL (1), CREATE (2), CREATE2 (3) and anything else are refused, even for the owner.
    function test_execute_onlyCall() public {
        for (uint8 op = 1; op <= 4; ++op) {
            vm.prank(alice);
            vm.expectRevert(abi.encodeWithSelector(UNSUPPORTED_OPERATION, op));
            executable().execute(address(target), 0, abi.encodeCall(Target.set, (1)), op);
        }
    }

    function testFuzz_execute_operationNotCall_refused(uint8 op) public {
        vm.assume(op != 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(UNSUPPORTED_OPERATION, op));
        executable().execute(address(target), 0, "", op);
    }

    function test_state_changesOnEveryExecute() public {
        uint256 s0 = account().state();
        callSet(alice, 1);
        uint256 s1 = account().state();
        vm.assertTrue(s1 != s0, "owner execute");
        callSet(agent1, 1); // same call, same effect on the target: the state still moves
        uint256 s2 = account().state();
        vm.assertTrue(s2 != s1, "agent execute");

        // A refused or reverted execute changes nothing.
        expectNotAllowed(mallory);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(Target.Nope.selector, 1));
        executable().execute(address(target), 0, abi.encodeCall(Target.fail, (1)), 0);
        vm.assertEq(account().state(), s2, "unchanged by failures");

        // Views do not move it.
        account().isValidSigner(alice, "");
        account().token();
        vm.assertEq(account().state(), s2, "unchanged by views");
    }

    function test_supportsInterface() public view {
        IERC165 a = IERC165(acct);
        vm.assertEq(type(IERC6551Account).interfaceId, IERC6551_ACCOUNT_ID, "spec id of IERC6551Account");
        vm.assertEq(type(IERC6551Executable).interfaceId, IERC6551_EXECUTABLE_ID, "spec id of IERC6551Executable");
        vm.assertTrue(a.supportsInterface(IERC165_ID), "IERC165");
        vm.assertTrue(a.supportsInterface(IERC6551_ACCOUNT_ID), "IERC6551Account");
        vm.assertTrue(a.supportsInterface(IERC6551_EXECUTABLE_ID), "IERC6551Executable");
        vm.assertTrue(a.supportsInterface(IERC1271_ID), "IERC1271");
        vm.assertTrue(a.supportsInterface(IERC721_RECEIVER_ID), "IERC721Receiver");
        vm.assertTrue(a.supportsInterface(IERC1155_RECEIVER_ID), "IERC1155Receiver");
        vm.assertFalse(a.supportsInterface(0xffffffff), "0xffffffff");
        vm.assertFalse(a.supportsInterface(0x12345678), "random id");
    }

    // ------------------------------------------------------------------ ERC-1271

    bytes32 internal constant ACCOUNT_MESSAGE_TYPEHASH = keccak256("AgentAccountMessage(bytes32 hash)");

    function accountDigest(bytes32 h) internal view returns (bytes32) {
        bytes32 domain =
            keccak256(abi.encode(DOMAIN_TYPEHASH, keccak256("AgentAccount"), keccak256("1"), block.chainid, acct));
        return keccak256(abi.encodePacked(hex"1901", domain, keccak256(abi.encode(ACCOUNT_MESSAGE_TYPEHASH, h))));
    }

    function sign(uint256 pk, bytes32 h) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, accountDigest(h));
        return abi.encodePacked(r, s, v);
    }

    function test_isValidSignature_owner() public {
        bytes32 h = keccak256("order");
        vm.assertEq(IERC1271(acct).isValidSignature(h, sign(ALICE_PK, h)), VALID_SIGNATURE, "owner");
        vm.assertTrue(IERC1271(acct).isValidSignature(h, sign(MALLORY_PK, h)) != VALID_SIGNATURE, "stranger");
        vm.assertTrue(IERC1271(acct).isValidSignature(h, hex"00") != VALID_SIGNATURE, "malformed");
        receiverTransfer(id, bob, BOB_PK, 7, agent2, 1);
        vm.assertTrue(IERC1271(acct).isValidSignature(h, sign(ALICE_PK, h)) != VALID_SIGNATURE, "old owner");
        vm.assertEq(IERC1271(acct).isValidSignature(h, sign(BOB_PK, h)), VALID_SIGNATURE, "new owner");
    }

    /// A contract owning the token (a multisig, a smart wallet) signs through its own ERC-1271.
    function test_isValidSignature_contractOwner() public {
        MockContractWallet wallet = new MockContractWallet(carol);
        uint256 id2 = mintAs(alice, address(wallet), 3, 1, agent2);
        acct = payable(registry.createAccount(implementation, bytes32(0), block.chainid, address(nft), id2));
        bytes32 h = keccak256("order");
        vm.assertEq(IERC1271(acct).isValidSignature(h, sign(CAROL_PK, h)), VALID_SIGNATURE, "wallet's signer");
        vm.assertTrue(IERC1271(acct).isValidSignature(h, sign(ALICE_PK, h)) != VALID_SIGNATURE, "not the wallet's");
        vm.assertEq(signer(address(wallet)), VALID_SIGNER, "the wallet is a valid signer");
    }

    // ------------------------------------------------------------------ other chains, other registries

    /// On a chain other than its token's, the account has no valid signer.
    function test_otherChain_noSigner() public {
        vm.chainId(block.chainid + 1);
        vm.assertEq(signer(alice), bytes4(0), "owner on another chain");
        expectNotAllowed(alice);
        bytes32 h = keccak256("order");
        vm.assertTrue(IERC1271(acct).isValidSignature(h, sign(ALICE_PK, h)) != VALID_SIGNATURE, "no signature");
    }

    /// The canonical registry (its bytecode from the specification) can create our account too; it
    /// works, but at another address than accountOf, which is the only account the NFT trusts: the
    /// owner cannot leave an approval open on it (the NFT refuses to record it), so no approval of
    /// that account outlives a sale either.
    function test_canonicalRegistry_createsWorkingButUntrustedAccount() public {
        bytes memory init = CANONICAL_REGISTRY_INITCODE;
        address canonical;
        assembly {
            canonical := create(0, add(init, 0x20), mload(init))
        }
        vm.assertTrue(canonical != address(0), "registry deployed");
        IERC6551Registry reg = IERC6551Registry(canonical);
        address predicted = reg.account(implementation, bytes32(0), block.chainid, address(nft), id);
        vm.assertEq(predicted, specAddress(canonical, bytes32(0), block.chainid, address(nft), id), "same scheme");
        address other = reg.createAccount(implementation, bytes32(0), block.chainid, address(nft), id);
        vm.assertEq(other, predicted, "created");
        vm.assertTrue(other != acct, "not the NFT's account");

        (uint256 chainId, address tokenContract, uint256 tokenId) = IERC6551Account(payable(other)).token();
        vm.assertEq(chainId, block.chainid, "chain");
        vm.assertEq(tokenContract, address(nft), "contract");
        vm.assertEq(tokenId, id, "id");
        vm.assertEq(IERC6551Account(payable(other)).isValidSigner(alice, ""), VALID_SIGNER, "owner");

        TestToken usd = new TestToken("USD", "USD", 18);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(NOT_TOKEN_ACCOUNT, id, other));
        IERC6551Executable(other).execute(address(usd), 0, abi.encodeCall(usd.approve, (mallory, 1)), 0);
    }
}
