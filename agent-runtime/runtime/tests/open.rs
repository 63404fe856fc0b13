//! Opening agents with their models: when a loaded model is shared, and when it is not.

use std::io::Cursor;
use std::sync::Arc;

use agent_runtime::blobstore::LocalDirStore;
use agent_runtime::pipeline::{EntryRef, PipelineError, TokenRef, open_keys, seal_agent};
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use inft_engine::testmodel::{TestModelParams, write_llama_gguf};
use inft_engine::{ContextOptions, SamplerSettings};
use inft_runtime::{UnsealError, UnsealOptions, unseal_agent};
use inft_types::config::{AgentConfig, CONFIG_VERSION, ConfigError, EntryKind};
use sealing::{DataKey, SealOptions, SealedKey, SealingSecret};
use sha2::Digest as _;

fn gguf(seed: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_llama_gguf(&mut bytes, &TestModelParams::for_size(256 * 1024), seed).unwrap();
    bytes
}

/// A config naming the model with plaintext SHA-256 `model_sha256` (hex).
fn config(model_sha256: &str) -> AgentConfig {
    let json = serde_json::json!({
        "version": CONFIG_VERSION,
        "name": "cache test",
        "kind": { "type": "creative", "prompt": "Write." },
        "model_sha256": model_sha256,
        "sampler": SamplerSettings::seeded(1),
        "context": ContextOptions::default(),
    });
    AgentConfig::from_json(json.to_string().as_bytes()).unwrap()
}

fn token(id: u64) -> TokenRef {
    TokenRef {
        chain_id: 31337,
        nft: Address::repeat_byte(0x11),
        token_id: U256::from(id),
    }
}

/// Sharing a loaded model on the hash a token's config *claims* would give a token whose config
/// names another token's model that model without holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_config_claims_another_tokens_model_does_not_get_it_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDirStore::open(dir.path()).unwrap();
    let secret = SealingSecret::generate();
    let me = secret.public_key();
    let agent = PrivateKeySigner::random();
    let opts = SealOptions::default();
    let (model_a, model_b) = (gguf(501), gguf(502));
    let sha_a = hex::encode(sha2::Sha256::digest(&model_a));
    let seal = |model: Vec<u8>, token: TokenRef| {
        let (store, agent, config, me, opts) = (&store, &agent, config(&sha_a), &me, &opts);
        async move {
            seal_agent(
                store,
                Box::new(Cursor::new(model)),
                agent,
                &config,
                None,
                me,
                &token,
                opts,
            )
            .await
            .unwrap()
        }
    };
    let (ta, tb, tc, td) = (token(1), token(2), token(3), token(4));
    let entries_a = seal(model_a.clone(), ta).await;
    // Token B holds other weights, but its config claims A's.
    let entries_b = seal(model_b, tb).await;
    let unseal = UnsealOptions::default();

    let a = unseal_agent(&store, &entries_a, &secret, &ta, &unseal)
        .await
        .unwrap();
    assert!(!a.model_was_cached);
    match unseal_agent(&store, &entries_b, &secret, &tb, &unseal).await {
        Err(UnsealError::Pipeline(PipelineError::Config(ConfigError::ModelMismatch {
            ..
        }))) => {}
        Ok(b) => panic!(
            "token B got model {} (cached: {}) that its entry does not hold",
            b.model.sha256_hex(),
            b.model_was_cached
        ),
        Err(e) => panic!("expected a model mismatch, got {e}"),
    }

    // Token D names A's model blob itself, with a key of its own that does not open it.
    let mut entries_d = entries_b.clone();
    let a_model = &entries_a[EntryKind::Model.index()];
    entries_d[EntryKind::Model.index()] = EntryRef {
        data_hash: a_model.data_hash,
        uri: a_model.uri.clone(),
        sealed_key: Some(
            SealedKey::seal(
                &DataKey::generate(),
                &me,
                &td.key_context(a_model.data_hash),
            )
            .unwrap(),
        ),
    };
    for (i, e) in entries_b.iter().enumerate().skip(1) {
        let key = open_keys(&entries_b, &secret, &tb)
            .unwrap()
            .into_iter()
            .nth(i)
            .flatten()
            .expect("the owner holds every key");
        entries_d[i].sealed_key =
            Some(SealedKey::seal(&key, &me, &td.key_context(e.data_hash)).unwrap());
    }
    match unseal_agent(&store, &entries_d, &secret, &td, &unseal).await {
        Err(UnsealError::Pipeline(PipelineError::Open { entry: "model", .. })) => {}
        Ok(d) => panic!(
            "token D got model {} (cached: {}) without its key",
            d.model.sha256_hex(),
            d.model_was_cached
        ),
        Err(e) => panic!("expected the model not to open, got {e}"),
    }

    // Token A again: its own entry is known, the loaded model is shared, the blob untouched.
    std::fs::remove_file(store.path_of(&a_model.data_hash)).unwrap();
    let again = unseal_agent(&store, &entries_a, &secret, &ta, &unseal)
        .await
        .unwrap();
    assert!(again.model_was_cached && Arc::ptr_eq(&again.model, &a.model));

    // The same weights sealed anew for token C: decrypted once, then the loaded model shared.
    let entries_c = seal(model_a, tc).await;
    let c = unseal_agent(&store, &entries_c, &secret, &tc, &unseal)
        .await
        .unwrap();
    assert!(!c.model_was_cached && Arc::ptr_eq(&c.model, &a.model));
}
