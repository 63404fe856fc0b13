//! Issue 4's must-show: mint a generated model, run the creative agent for 5 steps, and the bad
//! paths (stranger, tampered blob, expired authorization).

use agent_runtime::audit::{ReplayOutcome, private_prompts_of, replay, replay_with_prompts};
use agent_runtime::db::OutboxState;
use agent_runtime::lifecycle::LifecycleError;
use agent_runtime::memory::{AgentMemory, MemoryNote};
use agent_runtime::pipeline::PipelineError;
use agent_runtime::record::ActionKind;
use agent_runtime::token::{Access, TokenError};
use alloy::primitives::{B256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::{SolEvent, SolValue};
use inft_contracts::bindings::ActionLog;
use inft_contracts::scopes;
use inft_engine::SamplerSettings;
use inft_engine::grammar::{CREATIVE_MAX_TOKENS, CREATIVE_TEXT_MAX};
use inft_engine::testmodel::{GEMMA_CHAT_TEMPLATE, TestModelParams, llama_gguf_bytes};
use inft_runtime::{Strategy, run_steps};
use strategies::creative::{CreativeStrategy, creation_signer, remembered_titles};

use crate::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creative_agent_logs_five_signed_actions_on_chain() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, 1).await?;
    let token = minted.token_id;

    let opened = world.open(&alice, token, scopes::RUN).await?;
    assert_eq!(opened.access, Access::Owner);
    let agent_key = opened
        .agent
        .agent_key
        .clone()
        .expect("the owner unseals the agent key");
    assert_eq!(agent_key.address(), minted.agent);
    let (mut session, outbox) = world.session(&opened, token, agent_key, "alice.db").await?;
    let mut strategy = CreativeStrategy::new("Write a short poem about the sea.");
    let report = run_steps(&mut session, &mut strategy, &outbox, 5, |_| {}).await?;
    assert_eq!(report.steps.len(), 5);
    let log = world.log_id(token);
    let entries = outbox.db().outbox_entries(&log).await?;
    assert_eq!(entries.len(), 5);
    assert!(
        entries.iter().all(|e| e.state == OutboxState::Confirmed),
        "{entries:?}"
    );

    // The chain holds exactly the five record hashes, in order, folded into its head.
    let action_log = ActionLog::new(world.deployment.action_log, world.provider(&alice.wallet));
    let chain = action_log.chainOf(token).call().await?;
    assert_eq!(chain.seq, 5);
    let filter = Filter::new()
        .address(world.deployment.action_log)
        .event_signature(ActionLog::ActionsLogged::SIGNATURE_HASH)
        .topic1(B256::from(token))
        .from_block(0);
    let mut on_chain = Vec::new();
    for raw in world.provider(&alice.wallet).get_logs(&filter).await? {
        let event = raw.log_decode::<ActionLog::ActionsLogged>()?.inner.data;
        assert_eq!(
            event.sender, minted.agent,
            "the agent wallet logs its own actions"
        );
        on_chain.extend(event.actionHashes);
    }
    let records = outbox.db().records(&log, 0, 100).await?;
    assert_eq!(records.len(), 5);
    let db_hashes: Vec<B256> = records.iter().map(|r| r.record.record_hash()).collect();
    assert_eq!(on_chain, db_hashes);
    let head = db_hashes
        .iter()
        .fold(B256::ZERO, |head, h| keccak256((head, *h).abi_encode()));
    assert_eq!(chain.head, head);

    // Every record is signed by the agent, chained to its predecessor, and each creation's
    // proof of creatorship recovers the agent address.
    let mut prev = B256::ZERO;
    for stored in &records {
        let record = stored.record.record();
        assert_eq!(stored.record.signer()?, minted.agent);
        assert_eq!(record.prev_record_hash, prev);
        prev = stored.record.record_hash();
        assert_eq!(
            record.kind,
            ActionKind::Creative,
            "grammar-constrained output parses: {}",
            record.output
        );
        let details = &record.details;
        let content_hash: B256 = serde_json::from_value(details["content_hash"].clone())?;
        assert_eq!(content_hash, record.output_hash);
        let signature = serde_json::from_value(details["creator_signature"].clone())?;
        let signer = creation_signer(
            world.deployment.chain_id,
            world.deployment.agent_nft,
            token,
            content_hash,
            &signature,
        )?;
        assert_eq!(signer, minted.agent);
        assert_eq!(
            record.model_hash.to_string().trim_start_matches("0x"),
            world.model_sha256
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger_is_refused_before_anything_is_fetched() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let carol = world.actor(3).await?;
    let minted = world.mint_creative(&alice, 2).await?;
    let before = world.store.fetches();
    let err = world
        .open(&carol, minted.token_id, scopes::RUN)
        .await
        .expect_err("a stranger must be refused");
    assert!(
        matches!(err, LifecycleError::Token(TokenError::Unauthorized { account, .. }) if account == carol.address()),
        "{err}"
    );
    assert_eq!(
        world.store.fetches(),
        before,
        "nothing fetched, so nothing decrypted"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_blob_is_refused_and_nothing_is_lost() -> anyhow::Result<()> {
    // Its own model: a model already loaded by another test would be shared from the cache and
    // its (tampered) blob never read.
    let world = World::start_with_model_seed(8).await?;
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, 3).await?;
    for entry in &minted.entries {
        let path = world.store.path_of(&entry.data_hash);
        let original = std::fs::read(&path)?;
        let mut tampered = original.clone();
        let middle = tampered.len() / 2;
        tampered[middle] ^= 0x01;
        let mut perms = std::fs::metadata(&path)?.permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&path, perms)?;
        std::fs::write(&path, &tampered)?;
        let err = world
            .open(&alice, minted.token_id, scopes::RUN)
            .await
            .expect_err("a tampered blob must be refused");
        assert!(
            matches!(
                err,
                LifecycleError::Pipeline(PipelineError::Blob { .. } | PipelineError::Open { .. })
            ),
            "{err}"
        );
        std::fs::write(&path, &original)?;
    }
    // With the bytes restored the agent opens again: a refusal loses nothing.
    world.open(&alice, minted.token_id, scopes::RUN).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_user_runs_as_executor_until_the_grant_expires() -> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let bob = world.actor(2).await?;
    let minted = world.mint_creative(&alice, 4).await?;
    let token = minted.token_id;

    // Alice re-wraps the model and config keys for Bob; the agent key stays hers.
    let entries = alice.nft.entries_for(token, alice.address()).await?;
    let token_ref = alice.nft.token_ref(token);
    let keys = agent_runtime::pipeline::open_keys(&entries, &alice.secret, &token_ref)?;
    let bob_key = alice
        .nft
        .sealing_key_of(bob.address())
        .await?
        .expect("bob published his key");
    let mut sealed = Vec::new();
    for (i, (e, k)) in entries.iter().zip(keys).enumerate() {
        sealed.push(match k {
            Some(k) if i != inft_types::config::EntryKind::AgentKey.index() => Some(
                sealing::SealedKey::seal(&k, &bob_key, &token_ref.key_context(e.data_hash))?,
            ),
            _ => None,
        });
    }
    let expiry = world.chain_time().await? + 3600;
    alice
        .nft
        .authorize(
            token,
            bob.address(),
            scopes::RUN | scopes::LOG,
            expiry,
            &sealed,
        )
        .await?;

    let opened = world.open(&bob, token, scopes::RUN).await?;
    assert!(matches!(opened.access, Access::Authorized { expiry: e, .. } if e == expiry));
    assert!(
        opened.agent.agent_key.is_none(),
        "an authorized user never gets the agent key"
    );
    let (mut session, outbox) = world
        .session(&opened, token, bob.wallet.clone(), "bob.db")
        .await?;
    let report = run_steps(
        &mut session,
        &mut CreativeStrategy::new("Write."),
        &outbox,
        1,
        |_| {},
    )
    .await?;
    assert_eq!(report.steps.len(), 1);
    let stored = outbox.db().records(&world.log_id(token), 0, 10).await?;
    assert_eq!(stored[0].record.signer()?, bob.address());

    world.advance_time(3601).await?;
    let err = world
        .open(&bob, token, scopes::RUN)
        .await
        .expect_err("an expired grant must be refused");
    assert!(
        matches!(err, LifecycleError::Token(TokenError::Unauthorized { .. })),
        "{err}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_outage_mid_run_loses_nothing_and_logs_each_action_once() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::Duration;

    use agent_runtime::db::Db;
    use agent_runtime::outbox::{AlloyChainLog, Outbox, OutboxConfig};
    use agent_runtime::record::LogId;
    use alloy::network::EthereumWallet;
    use alloy::providers::ProviderBuilder;

    use crate::world::RpcProxy;

    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let minted = world.mint_creative(&alice, 5).await?;
    let token = minted.token_id;
    let opened = world.open(&alice, token, scopes::RUN).await?;
    let agent_key = opened
        .agent
        .agent_key
        .clone()
        .expect("owner gets the agent key");

    // The runtime reaches the chain only through the proxy; short retries so the test is quick.
    let proxy = RpcProxy::start(([127, 0, 0, 1], world.chain.port()).into()).await?;
    let config = OutboxConfig {
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        max_consecutive_failures: 3,
        ..OutboxConfig::default()
    };
    let db_path = world.dir.path().join("outage.db");
    let outbox_through_proxy = |db: Db| -> anyhow::Result<Outbox> {
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(agent_key.clone()))
            .connect_http(proxy.url().parse()?)
            .erased();
        let chain = AlloyChainLog::new(provider, world.deployment.start_block);
        Ok(Outbox::new(db, Arc::new(chain), config.clone()))
    };
    let outbox = outbox_through_proxy(Db::open(&db_path).await?)?;
    let (mut session, _) = world
        .session(&opened, token, agent_key.clone(), "unused.db")
        .await?;

    // The RPC goes down after the second action; the run records all five, then fails to log.
    let mut strategy = CreativeStrategy::new("Write a short poem about the sea.");
    let err = run_steps(&mut session, &mut strategy, &outbox, 5, |s| {
        if s.step == 1 {
            proxy.cut();
        }
    })
    .await
    .expect_err("logging cannot finish while the RPC is down");
    assert!(
        matches!(err, inft_runtime::RunError::Outbox(_)),
        "an outbox (chain) error, not a step failure: {err}"
    );
    assert!(
        err.to_string().contains("chain RPC error"),
        "the error names the RPC: {err}"
    );
    let log: LogId = world.log_id(token);
    let entries = outbox.db().outbox_entries(&log).await?;
    assert_eq!(entries.len(), 5, "every action was recorded: {entries:?}");
    let unconfirmed: Vec<_> = entries
        .iter()
        .filter(|e| e.state != OutboxState::Confirmed)
        .collect();
    assert!(!unconfirmed.is_empty(), "the outage left work pending");
    assert!(
        unconfirmed[0].last_error.is_some(),
        "the database says why the work is pending: {unconfirmed:?}"
    );
    let action_log = ActionLog::new(world.deployment.action_log, world.provider(&alice.wallet));
    let before = action_log.chainOf(token).call().await?.seq;
    assert!(
        before < 5,
        "the chain has not seen everything yet ({before})"
    );

    // The RPC is back and the runtime restarts (a new outbox over the same database): the
    // pending actions are logged, each exactly once.
    proxy.restore();
    drop(outbox);
    let restarted = outbox_through_proxy(Db::open(&db_path).await?)?;
    restarted.flush(&log).await?;
    let chain = action_log.chainOf(token).call().await?;
    assert_eq!(chain.seq, 5);
    let records = restarted.db().records(&log, 0, 100).await?;
    let db_hashes: Vec<B256> = records.iter().map(|r| r.record.record_hash()).collect();
    assert_eq!(
        world.logged_hashes(token).await?,
        db_hashes,
        "no action lost, none logged twice"
    );
    assert!(
        restarted
            .db()
            .outbox_entries(&log)
            .await?
            .iter()
            .all(|e| e.state == OutboxState::Confirmed)
    );
    Ok(())
}

/// The words of `text`, lowercase, without surrounding punctuation.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// No word four times in a row (case and punctuation aside): the loop a small model falls into
/// without a repetition penalty.
fn longest_word_run(text: &str) -> usize {
    let words = words(text);
    let mut longest = usize::from(!words.is_empty());
    let mut run = 1;
    for pair in words.windows(2) {
        run = if pair[0] == pair[1] { run + 1 } else { 1 };
        longest = longest.max(run);
    }
    longest
}

/// Runs a creative agent minted with `config` for `steps` steps in `world`, with `memory` as
/// its memory's prompt text, and returns its records and the run's memory note, after checking
/// that every inference replays on CPU from its record.
async fn run_and_replay(
    world: &World,
    config: &inft_types::config::AgentConfig,
    instruction: &str,
    steps: u64,
    memory: Option<String>,
) -> anyhow::Result<(Vec<agent_runtime::record::ActionRecord>, Option<String>)> {
    let alice = world.actor(1).await?;
    let minted = world.mint_creative_with(&alice, 7, config).await?;
    let token = minted.token_id;
    let opened = world.open(&alice, token, scopes::RUN).await?;
    let key = opened
        .agent
        .agent_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner unseals the agent key"))?;
    let (mut session, outbox) = world.session(&opened, token, key, "poet.db").await?;
    session.set_memory(memory);
    let mut strategy = CreativeStrategy::new(instruction);
    run_steps(&mut session, &mut strategy, &outbox, steps, |_| {}).await?;
    let stored = outbox.db().records(&world.log_id(token), 0, 100).await?;
    let hashes: Vec<B256> = stored.iter().map(|r| r.record.record_hash()).collect();
    assert_eq!(world.logged_hashes(token).await?, hashes);
    let records: Vec<_> = stored.iter().map(|r| r.record.record().clone()).collect();
    let model = session.model().clone();
    let context = config.context;
    let replayed = tokio::task::block_in_place(|| {
        replay(
            &mut inft_engine::Replayer::new(model.clone(), context),
            &records,
        )
    });
    assert!(
        replayed
            .iter()
            .all(|r| r.outcome == ReplayOutcome::Reproduced),
        "{replayed:?}"
    );
    Ok((records, strategy.memory_note()))
}

/// Issue 28's must-show (after issue 11's): SmolLM2 writes eight pieces per instruction, in its
/// chat format, each text ending on a sentence the model closed itself (never at the length
/// cap), with at least seven distinct titles of its own that are shorter than their texts, all
/// English, without looping on a word, and every inference replays on CPU from its record. A
/// later run with the first run's note in its memory writes four more such pieces, neither
/// repeating a remembered title nor copying the prompt's example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_poet_writes_eight_whole_english_pieces_with_their_own_titles_and_replays()
-> anyhow::Result<()> {
    for instruction in [
        "Write a short poem about the sea.",
        "Write a haiku about autumn.",
    ] {
        let world = World::start_with_real_model().await?;
        let mut config = world.creative_config(instruction);
        config.sampler = SamplerSettings {
            max_tokens: CREATIVE_MAX_TOKENS,
            ..SamplerSettings::instruct(11)
        };
        let (records, note) = run_and_replay(&world, &config, instruction, 8, None).await?;
        assert_eq!(records.len(), 8);
        let titles: Vec<String> = records
            .iter()
            .map(|r| whole_english_piece(instruction, r))
            .collect();
        let mut seeds: Vec<u64> = records.iter().map(|r| r.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), 8, "one seed per step");
        let mut distinct = titles.clone();
        distinct.sort();
        distinct.dedup();
        eprintln!(
            "[{instruction}] {} distinct titles: {titles:?}",
            distinct.len()
        );
        assert!(distinct.len() >= 7, "{titles:?}");

        // A later run reads this one's note in its memory, which lists the titles above. Given
        // such a memory, SmolLM2 once copied the prompt's example into every piece.
        let note = note.ok_or_else(|| anyhow::anyhow!("a run of 8 pieces leaves a note"))?;
        let mut memory = AgentMemory::new();
        memory.push(
            MemoryNote::new(1_796_000_000, 8, Some([1, 8]), &note)
                .ok_or_else(|| anyhow::anyhow!("the note fits a memory: {note}"))?,
        );
        let world = World::start_with_real_model().await?;
        let (later, _) =
            run_and_replay(&world, &config, instruction, 4, memory.prompt_text()).await?;
        assert_eq!(later.len(), 4);
        let remembered: Vec<String> = remembered_titles(&note)
            .iter()
            .map(|t| t.to_lowercase())
            .collect();
        assert_eq!(
            remembered.len(),
            6,
            "the note lists the last titles: {note}"
        );
        for r in &later {
            let title = whole_english_piece(instruction, r);
            // The memory is in the prompt, its titles are not (the grammar keeps them out).
            let prompt = r.prompt.as_deref().unwrap_or_default();
            assert!(
                prompt.contains("Wrote 8 pieces for"),
                "the memory is in the prompt: {prompt}"
            );
            assert!(!prompt.to_lowercase().contains(&remembered[0]), "{prompt}");
            assert!(
                !title.starts_with("small light"),
                "copies the example: {title}"
            );
            assert!(
                !remembered.contains(&title),
                "a remembered title again: {title}"
            );
            assert!(
                !r.output.contains("The candle burns low"),
                "copies the example: {}",
                r.output
            );
        }
    }
    Ok(())
}

/// Checks one record of the poet: a creative piece in the chat format with a recorded seed,
/// whose text ends on a sentence the model closed (not at the length cap), whose title is
/// shorter than its text and no sentence, all English and without looping on a word. Returns
/// the title, lowercase.
fn whole_english_piece(instruction: &str, r: &agent_runtime::record::ActionRecord) -> String {
    assert_eq!(
        r.kind,
        ActionKind::Creative,
        "incomplete JSON: {}",
        r.output
    );
    let prompt = r.prompt.as_deref().unwrap_or_default();
    assert!(prompt.starts_with("<|im_start|>system\n"), "{prompt}");
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
    // The seed is recorded, in the sampler settings replay uses.
    assert_eq!(r.sampler["seed"].as_u64(), Some(r.seed), "{}", r.sampler);
    let piece: serde_json::Value = serde_json::from_str(&r.output).unwrap_or_default();
    let title = piece["title"].as_str().unwrap_or_default();
    let text = piece["text"].as_str().unwrap_or_default();
    eprintln!(
        "[{instruction}] seq {} seed {} title {title:?} ({} chars) ends {:?} set aside {}",
        r.seq,
        r.seed,
        text.chars().count(),
        text.chars()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>(),
        r.details["set_aside"]
    );
    assert!(
        ends_on_a_sentence(text),
        "not a whole sentence at the end: {text:?}"
    );
    assert!(
        text.chars().count() < CREATIVE_TEXT_MAX,
        "the text ran into the length cap: {text:?}"
    );
    assert!(
        !title.is_empty() && title.chars().count() < text.chars().count(),
        "{title:?} / {text:?}"
    );
    assert!(
        !title.ends_with(['.', '!', '?', ',']),
        "a sentence, not a title: {title}"
    );
    let both = format!("{title} {text}");
    assert!(is_english(&both), "not English: {both}");
    assert!(longest_word_run(&both) <= 3, "loops: {both}");
    title.to_lowercase()
}

/// Whether `text` ends on a whole sentence: `.`, `!` or `?` right after a word, or a whole
/// line (a line break before the end would be an empty line, so the last line is whole if it
/// ends like a sentence).
fn ends_on_a_sentence(text: &str) -> bool {
    let mut end = text.chars().rev();
    matches!(end.next(), Some('.' | '!' | '?'))
        && end
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '\'' || c == ')')
}

/// English by a simple measure: ASCII letters and punctuation only, common English function
/// words present, and no common French or Spanish ones.
fn is_english(text: &str) -> bool {
    const FOREIGN: &[&str] = &[
        "le", "la", "les", "des", "du", "et", "est", "une", "avec", "dans", "pour", "el", "los",
        "las", "del", "que", "con", "por", "y",
    ];
    let ascii = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c.is_ascii_punctuation() || c.is_whitespace());
    ascii
        && english_share(text) >= 0.1
        && !words(text).iter().any(|w| FOREIGN.contains(&w.as_str()))
}

/// A second model family: a model whose GGUF carries Gemma's template gets its prompts in
/// Gemma's turn format (no system role, so the system message joins the user turn), records
/// them as such, and replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_another_template_runs_with_its_own_format() -> anyhow::Result<()> {
    let params = TestModelParams {
        chat_template: Some(GEMMA_CHAT_TEMPLATE.to_owned()),
        ..TestModelParams::for_size(1 << 20)
    };
    let world = World::start_with_model(llama_gguf_bytes(&params, 77)?).await?;
    let instruction = "Write a haiku about rain.";
    let config = world.creative_config(instruction);
    let (records, _) = run_and_replay(&world, &config, instruction, 2, None).await?;
    for r in &records {
        let prompt = r.prompt.as_deref().unwrap_or_default();
        assert!(prompt.starts_with("<start_of_turn>user\n"), "{prompt}");
        assert!(
            prompt.contains("You are a creative writing agent."),
            "{prompt}"
        );
        assert!(prompt.contains(instruction), "{prompt}");
        assert!(prompt.ends_with("<start_of_turn>model\n"), "{prompt}");
    }
    Ok(())
}

/// The share of words that are common English function words: ordinary English prose or verse
/// has well over 10%, French or German next to none.
fn english_share(text: &str) -> f64 {
    const COMMON: &[&str] = &[
        "the", "a", "an", "of", "and", "or", "to", "in", "on", "at", "by", "for", "with", "from",
        "is", "are", "was", "be", "it", "its", "i", "my", "me", "we", "our", "you", "your", "he",
        "she", "her", "his", "they", "their", "that", "this", "where", "when", "as", "so", "but",
        "all", "no", "not", "into", "like", "will", "can",
    ];
    let words = words(text);
    if words.is_empty() {
        return 0.0;
    }
    let common = words
        .iter()
        .filter(|w| COMMON.contains(&w.as_str()))
        .count();
    common as f64 / words.len() as f64
}

#[test]
fn english_is_told_from_french() {
    assert!(english_share("A place where dreams are born, in the depths of the sea.") > 0.3);
    let french =
        "L'Arc de la Mer, avec un voyage d'un voyage, s'assurent que le voyage est toujeur";
    assert!(english_share(french) < 0.1);
}

#[test]
fn sentence_ends_and_english_are_told() {
    assert!(ends_on_a_sentence("The sea is wide.\nIt sleeps."));
    assert!(!ends_on_a_sentence("I want to be happy, I"));
    assert!(!ends_on_a_sentence("The sea ."));
    assert!(is_english("The sea is wide, and the wind is cold."));
    assert!(!is_english("La mer est grande, et le vent est froid."));
    assert!(!is_english("El mar es grande y el viento es frio."));
}

#[test]
fn word_runs_are_counted_without_case_or_punctuation() {
    assert_eq!(longest_word_run(""), 0);
    assert_eq!(longest_word_run("the sea"), 1);
    assert_eq!(
        longest_word_run("In the mystic mystic Mystic, mystic sea"),
        4
    );
}

/// Security L7: an owner who mints with private prompts publishes only each prompt's hash (the
/// prompt carries the sealed instruction); the records still verify, and the owner's runtime,
/// which keeps the texts, replays every action, while a replay without them cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_prompts_stay_out_of_public_records_and_replay_from_the_owners_database()
-> anyhow::Result<()> {
    let world = World::start().await?;
    let alice = world.actor(1).await?;
    let instruction = "Write about the secret lighthouse of Quillon.";
    let mut config = world.creative_config(instruction);
    config.private_prompts = true;
    let minted = world.mint_creative_with(&alice, 8, &config).await?;
    let token = minted.token_id;
    let opened = world.open(&alice, token, scopes::RUN).await?;
    let key = opened
        .agent
        .agent_key
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the owner unseals the agent key"))?;
    let (mut session, outbox) = world.session(&opened, token, key, "private.db").await?;
    let mut strategy = CreativeStrategy::new(instruction);
    run_steps(&mut session, &mut strategy, &outbox, 2, |_| {}).await?;

    let stored = outbox.db().records(&world.log_id(token), 0, 100).await?;
    assert_eq!(stored.len(), 2);
    let hashes: Vec<B256> = stored.iter().map(|r| r.record.record_hash()).collect();
    assert_eq!(world.logged_hashes(token).await?, hashes);
    for s in &stored {
        assert_eq!(s.record.signer()?, minted.agent);
        let public = String::from_utf8(s.record.to_envelope_json()?)?;
        assert!(s.record.record().prompt.is_none());
        assert!(
            !public.contains("Quillon"),
            "the instruction leaked into a public record: {public}"
        );
    }

    let records: Vec<_> = stored.iter().map(|r| r.record.record().clone()).collect();
    let model = session.model().clone();
    let context = config.context;
    let without = tokio::task::block_in_place(|| {
        replay(
            &mut inft_engine::Replayer::new(model.clone(), context),
            &records,
        )
    });
    assert!(
        without
            .iter()
            .all(|r| matches!(r.outcome, ReplayOutcome::NotReplayable { .. })),
        "{without:?}"
    );
    let prompts = private_prompts_of(outbox.db(), &records).await?;
    // One text per distinct prompt: the steps' prompts are the same (the seed varies).
    let distinct: std::collections::HashSet<B256> = records.iter().map(|r| r.prompt_hash).collect();
    assert_eq!(prompts.len(), distinct.len());
    assert!(prompts.values().all(|p| p.contains("Quillon")));
    let with = tokio::task::block_in_place(|| {
        replay_with_prompts(
            &mut inft_engine::Replayer::new(model.clone(), context),
            &records,
            &prompts,
        )
    });
    assert!(
        with.iter().all(|r| r.outcome == ReplayOutcome::Reproduced),
        "{with:?}"
    );
    Ok(())
}
