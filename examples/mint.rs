//! Job 1, **mint**: seal an agent (GGUF model, a fresh agent key, its config) to its owner,
//! store the ciphertext, and mint the INFT that commits to it.
//!
//! Prints the token id, the on-chain data hashes and the token's `tokenURI` JSON, and checks that
//! the owner opens the agent while another account is refused.
//!
//! ```sh
//! cargo run -p inft-examples --example mint
//! ```

use alloy::primitives::B256;
use base64::Engine as _;
use inft_contracts::bindings::AgentNFT;
use inft_contracts::scopes;
use inft_engine::grammar::CREATIVE_MAX_TOKENS;
use inft_examples::Sandbox;
use inft_types::config::AgentKind;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A local anvil with every contract deployed, a blob store and a stand-in model.
    let sandbox = Sandbox::start().await?;
    // Dev account 1 is alice. `actor` publishes her X25519 sealing key on chain (derived from
    // her wallet), so data can be sealed to her.
    let alice = sandbox.actor(1).await?;
    println!("AgentNFT {}", sandbox.deployment.agent_nft);
    println!("alice    {}", alice.address());

    // What the agent is: a creative agent writing from a prompt, on the model whose SHA-256
    // the config names (minting refuses a config naming another model).
    let config = sandbox.config(
        "poet",
        AgentKind::Creative {
            prompt: "Write a short poem about the sea.".into(),
        },
        CREATIVE_MAX_TOKENS,
    );

    // Seal and mint. `mint_agent` (inside `Sandbox::mint`) streams the model through chunked
    // AES-256-GCM under a fresh data key, makes a new agent key, seals each data key to alice's
    // public key (bound to this chain, contract and token), puts the blobs in the store and
    // mints the token with the data hashes (Merkle roots of the ciphertext), the sealed keys and
    // the agent wallet's address. The token id is derived from the minter and a salt.
    let minted = sandbox.mint(&alice, &config, 1).await?;
    println!(
        "\nminted token {} in tx {}",
        minted.token_id, minted.tx_hash
    );
    println!("agent wallet {}", minted.agent);
    for (name, entry) in ["model", "agent key", "config"].iter().zip(&minted.entries) {
        println!("  {name:<9} dataHash {}  {}", entry.data_hash, entry.uri);
    }

    // What the store holds is ciphertext: the model's GGUF header is nowhere in its blob.
    let blob = std::fs::read(sandbox.store.path_of(&minted.entries[0].data_hash))?;
    let header = &sandbox.model[..32];
    anyhow::ensure!(
        header.starts_with(b"GGUF") && !blob.windows(header.len()).any(|w| w == header),
        "the stored model blob is not encrypted"
    );
    println!(
        "  the stored model blob: {} bytes of ciphertext for a {}-byte GGUF",
        blob.len(),
        sandbox.model.len()
    );

    // The chain holds the commitments, the agent and the owner.
    let state = alice.nft.state(minted.token_id).await?;
    assert_eq!(state.owner, alice.address());
    assert_eq!(state.agent, minted.agent);
    let minted_hashes: Vec<B256> = minted
        .entries
        .iter()
        .map(|e| B256::from(*e.data_hash.as_bytes()))
        .collect();
    assert_eq!(
        state.data_hashes, minted_hashes,
        "the chain commits to the blobs"
    );

    // tokenURI: ERC-721 metadata rendered live by AgentMetadata, as a base64 data URI.
    let uri = AgentNFT::new(sandbox.deployment.agent_nft, sandbox.reader())
        .tokenURI(minted.token_id)
        .call()
        .await?;
    let b64 = uri
        .strip_prefix("data:application/json;base64,")
        .ok_or_else(|| anyhow::anyhow!("tokenURI is not a base64 JSON data URI: {uri}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(b64)?)?;
    println!("\ntokenURI:\n{}", serde_json::to_string_pretty(&json)?);
    anyhow::ensure!(
        json["model_sha256"]
            .as_str()
            .is_some_and(|h| h.trim_start_matches("0x") == sandbox.model_sha256),
        "tokenURI names another model: {}",
        json["model_sha256"]
    );

    // The owner opens it: ownership checked on chain first, then every blob fetched, verified
    // against its on-chain hash and unsealed in memory (plaintext never touches disk).
    let opened = sandbox.open(&alice, minted.token_id, scopes::RUN).await?;
    let agent_key = opened
        .agent
        .agent_key
        .ok_or_else(|| anyhow::anyhow!("the owner gets the agent key"))?;
    assert_eq!(agent_key.address(), minted.agent);
    assert_eq!(opened.agent.config.name, "poet");
    println!(
        "\nalice opens her agent: config {:?}, agent key {}",
        opened.agent.config.name,
        agent_key.address()
    );

    // Anyone else is refused before anything is fetched or decrypted.
    let mallory = sandbox.actor(2).await?;
    let refused = sandbox
        .open(&mallory, minted.token_id, scopes::RUN)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a stranger opened alice's agent"))?;
    println!("mallory is refused: {refused}");
    Ok(())
}
