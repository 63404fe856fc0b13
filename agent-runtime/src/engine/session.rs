//! Per-agent inference: a llama.cpp context on a shared model, and the generation loop.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ContextOptions, EngineError, LoadedModel};

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
    /// [`super::grammar`].
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

    fn validate(&self) -> Result<(), EngineError> {
        let finite = [
            self.temperature,
            self.top_p,
            self.min_p,
            self.repeat_penalty,
        ];
        if finite.iter().any(|x| !x.is_finite()) {
            return Err(EngineError::Settings("sampler parameters must be finite"));
        }
        if !(0.0..=1.0).contains(&self.top_p) || !(0.0..=1.0).contains(&self.min_p) {
            return Err(EngineError::Settings(
                "top_p and min_p must be within 0..=1",
            ));
        }
        if self.top_k < 0 || self.repeat_last_n < 0 || self.repeat_penalty <= 0.0 {
            return Err(EngineError::Settings(
                "top_k and repeat_last_n must be >= 0, repeat_penalty > 0",
            ));
        }
        Ok(())
    }

    fn build(&self, model: &LoadedModel) -> Result<LlamaSampler, EngineError> {
        self.validate()?;
        let llama = model.llama_model();
        let mut chain = Vec::with_capacity(8);
        if let Some(g) = &self.grammar {
            chain.push(
                LlamaSampler::grammar(llama, g, "root")
                    .map_err(|e| EngineError::Grammar(e.to_string()))?,
            );
        }
        if self.repeat_penalty != 1.0 {
            chain.push(LlamaSampler::penalties(
                llama.n_vocab(),
                self.repeat_last_n,
                self.repeat_penalty,
                0.0,
                0.0,
            ));
        }
        if self.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if self.top_k > 0 {
                chain.push(LlamaSampler::top_k(self.top_k));
            }
            if self.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(self.top_p, 1));
            }
            if self.min_p > 0.0 {
                chain.push(LlamaSampler::min_p(self.min_p, 1));
            }
            chain.push(LlamaSampler::temp(self.temperature));
            chain.push(LlamaSampler::dist(self.seed));
        }
        Ok(LlamaSampler::chain_simple(chain))
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

type Ctx<'a> = LlamaContext<'a>;

self_cell::self_cell!(
    /// A llama.cpp context together with the `Arc` of the model it borrows.
    struct ContextCell {
        owner: Arc<LoadedModel>,
        #[covariant]
        dependent: Ctx,
    }
);

/// One agent's inference state: its own llama.cpp context (KV cache) on a shared model.
///
/// Each call to [`AgentContext::generate`] starts from an empty KV cache, so results do not
/// depend on earlier calls. `AgentContext` is `Send` (move it to the agent's thread or task) but
/// not `Sync`.
pub struct AgentContext {
    cell: ContextCell,
    options: ContextOptions,
    batch: LlamaBatch<'static>,
    n_ctx: u32,
}

impl std::fmt::Debug for AgentContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentContext")
            .field("model", &self.cell.borrow_owner().sha256_hex())
            .field("n_ctx", &self.n_ctx)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Most tokens decoded per batch (keeps `LlamaBatch::new` far from its `i32` limit).
const MAX_BATCH: u32 = 8192;

impl AgentContext {
    pub(crate) fn new(model: Arc<LoadedModel>, opts: &ContextOptions) -> Result<Self, EngineError> {
        let n_ctx = opts.n_ctx.clamp(16, model.n_ctx_train().max(16));
        let n_batch = opts.n_batch.clamp(1, MAX_BATCH).min(n_ctx);
        let threads = opts.threads();
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let cell = ContextCell::try_new(model, |m| m.create_llama_context(params))?;
        let options = ContextOptions {
            n_ctx,
            n_batch,
            n_threads: opts.n_threads,
        };
        let batch = LlamaBatch::new(n_batch as usize, 1);
        Ok(AgentContext {
            cell,
            options,
            batch,
            n_ctx,
        })
    }

    /// The shared model this context runs.
    pub fn model(&self) -> &Arc<LoadedModel> {
        self.cell.borrow_owner()
    }

    /// The effective context settings (after clamping to the model).
    pub fn options(&self) -> &ContextOptions {
        &self.options
    }

    /// Tokenize `prompt` (BOS added when the model's vocabulary asks for it; special-token
    /// text such as `<|im_start|>` parsed as the special token, which is what a prompt rendered
    /// with a chat template needs), decode it, then sample until end-of-generation,
    /// `max_tokens`, or a full context.
    pub fn generate(
        &mut self,
        prompt: &str,
        settings: &SamplerSettings,
    ) -> Result<Generation, EngineError> {
        let started = Instant::now();
        let model = Arc::clone(self.cell.borrow_owner());
        let mut sampler = settings.build(&model)?;
        let vocab = model.llama_model().vocab();
        let prompt_tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        if prompt_tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if prompt_tokens.len() >= self.n_ctx as usize {
            return Err(EngineError::PromptTooLong {
                tokens: prompt_tokens.len(),
                n_ctx: self.n_ctx,
            });
        }
        let n_batch = self.options.n_batch as usize;
        let batch = &mut self.batch;
        let n_ctx = self.n_ctx;

        let mut out_tokens: Vec<i32> = Vec::new();
        let mut out_bytes: Vec<u8> = Vec::new();
        let mut stop = StopReason::MaxTokens;
        let mut first_token_ms = 0.0;
        let mut prompt_ms = 0.0;
        let mut gen_started = Instant::now();

        self.cell
            .with_dependent_mut(|_, ctx| -> Result<(), EngineError> {
                ctx.clear_kv_cache();
                // Prompt, in batches; logits only for the last prompt token.
                let last = prompt_tokens.len() - 1;
                for (chunk_idx, chunk) in prompt_tokens.chunks(n_batch).enumerate() {
                    batch.clear();
                    for (i, &tok) in chunk.iter().enumerate() {
                        let pos = chunk_idx * n_batch + i;
                        batch
                            .add(tok, to_pos(pos), &[0], pos == last)
                            .map_err(|e| EngineError::Decode(e.to_string()))?;
                    }
                    ctx.decode(batch)
                        .map_err(|e| EngineError::Decode(e.to_string()))?;
                }
                prompt_ms = ms(started);
                gen_started = Instant::now();

                let mut pos = prompt_tokens.len();
                let mut logits_idx = batch.n_tokens() - 1;
                while out_tokens.len() < settings.max_tokens as usize {
                    // `sample` applies the chain and accepts the token (grammar state advances).
                    let token = sampler.sample(ctx, logits_idx);
                    if out_tokens.is_empty() {
                        first_token_ms = ms(started);
                    }
                    if vocab.is_eog(token) {
                        stop = StopReason::EndOfGeneration;
                        break;
                    }
                    out_tokens.push(token.0);
                    vocab.token_to_piece_into(token, &mut out_bytes, false, None);
                    if out_tokens.len() == settings.max_tokens as usize {
                        break;
                    }
                    if pos >= n_ctx as usize {
                        stop = StopReason::ContextFull;
                        break;
                    }
                    batch.clear();
                    batch
                        .add(token, to_pos(pos), &[0], true)
                        .map_err(|e| EngineError::Decode(e.to_string()))?;
                    ctx.decode(batch)
                        .map_err(|e| EngineError::Decode(e.to_string()))?;
                    pos += 1;
                    logits_idx = 0;
                }
                Ok(())
            })?;

        let generate_ms = ms(gen_started);
        #[allow(clippy::cast_precision_loss)]
        let tokens_per_second = if generate_ms > 0.0 {
            out_tokens.len() as f64 / (generate_ms / 1e3)
        } else {
            0.0
        };
        Ok(Generation {
            text: String::from_utf8_lossy(&out_bytes).into_owned(),
            output_sha256: hex::encode(Sha256::digest(&out_bytes)),
            prompt_sha256: hex::encode(Sha256::digest(prompt.as_bytes())),
            model_sha256: model.sha256_hex(),
            tokens: out_tokens,
            prompt_tokens: u32::try_from(prompt_tokens.len()).unwrap_or(u32::MAX),
            stop,
            settings: settings.clone(),
            context: self.options,
            llama_build: model.engine().llama_build().to_owned(),
            timings: GenerationTimings {
                prompt_ms,
                first_token_ms,
                generate_ms,
                tokens_per_second,
            },
        })
    }
}

fn to_pos(pos: usize) -> i32 {
    // Positions are bounded by n_ctx (a u32 clamped to the model's context), far below i32::MAX.
    i32::try_from(pos).unwrap_or(i32::MAX)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
