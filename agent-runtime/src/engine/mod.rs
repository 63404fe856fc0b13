//! The inference engine: llama.cpp (through `llama-cpp-2`) loading unsealed models from memory,
//! one loaded model shared by every agent with the same plaintext hash, and deterministic,
//! grammar-constrained generation whose settings are recorded with each action.
//!
//! ```no_run
//! use agent_runtime::engine::{
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
mod session;

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use serde::{Deserialize, Serialize};

pub use build_info::LLAMA_CPP_2_VERSION;
pub use cache::{CacheStats, LoadedModel, ModelCache, ModelSource};
pub use chat::{ChatMessage, PromptFormat, RenderedPrompt, Role};
pub use memmodel::{MemModel, SealedModel};
pub use session::{AgentContext, Generation, GenerationTimings, SamplerSettings, StopReason};

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
    #[error("invalid sampler settings: {0}")]
    Settings(&'static str),
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

/// How a model is loaded. Part of the cache key: the same weights loaded with different
/// options are different loaded models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelOptions {
    /// Layers to offload to the GPU (needs the `cuda` feature; ignored by CPU builds).
    pub gpu_layers: u32,
    /// Map the weights instead of copying them (on by default: with a memfd the mapping shares
    /// the file's pages, so the model is in RAM once, not twice).
    pub use_mmap: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            gpu_layers: 0,
            use_mmap: true,
        }
    }
}

/// Per-agent inference context settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContextOptions {
    /// Context window in tokens (prompt + generated); clamped to the model's training context.
    pub n_ctx: u32,
    /// Largest number of prompt tokens decoded per batch.
    pub n_batch: u32,
    /// Threads for generation; `None` uses all available cores.
    pub n_threads: Option<u32>,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            n_ctx: 2048,
            n_batch: 512,
            n_threads: None,
        }
    }
}

impl ContextOptions {
    pub(crate) fn threads(&self) -> i32 {
        let n = self.n_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        });
        i32::try_from(n.max(1)).unwrap_or(1)
    }
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
