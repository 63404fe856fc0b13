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
/// `allowance` view with the same signatures and semantics (expiration 0 = now), `permit` (an
/// allowance granted by the owner's signature: ERC-1271 for a contract owner such as an agent
/// account; the real Permit2's EIP-712 types are left out, only who must sign matters here), and
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

    /// The hash `owner` signs to grant `spender` an allowance by `permit`.
    function permitHash(address owner, address token, address spender, uint160 amount, uint48 expiration)
        public
        view
        returns (bytes32)
    {
        uint48 nonce = allowance[owner][token][spender].nonce;
        return keccak256(abi.encode(block.chainid, address(this), owner, token, spender, amount, expiration, nonce));
    }

    function permit(
        address owner,
        address token,
        address spender,
        uint160 amount,
        uint48 expiration,
        bytes calldata signature
    ) external {
        bytes32 h = permitHash(owner, token, spender, amount, expiration);
        require(IERC1271(owner).isValidSignature(h, signature) == IERC1271.isValidSignature.selector, "bad signature");
        Packed storage p = allowance[owner][token][spender];
        p.amount = amount;
        p.expiration = expiration;
        ++p.nonce;
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

/// @dev An OpenZeppelin 1.x StandardToken: allowances grow with `increaseApproval`.
contract OZ1Token is ERC20 {
    constructor() ERC20("OZ one", "OZ1") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function increaseApproval(address spender, uint256 added) external returns (bool) {
        _approve(msg.sender, spender, allowance(msg.sender, spender) + added);
        return true;
    }
}

/// @dev An ERC-6909 multi-token: per-id allowances and operators.
contract MockERC6909 {
    mapping(address owner => mapping(uint256 id => uint256)) public balanceOf;
    mapping(address owner => mapping(address spender => mapping(uint256 id => uint256))) public allowance;
    mapping(address owner => mapping(address spender => bool)) public isOperator;

    function mint(address to, uint256 id, uint256 amount) external {
        balanceOf[to][id] += amount;
    }

    function approve(address spender, uint256 id, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender][id] = amount;
        return true;
    }

    function setOperator(address spender, bool approved) external returns (bool) {
        isOperator[msg.sender][spender] = approved;
        return true;
    }

    function transferFrom(address sender, address receiver, uint256 id, uint256 amount) external returns (bool) {
        if (msg.sender != sender && !isOperator[sender][msg.sender]) {
            uint256 allowed = allowance[sender][msg.sender][id];
            require(allowed >= amount, "allowance");
            if (allowed != type(uint256).max) allowance[sender][msg.sender][id] = allowed - amount;
        }
        balanceOf[sender][id] -= amount;
        balanceOf[receiver][id] += amount;
        return true;
    }
}

/// @dev An ERC-404-style hybrid (as Pandora's reference): one `approve(address,uint256)` is an
/// NFT approval when its argument is a minted id, else an ERC-20 allowance; it answers both
/// `allowance` and `getApproved`/`ownerOf`.
contract MockERC404 {
    uint256 public minted;
    mapping(address owner => uint256) public balanceOf;
    mapping(address owner => mapping(address spender => uint256)) public allowance;
    mapping(uint256 id => address) public getApproved;
    mapping(uint256 id => address) internal _owners;

    /// Mints the next id to `to`, with its 1e18 units of the fungible side.
    function mintNft(address to) external returns (uint256 id) {
        id = ++minted;
        _owners[id] = to;
        balanceOf[to] += 1 ether;
    }

    function ownerOf(uint256 id) external view returns (address owner) {
        owner = _owners[id];
        require(owner != address(0), "not minted");
    }

    function approve(address spender, uint256 amountOrId) external returns (bool) {
        if (amountOrId <= minted && amountOrId > 0) {
            require(_owners[amountOrId] == msg.sender, "not the owner");
            getApproved[amountOrId] = spender;
        } else {
            allowance[msg.sender][spender] = amountOrId;
        }
        return true;
    }

    function transferFrom(address from, address to, uint256 amountOrId) external returns (bool) {
        if (amountOrId <= minted && amountOrId > 0) {
            require(_owners[amountOrId] == from, "not the owner");
            require(msg.sender == from || msg.sender == getApproved[amountOrId], "not approved");
            _owners[amountOrId] = to;
            delete getApproved[amountOrId];
            balanceOf[from] -= 1 ether;
            balanceOf[to] += 1 ether;
        } else {
            uint256 allowed = allowance[from][msg.sender];
            require(allowed >= amountOrId, "allowance");
            allowance[from][msg.sender] = allowed - amountOrId;
            balanceOf[from] -= amountOrId;
            balanceOf[to] += amountOrId;
        }
        return true;
    }
}
