//! One loaded model per plaintext hash, shared by every agent that runs it.
//!
//! A token gets an already loaded model without decrypting its own model entry only if that
//! entry (the same sealed blob, opened with the same data key) was decrypted in this process
//! before and produced the model ([`ModelCache::get_for`], [`ModelSource`]): the model hash a
//! token's config *claims* proves nothing about what the token holds, and sharing on it would
//! hand one token's weights to another token that cannot decrypt them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;

use super::session::AgentContext;
use super::{ContextOptions, Engine, EngineError, ModelOptions, SealedModel};

type Key = ([u8; 32], ModelOptions);

/// Domain label of [`ModelSource`].
const MODEL_SOURCE_LABEL: &[u8] = b"inft/v1/model-source";

/// A token's model entry as the cache knows it: SHA-256 over a label, the sealed blob's
/// commitment (its on-chain `dataHash`) and the data key that opens it. Decryption is
/// deterministic, so one source always yields the same plaintext; the key is in it so that a
/// token naming another token's blob, with a key that does not open it, is a different source.
/// A one-way hash of a random 256-bit key reveals nothing of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelSource([u8; 32]);

impl ModelSource {
    /// The source of the blob with commitment `data_hash` opened with `key`.
    pub fn new(data_hash: &sealing::Commitment, key: &sealing::DataKey) -> Self {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(MODEL_SOURCE_LABEL);
        h.update(data_hash.as_bytes());
        h.update(key.expose());
        Self(h.finalize().into())
    }
}

impl std::fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelSource(..)")
    }
}

/// Counters of a [`ModelCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Models actually loaded by llama.cpp.
    pub loads: u64,
    /// Requests answered with an already loaded model.
    pub hits: u64,
    /// Models currently alive (held by at least one agent).
    pub live: usize,
}

/// Loaded models keyed by (plaintext SHA-256, load options).
///
/// The cache holds only weak references: a model is freed as soon as the last agent drops its
/// `Arc`, so memory follows use without explicit eviction. [`ModelCache::evict`] additionally
/// forgets an entry so the next load reloads it.
#[derive(Debug, Default)]
pub struct ModelCache {
    models: Mutex<HashMap<Key, Weak<LoadedModel>>>,
    /// The plaintext hash each model source was seen to decrypt to (see [`ModelSource`]).
    /// Entries are dropped once no model with their hash is alive.
    sources: Mutex<HashMap<ModelSource, [u8; 32]>>,
    /// Serializes loads so two agents unsealing the same model concurrently load it once.
    /// Cache hits never take this lock.
    load_lock: Mutex<()>,
    loads: AtomicU64,
    hits: AtomicU64,
}

impl ModelCache {
    /// An empty cache. Most code uses the engine's ([`Engine::cache`]); a separate cache is
    /// useful for isolation in tests.
    pub fn new() -> Self {
        Self::default()
    }

    /// The loaded model for `sha256` and `opts`, if some agent still holds it.
    pub fn get(&self, sha256: &[u8; 32], opts: &ModelOptions) -> Option<Arc<LoadedModel>> {
        let models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        models.get(&(*sha256, *opts)).and_then(Weak::upgrade)
    }

    /// The loaded model `source` decrypts to, if this process decrypted that source before
    /// ([`remember_source`](Self::remember_source)) and some agent still holds the model. This
    /// is the lookup a token may use to skip decrypting its own model entry.
    pub fn get_for(&self, source: &ModelSource, opts: &ModelOptions) -> Option<Arc<LoadedModel>> {
        let sha256 = {
            let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            *sources.get(source)?
        };
        self.get(&sha256, opts)
    }

    /// Notes that `source` decrypted to the plaintext with hash `sha256` (call it once the
    /// plaintext is hashed, before checking it against a config: it is a fact about the blob).
    pub fn remember_source(&self, source: ModelSource, sha256: [u8; 32]) {
        let live: std::collections::HashSet<[u8; 32]> = {
            let models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
            models
                .iter()
                .filter(|(_, w)| w.strong_count() > 0)
                .map(|(k, _)| k.0)
                .collect()
        };
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources.retain(|_, h| live.contains(h));
        sources.insert(source, sha256);
    }

    /// Return the loaded model with `model`'s hash, loading it with llama.cpp if no agent
    /// holds it. On a hit `model` (the duplicate in-memory copy) is dropped right away.
    pub fn load(
        &self,
        engine: &'static Engine,
        model: SealedModel,
        opts: &ModelOptions,
    ) -> Result<Arc<LoadedModel>, EngineError> {
        let key = (model.sha256(), *opts);
        if let Some(hit) = self.get(&key.0, opts) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        let _loading = self
            .load_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another thread may have loaded it while we waited.
        if let Some(hit) = self.get(&key.0, opts) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        let loaded = Arc::new(LoadedModel::load(engine, model, opts)?);
        self.loads.fetch_add(1, Ordering::Relaxed);
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        models.retain(|_, w| w.strong_count() > 0);
        models.insert(key, Arc::downgrade(&loaded));
        Ok(loaded)
    }

    /// Forget the entry for `sha256`/`opts`. Agents holding the model keep it alive; the next
    /// load of that hash loads a fresh copy. Returns whether an entry was removed.
    pub fn evict(&self, sha256: &[u8; 32], opts: &ModelOptions) -> bool {
        let mut models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        models.remove(&(*sha256, *opts)).is_some()
    }

    /// Load and hit counters, and the number of live models.
    pub fn stats(&self) -> CacheStats {
        let models = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        CacheStats {
            loads: self.loads.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            live: models.values().filter(|w| w.strong_count() > 0).count(),
        }
    }
}

/// A model loaded by llama.cpp, shared (`Arc`) by every agent running it. Each agent gets its
/// own [`AgentContext`] (KV cache, sampler state) from [`LoadedModel::new_context`].
pub struct LoadedModel {
    // Field order matters: the llama.cpp model (which may map the file) is dropped before the
    // in-memory file it was loaded from.
    model: LlamaModel,
    source: SealedModel,
    engine: &'static Engine,
    options: ModelOptions,
    /// llama.cpp's context creation mutates the model (`n_ctx_train` bookkeeping), so contexts
    /// are created one at a time.
    context_lock: Mutex<()>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("sha256", &self.sha256_hex())
            .field("bytes", &self.source.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    #[tracing::instrument(
        name = "model_load",
        skip_all,
        fields(sha256 = %hex::encode(model.sha256()), bytes = model.len(), gpu_layers = opts.gpu_layers)
    )]
    fn load(
        engine: &'static Engine,
        model: SealedModel,
        opts: &ModelOptions,
    ) -> Result<LoadedModel, EngineError> {
        if model.is_empty() {
            return Err(EngineError::ModelLoad("empty model file".to_owned()));
        }
        if opts.gpu_layers > 0 && !cfg!(feature = "cuda") {
            // llama.cpp silently runs on the CPU; say so rather than let a user believe otherwise.
            tracing::warn!(
                gpu_layers = opts.gpu_layers,
                "GPU layers requested but this build has no GPU backend (build with --features cuda); running on the CPU"
            );
        }
        let started = Instant::now();
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(opts.gpu_layers)
            .with_use_mmap(opts.use_mmap);
        let llama = LlamaModel::load_from_file(engine.backend(), model.path(), &params)
            .map_err(|e| EngineError::ModelLoad(e.to_string()))?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            n_params = llama.n_params(),
            n_layer = llama.n_layer(),
            n_vocab = llama.n_vocab(),
            "model loaded"
        );
        Ok(LoadedModel {
            model: llama,
            source: model,
            engine,
            options: *opts,
            context_lock: Mutex::new(()),
        })
    }

    /// SHA-256 of the plaintext GGUF.
    pub fn sha256(&self) -> [u8; 32] {
        self.source.sha256()
    }

    /// SHA-256 of the plaintext GGUF, lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.source.sha256())
    }

    /// Size of the GGUF in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.source.len()
    }

    /// Options the model was loaded with.
    pub fn options(&self) -> &ModelOptions {
        &self.options
    }

    /// The engine that loaded this model.
    pub fn engine(&self) -> &'static Engine {
        self.engine
    }

    /// The llama.cpp model, for code that drives `llama-cpp-2` directly (benchmarks).
    pub fn llama_model(&self) -> &LlamaModel {
        &self.model
    }

    /// Training context length of the model.
    pub fn n_ctx_train(&self) -> u32 {
        self.model.n_ctx_train()
    }

    /// A new inference context for one agent, holding its own reference to this model.
    pub fn new_context(
        self: &Arc<Self>,
        opts: &ContextOptions,
    ) -> Result<AgentContext, EngineError> {
        AgentContext::new(Arc::clone(self), opts)
    }

    /// Create a raw llama.cpp context (serialized, see `context_lock`).
    pub(crate) fn create_llama_context(
        &self,
        params: LlamaContextParams,
    ) -> Result<llama_cpp_2::context::LlamaContext<'_>, EngineError> {
        let _guard = self
            .context_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.model
            .new_context(self.engine.backend(), params)
            .map_err(|e| EngineError::Context(e.to_string()))
    }
}
