// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Scopes
/// @notice Usage-authorization scope bits (see IAgentNFT.authorize / isAuthorized) and proof modes.
library Scopes {
    /// @notice Unseal and run the agent.
    uint8 internal constant RUN = 1;
    /// @notice Operate the agent's token-bound account (AgentAccount.execute).
    uint8 internal constant TRADE = 2;
    /// @notice Produce creative output in the agent's name.
    uint8 internal constant CREATE = 4;
    /// @notice Append to the agent's ActionLog (executors, relayers).
    uint8 internal constant LOG = 8;
    /// @notice Every defined bit.
    uint8 internal constant ALL = 15;

    /// @notice Proof mode: the receiver signs an EIP-712 `Acceptance`.
    uint8 internal constant MODE_RECEIVER = 0;
    /// @notice Proof mode: a registered re-encryption oracle signs an EIP-712 `Attestation`.
    uint8 internal constant MODE_ORACLE = 1;
}
