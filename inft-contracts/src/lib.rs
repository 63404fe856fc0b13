#![doc = include_str!("../README.md")]

pub mod anvil;
pub mod bindings;
pub mod deploy;
pub mod proof;
pub mod revert;

pub use anvil::{AnvilError, DevChain, anvil_binary, spawn_anvil, spawn_anvil_at};
pub use deploy::{
    DeployConfig, DeployError, DeployOptions, DeployStep, DeployedCode, Deployment, Market,
    SystemDeployment, deploy_all, deploy_dev_market, deploy_system, deploy_with,
    estimate_system_gas, resolve_market, verify_code,
};
pub use proof::{
    ProofMode, Rotation, account_domain, account_message_hash, contributors_hash, proof_domain,
    token_id_for,
};
pub use revert::{ContractRevert, decode_revert, revert_of};

/// Usage-authorization scope bits (`Scopes.sol`), for `AgentNFT.authorize` / `isAuthorized`.
pub mod scopes {
    /// Unseal and run the agent.
    pub const RUN: u8 = 1;
    /// Operate the agent's token-bound account (`AgentAccount.execute`).
    pub const TRADE: u8 = 2;
    /// Produce creative output in the agent's name.
    pub const CREATE: u8 = 4;
    /// Append to the agent's `ActionLog` (executors, relayers).
    pub const LOG: u8 = 8;
    /// Every defined bit.
    pub const ALL: u8 = 15;
}
