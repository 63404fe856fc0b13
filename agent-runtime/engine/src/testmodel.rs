//! A generator for small llama-architecture GGUF models with deterministic weights.
//!
//! There is no internet on the machines this project runs on, so tests, benches and demos
//! cannot download a model. This module writes one instead: a GGUF v3 file that llama.cpp
//! loads as an ordinary `llama` model (RMSNorm, rotary attention, SwiGLU feed-forward) with
//!
//! * a byte-level SentencePiece ("llama") vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte
//!   tokens `<0x00>`..`<0xFF>` (type BYTE, so llama.cpp can tokenize *any* input by byte
//!   fallback), optionally followed by extra ordinary tokens that pad the vocabulary;
//! * weights drawn from a seeded generator (SplitMix64, one stream per tensor), scaled by
//!   `1/sqrt(fan_in)` so activations stay O(1) at any depth: no NaNs, no infinities, and the
//!   output distribution is spread enough that different sampling seeds give different text.
//!
//! The same parameters and seed always produce the same bytes. The writer streams tensor
//! data to any [`Write`] through a 1 MiB buffer, so a multi-GiB model never sits in memory.
//!
//! ```
//! use inft_engine::testmodel::{write_llama_gguf, TestModelParams};
//! let params = TestModelParams::for_size(256 * 1024);
//! let mut bytes = Vec::new();
//! let info = write_llama_gguf(&mut bytes, &params, 7)?;
//! assert_eq!(info.bytes, bytes.len() as u64);
//! assert_eq!(info.bytes, params.file_size()?);
//! # Ok::<(), inft_engine::testmodel::TestModelError>(())
//! ```

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

/// GGUF magic, little-endian "GGUF".
const GGUF_MAGIC: &[u8; 4] = b"GGUF";
/// GGUF container version written by this module.
const GGUF_VERSION: u32 = 3;
/// Tensor data alignment (GGUF default; we do not write `general.alignment`).
const ALIGNMENT: u64 = 32;
/// Number of fixed tokens: `<unk>`, `<s>`, `</s>` and 256 byte tokens.
const BASE_VOCAB: u32 = 3 + 256;
/// Largest vocabulary the generator writes (keeps the header small and tokenization sane).
const MAX_VOCAB: u32 = 65_536;
/// Streaming buffer for tensor data.
const CHUNK_BYTES: usize = 1 << 20;

// GGUF metadata value types.
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;

// llama.cpp token types (`llama_token_type`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_UNKNOWN: i32 = 2;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_BYTE: i32 = 6;

/// Why a test model could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestModelError {
    /// The parameters describe a model llama.cpp would refuse (or this writer cannot produce).
    #[error("invalid test model parameters: {0}")]
    InvalidParams(&'static str),
    /// Writing to the sink failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Storage type of the weight matrices (norm vectors are always f32, as llama.cpp expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightType {
    /// 32-bit floats: 4 bytes per weight.
    F32,
    /// IEEE half floats: 2 bytes per weight (what most real GGUF releases ship besides quants).
    F16,
}

impl WeightType {
    fn ggml_type(self) -> u32 {
        match self {
            WeightType::F32 => 0,
            WeightType::F16 => 1,
        }
    }

    fn bytes(self) -> u64 {
        match self {
            WeightType::F32 => 4,
            WeightType::F16 => 2,
        }
    }

    /// `general.file_type` (`llama_ftype`): ALL_F32 = 0, MOSTLY_F16 = 1.
    fn file_type(self) -> u32 {
        self.ggml_type()
    }
}

/// Shape of a generated model. Use [`TestModelParams::for_size`] to pick one from a byte size.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TestModelParams {
    /// Vocabulary size, at least 259 (3 special + 256 byte tokens).
    pub n_vocab: u32,
    /// Width of the residual stream.
    pub n_embd: u32,
    /// Number of transformer blocks (at least 1).
    pub n_layer: u32,
    /// Attention heads; `n_embd / n_head` must be even (rotary embeddings).
    pub n_head: u32,
    /// Key/value heads (grouped-query attention); must divide `n_head`.
    pub n_head_kv: u32,
    /// Hidden width of the SwiGLU feed-forward block.
    pub n_ff: u32,
    /// Training context length written to the metadata (the largest useful `n_ctx`).
    pub n_ctx_train: u32,
    /// Storage type of the weight matrices.
    pub weight_type: WeightType,
    /// Reuse the token embedding as the output projection (no `output.weight` tensor).
    pub tie_embeddings: bool,
    /// A chat template written to `tokenizer.chat_template` (e.g. [`GEMMA_CHAT_TEMPLATE`]), so
    /// prompt rendering can be tested with another model family's format; `None` writes none
    /// and the runtime falls back to plain text.
    #[serde(default)]
    pub chat_template: Option<String>,
}

/// Gemma's chat template (the Jinja text Gemma GGUFs ship), which llama.cpp recognizes by its
/// `<start_of_turn>` markers.
pub const GEMMA_CHAT_TEMPLATE: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

/// What [`write_llama_gguf`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestModelInfo {
    /// Total bytes written to the sink.
    pub bytes: u64,
    /// Number of model parameters (weights and norm gains).
    pub n_params: u64,
}

/// One rung of the size ladder used by [`TestModelParams::for_size`]: (n_embd, n_head, n_ff).
const LADDER: &[(u32, u32, u32)] = &[
    (16, 2, 32),
    (32, 2, 64),
    (64, 4, 160),
    (128, 4, 352),
    (256, 4, 688),
    (512, 8, 1376),
    (768, 12, 2048),
    (1024, 16, 2752),
    (1536, 24, 4096),
    (2048, 32, 5632),
    (3072, 48, 8192),
    (4096, 64, 11008),
];

/// Models with at least this many layers are preferred when choosing a width for a size.
const PREFERRED_MIN_LAYERS: u64 = 8;
/// Upper bound on depth; beyond it the next wider rung is used even with fewer layers.
const MAX_LAYERS: u64 = 96;

impl TestModelParams {
    /// The smallest model the generator makes (about 21 KiB with f16 weights, most of it the
    /// 259-token vocabulary).
    pub fn tiny() -> Self {
        Self::rung(LADDER[0], 1, WeightType::F16)
    }

    fn rung(
        (n_embd, n_head, n_ff): (u32, u32, u32),
        n_layer: u32,
        weight_type: WeightType,
    ) -> Self {
        TestModelParams {
            n_vocab: BASE_VOCAB,
            n_embd,
            n_layer,
            n_head,
            n_head_kv: n_head,
            n_ff,
            n_ctx_train: 4096,
            weight_type,
            // Tiny widths tie the output projection so the smallest file stays a few KiB.
            tie_embeddings: n_embd < 64,
            chat_template: None,
        }
    }

    /// Parameters for an f16 model whose file is as close to `bytes` as possible without
    /// exceeding it (within about one embedding row for sizes above a few hundred KiB).
    ///
    /// The width grows with the size (16 .. 4096) so that the model keeps at least 8 layers
    /// where possible, the depth fills most of the budget, and extra vocabulary entries fill
    /// the rest. Sizes below the smallest model (about 21 KiB) give [`TestModelParams::tiny`].
    pub fn for_size(bytes: u64) -> Self {
        let weight_type = WeightType::F16;
        let mut chosen = Self::tiny();
        // Widest rung that still gets the preferred depth; else the widest that fits one layer.
        for &rung in LADDER.iter().rev() {
            let mut p = Self::rung(rung, 1, weight_type);
            let Ok(one) = p.file_size() else { continue };
            let per_layer = p.layer_bytes();
            if one > bytes {
                continue;
            }
            let layers = 1 + (bytes - one) / per_layer;
            if layers >= PREFERRED_MIN_LAYERS || rung == LADDER[0] {
                p.n_layer = u32::try_from(layers.min(MAX_LAYERS)).unwrap_or(1);
                chosen = p;
                break;
            }
            if chosen == Self::tiny() {
                p.n_layer = u32::try_from(layers).unwrap_or(1);
                chosen = p;
            }
        }
        // Each layer also adds tensor infos to the header: trim until the file fits.
        while chosen.n_layer > 1 && chosen.file_size().is_ok_and(|s| s > bytes) {
            chosen.n_layer -= 1;
        }
        chosen.fill_vocab(bytes);
        chosen
    }

    /// Grow the vocabulary so the file approaches `target` bytes without exceeding it.
    fn fill_vocab(&mut self, target: u64) {
        let fits = |p: &Self, extra: u32| {
            let mut q = p.clone();
            q.n_vocab = BASE_VOCAB + extra;
            q.file_size().is_ok_and(|size| size <= target)
        };
        if !fits(self, 0) {
            return;
        }
        let (mut lo, mut hi) = (0u32, MAX_VOCAB - BASE_VOCAB);
        // Largest `extra` that fits: size is monotonic in the vocabulary size.
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(self, mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.n_vocab = BASE_VOCAB + lo;
    }

    /// Check the shape against what llama.cpp and this writer accept.
    pub fn validate(&self) -> Result<(), TestModelError> {
        if self.n_vocab < BASE_VOCAB || self.n_vocab > MAX_VOCAB {
            return Err(TestModelError::InvalidParams(
                "n_vocab must be in 259..=65536",
            ));
        }
        if self.n_embd == 0 || self.n_layer == 0 || self.n_ff == 0 || self.n_ctx_train == 0 {
            return Err(TestModelError::InvalidParams(
                "n_embd, n_layer, n_ff and n_ctx_train must be positive",
            ));
        }
        if self.n_head == 0
            || !self.n_embd.is_multiple_of(self.n_head)
            || !(self.n_embd / self.n_head).is_multiple_of(2)
        {
            return Err(TestModelError::InvalidParams(
                "n_head must divide n_embd into an even head size",
            ));
        }
        if self.n_head_kv == 0 || !self.n_head.is_multiple_of(self.n_head_kv) {
            return Err(TestModelError::InvalidParams(
                "n_head_kv must divide n_head",
            ));
        }
        if self.n_embd > 65_536 || self.n_ff > 262_144 || self.n_layer > 4096 {
            return Err(TestModelError::InvalidParams(
                "model dimensions are unreasonably large",
            ));
        }
        Ok(())
    }

    fn head_dim(&self) -> u32 {
        self.n_embd / self.n_head
    }

    fn n_embd_kv(&self) -> u64 {
        u64::from(self.head_dim()) * u64::from(self.n_head_kv)
    }

    /// Bytes of tensor data one transformer block adds (excluding alignment padding, which
    /// is zero for the widths of the size ladder).
    fn layer_bytes(&self) -> u64 {
        self.tensors()
            .iter()
            .filter(|t| t.name.starts_with("blk.0."))
            .map(|t| t.data_bytes())
            .sum()
    }

    /// Number of parameters of the model.
    pub fn n_params(&self) -> u64 {
        self.tensors().iter().map(Tensor::elements).sum()
    }

    /// Exact size in bytes of the file [`write_llama_gguf`] writes for these parameters.
    pub fn file_size(&self) -> Result<u64, TestModelError> {
        self.validate()?;
        let tensors = self.tensors();
        let header = header_bytes(self, 0, &tensors);
        Ok(header.len() as u64 + data_section_len(&tensors))
    }

    /// The tensor list in file order, with llama.cpp's names and ggml dimension order
    /// (`ne[0]` is the contiguous, fan-in dimension).
    fn tensors(&self) -> Vec<Tensor> {
        let e = u64::from(self.n_embd);
        let kv = self.n_embd_kv();
        let ff = u64::from(self.n_ff);
        let v = u64::from(self.n_vocab);
        let w = self.weight_type;
        let mut out = vec![
            // Embeddings are read by row, not multiplied: any O(1) scale works (RMSNorm follows).
            Tensor::new("token_embd.weight", [e, v], w, Init::Uniform(1.0)),
            Tensor::new("output_norm.weight", [e, 1], WeightType::F32, Init::Ones),
        ];
        if !self.tie_embeddings {
            // Logit standard deviation about 3: peaked enough to look like a model, spread
            // enough that seeded sampling differs from greedy.
            out.push(Tensor::new("output.weight", [e, v], w, Init::FanIn(3.0)));
        }
        for i in 0..self.n_layer {
            let name = |s: &str| format!("blk.{i}.{s}.weight");
            out.push(Tensor::new(
                &name("attn_norm"),
                [e, 1],
                WeightType::F32,
                Init::Ones,
            ));
            out.push(Tensor::new(&name("attn_q"), [e, e], w, Init::FanIn(1.0)));
            out.push(Tensor::new(&name("attn_k"), [e, kv], w, Init::FanIn(1.0)));
            out.push(Tensor::new(&name("attn_v"), [e, kv], w, Init::FanIn(1.0)));
            out.push(Tensor::new(
                &name("attn_output"),
                [e, e],
                w,
                Init::FanIn(1.0),
            ));
            out.push(Tensor::new(
                &name("ffn_norm"),
                [e, 1],
                WeightType::F32,
                Init::Ones,
            ));
            out.push(Tensor::new(&name("ffn_gate"), [e, ff], w, Init::FanIn(1.0)));
            out.push(Tensor::new(&name("ffn_up"), [e, ff], w, Init::FanIn(1.0)));
            out.push(Tensor::new(&name("ffn_down"), [ff, e], w, Init::FanIn(1.0)));
        }
        out
    }
}

impl Default for TestModelParams {
    /// A small but non-trivial model (about 2 MiB), quick to load and run in tests.
    fn default() -> Self {
        Self::for_size(2 << 20)
    }
}

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy)]
enum Init {
    /// All ones (norm gains).
    Ones,
    /// Uniform in `[-a, a]`.
    Uniform(f32),
    /// Uniform with standard deviation `gain / sqrt(fan_in)`, fan_in = `ne[0]`.
    FanIn(f32),
}

#[derive(Debug, Clone)]
struct Tensor {
    name: String,
    /// ggml dimensions; a trailing 1 means a vector.
    ne: [u64; 2],
    ty: WeightType,
    init: Init,
}

impl Tensor {
    fn new(name: &str, ne: [u64; 2], ty: WeightType, init: Init) -> Self {
        Tensor {
            name: name.to_owned(),
            ne,
            ty,
            init,
        }
    }

    fn elements(&self) -> u64 {
        self.ne[0] * self.ne[1]
    }

    fn data_bytes(&self) -> u64 {
        self.elements() * self.ty.bytes()
    }

    fn n_dims(&self) -> u32 {
        if self.ne[1] == 1 { 1 } else { 2 }
    }

    fn amplitude(&self) -> f32 {
        match self.init {
            Init::Ones => 1.0,
            Init::Uniform(a) => a,
            // Uniform on [-a, a] has standard deviation a / sqrt(3).
            #[allow(clippy::cast_precision_loss)] // fan-in is far below 2^24
            Init::FanIn(gain) => gain * (3.0 / self.ne[0] as f32).sqrt(),
        }
    }
}

fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn data_section_len(tensors: &[Tensor]) -> u64 {
    tensors
        .iter()
        .fold(0, |off, t| align_up(off) + t.data_bytes())
}

/// Token text for the i-th vocabulary entry.
fn token_text(i: u32) -> String {
    match i {
        0 => "<unk>".to_owned(),
        1 => "<s>".to_owned(),
        2 => "</s>".to_owned(),
        3..259 => format!("<0x{:02X}>", i - 3),
        _ => extra_token_text(i - BASE_VOCAB),
    }
}

/// Extra (padding) tokens: the 95 printable ASCII characters, then "▁" + a lowercase word in
/// bijective base 26 ("▁a", "▁b", …, "▁aa", …). All distinct, none collides with a fixed token.
fn extra_token_text(k: u32) -> String {
    const PRINTABLE: u32 = 95;
    if k < PRINTABLE {
        // 0x20..=0x7E are all valid chars.
        return char::from_u32(0x20 + k)
            .map(String::from)
            .unwrap_or_default();
    }
    let mut n = k - PRINTABLE + 1;
    let mut word = Vec::new();
    while n > 0 {
        n -= 1;
        word.push(b'a' + u8::try_from(n % 26).unwrap_or(0));
        n /= 26;
    }
    word.reverse();
    format!("\u{2581}{}", String::from_utf8_lossy(&word))
}

fn token_type(i: u32) -> i32 {
    match i {
        0 => TOKEN_UNKNOWN,
        1 | 2 => TOKEN_CONTROL,
        3..259 => TOKEN_BYTE,
        _ => TOKEN_NORMAL,
    }
}

#[allow(clippy::cast_precision_loss)] // scores are ranks; exactness is irrelevant
fn token_score(i: u32) -> f32 {
    if i < BASE_VOCAB {
        0.0
    } else {
        -((i - BASE_VOCAB) as f32) - 1.0
    }
}

/// Little-endian GGUF serializer for the header; the second field counts key/value pairs.
struct Header(Vec<u8>, u64);

impl Header {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn kv_u32(&mut self, k: &str, v: u32) {
        self.1 += 1;
        self.str(k);
        self.u32(T_U32);
        self.u32(v);
    }
    fn kv_u64(&mut self, k: &str, v: u64) {
        self.1 += 1;
        self.str(k);
        self.u32(T_U64);
        self.u64(v);
    }
    fn kv_f32(&mut self, k: &str, v: f32) {
        self.1 += 1;
        self.str(k);
        self.u32(T_F32);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn kv_bool(&mut self, k: &str, v: bool) {
        self.1 += 1;
        self.str(k);
        self.u32(T_BOOL);
        self.0.push(u8::from(v));
    }
    fn kv_str(&mut self, k: &str, v: &str) {
        self.1 += 1;
        self.str(k);
        self.u32(T_STRING);
        self.str(v);
    }
    fn kv_array_header(&mut self, k: &str, item_type: u32, n: u32) {
        self.1 += 1;
        self.str(k);
        self.u32(T_ARRAY);
        self.u32(item_type);
        self.u64(u64::from(n));
    }
}

/// Serialize metadata and tensor infos, padded to the data alignment.
fn header_bytes(p: &TestModelParams, seed: u64, tensors: &[Tensor]) -> Vec<u8> {
    let mut h = Header(Vec::with_capacity(16 * 1024 + p.n_vocab as usize * 24), 0);
    h.kv_str("general.architecture", "llama");
    h.kv_str("general.name", "inft-testmodel");
    h.kv_str(
        "general.description",
        "deterministic random-weight test model generated by inft",
    );
    h.kv_u32("general.file_type", p.weight_type.file_type());
    h.kv_u64("inft.testmodel.seed", seed);
    h.kv_u32("llama.vocab_size", p.n_vocab);
    h.kv_u32("llama.context_length", p.n_ctx_train);
    h.kv_u32("llama.embedding_length", p.n_embd);
    h.kv_u32("llama.block_count", p.n_layer);
    h.kv_u32("llama.feed_forward_length", p.n_ff);
    h.kv_u32("llama.attention.head_count", p.n_head);
    h.kv_u32("llama.attention.head_count_kv", p.n_head_kv);
    h.kv_u32("llama.rope.dimension_count", p.head_dim());
    h.kv_f32("llama.rope.freq_base", 10_000.0);
    h.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    h.kv_str("tokenizer.ggml.model", "llama");

    h.kv_array_header("tokenizer.ggml.tokens", T_STRING, p.n_vocab);
    for i in 0..p.n_vocab {
        h.str(&token_text(i));
    }
    h.kv_array_header("tokenizer.ggml.scores", T_F32, p.n_vocab);
    for i in 0..p.n_vocab {
        h.0.extend_from_slice(&token_score(i).to_le_bytes());
    }
    h.kv_array_header("tokenizer.ggml.token_type", T_I32, p.n_vocab);
    for i in 0..p.n_vocab {
        h.0.extend_from_slice(&token_type(i).to_le_bytes());
    }
    h.kv_u32("tokenizer.ggml.unknown_token_id", 0);
    h.kv_u32("tokenizer.ggml.bos_token_id", 1);
    h.kv_u32("tokenizer.ggml.eos_token_id", 2);
    h.kv_bool("tokenizer.ggml.add_bos_token", true);
    h.kv_bool("tokenizer.ggml.add_eos_token", false);
    if let Some(template) = &p.chat_template {
        h.kv_str("tokenizer.chat_template", template);
    }

    // Fixed part: magic, version, tensor count, kv count; then the kvs written above.
    let mut file = Header(Vec::with_capacity(h.0.len() + 64 * tensors.len() + 64), 0);
    file.0.extend_from_slice(GGUF_MAGIC);
    file.u32(GGUF_VERSION);
    file.u64(tensors.len() as u64);
    file.u64(h.1);
    file.0.extend_from_slice(&h.0);
    let mut h = file;

    let mut offset = 0u64;
    for t in tensors {
        offset = align_up(offset);
        h.str(&t.name);
        h.u32(t.n_dims());
        h.u64(t.ne[0]);
        if t.n_dims() == 2 {
            h.u64(t.ne[1]);
        }
        h.u32(t.ty.ggml_type());
        h.u64(offset);
        offset += t.data_bytes();
    }
    let padded = align_up(h.0.len() as u64);
    h.0.resize(usize::try_from(padded).unwrap_or(h.0.len()), 0);
    h.0
}

/// SplitMix64: tiny, fast, and statistically fine for weights.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Per-tensor stream seed: FNV-1a of the tensor name mixed with the model seed.
fn tensor_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    SplitMix64(seed ^ h).next()
}

/// Write a llama-architecture GGUF with weights drawn from `seed` to `w`.
///
/// Streams: memory use is the header plus a 1 MiB buffer regardless of model size.
/// Returns the number of bytes written, which always equals [`TestModelParams::file_size`].
pub fn write_llama_gguf<W: Write>(
    mut w: W,
    params: &TestModelParams,
    seed: u64,
) -> Result<TestModelInfo, TestModelError> {
    params.validate()?;
    let tensors = params.tensors();
    let header = header_bytes(params, seed, &tensors);
    w.write_all(&header)?;
    let mut written = header.len() as u64;

    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    let mut data_off = 0u64;
    for t in &tensors {
        let pad = align_up(data_off) - data_off;
        if pad > 0 {
            w.write_all(&[0u8; ALIGNMENT as usize][..usize::try_from(pad).unwrap_or(0)])?;
            data_off += pad;
        }
        let mut rng = SplitMix64(tensor_seed(seed, &t.name));
        let amp = t.amplitude();
        let mut remaining = t.elements();
        let per_chunk = (CHUNK_BYTES as u64) / t.ty.bytes();
        while remaining > 0 {
            let n = remaining.min(per_chunk);
            buf.clear();
            for _ in 0..n {
                let x = match t.init {
                    Init::Ones => 1.0f32,
                    Init::Uniform(_) | Init::FanIn(_) => {
                        // 24 random bits -> [-1, 1), exact in f32.
                        #[allow(clippy::cast_precision_loss)]
                        let u = (rng.next() >> 40) as f32 * (1.0 / (1u64 << 23) as f32) - 1.0;
                        u * amp
                    }
                };
                match t.ty {
                    WeightType::F32 => buf.extend_from_slice(&x.to_le_bytes()),
                    WeightType::F16 => {
                        buf.extend_from_slice(&half::f16::from_f32(x).to_le_bytes());
                    }
                }
            }
            w.write_all(&buf)?;
            remaining -= n;
        }
        data_off += t.data_bytes();
    }
    written += data_off;
    w.flush()?;
    Ok(TestModelInfo {
        bytes: written,
        n_params: params.n_params(),
    })
}

/// Convenience for tests: the whole model in a `Vec` (only sensible for small models).
pub fn llama_gguf_bytes(params: &TestModelParams, seed: u64) -> Result<Vec<u8>, TestModelError> {
    let size = params.file_size()?;
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    write_llama_gguf(&mut out, params, seed)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let p = TestModelParams::for_size(300 * 1024);
        let a = llama_gguf_bytes(&p, 1).unwrap();
        let b = llama_gguf_bytes(&p, 1).unwrap();
        let c = llama_gguf_bytes(&p, 2).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), c.len());
        assert_ne!(a, c);
    }

    #[test]
    fn file_size_is_exact_and_for_size_stays_under_target() {
        for target in [1u64, 20_000, 100_000, 1 << 20, 3 << 20, 10 << 20] {
            let p = TestModelParams::for_size(target);
            let bytes = llama_gguf_bytes(&p, 9).unwrap();
            assert_eq!(bytes.len() as u64, p.file_size().unwrap());
            if target >= TestModelParams::tiny().file_size().unwrap() {
                assert!(bytes.len() as u64 <= target, "{target}: {}", bytes.len());
            }
            if target >= 1 << 20 {
                // Close to the target: within 2 % once the vocabulary can pad.
                assert!(
                    bytes.len() as f64 > target as f64 * 0.98,
                    "{target}: {}",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn for_size_scales_to_gibibytes_without_writing() {
        let p = TestModelParams::for_size(1 << 30);
        let size = p.file_size().unwrap();
        assert!(
            size <= 1 << 30 && size > (1 << 30) * 99 / 100,
            "{size} for {p:?}"
        );
        assert!(p.n_layer >= 8, "{p:?}");
        let big = TestModelParams::for_size(6 << 30);
        assert!(big.n_embd >= p.n_embd);
        assert!(big.file_size().unwrap() <= 6 << 30);
    }

    #[test]
    fn tiny_is_a_few_kib() {
        let size = TestModelParams::tiny().file_size().unwrap();
        assert!(size < 24 * 1024, "{size}");
    }

    #[test]
    fn invalid_params_are_errors() {
        let mut p = TestModelParams::tiny();
        p.n_head = 3;
        assert!(matches!(
            p.validate(),
            Err(TestModelError::InvalidParams(_))
        ));
        let mut p = TestModelParams::tiny();
        p.n_vocab = 10;
        assert!(write_llama_gguf(Vec::new(), &p, 0).is_err());
    }

    #[test]
    fn header_starts_with_magic_and_vocab_has_byte_tokens() {
        let bytes = llama_gguf_bytes(&TestModelParams::tiny(), 0).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        let needle = b"<0x0A>";
        assert!(bytes.windows(needle.len()).any(|w| w == needle));
        assert_eq!(token_text(3 + 0xFF), "<0xFF>");
        assert_eq!(extra_token_text(0), " ");
        assert_eq!(extra_token_text(95), "\u{2581}a");
        assert_eq!(extra_token_text(95 + 26), "\u{2581}aa");
    }

    #[test]
    fn weights_are_finite_and_bounded() {
        let p = TestModelParams {
            weight_type: WeightType::F32,
            ..TestModelParams::tiny()
        };
        let bytes = llama_gguf_bytes(&p, 3).unwrap();
        let tensors = p.tensors();
        let data_start = bytes.len() - data_section_len(&tensors) as usize;
        for chunk in bytes[data_start..].chunks_exact(4) {
            let x = f32::from_le_bytes(chunk.try_into().unwrap());
            assert!(x.is_finite() && x.abs() <= 2.0, "{x}");
        }
    }
}
