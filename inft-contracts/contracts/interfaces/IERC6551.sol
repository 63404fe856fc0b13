// SPDX-License-Identifier: CC0-1.0
pragma solidity ^0.8.28;

// The interfaces of ERC-6551 (Non-fungible Token Bound Accounts), as the specification states
// them (https://eips.ethereum.org/EIPS/eip-6551).

/// @title IERC6551Registry
/// @notice Creates token bound accounts at deterministic addresses: each account is an ERC-1167
/// minimal proxy with `abi.encode(salt, chainId, tokenContract, tokenId)` appended to its code,
/// deployed with CREATE2 by the registry.
interface IERC6551Registry {
    /// @notice The registry MUST emit the ERC6551AccountCreated event upon successful account creation.
    event ERC6551AccountCreated(
        address account,
        address indexed implementation,
        bytes32 salt,
        uint256 chainId,
        address indexed tokenContract,
        uint256 indexed tokenId
    );

    /// @notice The registry MUST revert with AccountCreationFailed error if the create2 operation fails.
    error AccountCreationFailed();

    /// @notice Creates a token bound account for a non-fungible token. If the account has already
    /// been created, returns the account address without calling create2. Emits ERC6551AccountCreated.
    /// @return account The address of the token bound account
    function createAccount(
        address implementation,
        bytes32 salt,
        uint256 chainId,
        address tokenContract,
        uint256 tokenId
    ) external returns (address account);

    /// @notice Returns the computed token bound account address for a non-fungible token.
    /// @return account The address of the token bound account
    function account(address implementation, bytes32 salt, uint256 chainId, address tokenContract, uint256 tokenId)
        external
        view
        returns (address account);
}

/// @title IERC6551Account
/// @dev the ERC-165 identifier for this interface is `0x6faff5f1`
interface IERC6551Account {
    /// @notice Allows the account to receive Ether.
    receive() external payable;

    /// @notice Returns the identifier of the non-fungible token which owns the account. The return
    /// value MUST be constant: it MUST NOT change over time.
    /// @return chainId The chain ID of the chain the token exists on
    /// @return tokenContract The contract address of the token
    /// @return tokenId The ID of the token
    function token() external view returns (uint256 chainId, address tokenContract, uint256 tokenId);

    /// @notice Returns a value that SHOULD be modified each time the account changes state.
    function state() external view returns (uint256);

    /// @notice Returns the magic value 0x523e3260 if `signer` is authorized to act on behalf of the
    /// account. By default the holder of the token MUST be considered a valid signer.
    /// @param signer The address to check signing authorization for
    /// @param context Additional data used to determine whether the signer is valid
    /// @return magicValue Magic value indicating whether the signer is valid
    function isValidSigner(address signer, bytes calldata context) external view returns (bytes4 magicValue);
}

/// @title IERC6551Executable
/// @dev the ERC-165 identifier for this interface is `0x51945447`
interface IERC6551Executable {
    /// @notice Executes a low-level operation if the caller is a valid signer on the account.
    /// Reverts and bubbles up error if operation fails. Operations: 0 = CALL, 1 = DELEGATECALL,
    /// 2 = CREATE, 3 = CREATE2; an account MAY restrict which it supports.
    /// @param to The target address of the operation
    /// @param value The Ether value to be sent to the target
    /// @param data The encoded operation calldata
    /// @param operation A value indicating the type of operation to perform
    /// @return The result of the operation
    function execute(address to, uint256 value, bytes calldata data, uint8 operation)
        external
        payable
        returns (bytes memory);
}
