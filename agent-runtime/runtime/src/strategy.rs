//! The strategy trait and the per-agent session a strategy acts through.

use std::future::Future;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use serde_json::Value;

use agent_runtime::record::{ActionDraft, ActionKind, LogId};
use inft_engine::{AgentContext, ChatMessage, EngineError, Generation, SamplerSettings};
use inft_types::config::AgentConfig;

/// Why a strategy step failed. A failed step records nothing; the run stops with the error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// Inference failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Reading or writing the chain failed.
    #[error("chain: {0}")]
    Chain(String),
    /// Anything else, from the strategy itself.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// A running agent: its unsealed key, its configuration, its inference context and its log.
///
/// The session is what a [`Strategy`] acts through; it never exposes the key's bytes, only
/// signing.
pub struct AgentSession {
    log: LogId,
    nft: Address,
    config: AgentConfig,
    signer: PrivateKeySigner,
    context: AgentContext,
    memory: Option<String>,
    generated: GenerationTotals,
}

/// What a session's model generated so far (for throughput figures; not recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerationTotals {
    /// Tokens generated.
    pub tokens: u64,
    /// Milliseconds spent generating them (prompt processing excluded).
    pub generate_ms: f64,
}

impl std::fmt::Debug for AgentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSession")
            .field("log", &self.log)
            .field("nft", &self.nft)
            .field("signer", &self.signer.address())
            .field("config", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl AgentSession {
    /// A session for the token whose action log is `log`, on the AgentNFT contract `nft`.
    /// `signer` is the key that signs the agent's records (the unsealed agent key).
    pub fn new(
        log: LogId,
        nft: Address,
        config: AgentConfig,
        signer: PrivateKeySigner,
        context: AgentContext,
    ) -> Self {
        Self {
            log,
            nft,
            config,
            signer,
            context,
            memory: None,
            generated: GenerationTotals::default(),
        }
    }

    /// The agent's memory as the token holds it (notes from earlier runs), if it has any and
    /// this account may read it. Strategies put it in the prompt.
    pub fn memory(&self) -> Option<&str> {
        self.memory.as_deref()
    }

    /// Sets the memory the prompts carry (the runtime does this after unsealing the token's
    /// memory entry).
    pub fn set_memory(&mut self, memory: Option<String>) {
        self.memory = memory;
    }

    /// The token's action log.
    pub fn log(&self) -> &LogId {
        &self.log
    }

    /// The AgentNFT contract.
    pub fn nft(&self) -> Address {
        self.nft
    }

    /// The shared model this agent runs.
    pub fn model(&self) -> &std::sync::Arc<inft_engine::LoadedModel> {
        self.context.model()
    }

    /// The agent's configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The key that signs this agent's records and creations.
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The address that signs this agent's records.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The sampler settings for step `step`: the configured ones with the seed advanced by the
    /// step, so steps differ while every one stays reproducible from its record.
    pub fn settings_for_step(&self, step: u64) -> SamplerSettings {
        let mut settings = self.config.sampler.clone();
        settings.seed = settings.seed.wrapping_add(step as u32);
        settings
    }

    /// Renders chat `messages` into the prompt text with the model's own chat template (plain
    /// text for a model without one). The rendered text is the prompt to generate from, record
    /// and replay.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        Ok(self.context.model().render_chat(messages)?.text)
    }

    /// Runs the model. Inference is CPU-bound and blocking; on a multi-threaded tokio runtime
    /// it moves off the async worker so logging and RPC continue meanwhile.
    pub fn generate(
        &mut self,
        prompt: &str,
        settings: &SamplerSettings,
    ) -> Result<Generation, EngineError> {
        let generation = off_the_worker(|| self.context.generate(prompt, settings))?;
        self.generated.tokens += generation.tokens.len() as u64;
        self.generated.generate_ms += generation.timings.generate_ms;
        Ok(generation)
    }

    /// The log-likelihood the model gives each of `continuations` after `prompt` (see
    /// [`inft_engine::AgentContext::score`]); blocking, moved off the async worker as
    /// [`Self::generate`] is.
    pub fn score(&mut self, prompt: &str, continuations: &[&str]) -> Result<Vec<f64>, EngineError> {
        off_the_worker(|| self.context.score(prompt, continuations))
    }

    /// What this session's model generated so far.
    pub fn generation_totals(&self) -> GenerationTotals {
        self.generated
    }

    /// An action draft for a model output: model, prompt, output, sampler settings, seed and
    /// llama.cpp build, so the action can be replayed, plus kind-specific `details`.
    pub fn draft(
        &self,
        kind: ActionKind,
        prompt: &str,
        generation: &Generation,
        details: Value,
    ) -> ActionDraft {
        ActionDraft {
            kind,
            model_hash: parse_hash(&generation.model_sha256),
            prompt: prompt.to_owned(),
            keep_prompt: !self.config.private_prompts,
            output: generation.text.clone(),
            sampler: serde_json::to_value(&generation.settings).unwrap_or(Value::Null),
            seed: u64::from(generation.settings.seed),
            llama_build: generation.llama_build.clone(),
            tx_hash: None,
            details,
        }
    }
}

/// Hex SHA-256 from the engine to bytes; the engine always produces 64 hex digits.
fn parse_hash(hex_digest: &str) -> B256 {
    hex_digest.parse().unwrap_or_default()
}

/// One kind of agent behaviour: given the session, produce the next action.
///
/// Implementations decide and act (generate, trade, refuse); the runner records, signs and logs
/// what they return. A step that returns `Err` records nothing.
pub trait Strategy: Send {
    /// A short name, recorded in run reports.
    fn name(&self) -> &str;

    /// Runs step `step` (from 0) and returns the action to record.
    fn step(
        &mut self,
        session: &mut AgentSession,
        step: u64,
    ) -> impl Future<Output = Result<ActionDraft, StrategyError>> + Send;

    /// What this run taught the agent, as one short note for its memory (what it did, what it
    /// learned), or `None` if there is nothing to remember. Called once after the last step.
    fn memory_note(&self) -> Option<String> {
        None
    }
}

/// Runs blocking inference `f`; on a multi-threaded tokio runtime, with `block_in_place`, so
/// the worker's other tasks (logging, RPC) move on meanwhile.
fn off_the_worker<T>(f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}
