//! Per-agent inference: a llama.cpp context on a shared model, and the generation loop.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use sha2::{Digest, Sha256};

use super::{
    ContextOptions, EngineError, Generation, GenerationTimings, Inference, LoadedModel,
    SamplerSettings, StopReason,
};

/// The llama.cpp sampler chain for `settings` (see [`SamplerSettings`] for the order).
fn sampler_chain(
    settings: &SamplerSettings,
    model: &LoadedModel,
) -> Result<LlamaSampler, EngineError> {
    settings.validate()?;
    let llama = model.llama_model();
    let mut chain = Vec::with_capacity(8);
    if let Some(g) = &settings.grammar {
        chain.push(
            LlamaSampler::grammar(llama, g, "root")
                .map_err(|e| EngineError::Grammar(e.to_string()))?,
        );
    }
    if settings.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(
            llama.n_vocab(),
            settings.repeat_last_n,
            settings.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if settings.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if settings.top_k > 0 {
            chain.push(LlamaSampler::top_k(settings.top_k));
        }
        if settings.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(settings.top_p, 1));
        }
        if settings.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(settings.min_p, 1));
        }
        chain.push(LlamaSampler::temp(settings.temperature));
        chain.push(LlamaSampler::dist(settings.seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
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
        let mut sampler = sampler_chain(settings, &model)?;
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
                decode_prompt(ctx, batch, &prompt_tokens, n_batch)?;
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

impl AgentContext {
    /// The log-likelihood (natural log, summed over its tokens) the model gives each of
    /// `continuations` right after `prompt`, from an empty context. The prompt is decoded once;
    /// each continuation is decoded after it alone (its tokens removed again before the next),
    /// so the scores do not depend on the order of `continuations`. A continuation is tokenized
    /// on its own, without special tokens.
    pub fn score(&mut self, prompt: &str, continuations: &[&str]) -> Result<Vec<f64>, EngineError> {
        let model = Arc::clone(self.cell.borrow_owner());
        let vocab = model.llama_model().vocab();
        let prompt_tokens = vocab.tokenize(prompt.as_bytes(), true, true);
        if prompt_tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let options: Vec<Vec<LlamaToken>> = continuations
            .iter()
            .map(|c| vocab.tokenize(c.as_bytes(), false, false))
            .collect();
        let longest = options.iter().map(Vec::len).max().unwrap_or(0);
        if options.iter().any(Vec::is_empty) {
            return Err(EngineError::EmptyPrompt);
        }
        if prompt_tokens.len() + longest >= self.n_ctx as usize {
            return Err(EngineError::PromptTooLong {
                tokens: prompt_tokens.len() + longest,
                n_ctx: self.n_ctx,
            });
        }
        let n_batch = self.options.n_batch as usize;
        let batch = &mut self.batch;
        self.cell
            .with_dependent_mut(|_, ctx| -> Result<Vec<f64>, EngineError> {
                decode_prompt(ctx, batch, &prompt_tokens, n_batch)?;
                let after_prompt = log_softmax(ctx.get_logits_ith(batch.n_tokens() - 1));
                let mut scores = Vec::with_capacity(options.len());
                for option in &options {
                    let mut total = after_prompt[token_index(option[0])];
                    if option.len() > 1 {
                        batch.clear();
                        for (i, &tok) in option[..option.len() - 1].iter().enumerate() {
                            batch
                                .add(tok, to_pos(prompt_tokens.len() + i), &[0], true)
                                .map_err(|e| EngineError::Decode(e.to_string()))?;
                        }
                        ctx.decode(batch)
                            .map_err(|e| EngineError::Decode(e.to_string()))?;
                        for (i, &next) in option[1..].iter().enumerate() {
                            let logits = log_softmax(ctx.get_logits_ith(to_pos(i)));
                            total += logits[token_index(next)];
                        }
                        ctx.clear_kv_cache_seq(Some(0), Some(to_u32(prompt_tokens.len())), None)
                            .map_err(|e| EngineError::Decode(e.to_string()))?;
                    }
                    scores.push(total);
                }
                Ok(scores)
            })
    }
}

/// Decodes `tokens` into an emptied KV cache, `n_batch` at a time, with logits only for the
/// last token (in `batch`, at index `batch.n_tokens() - 1`).
fn decode_prompt(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'static>,
    tokens: &[LlamaToken],
    n_batch: usize,
) -> Result<(), EngineError> {
    ctx.clear_kv_cache();
    let last = tokens.len() - 1;
    for (chunk_idx, chunk) in tokens.chunks(n_batch).enumerate() {
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
    Ok(())
}

/// Natural-log softmax of `logits`, in `f64` (a fixed order of operations: the same logits
/// always give the same values).
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (f64::from(l) - max).exp()).sum();
    let log_sum = sum.ln() + max;
    logits.iter().map(|&l| f64::from(l) - log_sum).collect()
}

fn token_index(token: LlamaToken) -> usize {
    usize::try_from(token.0).unwrap_or(0)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_pos(pos: usize) -> i32 {
    // Positions are bounded by n_ctx (a u32 clamped to the model's context), far below i32::MAX.
    i32::try_from(pos).unwrap_or(i32::MAX)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Replays recorded generations on one loaded model: the engine's [`Inference`] for audits.
/// The context is created on the first generation and reused (each generation starts from an
/// empty KV cache, so reuse does not change results).
pub struct Replayer {
    model: Arc<LoadedModel>,
    options: ContextOptions,
    context: Option<AgentContext>,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer")
            .field("model", &self.model.sha256_hex())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Replayer {
    /// A replayer of `model` with contexts made with `options`.
    pub fn new(model: Arc<LoadedModel>, options: ContextOptions) -> Self {
        Self {
            model,
            options,
            context: None,
        }
    }
}

impl Inference for Replayer {
    type Error = EngineError;

    fn model_sha256(&self) -> [u8; 32] {
        self.model.sha256()
    }

    fn llama_build(&self) -> &str {
        self.model.engine().llama_build()
    }

    fn generate(
        &mut self,
        prompt: &str,
        settings: &SamplerSettings,
    ) -> Result<Generation, EngineError> {
        let context = match &mut self.context {
            Some(context) => context,
            empty => empty.insert(self.model.new_context(&self.options)?),
        };
        context.generate(prompt, settings)
    }

    fn score(&mut self, prompt: &str, continuations: &[&str]) -> Result<Vec<f64>, EngineError> {
        let context = match &mut self.context {
            Some(context) => context,
            empty => empty.insert(self.model.new_context(&self.options)?),
        };
        context.score(prompt, continuations)
    }
}
