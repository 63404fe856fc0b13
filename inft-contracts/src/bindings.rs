//! alloy `sol!` bindings over the committed artifacts (`artifacts/*.json`: abi + bytecode).
//!
//! Every contract gets a module with its call/event/error types and, through `#[sol(rpc)]`, an
//! instance type (`AgentNFT::AgentNFTInstance`) plus `deploy`. Structs used in the ABI appear
//! in a module named after the interface that declares them (e.g. `IAgentNFT::DataEntries`,
//! `IAgentNFT::Proof`, `IAgentNFT::Shares`, `ITransferVerifier::Rotation`, `IAgentAccount::Call`;
//! the market's own copies are in [`market`]).
//!
//! The artifacts are checked against the Solidity sources by `scripts/check-artifacts.sh`, so the
//! crate builds without node_modules or a Solidity compiler.

// Generated code: the items are documented by the Solidity sources and IAgentNFT & co.
#![allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    AgentNFT,
    "artifacts/AgentNFT.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    TransferVerifier,
    "artifacts/TransferVerifier.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    ActionLog,
    "artifacts/ActionLog.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    AgentMetadata,
    "artifacts/AgentMetadata.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    EarningsSplitter,
    "artifacts/EarningsSplitter.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    AgentAccount,
    "artifacts/AgentAccount.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    AgentAccountFactory,
    "artifacts/AgentAccountFactory.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    TestToken,
    "artifacts/TestToken.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    WETH9,
    "artifacts/WETH9.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    UniswapV2Factory,
    "artifacts/UniswapV2Factory.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    UniswapV2Router02,
    "artifacts/UniswapV2Router02.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    UniswapV2Pair,
    "artifacts/UniswapV2Pair.json"
);

/// The AgentMarket, in a module of its own: its ABI restates `IAgentNFT.DataEntries` and
/// `IAgentNFT.Proof`, which would clash with the NFT's. `From` converts the NFT's structs (what
/// [`crate::Rotation`] builds) into the market's.
pub mod market {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        AgentMarket,
        "artifacts/AgentMarket.json"
    );

    impl From<super::IAgentNFT::DataEntries> for IAgentNFT::DataEntries {
        fn from(d: super::IAgentNFT::DataEntries) -> Self {
            Self {
                dataHashes: d.dataHashes,
                sealedKeys: d.sealedKeys,
                uris: d.uris,
            }
        }
    }

    impl From<super::IAgentNFT::Proof> for IAgentNFT::Proof {
        fn from(p: super::IAgentNFT::Proof) -> Self {
            Self {
                mode: p.mode,
                nonce: p.nonce,
                deadline: p.deadline,
                signature: p.signature,
            }
        }
    }
}

pub use market::AgentMarket;
