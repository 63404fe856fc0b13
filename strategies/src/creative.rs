//! The creative agent: text from a standing prompt, signed by the agent as its creator.

use agent_runtime::record::{ActionDraft, ActionKind, content_hash};
use alloy::signers::SignerSync;
use inft_engine::grammar::{CREATIVE_TEXT_MAX, CREATIVE_TITLE_MAX, creative_grammar_avoiding};
use inft_engine::{ChatMessage, Generation};
use inft_runtime::{AgentSession, Strategy, StrategyError};
use serde::Deserialize;
use serde_json::json;

// The proof of creatorship lives with its verifier, in the runtime.
pub use agent_runtime::provenance::{creation_digest, creation_domain, creation_signer};

/// The JSON shape the creative grammar produces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Piece {
    title: String,
    text: String,
}

/// Writes one titled piece per step from the agent's standing prompt.
#[derive(Debug, Clone)]
pub struct CreativeStrategy {
    instruction: String,
    /// Titles written in this run, newest last: never repeated in the run, and remembered at
    /// the end of it.
    titles: Vec<String>,
}

/// Most titles a memory note lists.
const NOTE_TITLES: usize = 6;

/// Most generations a step tries before it keeps the best one (see [`CreativeStrategy::step`]).
pub const ATTEMPTS: u32 = 4;

/// What the seed of a step's attempt `n` adds to the step's seed, times `n`: far from the
/// next steps' seeds (the step's seed plus one each).
const ATTEMPT_SEED_STRIDE: u32 = 0x9E37_79B9;

/// The example in the system prompt. SmolLM2-135M given only the words "a title" wrote a
/// sentence in the title; given an example title, it writes titles of two to four words. The
/// example's text is a placeholder the grammar cannot produce (a text starts with a capital):
/// given a whole example piece and a memory, SmolLM2 wrote the example's text back on every
/// attempt, wherever the memory stood in the prompt.
const EXAMPLE_TEXT: &str = "(the piece, a few lines)";
const EXAMPLE_TITLE: &str = "Small Light";

/// What no title may start with: the example's title, as written and in sentence case. Given a
/// memory that lists earlier titles, SmolLM2-135M started its titles with the example's ("Small
/// Light for the Sea of Dreams") on every attempt; the grammar closes that path.
const REFUSED_TITLE_STARTS: &[&str] = &[EXAMPLE_TITLE, "Small light"];

/// Words that mark a text as French or Spanish rather than English.
const NOT_ENGLISH: &[&str] = &[
    "de", "la", "le", "les", "des", "du", "et", "est", "une", "dans", "avec", "pour", "qui", "el",
    "los", "las", "del", "que", "con", "por", "y",
];

impl CreativeStrategy {
    /// A strategy writing from `instruction` (the agent config's prompt).
    pub fn new(instruction: impl Into<String>) -> Self {
        Self {
            instruction: instruction.into(),
            titles: Vec::new(),
        }
    }

    /// The chat messages of a step: the writer's role and output format (text first, then
    /// its title, with an example) and the agent's memory as the system message, then the
    /// standing instruction alone as the user's.
    ///
    /// The memory is background, not part of the request, and its notes are shown without
    /// the titles they list: given them, SmolLM2-135M went on from a remembered title ("Sea of
    /// Dreams  Tone") or wrote French; shown "Titles already used: …", it wrote the first of
    /// them again on every attempt. Earlier titles are kept out of the output by the grammar
    /// instead.
    pub fn messages(&self, memory: Option<&str>) -> Vec<ChatMessage> {
        // "English" twice: SmolLM2-135M, told once, still drifted into French on some seeds.
        let example = serde_json::json!({ "text": EXAMPLE_TEXT, "title": EXAMPLE_TITLE });
        let mut system = format!(
            "You are a creative writing agent. You write short, original pieces in English \
             only. Answer with one JSON object: the text of the piece, then its title, both in \
             English. For example: {example}"
        );
        if let Some(memory) = memory.filter(|m| !m.trim().is_empty()) {
            system.push_str("\n\n");
            system.push_str(without_titles(memory).trim());
        }
        vec![
            ChatMessage::system(system),
            ChatMessage::user(self.instruction.trim()),
        ]
    }

    /// The titles to avoid: this run's and those its memory names.
    fn avoided_titles<'a>(&'a self, memory: Option<&'a str>) -> Vec<&'a str> {
        let mut avoided: Vec<&str> = self.titles.iter().map(String::as_str).collect();
        avoided.extend(memory.map(remembered_titles).unwrap_or_default());
        avoided
    }

    /// Why a generated piece is not kept at once (empty: it is kept).
    fn faults(&self, output: &str, avoided: &[&str]) -> Vec<&'static str> {
        let Ok(piece) = serde_json::from_str::<Piece>(output) else {
            return vec!["not a piece"];
        };
        let mut faults = Vec::new();
        if piece.text.chars().count() >= CREATIVE_TEXT_MAX {
            faults.push("text cut at the length cap");
        }
        if piece.title.chars().count() >= CREATIVE_TITLE_MAX {
            faults.push("title cut at the length cap");
        }
        let key = title_key(&piece.title);
        if avoided.iter().any(|t| title_key(t) == key) {
            faults.push("title written before");
        } else if avoided
            .iter()
            .any(|t| key.starts_with(&format!("{} ", title_key(t))))
        {
            // The grammar closes an earlier title's end, and the model, set on it, goes on:
            // "Sea of Dreams  Tone".
            faults.push("title extends one written before");
        }
        if piece.title.contains("  ") {
            faults.push("title spacing");
        }
        if !looks_english(&piece.title) || !looks_english(&piece.text) {
            faults.push("not English");
        }
        faults
    }
}

/// A title as compared for repeats: lowercase, without a leading article.
fn title_key(title: &str) -> String {
    let lower = title.trim().to_lowercase();
    ["the ", "a ", "an "]
        .iter()
        .find_map(|a| lower.strip_prefix(a))
        .unwrap_or(&lower)
        .trim()
        .to_owned()
}

/// No French or Spanish marker word (ASCII is the grammar's).
fn looks_english(text: &str) -> bool {
    !text
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| NOT_ENGLISH.contains(&w.to_ascii_lowercase().as_str()))
}

/// The titles a memory's notes name ([`CreativeStrategy::memory_note`] lists them after
/// "titled ", quoted and separated by ", ").
pub fn remembered_titles(memory: &str) -> Vec<&str> {
    let mut titles = Vec::new();
    for (at, _) in memory.match_indices("titled ") {
        let mut rest = &memory[at + "titled ".len()..];
        while let Some(quoted) = rest.strip_prefix('"') {
            let Some(end) = quoted.find('"') else { break };
            titles.push(&quoted[..end]);
            match quoted[end + 1..].strip_prefix(", ") {
                Some(next) => rest = next,
                None => break,
            }
        }
    }
    titles
}

/// `memory` without the title lists of its notes (", the last titled "A", "B"", as
/// [`CreativeStrategy::memory_note`] writes them; see [`remembered_titles`]).
pub fn without_titles(memory: &str) -> String {
    const LIST: &str = ", the last titled ";
    let mut out = String::with_capacity(memory.len());
    let mut rest = memory;
    while let Some(at) = rest.find(LIST) {
        out.push_str(&rest[..at]);
        let mut tail = &rest[at + LIST.len()..];
        while let Some(quoted) = tail.strip_prefix('"') {
            let Some(end) = quoted.find('"') else {
                tail = "";
                break;
            };
            tail = &quoted[end + 1..];
            match tail.strip_prefix(", ") {
                Some(next) if next.starts_with('"') => tail = next,
                _ => break,
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn quoted(titles: &[String]) -> String {
    titles
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Strategy for CreativeStrategy {
    fn name(&self) -> &str {
        "creative"
    }

    /// Writes one piece. The grammar ([`creative_grammar_avoiding`]) makes the text end on a
    /// sentence and keeps this run's and the memory's titles out. A piece whose text or title
    /// still ran into its length cap, whose title repeats or merely extends an earlier one
    /// (case and a leading article aside), or that is not English is written again with
    /// another seed, up to [`ATTEMPTS`] times; the first piece without a fault is kept, else
    /// the one with fewest (the first of those). The record holds the kept generation with its own seed and grammar, so it
    /// replays exactly; the seeds and faults of the attempts set aside are in its details.
    async fn step(
        &mut self,
        session: &mut AgentSession,
        step: u64,
    ) -> Result<ActionDraft, StrategyError> {
        let prompt = session.render(&self.messages(session.memory()))?;
        let base = session.settings_for_step(step);
        let memory = session.memory().map(str::to_owned);
        let avoided = self.avoided_titles(memory.as_deref());
        let mut kept: Option<(Generation, Vec<&'static str>)> = None;
        let mut set_aside = Vec::new();
        for attempt in 0..ATTEMPTS {
            let mut settings = base.clone();
            settings.seed = base
                .seed
                .wrapping_add(attempt.wrapping_mul(ATTEMPT_SEED_STRIDE));
            if settings.grammar.is_none() {
                settings.grammar = Some(creative_grammar_avoiding(&avoided, REFUSED_TITLE_STARTS));
            }
            let generation = session.generate(&prompt, &settings)?;
            let faults = self.faults(&generation.text, &avoided);
            let done = faults.is_empty();
            match &kept {
                Some((_, best_faults)) if faults.len() >= best_faults.len() => {
                    set_aside.push(json!({ "seed": generation.settings.seed, "faults": faults }));
                }
                _ => {
                    if let Some((best, best_faults)) = kept.take() {
                        set_aside
                            .push(json!({ "seed": best.settings.seed, "faults": best_faults }));
                    }
                    kept = Some((generation, faults));
                }
            }
            if done {
                break;
            }
        }
        let Some((generation, faults)) = kept else {
            return Err(StrategyError::Other(
                "no attempt was made to write a piece".into(),
            ));
        };
        let draft = match serde_json::from_str::<Piece>(&generation.text) {
            Ok(piece) => {
                self.titles.push(piece.title.clone());
                // The creation is the exact output bytes: what the record's output hash covers.
                let hash = content_hash(generation.text.as_bytes());
                let log = session.log();
                let digest = creation_digest(log.chain_id, session.nft(), log.token_id, hash);
                let signature = session
                    .signer()
                    .sign_hash_sync(&digest)
                    .map_err(|e| StrategyError::Other(Box::new(e)))?;
                let mut details = json!({
                    "title": piece.title,
                    "chars": piece.text.chars().count(),
                    "content_hash": hash,
                    "creator": session.address(),
                    "creator_signature": signature,
                });
                if !set_aside.is_empty() || !faults.is_empty() {
                    details["set_aside"] = json!(set_aside);
                    details["faults"] = json!(faults);
                }
                session.draft(ActionKind::Creative, &prompt, &generation, details)
            }
            // Recorded, not dropped: the log shows everything the model produced.
            Err(e) => {
                tracing::warn!(step, error = %e, "model output is not a valid piece");
                let details = json!({
                    "error": e.to_string(),
                    "stop": format!("{:?}", generation.stop),
                    "set_aside": set_aside,
                });
                let kind = ActionKind::parse("malformed-output").unwrap_or(ActionKind::Refusal);
                session.draft(kind, &prompt, &generation, details)
            }
        };
        Ok(draft)
    }

    fn memory_note(&self) -> Option<String> {
        let n = self.titles.len();
        if n == 0 {
            return None;
        }
        let shown = &self.titles[n.saturating_sub(NOTE_TITLES)..];
        let mut note = format!(
            "Wrote {n} piece{} for \"{}\", the last titled {}.",
            if n == 1 { "" } else { "s" },
            self.instruction.trim(),
            quoted(shown)
        );
        if note.chars().count() > 400 {
            note = note.chars().take(399).collect::<String>() + "…";
        }
        Some(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_role_example_memory_and_instruction_but_no_titles() {
        let mut s = CreativeStrategy::new("Write about the sea.");
        let first = s.messages(None);
        assert_eq!(first.len(), 2);
        assert!(first[0].content.contains("JSON object"));
        assert!(
            first[0]
                .content
                .contains(r#"{"text":"(the piece, a few lines)","title":"Small Light"}"#),
            "{}",
            first[0].content
        );
        assert_eq!(first[1].content, "Write about the sea.");
        s.titles.push("Tides".into());
        let second = s.messages(Some("Notes from earlier runs:\n- wrote 3 poems"));
        assert!(
            second[0]
                .content
                .ends_with("\n\nNotes from earlier runs:\n- wrote 3 poems")
        );
        assert_eq!(second[1].content, "Write about the sea.");
        assert!(!second[0].content.contains("Tides") && !second[1].content.contains("Tides"));
    }

    #[test]
    fn remembered_titles_are_read_back_from_notes() {
        let mut s = CreativeStrategy::new("Write about the sea.");
        s.titles = vec!["Tides".into(), "Salt Wind".into()];
        let note = s.memory_note().unwrap();
        let memory = format!(
            "Notes from earlier runs:\n- 2025-01-01 00:00 UTC, 2 steps: {note}\n- 2025-01-02 \
             00:00 UTC, 1 step: Wrote 1 piece for \"x\", the last titled \"Foam\"."
        );
        assert_eq!(remembered_titles(&memory), ["Tides", "Salt Wind", "Foam"]);
        assert_eq!(
            without_titles(&memory),
            "Notes from earlier runs:\n- 2025-01-01 00:00 UTC, 2 steps: Wrote 2 pieces for \
             \"Write about the sea.\".\n- 2025-01-02 00:00 UTC, 1 step: Wrote 1 piece for \"x\"."
        );
        let prompt = s.messages(Some(&memory));
        assert!(
            prompt[0].content.ends_with("Wrote 1 piece for \"x\"."),
            "{prompt:?}"
        );
        assert!(!prompt[0].content.contains("Tides"), "{prompt:?}");
        assert!(remembered_titles("no titles here").is_empty());
        let avoided = s.avoided_titles(Some(&memory));
        assert_eq!(
            avoided,
            ["Tides", "Salt Wind", "Tides", "Salt Wind", "Foam"]
        );
    }

    #[test]
    fn faults_name_cut_repeated_and_foreign_pieces() {
        let s = CreativeStrategy::new("Write.");
        let piece = |text: &str, title: &str| json!({ "text": text, "title": title }).to_string();
        let ok = "The sea is wide and grey.\nIt keeps its secrets well.";
        assert!(s.faults(&piece(ok, "Grey Water"), &["Tides"]).is_empty());
        assert_eq!(s.faults("{\"text\":", &[]), ["not a piece"]);
        assert_eq!(
            s.faults(&piece(ok, "The Tides"), &["tides"]),
            ["title written before"]
        );
        assert_eq!(
            s.faults(&piece(ok, "Sea of Dreams  Tone"), &["Sea of Dreams"]),
            ["title extends one written before", "title spacing"]
        );
        assert!(s.faults(&piece(ok, "Seaside"), &["Sea"]).is_empty());
        let long = format!("{}.", "a".repeat(CREATIVE_TEXT_MAX - 1));
        assert_eq!(
            s.faults(&piece(&long, "Grey Water"), &[]),
            ["text cut at the length cap"]
        );
        assert_eq!(
            s.faults(&piece("La mer est grande et le ciel aussi.", "La Mer"), &[]),
            ["not English"]
        );
    }

    #[test]
    fn memory_note_names_the_run_and_stays_bounded() {
        let mut s = CreativeStrategy::new("Write about the sea.");
        assert_eq!(s.memory_note(), None);
        s.titles = (0..50)
            .map(|i| format!("Title {i} {}", "x".repeat(40)))
            .collect();
        let note = s.memory_note().unwrap();
        assert!(note.starts_with("Wrote 50 pieces"), "{note}");
        assert!(note.chars().count() <= 400);
    }
}
