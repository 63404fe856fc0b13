// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC721Receiver} from "@openzeppelin/contracts/token/ERC721/IERC721Receiver.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IAgentNFT} from "../../contracts/interfaces/IAgentNFT.sol";

/// @dev A contract wallet (ERC-1271) whose signer is one EOA; accepts ERC-721 tokens.
contract MockContractWallet is IERC1271, IERC721Receiver {
    address public immutable signer;

    constructor(address signer_) {
        signer = signer_;
    }

    function publishKey(IAgentNFT nft, bytes32 key) external {
        nft.setSealingKey(key);
    }

    function isValidSignature(bytes32 hash, bytes calldata sig) external view returns (bytes4) {
        return ECDSA.recover(hash, sig) == signer ? IERC1271.isValidSignature.selector : bytes4(0xffffffff);
    }

    function onERC721Received(address, address, uint256, bytes calldata) external pure returns (bytes4) {
        return IERC721Receiver.onERC721Received.selector;
    }
}

/// @dev A contract that cannot hold ERC-721 tokens.
contract NonReceiver {
    function publishKey(IAgentNFT nft, bytes32 key) external {
        nft.setSealingKey(key);
    }
}

/// @dev A call target for agent-account tests.
contract Target {
    uint256 public value;
    address public lastCaller;

    error Nope(uint256 code);

    function set(uint256 v) external payable returns (uint256) {
        value = v;
        lastCaller = msg.sender;
        return v * 2;
    }

    function fail(uint256 code) external pure {
        revert Nope(code);
    }
}

/// @dev A Uniswap-V2-like router: pulls exactly `amountIn` of `tokenIn` from the caller (as
/// Router02's swapExactTokensForTokens does) and pays the same amount of `tokenOut` to `to`.
contract MockRouter {
    function swap(IERC20 tokenIn, IERC20 tokenOut, uint256 amountIn, address to) external returns (uint256) {
        require(tokenIn.transferFrom(msg.sender, address(this), amountIn), "pull");
        require(tokenOut.transfer(to, amountIn), "pay");
        return amountIn;
    }
}

/// @dev An ERC-20 that refuses `approve(spender, 0)` (some real tokens do), so an allowance on it
/// cannot be closed.
contract NoZeroApproveToken is ERC20 {
    error ZeroApprovalRefused();

    constructor() ERC20("No Zero", "NZ") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function approve(address spender, uint256 value) public override returns (bool) {
        if (value == 0) revert ZeroApprovalRefused();
        return super.approve(spender, value);
    }
}

/// @dev A plain ERC-721 (and ERC-1155-style operator approvals through setApprovalForAll).
contract MockERC721 is ERC721 {
    constructor() ERC721("Mock", "MCK") {}

    function mint(address to, uint256 id) external {
        _mint(to, id);
    }
}

/// @dev The AllowanceTransfer part of Uniswap's Permit2 that matters here: `approve` and the
/// `allowance` view with the same signatures and semantics (expiration 0 = now), and
/// `transferFrom` pulling through the ERC-20 allowance the owner gave Permit2.
contract MockPermit2 {
    struct Packed {
        uint160 amount;
        uint48 expiration;
        uint48 nonce;
    }

    mapping(address user => mapping(address token => mapping(address spender => Packed))) public allowance;

    function approve(address token, address spender, uint160 amount, uint48 expiration) external {
        Packed storage p = allowance[msg.sender][token][spender];
        p.amount = amount;
        p.expiration = expiration == 0 ? uint48(block.timestamp) : expiration;
    }

    function transferFrom(address from, address to, uint160 amount, address token) external {
        Packed storage p = allowance[from][token][msg.sender];
        require(block.timestamp <= p.expiration, "expired");
        require(p.amount >= amount, "allowance");
        if (p.amount != type(uint160).max) p.amount -= amount;
        require(IERC20(token).transferFrom(from, to, amount), "pull");
    }
}

/// @dev An ERC-20 with the pre-OZ-5 `increaseAllowance` and ERC-1363-shaped `approveAndCall`
/// (the callback is left out: only the allowance matters here).
contract LegacyToken is ERC20 {
    constructor() ERC20("Legacy", "LGC") {}

    function increaseAllowance(address spender, uint256 added) external returns (bool) {
        _approve(msg.sender, spender, allowance(msg.sender, spender) + added);
        return true;
    }

    function approveAndCall(address spender, uint256 value) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    function approveAndCall(address spender, uint256 value, bytes calldata) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }
}

/// @dev Answers `approve(address,uint256)` but neither `allowance` nor `getApproved`: what it
/// approved cannot be read back.
contract ApproveOnly {
    function approve(address, uint256) external pure returns (bool) {
        return true;
    }
}
