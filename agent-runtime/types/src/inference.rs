//! What inference takes and gives, as plain data: sampler settings, model and context options,
//! chat messages and a generation's result. The engine (llama.cpp) consumes and produces these;
//! records, configs and audits store and compare them without linking the engine.

use serde::{Deserialize, Serialize};

/// Sampler settings out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid sampler settings: {0}")]
pub struct InvalidSettings(pub &'static str);

/// Sampling settings: plain data, recorded with every action so the output can be replayed.
///
/// With `temperature <= 0` the chain ends in greedy selection (the seed is then irrelevant);
/// otherwise it is `[grammar] → [repeat penalty] → top-k → top-p → min-p → temperature →
/// dist(seed)`, llama.cpp's usual order. Same model, prompt, settings and llama.cpp build give
/// the same tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerSettings {
    /// Softmax temperature; `0` selects greedily.
    pub temperature: f32,
    /// Keep the k most likely tokens (`0` disables).
    pub top_k: i32,
    /// Nucleus sampling threshold (`1.0` disables).
    pub top_p: f32,
    /// Minimum probability relative to the best token (`0.0` disables).
    pub min_p: f32,
    /// Repetition penalty over the last `repeat_last_n` tokens (`1.0` disables).
    pub repeat_penalty: f32,
    /// Window of the repetition penalty.
    pub repeat_last_n: i32,
    /// Seed of the `dist` selector.
    pub seed: u32,
    /// Maximum number of tokens to generate.
    pub max_tokens: u32,
    /// Optional GBNF grammar (root rule `root`) constraining the output, see
    /// the engine's `grammar` module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
}

impl Default for SamplerSettings {
    /// Greedy decoding of up to 256 tokens.
    fn default() -> Self {
        SamplerSettings {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
            max_tokens: 256,
            grammar: None,
        }
    }
}

impl SamplerSettings {
    /// Temperature-0.8 sampling with the given seed, otherwise the defaults.
    pub fn seeded(seed: u32) -> Self {
        SamplerSettings {
            temperature: 0.8,
            seed,
            ..Self::default()
        }
    }

    /// Settings that suit small instruct models: temperature 0.3, top-k 40, top-p 0.9, min-p
    /// 0.1 and a repetition penalty of 1.1 over the last 64 tokens. Measured on SmolLM2-135M
    /// writing poems under the creative grammar: without the penalty it loops on one word; with
    /// 1.15, or at temperature 0.5–0.7, it drifts into French and German on some seeds (the
    /// penalty pushes it off common English tokens); these settings wrote English on every seed
    /// tried.
    pub fn instruct(seed: u32) -> Self {
        SamplerSettings {
            temperature: 0.3,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.1,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed,
            ..Self::default()
        }
    }

    /// Checks the settings are in range: finite parameters, probabilities within `0..=1`,
    /// non-negative windows and a positive penalty.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let finite = [
            self.temperature,
            self.top_p,
            self.min_p,
            self.repeat_penalty,
        ];
        if finite.iter().any(|x| !x.is_finite()) {
            return Err(InvalidSettings("sampler parameters must be finite"));
        }
        if !(0.0..=1.0).contains(&self.top_p) || !(0.0..=1.0).contains(&self.min_p) {
            return Err(InvalidSettings("top_p and min_p must be within 0..=1"));
        }
        if self.top_k < 0 || self.repeat_last_n < 0 || self.repeat_penalty <= 0.0 {
            return Err(InvalidSettings(
                "top_k and repeat_last_n must be >= 0, repeat_penalty > 0",
            ));
        }
        Ok(())
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-generation token (with a grammar: the grammar completed).
    EndOfGeneration,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context window filled up.
    ContextFull,
}

/// Wall-clock timings of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GenerationTimings {
    /// Tokenizing and decoding the prompt.
    pub prompt_ms: f64,
    /// From the start of the call to the first sampled token.
    pub first_token_ms: f64,
    /// Sampling and decoding the generated tokens (after the prompt).
    pub generate_ms: f64,
    /// Generated tokens per second over `generate_ms`.
    pub tokens_per_second: f64,
}

/// The result of one generation, with everything needed to record and replay it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Output text (invalid UTF-8, possible without a grammar, is replaced by U+FFFD; the hash
    /// below is over the exact bytes).
    pub text: String,
    /// Generated token ids (the end-of-generation token excluded).
    pub tokens: Vec<i32>,
    /// Number of prompt tokens (BOS included).
    pub prompt_tokens: u32,
    /// Why generation stopped.
    pub stop: StopReason,
    /// SHA-256 of the exact output bytes, lowercase hex.
    pub output_sha256: String,
    /// SHA-256 of the prompt bytes, lowercase hex.
    pub prompt_sha256: String,
    /// SHA-256 of the model's plaintext GGUF, lowercase hex.
    pub model_sha256: String,
    /// The sampler settings used (seed and grammar included).
    pub settings: SamplerSettings,
    /// Context settings used (batching can affect floating-point results).
    pub context: ContextOptions,
    /// The llama.cpp build that produced the output.
    pub llama_build: String,
    /// Timings (not part of what replays compare).
    pub timings: GenerationTimings,
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
    /// Generation threads: `n_threads`, or every available core when `None` (at least one).
    pub fn threads(&self) -> i32 {
        let n = self.n_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        });
        i32::try_from(n.max(1)).unwrap_or(1)
    }
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The agent's standing role, rules and output format.
    System,
    /// The observation the agent answers (market state, memory, the task of this step).
    User,
    /// An earlier answer of the model.
    Assistant,
}

impl Role {
    /// The role's name in chat templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a chat prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
}

/// Messages as plain text: each message's content, system first, separated by blank lines,
/// ending with a newline. Used when the model has no chat template.
pub fn plain_text(messages: &[ChatMessage]) -> String {
    let mut text = messages
        .iter()
        .map(|m| m.content.trim_end())
        .collect::<Vec<_>>()
        .join("\n\n");
    text.push('\n');
    text
}

/// What an audit's replay needs of an inference engine: which model it runs, which build it is,
/// and one generation from an empty context. The engine implements it; an auditor that does not
/// replay never links the engine.
pub trait Inference {
    /// Why a generation failed.
    type Error: std::fmt::Display;

    /// SHA-256 of the loaded model's plaintext GGUF.
    fn model_sha256(&self) -> [u8; 32];

    /// The llama.cpp build of this process (recorded with every action).
    fn llama_build(&self) -> &str;

    /// Generates from `prompt` with `settings`, starting from an empty context.
    fn generate(
        &mut self,
        prompt: &str,
        settings: &SamplerSettings,
    ) -> Result<Generation, Self::Error>;

    /// The log-likelihood the model gives each of `continuations` right after `prompt`, from
    /// an empty context (how a policy that scores its choices decided, replayed).
    fn score(&mut self, prompt: &str, continuations: &[&str]) -> Result<Vec<f64>, Self::Error>;
}
