// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title IEarningsSplitter
/// @notice Splits an agent's earnings between its creator, data contributors and holder, by the
/// shares fixed at mint, with pull payments.
///
/// The NFT stores only keccak256(abi.encode(contributors, contributorBps)); a depositor passes the
/// list (from the NFT's `Minted` event) and the splitter checks it against that hash. Each share is
/// `amount * bps / 10000` rounded down; the holder (ownerOf at deposit time) gets the remainder,
/// so the credited amounts sum to the deposit exactly. `token == address(0)` means ETH.
interface IEarningsSplitter {
    /// @notice `amount` of `token` was deposited for `tokenId`'s earnings by `from`.
    event Deposited(uint256 indexed tokenId, address indexed token, address indexed from, uint256 amount);
    /// @notice `account` was credited `amount` of `token` for `tokenId` in `role`
    /// (0 = creator, 1 = contributor, 2 = holder).
    event Credited(
        uint256 indexed tokenId, address indexed token, address indexed account, uint8 role, uint256 amount
    );
    /// @notice `account` withdrew `amount` of `token` to `to`.
    event Withdrawn(address indexed account, address indexed token, address indexed to, uint256 amount);

    /// @notice The contributor list does not match the hash fixed at mint.
    error WrongContributors(uint256 tokenId);
    /// @notice Zero deposit, or a zero withdrawal.
    error ZeroAmount();
    /// @notice ETH sent with an ERC-20 deposit.
    error UnexpectedValue();
    /// @notice Sending ETH to the withdrawal address failed.
    error EthSendFailed(address to);
    /// @notice Zero withdrawal address.
    error ZeroAddress();

    /// @notice Deposit ETH earnings of `tokenId`.
    function deposit(uint256 tokenId, address[] calldata contributors, uint16[] calldata contributorBps)
        external
        payable;

    /// @notice Deposit `amount` of ERC-20 `token` earnings of `tokenId` (pulled with transferFrom;
    /// the amount actually received is split).
    function depositToken(
        uint256 tokenId,
        address token,
        uint256 amount,
        address[] calldata contributors,
        uint16[] calldata contributorBps
    ) external;

    /// @notice Send the caller's whole balance of `token` to `to`.
    function withdraw(address token, address to) external returns (uint256 amount);

    /// @notice What `account` can withdraw of `token`.
    function balanceOf(address account, address token) external view returns (uint256);
}
