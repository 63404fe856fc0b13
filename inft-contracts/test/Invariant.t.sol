// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Fixture, Signing} from "./utils/Fixture.sol";
import {AgentNFT} from "../contracts/AgentNFT.sol";
import {TransferVerifier} from "../contracts/TransferVerifier.sol";
import {ActionLog} from "../contracts/ActionLog.sol";
import {EarningsSplitter} from "../contracts/EarningsSplitter.sol";
import {IAgentNFT} from "../contracts/interfaces/IAgentNFT.sol";
import {Scopes} from "../contracts/interfaces/Scopes.sol";

/// @dev Drives the system with random sequences of legitimate and hostile operations and keeps a
/// ghost model of what must be true. Hostile operations that unexpectedly succeed set a flag.
contract Handler is Signing {
    uint256 internal constant ACTORS = 4;
    uint256 internal constant AGENT_KEYS = 64;

    uint256[] public tokens;
    mapping(uint256 => address) public ghostOwner;
    mapping(uint256 => bytes32) public ghostDataHash;
    mapping(uint256 => address) public ghostAgent;
    mapping(uint256 => bytes32) public ghostHead;
    mapping(uint256 => uint64) public ghostSeq;
    mapping(uint256 => bytes) internal lastTransferCall;
    mapping(uint256 => bytes) internal lastLogCall;

    uint256 public deposited;
    uint256 public withdrawn;
    uint256 public nextAgent = 1;
    uint256 public nonce;
    uint96 public salt;

    bool public plainTransferMoved;
    bool public replayAccepted;
    bool public duplicateLogAccepted;
    bool public strangerLogAccepted;

    uint256 public calls;

    constructor(AgentNFT nft_, TransferVerifier verifier_, ActionLog log_, EarningsSplitter splitter_) {
        nft = nft_;
        verifier = verifier_;
        actionLog = log_;
        splitter = splitter_;
    }

    function actorPk(uint256 seed) public pure returns (uint256) {
        return 0x1000 + (seed % ACTORS);
    }

    function actor(uint256 seed) public pure returns (address) {
        return vm.addr(actorPk(seed));
    }

    function actorCount() external pure returns (uint256) {
        return ACTORS;
    }

    function tokenCount() external view returns (uint256) {
        return tokens.length;
    }

    function _freshAgent() internal returns (address) {
        return vm.addr(0xA0000 + (nextAgent++ % AGENT_KEYS) + 1);
    }

    function _agentPk(address agent) internal pure returns (uint256) {
        for (uint256 i = 1; i <= AGENT_KEYS; ++i) {
            if (vm.addr(0xA0000 + i) == agent) return 0xA0000 + i;
        }
        return 0;
    }

    // ------------------------------------------------------------ operations

    function mint(uint256 actorSeed) external {
        calls++;
        address minter = actor(actorSeed);
        IAgentNFT.DataEntries memory d = entries(1, uint256(keccak256(abi.encode("mint", salt))));
        address agent = _freshAgent();
        vm.prank(minter);
        uint256 id = nft.mint(minter, ++salt, d, agent, shares(0, 1000, address(0xC0), 500), MODEL_SHA256);
        tokens.push(id);
        ghostOwner[id] = minter;
        ghostDataHash[id] = d.dataHashes[0];
        ghostAgent[id] = agent;
    }

    function transfer(uint256 tokenSeed, uint256 toSeed, bool oracleMode) external {
        if (tokens.length == 0) return;
        calls++;
        uint256 id = tokens[tokenSeed % tokens.length];
        address from = ghostOwner[id];
        uint256 toPk = actorPk(toSeed);
        address to = vm.addr(toPk);
        if (to == from) return;
        if (nft.sealingKeyOf(to) == bytes32(0)) {
            vm.prank(to);
            nft.setSealingKey(keccak256(abi.encode("key", to)));
        }
        IAgentNFT.DataEntries memory d = entries(1, uint256(keccak256(abi.encode("rot", ++nonce))));
        address agent = _freshAgent();
        if (agent == ghostAgent[id]) agent = _freshAgent();
        uint256 deadline = block.timestamp + 1 hours;
        uint8 mode = oracleMode ? Scopes.MODE_ORACLE : Scopes.MODE_RECEIVER;
        Offer memory o = offer(id, id, from, to, d, agent, nonce, deadline);
        bytes memory sig = signOffer(oracleMode ? 0x0AC1E : toPk, mode, o);
        bytes memory cd = abi.encodeCall(nft.transferWithProof, (to, id, d, agent, proof(mode, nonce, deadline, sig)));
        vm.prank(from);
        (bool ok,) = address(nft).call(cd);
        require(ok, "legitimate transfer failed");
        lastTransferCall[id] = cd;
        ghostOwner[id] = to;
        ghostDataHash[id] = d.dataHashes[0];
        ghostAgent[id] = agent;
    }

    function plainTransfer(uint256 tokenSeed, uint256 toSeed, bool safe) external {
        if (tokens.length == 0) return;
        calls++;
        uint256 id = tokens[tokenSeed % tokens.length];
        address from = ghostOwner[id];
        address to = actor(toSeed);
        vm.prank(from);
        bool ok;
        if (safe) {
            (ok,) = address(nft).call(abi.encodeWithSignature("safeTransferFrom(address,address,uint256)", from, to, id));
        } else {
            (ok,) = address(nft).call(abi.encodeCall(nft.transferFrom, (from, to, id)));
        }
        if (ok) plainTransferMoved = true;
    }

    function replayTransfer(uint256 tokenSeed) external {
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        bytes memory cd = lastTransferCall[id];
        if (cd.length == 0) return;
        calls++;
        // replayed by the current owner, and by the previous one
        vm.prank(ghostOwner[id]);
        (bool ok,) = address(nft).call(cd);
        if (ok) replayAccepted = true;
    }

    function logActions(uint256 tokenSeed, uint8 count, uint256 seed) external {
        if (tokens.length == 0) return;
        calls++;
        uint256 id = tokens[tokenSeed % tokens.length];
        uint256 n = bound(count, 1, 8);
        bytes32[] memory hs = new bytes32[](n);
        bytes32 head = ghostHead[id];
        for (uint256 i = 0; i < n; ++i) {
            hs[i] = keccak256(abi.encode(seed, i));
            head = keccak256(abi.encode(head, hs[i]));
        }
        bytes memory cd = abi.encodeCall(actionLog.logActions, (id, ghostSeq[id] + 1, hs));
        vm.prank(ghostAgent[id]);
        (bool ok,) = address(actionLog).call(cd);
        require(ok, "agent log failed");
        lastLogCall[id] = cd;
        ghostHead[id] = head;
        ghostSeq[id] += uint64(n);
    }

    function retryLastLog(uint256 tokenSeed) external {
        if (tokens.length == 0) return;
        uint256 id = tokens[tokenSeed % tokens.length];
        bytes memory cd = lastLogCall[id];
        if (cd.length == 0) return;
        calls++;
        vm.prank(ghostAgent[id]);
        (bool ok,) = address(actionLog).call(cd);
        if (ok) duplicateLogAccepted = true;
    }

    function strangerLog(uint256 tokenSeed, uint256 who) external {
        if (tokens.length == 0) return;
        calls++;
        uint256 id = tokens[tokenSeed % tokens.length];
        address stranger = actor(who);
        if (stranger == ghostOwner[id]) return;
        bytes32[] memory hs = new bytes32[](1);
        vm.prank(stranger);
        (bool ok,) = address(actionLog).call(abi.encodeCall(actionLog.logActions, (id, ghostSeq[id] + 1, hs)));
        if (ok) strangerLogAccepted = true;
    }

    function deposit(uint256 tokenSeed, uint256 amount) external {
        if (tokens.length == 0) return;
        calls++;
        uint256 id = tokens[tokenSeed % tokens.length];
        amount = bound(amount, 1, 100 ether);
        vm.deal(address(this), amount);
        address[] memory cs = new address[](1);
        cs[0] = address(0xC0);
        uint16[] memory bps = new uint16[](1);
        bps[0] = 500;
        splitter.deposit{value: amount}(id, cs, bps);
        deposited += amount;
    }

    function withdraw(uint256 actorSeed) external {
        calls++;
        address who = actor(actorSeed);
        uint256 owed = splitter.balanceOf(who, address(0));
        if (owed == 0) return;
        vm.prank(who);
        splitter.withdraw(address(0), who);
        withdrawn += owed;
    }
}

contract InvariantTest is Fixture {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new Handler(nft, verifier, actionLog, splitter);
        bytes4[] memory selectors = new bytes4[](9);
        selectors[0] = Handler.mint.selector;
        selectors[1] = Handler.transfer.selector;
        selectors[2] = Handler.plainTransfer.selector;
        selectors[3] = Handler.replayTransfer.selector;
        selectors[4] = Handler.logActions.selector;
        selectors[5] = Handler.retryLastLog.selector;
        selectors[6] = Handler.strangerLog.selector;
        selectors[7] = Handler.deposit.selector;
        selectors[8] = Handler.withdraw.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
        targetContract(address(handler));
    }

    function invariant_hostileOperationsNeverSucceed() public view {
        vm.assertFalse(handler.plainTransferMoved(), "a plain transfer moved a private token");
        vm.assertFalse(handler.replayAccepted(), "a replayed proof was accepted");
        vm.assertFalse(handler.duplicateLogAccepted(), "a repeated batch was accepted");
        vm.assertFalse(handler.strangerLogAccepted(), "a stranger appended to the log");
    }

    function invariant_tokensMatchGhost() public view {
        uint256 n = handler.tokenCount();
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = handler.tokens(i);
            vm.assertEq(nft.ownerOf(id), handler.ghostOwner(id), "owner");
            vm.assertEq(nft.dataHashesOf(id)[0], handler.ghostDataHash(id), "data hash");
            vm.assertEq(nft.agentOf(id), handler.ghostAgent(id), "agent");
        }
    }

    function invariant_chainsMatchGhost() public view {
        uint256 n = handler.tokenCount();
        for (uint256 i = 0; i < n; ++i) {
            uint256 id = handler.tokens(i);
            (bytes32 head, uint64 seq) = actionLog.chainOf(id);
            vm.assertEq(head, handler.ghostHead(id), "head");
            vm.assertEq(uint256(seq), uint256(handler.ghostSeq(id)), "seq");
        }
    }

    /// The splitter holds exactly what it owes: deposits minus withdrawals, all credited.
    function invariant_splitterSolvent() public view {
        uint256 owed = splitter.balanceOf(address(0xC0), address(0));
        for (uint256 i = 0; i < handler.actorCount(); ++i) {
            owed += splitter.balanceOf(handler.actor(i), address(0));
        }
        vm.assertEq(address(splitter).balance, handler.deposited() - handler.withdrawn(), "balance");
        vm.assertEq(owed, address(splitter).balance, "credits == balance");
    }
}
