//! Typed decoding of contract reverts.
//!
//! A call into the AgentNFT can revert with the NFT's own errors or with the verifier's (the NFT
//! calls it); an AgentAccount call can bubble any target's error. [`decode_revert`] tries each of
//! our contracts' error sets in turn.

use alloy::sol_types::SolInterface;

use crate::bindings::{
    ActionLog::ActionLogErrors, AgentAccount::AgentAccountErrors, AgentMarket::AgentMarketErrors,
    AgentNFT::AgentNFTErrors, EarningsSplitter::EarningsSplitterErrors,
    TransferVerifier::TransferVerifierErrors,
};

/// A decoded revert of one of the inft contracts.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContractRevert {
    /// An AgentNFT error (including OpenZeppelin's ERC-721 and Ownable errors).
    AgentNft(AgentNFTErrors),
    /// A TransferVerifier error (bad signature, used nonce, unknown oracle, …).
    Verifier(TransferVerifierErrors),
    /// An ActionLog error (not the agent, sequence mismatch, …).
    ActionLog(ActionLogErrors),
    /// An EarningsSplitter error.
    Splitter(EarningsSplitterErrors),
    /// An AgentAccount error.
    Account(AgentAccountErrors),
    /// An AgentMarket error (not the seller, wrong payment, sale pending or expired, …).
    Market(AgentMarketErrors),
}

/// Decode revert data returned by a call into one of the inft contracts. `None` if the selector
/// belongs to none of them (e.g. a Uniswap `require` string, or an empty revert).
pub fn decode_revert(data: &[u8]) -> Option<ContractRevert> {
    // Errors with the same signature in several contracts (ZeroAddress, ProofExpired) have the
    // same selector; they decode as the NFT's, which checks them first on every shared path.
    if let Ok(e) = AgentNFTErrors::abi_decode(data) {
        return Some(ContractRevert::AgentNft(e));
    }
    if let Ok(e) = TransferVerifierErrors::abi_decode(data) {
        return Some(ContractRevert::Verifier(e));
    }
    if let Ok(e) = ActionLogErrors::abi_decode(data) {
        return Some(ContractRevert::ActionLog(e));
    }
    if let Ok(e) = EarningsSplitterErrors::abi_decode(data) {
        return Some(ContractRevert::Splitter(e));
    }
    if let Ok(e) = AgentAccountErrors::abi_decode(data) {
        return Some(ContractRevert::Account(e));
    }
    if let Ok(e) = AgentMarketErrors::abi_decode(data) {
        return Some(ContractRevert::Market(e));
    }
    None
}

/// The decoded revert behind a contract-call error, if it is one of ours.
pub fn revert_of(err: &alloy::contract::Error) -> Option<ContractRevert> {
    err.as_revert_data().and_then(|data| decode_revert(&data))
}
