//! Engine tests against real llama.cpp with generated models: memfd loading, deterministic
//! generation, grammar-constrained JSON, the shared model cache, and bad input.

use std::io::Write;
use std::sync::Arc;

use inft_engine::grammar::{CREATIVE_MAX_TOKENS, JsonField, creative_grammar, json_object_grammar};
use inft_engine::testmodel::{
    GEMMA_CHAT_TEMPLATE, TestModelParams, WeightType, llama_gguf_bytes, write_llama_gguf,
};
use inft_engine::{
    ChatMessage, ContextOptions, Engine, EngineError, MemModel, ModelCache, ModelOptions,
    PromptFormat, SamplerSettings, SealedModel, StopReason,
};
use sha2::{Digest, Sha256};

const PROMPT: &str = "The agent observes the market and writes:";

/// Stream a generated model straight into a sealed memfd, as the unseal step would.
fn sealed_model(params: &TestModelParams, seed: u64) -> SealedModel {
    let mut sink = MemModel::new("engine-test").expect("memfd");
    write_llama_gguf(&mut sink, params, seed).expect("generate model");
    sink.finish().expect("seal memfd")
}

fn small_ctx() -> ContextOptions {
    // One thread: tests run in parallel on small machines, and ggml worker threads spin-wait,
    // so oversubscribing cores slows everything down badly.
    ContextOptions {
        n_ctx: 512,
        n_batch: 128,
        n_threads: Some(1),
    }
}

fn load(params: &TestModelParams, seed: u64) -> Arc<inft_engine::LoadedModel> {
    let engine = Engine::global().expect("engine");
    engine
        .load(sealed_model(params, seed), &ModelOptions::default())
        .expect("load model")
}

#[test]
fn generation_is_deterministic_across_runs_and_contexts() {
    let model = load(&TestModelParams::default(), 11);
    let mut a = model.new_context(&small_ctx()).unwrap();
    let mut b = model.new_context(&small_ctx()).unwrap();
    for settings in [
        SamplerSettings {
            max_tokens: 48,
            ..SamplerSettings::default()
        },
        SamplerSettings {
            max_tokens: 48,
            ..SamplerSettings::seeded(1234)
        },
        SamplerSettings {
            max_tokens: 48,
            repeat_penalty: 1.3,
            ..SamplerSettings::seeded(7)
        },
    ] {
        let first = a.generate(PROMPT, &settings).unwrap();
        let again = a.generate(PROMPT, &settings).unwrap();
        let other = b.generate(PROMPT, &settings).unwrap();
        assert!(!first.tokens.is_empty());
        assert_eq!(first.tokens, again.tokens, "same context, second run");
        assert_eq!(first.tokens, other.tokens, "second context");
        assert_eq!(first.output_sha256, other.output_sha256);
        assert_eq!(first.text, other.text);
        assert_eq!(first.settings, settings);
    }
}

#[test]
fn generation_records_what_replay_needs() {
    let params = TestModelParams::default();
    let bytes = llama_gguf_bytes(&params, 5).unwrap();
    let engine = Engine::global().unwrap();
    let model = engine
        .load(
            MemModel::from_reader("records", bytes.as_slice()).unwrap(),
            &ModelOptions::default(),
        )
        .unwrap();
    let mut ctx = model.new_context(&small_ctx()).unwrap();
    let g = ctx
        .generate(
            PROMPT,
            &SamplerSettings {
                max_tokens: 16,
                ..SamplerSettings::seeded(3)
            },
        )
        .unwrap();
    assert_eq!(g.model_sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(
        g.prompt_sha256,
        hex::encode(Sha256::digest(PROMPT.as_bytes()))
    );
    assert_eq!(
        g.output_sha256,
        hex::encode(Sha256::digest(g.text.as_bytes()))
    );
    assert!(
        g.llama_build.starts_with("llama-cpp-2 0.1.160; ggml "),
        "{}",
        g.llama_build
    );
    assert_eq!(g.llama_build, engine.llama_build());
    assert_eq!(g.stop, StopReason::MaxTokens);
    assert_eq!(g.tokens.len(), 16);
    assert!(g.prompt_tokens > 1);
    // The record round-trips through JSON (it is stored in the DB and the blob store).
    let json = serde_json::to_string(&g).unwrap();
    let back: inft_engine::Generation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, g);
}

#[test]
fn different_seeds_give_different_text_and_output_is_not_degenerate() {
    let model = load(&TestModelParams::default(), 12);
    let mut ctx = model.new_context(&small_ctx()).unwrap();
    let outs: Vec<Vec<i32>> = (0..4)
        .map(|seed| {
            ctx.generate(
                PROMPT,
                &SamplerSettings {
                    max_tokens: 32,
                    ..SamplerSettings::seeded(seed)
                },
            )
            .unwrap()
            .tokens
        })
        .collect();
    for i in 0..outs.len() {
        for j in i + 1..outs.len() {
            assert_ne!(outs[i], outs[j], "seeds {i} and {j} gave the same tokens");
        }
    }
    for out in &outs {
        let mut distinct = out.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() >= 4, "degenerate output {out:?}");
    }
    // Greedy output depends on the prompt.
    let greedy = SamplerSettings {
        max_tokens: 16,
        ..SamplerSettings::default()
    };
    let g1 = ctx.generate("alpha", &greedy).unwrap();
    let g2 = ctx
        .generate("a completely different prompt", &greedy)
        .unwrap();
    assert_ne!(g1.tokens, g2.tokens);
}

#[test]
fn creative_grammar_output_always_parses() {
    let model = load(&TestModelParams::default(), 13);
    let mut ctx = model.new_context(&small_ctx()).unwrap();
    for seed in 0..4 {
        let settings = SamplerSettings {
            grammar: Some(creative_grammar().to_owned()),
            max_tokens: CREATIVE_MAX_TOKENS,
            ..SamplerSettings::seeded(seed)
        };
        let g = ctx.generate(PROMPT, &settings).unwrap();
        assert_eq!(g.stop, StopReason::EndOfGeneration, "{}", g.text);
        let v: serde_json::Value =
            serde_json::from_str(&g.text).unwrap_or_else(|e| panic!("{e}: {}", g.text));
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 2);
        let title = obj["title"].as_str().unwrap();
        let text = obj["text"].as_str().unwrap();
        assert!((1..=48).contains(&title.len()), "{title}");
        assert!((1..=256).contains(&text.len()), "{text}");
    }
}

/// An object with every field type: enum, addresses, a decimal string, an integer, a string.
fn order_grammar() -> String {
    json_object_grammar(&[
        ("action", JsonField::Enum(&["buy", "sell", "hold"])),
        ("token_in", JsonField::Address),
        ("token_out", JsonField::Address),
        ("amount_in", JsonField::DecimalString { max_digits: 30 }),
        ("max_slippage_bps", JsonField::Integer { max_digits: 4 }),
        (
            "reason",
            JsonField::String {
                min_len: 0,
                max_len: 120,
            },
        ),
    ])
    .unwrap()
}

/// Enough tokens for the longest [`order_grammar`] output with one token per byte.
const ORDER_MAX_TOKENS: u32 = 360;

#[test]
fn json_object_grammar_output_always_parses() {
    let model = load(&TestModelParams::default(), 14);
    let mut ctx = model.new_context(&small_ctx()).unwrap();
    for seed in 0..4 {
        let settings = SamplerSettings {
            grammar: Some(order_grammar()),
            max_tokens: ORDER_MAX_TOKENS,
            ..SamplerSettings::seeded(100 + seed)
        };
        let g = ctx
            .generate("Market: WETH/USDC. Decide.", &settings)
            .unwrap();
        assert_eq!(g.stop, StopReason::EndOfGeneration, "{}", g.text);
        let v: serde_json::Value =
            serde_json::from_str(&g.text).unwrap_or_else(|e| panic!("{e}: {}", g.text));
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 6, "{}", g.text);
        assert!(["buy", "sell", "hold"].contains(&o["action"].as_str().unwrap()));
        for k in ["token_in", "token_out"] {
            let a = o[k].as_str().unwrap();
            assert!(
                a.len() == 42
                    && a.starts_with("0x")
                    && a[2..].bytes().all(|b| b.is_ascii_hexdigit()),
                "{a}"
            );
        }
        let amount = o["amount_in"].as_str().unwrap();
        assert!(
            (1..=30).contains(&amount.len()) && amount.bytes().all(|b| b.is_ascii_digit()),
            "{amount}"
        );
        assert!(o["max_slippage_bps"].as_u64().unwrap() <= 9999);
        assert!(o["reason"].as_str().unwrap().len() <= 120);
    }
    // Greedy decoding under the grammar is valid too.
    let g = ctx
        .generate(
            "x",
            &SamplerSettings {
                grammar: Some(order_grammar()),
                max_tokens: ORDER_MAX_TOKENS,
                ..SamplerSettings::default()
            },
        )
        .unwrap();
    serde_json::from_str::<serde_json::Value>(&g.text).unwrap();
}

#[test]
fn agents_share_one_loaded_model_through_the_cache() {
    let engine = Engine::global().unwrap();
    let cache = ModelCache::new();
    let params = TestModelParams::for_size(512 * 1024);
    let opts = ModelOptions::default();

    let first = cache
        .load(engine, sealed_model(&params, 21), &opts)
        .unwrap();
    // A second agent unseals the same model: same plaintext hash, so no second load.
    let second = cache
        .load(engine, sealed_model(&params, 21), &opts)
        .unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.hits, stats.live), (1, 1, 1));

    // Both agents run their own context on it.
    let mut a = first.new_context(&small_ctx()).unwrap();
    let mut b = second.new_context(&small_ctx()).unwrap();
    let s = SamplerSettings {
        max_tokens: 8,
        ..SamplerSettings::default()
    };
    assert_eq!(
        a.generate(PROMPT, &s).unwrap().tokens,
        b.generate(PROMPT, &s).unwrap().tokens
    );

    // A different model is a different entry.
    let other = cache
        .load(engine, sealed_model(&params, 22), &opts)
        .unwrap();
    assert!(!Arc::ptr_eq(&first, &other));
    assert_eq!(cache.stats().loads, 2);

    // Memory follows use: once every agent is gone the model is freed.
    let hash = first.sha256();
    drop((first, second, a, b));
    assert!(cache.get(&hash, &opts).is_none());
    assert_eq!(cache.stats().live, 1);
    let reloaded = cache
        .load(engine, sealed_model(&params, 21), &opts)
        .unwrap();
    assert_eq!(cache.stats().loads, 3);
    assert!(cache.evict(&reloaded.sha256(), &opts));
    assert!(cache.get(&hash, &opts).is_none());
}

#[test]
fn corrupt_or_truncated_gguf_is_an_error_not_a_crash() {
    let engine = Engine::global().unwrap();
    let cache = ModelCache::new();
    let opts = ModelOptions::default();
    let good = llama_gguf_bytes(&TestModelParams::for_size(256 * 1024), 31).unwrap();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not gguf", b"definitely not a model".repeat(100)),
        ("header only", good[..64].to_vec()),
        ("truncated tensor data", good[..good.len() / 2].to_vec()),
        ("one byte short", good[..good.len() - 1].to_vec()),
    ];
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    cases.push(("bad magic", bad_magic));
    let mut bad_version = good.clone();
    bad_version[4] = 99;
    cases.push(("bad version", bad_version));

    for (what, bytes) in cases {
        let sealed = MemModel::from_reader("bad", bytes.as_slice()).unwrap();
        match cache.load(engine, sealed, &opts) {
            Err(EngineError::ModelLoad(_)) => {}
            other => panic!("{what}: expected a load error, got {other:?}"),
        }
    }
    assert_eq!(cache.stats().loads, 0);
}

#[test]
fn memfd_hash_covers_every_byte_of_uneven_writes() {
    // Several MiB in odd-sized writes, so the background hasher crosses its buffer size and
    // catches up with the writer at arbitrary offsets.
    let data: Vec<u8> = (0..5_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut sink = MemModel::new("hash-test").unwrap();
    let mut rest = data.as_slice();
    for size in [1usize, 4095, 1 << 20, 7, (1 << 20) + 1, 3 << 20]
        .iter()
        .cycle()
    {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*size).min(rest.len()));
        sink.write_all(head).unwrap();
        rest = tail;
    }
    let sealed = sink.finish().unwrap();
    assert_eq!(sealed.len(), data.len() as u64);
    assert_eq!(sealed.sha256(), <[u8; 32]>::from(Sha256::digest(&data)));

    let empty = MemModel::new("empty").unwrap().finish().unwrap();
    assert_eq!(empty.sha256(), <[u8; 32]>::from(Sha256::digest(b"")));
}

#[test]
fn memfd_is_sealed_and_not_a_file_on_disk() {
    let mut sink = MemModel::new("inft-model").unwrap();
    sink.write_all(b"GGUF plaintext that must never reach a disk")
        .unwrap();
    let sealed = sink.finish().unwrap();
    let path = sealed.path();
    assert!(path.starts_with("/proc/self/fd"), "{path:?}");
    let target = std::fs::read_link(&path).unwrap();
    let target = target.to_string_lossy();
    assert!(target.starts_with("/memfd:inft-model"), "{target}");
    assert!(
        target.ends_with("(deleted)"),
        "no directory entry anywhere: {target}"
    );

    use std::os::unix::fs::MetadataExt;
    let meta = sealed.as_file().metadata().unwrap();
    assert_eq!(meta.nlink(), 0, "no hard link on any filesystem");
    assert_eq!(meta.len(), sealed.len());

    // Sealed: neither writes nor size changes are possible any more.
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    assert!(f.write_all(b"tamper").is_err());
    assert!(sealed.as_file().set_len(0).is_err());
    assert!(sealed.as_file().set_len(1 << 20).is_err());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"GGUF plaintext that must never reach a disk"
    );
    assert_eq!(
        sealed.sha256(),
        <[u8; 32]>::from(Sha256::digest(
            b"GGUF plaintext that must never reach a disk"
        ))
    );
}

#[test]
fn generated_models_of_several_shapes_load_and_run() {
    let shapes = [
        TestModelParams::tiny(),
        TestModelParams {
            weight_type: WeightType::F32,
            ..TestModelParams::for_size(200 * 1024)
        },
        TestModelParams {
            n_head_kv: 2,
            ..TestModelParams::for_size(1 << 20)
        },
        TestModelParams::for_size(6 << 20),
    ];
    for (i, p) in shapes.iter().enumerate() {
        let model = load(p, 40 + i as u64);
        assert_eq!(model.size_bytes(), p.file_size().unwrap());
        assert_eq!(model.llama_model().n_vocab(), p.n_vocab as i32);
        assert_eq!(model.llama_model().n_layer(), p.n_layer);
        let mut ctx = model.new_context(&small_ctx()).unwrap();
        let g = ctx
            .generate(
                "hello, ünïcode and bytes \u{1F980}\n",
                &SamplerSettings {
                    max_tokens: 8,
                    ..SamplerSettings::seeded(1)
                },
            )
            .unwrap();
        assert!(
            g.tokens.len() + usize::from(g.stop == StopReason::EndOfGeneration) > 0,
            "{p:?}"
        );
    }
}

#[test]
fn bad_requests_are_errors() {
    let model = load(&TestModelParams::for_size(256 * 1024), 51);
    let mut ctx = model
        .new_context(&ContextOptions {
            n_ctx: 64,
            n_batch: 32,
            n_threads: Some(1),
        })
        .unwrap();
    let bad_grammar = SamplerSettings {
        grammar: Some("root ::= undefined_rule".into()),
        ..SamplerSettings::default()
    };
    assert!(matches!(
        ctx.generate(PROMPT, &bad_grammar),
        Err(EngineError::Grammar(_))
    ));
    let bad_top_p = SamplerSettings {
        top_p: 2.0,
        ..SamplerSettings::default()
    };
    assert!(matches!(
        ctx.generate(PROMPT, &bad_top_p),
        Err(EngineError::Settings(_))
    ));
    let nan = SamplerSettings {
        temperature: f32::NAN,
        ..SamplerSettings::default()
    };
    assert!(matches!(
        ctx.generate(PROMPT, &nan),
        Err(EngineError::Settings(_))
    ));
    let long = "x".repeat(500);
    assert!(matches!(
        ctx.generate(&long, &SamplerSettings::default()),
        Err(EngineError::PromptTooLong { .. })
    ));
    // The context fills up: generation stops cleanly instead of failing.
    let g = ctx
        .generate(
            PROMPT,
            &SamplerSettings {
                max_tokens: 1000,
                ..SamplerSettings::seeded(2)
            },
        )
        .unwrap();
    assert!(
        matches!(
            g.stop,
            StopReason::ContextFull | StopReason::EndOfGeneration
        ),
        "{:?}",
        g.stop
    );
    // The context still works afterwards.
    ctx.generate(
        "ok",
        &SamplerSettings {
            max_tokens: 4,
            ..SamplerSettings::default()
        },
    )
    .unwrap();
}

#[test]
fn agents_can_move_to_their_own_threads() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<inft_engine::AgentContext>();
    assert_send_sync::<Arc<inft_engine::LoadedModel>>();

    let model = load(&TestModelParams::for_size(256 * 1024), 61);
    let settings = SamplerSettings {
        max_tokens: 12,
        ..SamplerSettings::seeded(5)
    };
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let mut ctx = model.new_context(&small_ctx()).unwrap();
            let settings = settings.clone();
            std::thread::spawn(move || ctx.generate(PROMPT, &settings).unwrap().tokens)
        })
        .collect();
    let outs: Vec<Vec<i32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        outs.windows(2).all(|w| w[0] == w[1]),
        "concurrent agents disagree: {outs:?}"
    );
}

/// ChatML, as SmolLM2 and Qwen GGUFs ship it.
const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[test]
fn prompts_are_rendered_with_the_models_own_chat_template() {
    let messages = [
        ChatMessage::system("You write poems."),
        ChatMessage::user("About the sea."),
    ];
    let with = |template: Option<&str>, seed| {
        load(
            &TestModelParams {
                chat_template: template.map(str::to_owned),
                ..TestModelParams::tiny()
            },
            seed,
        )
    };

    // No template in the metadata: plain text.
    let plain = with(None, 60);
    assert_eq!(plain.chat_template(), None);
    let r = plain.render_chat(&messages).unwrap();
    assert_eq!(r.format, PromptFormat::PlainText);
    assert_eq!(r.text, "You write poems.\n\nAbout the sea.\n");

    // ChatML (SmolLM2, Qwen): every role in its own turn, the assistant's turn opened.
    let chatml = with(Some(CHATML_TEMPLATE), 61);
    let r = chatml.render_chat(&messages).unwrap();
    assert_eq!(r.format, PromptFormat::ChatTemplate);
    assert_eq!(
        r.text,
        "<|im_start|>system\nYou write poems.<|im_end|>\n<|im_start|>user\nAbout the sea.<|im_end|>\n<|im_start|>assistant\n"
    );

    // Gemma: no system role, so llama.cpp folds the system message into the user turn.
    let gemma = with(Some(GEMMA_CHAT_TEMPLATE), 62);
    assert_eq!(gemma.chat_template().as_deref(), Some(GEMMA_CHAT_TEMPLATE));
    let r = gemma.render_chat(&messages).unwrap();
    assert_eq!(r.format, PromptFormat::ChatTemplate);
    assert!(r.text.starts_with("<start_of_turn>user\n"), "{:?}", r.text);
    assert!(r.text.contains("You write poems."), "{:?}", r.text);
    assert!(
        r.text.contains("About the sea.<end_of_turn>\n"),
        "{:?}",
        r.text
    );
    assert!(r.text.ends_with("<start_of_turn>model\n"), "{:?}", r.text);
    // The rendered prompt runs like any other.
    let mut ctx = gemma.new_context(&small_ctx()).unwrap();
    let g = ctx
        .generate(
            &r.text,
            &SamplerSettings {
                max_tokens: 8,
                ..SamplerSettings::instruct(3)
            },
        )
        .unwrap();
    assert_eq!(
        g.prompt_sha256,
        hex::encode(Sha256::digest(r.text.as_bytes()))
    );

    // A template llama.cpp does not know: the model still runs, on plain text.
    let odd = with(Some("{{ messages | tojson }}"), 63);
    let r = odd.render_chat(&messages).unwrap();
    assert_eq!(r.format, PromptFormat::PlainText);
    // No messages at all is an error, not an empty prompt.
    assert!(matches!(
        plain.render_chat(&[]),
        Err(EngineError::EmptyPrompt)
    ));
}

#[test]
fn scores_are_log_likelihoods_independent_of_order_and_context() {
    let model = load(&TestModelParams::default(), 11);
    let mut a = model.new_context(&small_ctx()).unwrap();
    let mut b = model.new_context(&small_ctx()).unwrap();
    let options = [" the sea", " a", " tomorrow we sail"];
    let forward = a.score(PROMPT, &options).unwrap();
    let mut reversed_options = options;
    reversed_options.reverse();
    let mut reversed = b.score(PROMPT, &reversed_options).unwrap();
    reversed.reverse();
    assert_eq!(
        forward, reversed,
        "a continuation's score does not depend on the others"
    );
    assert_eq!(
        a.score(PROMPT, &options).unwrap(),
        forward,
        "same context, again"
    );
    assert!(
        forward.iter().all(|s| s.is_finite() && *s < 0.0),
        "{forward:?}"
    );
    // Longer text is less likely, token by token: the three-word option scores below its
    // first word alone.
    let first_word = a.score(PROMPT, &[" tomorrow"]).unwrap()[0];
    assert!(forward[2] < first_word, "{forward:?} vs {first_word}");
    // The greedy first token is the most likely single token: no option scores above it.
    let greedy = a
        .generate(
            PROMPT,
            &SamplerSettings {
                max_tokens: 1,
                ..SamplerSettings::default()
            },
        )
        .unwrap();
    let best = a.score(PROMPT, &[greedy.text.as_str()]).unwrap()[0];
    assert!(
        forward.iter().all(|s| *s <= best),
        "{forward:?} vs greedy {best}"
    );
    assert!(
        a.score(PROMPT, &[""]).is_err(),
        "an empty continuation is refused"
    );
}
