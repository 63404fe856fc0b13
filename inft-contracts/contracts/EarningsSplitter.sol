// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IAgentNFT} from "./interfaces/IAgentNFT.sol";
import {IEarningsSplitter} from "./interfaces/IEarningsSplitter.sol";

/// @title EarningsSplitter
/// @notice Pull-payment split of an agent's earnings by the shares fixed at mint. See
/// IEarningsSplitter for the rounding rule (remainder to the holder, sums exact to the wei).
contract EarningsSplitter is IEarningsSplitter, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint256 private constant BPS = 10_000;
    uint8 private constant ROLE_CREATOR = 0;
    uint8 private constant ROLE_CONTRIBUTOR = 1;
    uint8 private constant ROLE_HOLDER = 2;

    /// @notice The NFT whose shares apply.
    IAgentNFT public immutable nft;

    mapping(address account => mapping(address token => uint256)) private _balances;

    /// @param nft_ the AgentNFT
    constructor(IAgentNFT nft_) {
        nft = nft_;
    }

    /// @inheritdoc IEarningsSplitter
    function deposit(uint256 tokenId, address[] calldata contributors, uint16[] calldata contributorBps)
        external
        payable
        nonReentrant
    {
        if (msg.value == 0) revert ZeroAmount();
        _split(tokenId, address(0), msg.value, contributors, contributorBps);
    }

    /// @inheritdoc IEarningsSplitter
    function depositToken(
        uint256 tokenId,
        address token,
        uint256 amount,
        address[] calldata contributors,
        uint16[] calldata contributorBps
    ) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (token == address(0)) revert ZeroAddress();
        // Credit what actually arrived (fee-on-transfer tokens deliver less than `amount`).
        uint256 before = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - before;
        if (received == 0) revert ZeroAmount();
        _split(tokenId, token, received, contributors, contributorBps);
    }

    /// @inheritdoc IEarningsSplitter
    function withdraw(address token, address to) external nonReentrant returns (uint256 amount) {
        if (to == address(0)) revert ZeroAddress();
        amount = _balances[msg.sender][token];
        if (amount == 0) revert ZeroAmount();
        _balances[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, to, amount);
        if (token == address(0)) {
            (bool ok,) = payable(to).call{value: amount}("");
            if (!ok) revert EthSendFailed(to);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    /// @inheritdoc IEarningsSplitter
    function balanceOf(address account, address token) external view returns (uint256) {
        return _balances[account][token];
    }

    function _split(
        uint256 tokenId,
        address token,
        uint256 amount,
        address[] calldata contributors,
        uint16[] calldata contributorBps
    ) private {
        (address creator, uint16 creatorBps, bytes32 contributorsHash, address holder) = nft.splitOf(tokenId);
        bytes32 given = contributors.length == 0 && contributorBps.length == 0
            ? bytes32(0)
            : keccak256(abi.encode(contributors, contributorBps));
        // A matching hash also proves the lengths agree (they were checked at mint).
        if (given != contributorsHash) revert WrongContributors(tokenId);

        emit Deposited(tokenId, token, msg.sender, amount);
        uint256 rest = amount;
        uint256 share = Math.mulDiv(amount, creatorBps, BPS);
        rest -= share;
        _credit(tokenId, token, creator, ROLE_CREATOR, share);
        for (uint256 i = 0; i < contributors.length; ++i) {
            share = Math.mulDiv(amount, contributorBps[i], BPS);
            rest -= share;
            _credit(tokenId, token, contributors[i], ROLE_CONTRIBUTOR, share);
        }
        // The holder at deposit time gets the remainder, so the credits sum to `amount` exactly.
        _credit(tokenId, token, holder, ROLE_HOLDER, rest);
    }

    function _credit(uint256 tokenId, address token, address account, uint8 role, uint256 amount) private {
        if (amount == 0) return;
        _balances[account][token] += amount;
        emit Credited(tokenId, token, account, role, amount);
    }
}
