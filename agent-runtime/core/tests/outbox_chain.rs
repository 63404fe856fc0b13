//! The outbox against the real `ActionLog` contract on anvil, through [`AlloyChainLog`].

use std::sync::Arc;
use std::time::Duration;

use agent_runtime::db::{Db, OutboxState};
use agent_runtime::outbox::{AlloyChainLog, ChainLog, ChainLogError, Outbox, OutboxConfig};
use agent_runtime::record::{ActionDraft, ActionKind, LogId};
use alloy::network::TransactionBuilder;
use alloy::primitives::{B256, Bytes, U256, aliases::U96, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use inft_contracts::bindings::{ActionLog, AgentNFT, IAgentNFT};

fn draft(i: usize) -> ActionDraft {
    ActionDraft {
        kind: ActionKind::Creative,
        model_hash: B256::repeat_byte(0x42),
        prompt: format!("a poem about block {i}"),
        keep_prompt: true,
        output: format!("poem {i}"),
        sampler: serde_json::json!({"temperature": 0.0}),
        seed: i as u64,
        llama_build: "test".into(),
        tx_hash: None,
        details: serde_json::Value::Null,
    }
}

/// The contract's chain rule: head = keccak256(abi.encode(head, hash)).
fn fold(hashes: &[B256]) -> B256 {
    hashes.iter().fold(B256::ZERO, |h, x| {
        keccak256([h.as_slice(), x.as_slice()].concat())
    })
}

#[tokio::test]
async fn outbox_logs_exactly_once_on_a_real_action_log() -> Result<()> {
    let chain = inft_contracts::spawn_anvil(None, &[]).context("spawn anvil")?;
    let deployer = chain.signer(0).context("dev account")?;
    let owner = deployer.address();
    let provider = ProviderBuilder::new()
        .wallet(deployer)
        .connect_http(chain.endpoint_url());
    let deployment = inft_contracts::deploy_all(&provider).await?;

    // Mint a token whose agent is a fresh key, and give the agent gas money.
    let agent = PrivateKeySigner::random();
    let nft = AgentNFT::new(deployment.agent_nft, &provider);
    let salt = U96::from(7u64);
    let data = IAgentNFT::DataEntries {
        dataHashes: vec![B256::repeat_byte(1)],
        sealedKeys: vec![Bytes::from(vec![1u8; 16])],
        uris: vec!["inft-local://01".into()],
    };
    let shares = IAgentNFT::Shares {
        royaltyBps: 0,
        creatorBps: 0,
        contributors: vec![],
        contributorBps: vec![],
    };
    let receipt = nft
        .mint(
            owner,
            salt,
            data,
            agent.address(),
            shares,
            B256::repeat_byte(0x6d),
        )
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status());
    let token_id = inft_contracts::token_id_for(owner, salt);
    let fund = TransactionRequest::default()
        .with_to(agent.address())
        .with_value(U256::from(10u128.pow(18)));
    provider.send_transaction(fund).await?.get_receipt().await?;

    let agent_provider = ProviderBuilder::new()
        .wallet(agent.clone())
        .connect_http(chain.endpoint_url());
    let chain_log = AlloyChainLog::new(agent_provider.clone(), deployment.start_block)
        .with_confirm_timeout(Duration::from_secs(30), Duration::from_millis(50));
    let log = LogId {
        chain_id: chain.chain_id(),
        action_log: deployment.action_log,
        token_id,
    };

    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("inft.db")).await?;
    let outbox = Outbox::new(
        db.clone(),
        Arc::new(chain_log.clone()),
        OutboxConfig::default(),
    );

    // 40 actions: two transactions (32 + 8).
    for i in 0..40 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    let report = outbox.flush(&log).await?;
    assert_eq!((report.logged, report.transactions.len()), (40, 2));
    let local: Vec<B256> = db
        .records(&log, 0, 1000)
        .await?
        .iter()
        .map(|r| r.record.record_hash())
        .collect();
    let action_log = ActionLog::new(deployment.action_log, &provider);
    let on_chain = action_log.chainOf(token_id).call().await?;
    assert_eq!(on_chain.seq, 40);
    assert_eq!(
        on_chain.head,
        fold(&local),
        "the chain's head folds exactly our record hashes"
    );
    assert_eq!(chain_log.logged_hashes(&log, 1, 41).await?, local);

    // A send lands on chain but the runtime dies before it hears back: simulated by sending
    // the next batch by hand after appending it to the outbox.
    for i in 40..43 {
        outbox.append(&log, draft(i), &agent).await?;
    }
    let pending: Vec<B256> = db
        .unconfirmed(&log, 100)
        .await?
        .iter()
        .map(|e| e.record_hash)
        .collect();
    let tx = chain_log.log_actions(&log, 41, &pending).await?;
    assert!(chain_log.confirm(tx).await?.success);
    // A fresh process (new outbox over the same file) reconciles instead of resending.
    let restarted = Outbox::new(
        Db::open(dir.path().join("inft.db")).await?,
        Arc::new(chain_log.clone()),
        OutboxConfig::default(),
    );
    let report = restarted.flush(&log).await?;
    assert_eq!((report.reconciled, report.logged), (3, 0));
    assert_eq!(action_log.chainOf(token_id).call().await?.seq, 43);
    let events = action_log
        .ActionsLogged_filter()
        .topic1(B256::from(token_id))
        .from_block(deployment.start_block)
        .query()
        .await?;
    assert_eq!(
        events.len(),
        3,
        "two outbox batches and the hand-sent one; nothing twice"
    );
    assert!(
        db.outbox_entries(&log)
            .await?
            .iter()
            .all(|e| e.state == OutboxState::Confirmed)
    );

    // A resend of an already logged batch is refused by the contract (retryable for the outbox,
    // which then reconciles).
    let dup = chain_log.log_actions(&log, 41, &pending).await.unwrap_err();
    assert!(dup.is_retryable(), "{dup}");

    // An account that is neither the agent nor authorized is rejected for good.
    let stranger = PrivateKeySigner::random();
    let fund = TransactionRequest::default()
        .with_to(stranger.address())
        .with_value(U256::from(10u128.pow(18)));
    provider.send_transaction(fund).await?.get_receipt().await?;
    let stranger_log = AlloyChainLog::new(
        ProviderBuilder::new()
            .wallet(stranger)
            .connect_http(chain.endpoint_url()),
        deployment.start_block,
    );
    let err = stranger_log
        .log_actions(&log, 44, &[B256::repeat_byte(9)])
        .await
        .unwrap_err();
    assert!(matches!(err, ChainLogError::Rejected(_)), "{err}");
    Ok(())
}
