// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @dev The cheatcodes these tests use (forge's HEVM at the standard address). forge-std is not on
/// npm in a usable version and nothing may be fetched from git here, so this is a small local
/// subset; assertions use forge's native `vm.assert*` cheatcodes, which revert with a message.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256) external;
    function roll(uint256) external;
    function chainId(uint256) external;
    function deal(address, uint256) external;
    function prank(address) external;
    function startPrank(address) external;
    function stopPrank() external;
    function addr(uint256) external pure returns (address);
    function sign(uint256, bytes32) external pure returns (uint8, bytes32, bytes32);
    function label(address, string calldata) external;
    function expectRevert() external;
    function expectRevert(bytes4) external;
    function expectRevert(bytes calldata) external;
    function expectEmit() external;
    function expectEmit(address) external;
    function expectEmit(bool, bool, bool, bool) external;
    function expectEmit(bool, bool, bool, bool, address) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
    function pauseGasMetering() external;
    function resumeGasMetering() external;
    function assume(bool) external pure;
    function snapshotState() external returns (uint256);
    function revertToState(uint256) external returns (bool);

    function assertTrue(bool, string calldata) external pure;
    function assertFalse(bool, string calldata) external pure;
    function assertEq(uint256, uint256, string calldata) external pure;
    function assertEq(address, address, string calldata) external pure;
    function assertEq(bytes32, bytes32, string calldata) external pure;
    function assertEq(bool, bool, string calldata) external pure;
    function assertEq(bytes calldata, bytes calldata, string calldata) external pure;
    function assertEq(string calldata, string calldata, string calldata) external pure;
    function assertEq(bytes32[] calldata, bytes32[] calldata, string calldata) external pure;
    function assertGt(uint256, uint256, string calldata) external pure;
    function expectPartialRevert(bytes4) external;
    function assertLe(uint256, uint256, string calldata) external pure;
    function assertGe(uint256, uint256, string calldata) external pure;
}

/// @dev Minimal test base: the cheatcode handle, `bound`, and the invariant-target hooks that forge
/// calls by name (`targetContracts`, `targetSelectors`).
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @dev forge reads this to recognise test contracts.
    bool public IS_TEST = true;

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetSelector(FuzzSelector memory s) internal {
        _targetSelectors.push(s);
    }

    /// @dev Read by forge's invariant runner.
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    /// @dev Read by forge's invariant runner.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    /// @dev Map `x` into [min, max] (like forge-std's bound, without the console log).
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        uint256 size = max - min + 1;
        if (size == 0) return x; // full range
        return min + (x % size);
    }
}
