#![doc = include_str!("../README.md")]
//!
//! ```no_run
//! use inft_engine::{
//!     grammar, ContextOptions, Engine, MemModel, ModelOptions, SamplerSettings,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::global()?;
//! // The unseal step writes plaintext straight into the in-memory file.
//! let mut sink = MemModel::new("agent-model")?;
//! # let gguf: Vec<u8> = Vec::new();
//! std::io::copy(&mut gguf.as_slice(), &mut sink)?;
//! let model = engine.load(sink.finish()?, &ModelOptions::default())?;
//! let mut agent = model.new_context(&ContextOptions::default())?;
//! let settings = SamplerSettings {
//!     grammar: Some(grammar::creative_grammar().to_owned()),
//!     ..SamplerSettings::seeded(42)
//! };
//! let out = agent.generate("Write a poem about the sea.", &settings)?;
//! println!("{} ({} tokens, {})", out.text, out.tokens.len(), out.llama_build);
//! # Ok(()) }
//! ```

mod build_info;
mod cache;
pub mod chat;
pub mod grammar;
mod memmodel;
pub mod models;
mod session;
#[cfg(feature = "testmodel")]
pub mod testmodel;

use std::sync::OnceLock;

pub use build_info::LLAMA_CPP_2_VERSION;
pub use cache::{CacheStats, LoadedModel, ModelCache, ModelSource};
pub use chat::{PromptFormat, RenderedPrompt};
pub use inft_types::inference::{
    ChatMessage, ContextOptions, Generation, GenerationTimings, Inference, InvalidSettings,
    ModelOptions, Role, SamplerSettings, StopReason, plain_text,
};
use llama_cpp_2::llama_backend::LlamaBackend;
pub use memmodel::{MemModel, SealedModel};
pub use session::{AgentContext, Replayer};

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The platform lacks something the engine needs (memfd outside Linux).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// llama.cpp's backend could not be initialized (for example because other code in this
    /// process already initialized it without going through [`Engine::global`]).
    #[error("llama.cpp backend initialization failed: {0}")]
    Backend(String),
    /// Creating, writing or sealing the in-memory model file failed.
    #[error("in-memory model file: {0}")]
    MemFile(#[source] std::io::Error),
    /// llama.cpp refused the model (not a GGUF, truncated, unknown architecture, …); its log,
    /// routed to `tracing`, says why.
    #[error("model load failed: {0}")]
    ModelLoad(String),
    /// llama.cpp could not create an inference context (usually out of memory).
    #[error("context creation failed: {0}")]
    Context(String),
    /// The messages could not be rendered into a prompt.
    #[error("chat prompt: {0}")]
    Chat(String),
    /// The GBNF grammar did not parse.
    #[error("invalid grammar: {0}")]
    Grammar(String),
    /// Sampler settings out of range.
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// The prompt does not fit the context window.
    #[error("prompt of {tokens} tokens does not fit a context of {n_ctx}")]
    PromptTooLong {
        /// Prompt length in tokens.
        tokens: usize,
        /// Context size.
        n_ctx: u32,
    },
    /// The prompt tokenized to nothing.
    #[error("empty prompt")]
    EmptyPrompt,
    /// `llama_decode` failed.
    #[error("decode failed: {0}")]
    Decode(String),
}

/// The process-wide inference engine: owns the single llama.cpp backend and the shared model
/// cache. llama.cpp allows one backend per process, so there is one `Engine`, obtained with
/// [`Engine::global`].
#[derive(Debug)]
pub struct Engine {
    backend: LlamaBackend,
    cache: ModelCache,
    llama_build: String,
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

impl Engine {
    /// The engine, initializing llama.cpp on first use and routing its logs into `tracing`
    /// (targets `llama-cpp-2`, fields `module = "llama.cpp" | "ggml"`).
    pub fn global() -> Result<&'static Engine, EngineError> {
        ENGINE
            .get_or_init(|| {
                llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
                let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
                let llama_build = build_info::llama_build();
                tracing::info!(%llama_build, "llama.cpp backend initialized");
                Ok(Engine {
                    backend,
                    cache: ModelCache::new(),
                    llama_build,
                })
            })
            .as_ref()
            .map_err(|e| EngineError::Backend(e.clone()))
    }

    /// The llama.cpp backend, for code that drives `llama-cpp-2` directly (benchmarks).
    pub fn backend(&self) -> &LlamaBackend {
        &self.backend
    }

    /// Identification of the llama.cpp build (bindings version, ggml version and commit, CUDA
    /// on/off, CPU features) recorded with each generation.
    pub fn llama_build(&self) -> &str {
        &self.llama_build
    }

    /// Whether this build can offload layers to a GPU.
    pub fn supports_gpu_offload(&self) -> bool {
        self.backend.supports_gpu_offload()
    }

    /// The process-wide model cache.
    pub fn cache(&self) -> &ModelCache {
        &self.cache
    }

    /// Load `model` through the process-wide cache: an already loaded model with the same
    /// plaintext hash and options is returned as is (and `model` dropped) instead of loading
    /// twice.
    pub fn load(
        &'static self,
        model: SealedModel,
        opts: &ModelOptions,
    ) -> Result<std::sync::Arc<LoadedModel>, EngineError> {
        self.cache.load(self, model, opts)
    }
}
