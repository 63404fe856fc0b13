//! The creative agent: text from a standing prompt, signed by the agent as its creator.

use agent_runtime::record::{ActionDraft, ActionKind, content_hash};
use alloy::signers::SignerSync;
use inft_engine::ChatMessage;
use inft_engine::grammar::creative_grammar;
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
    /// Titles written in this run, newest last: shown to the model so it does not repeat
    /// itself, and remembered at the end of the run.
    titles: Vec<String>,
}

/// Most titles a memory note lists.
const NOTE_TITLES: usize = 6;

impl CreativeStrategy {
    /// A strategy writing from `instruction` (the agent config's prompt).
    pub fn new(instruction: impl Into<String>) -> Self {
        Self {
            instruction: instruction.into(),
            titles: Vec::new(),
        }
    }

    /// The chat messages of a step: the writer's role and output format, then the
    /// agent's memory, the standing instruction and the title of the last piece.
    pub fn messages(&self, memory: Option<&str>) -> Vec<ChatMessage> {
        // "English" twice: SmolLM2-135M, told once, still drifted into French on some seeds.
        let system = "You are a creative writing agent. You write short, original pieces in \
                      English only. Answer with one JSON object: a title and the text of the \
                      piece, both in English.";
        let mut user = String::new();
        if let Some(memory) = memory.filter(|m| !m.trim().is_empty()) {
            user.push_str(memory.trim());
            user.push_str("\n\n");
        }
        user.push_str(self.instruction.trim());
        if let Some(last) = self.titles.last() {
            // Only the latest title: a small model shown a list copies from it.
            user.push_str(&format!(
                " Your last piece was \"{last}\": write a different one."
            ));
        }
        vec![ChatMessage::system(system), ChatMessage::user(user)]
    }
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

    async fn step(
        &mut self,
        session: &mut AgentSession,
        step: u64,
    ) -> Result<ActionDraft, StrategyError> {
        let prompt = session.render(&self.messages(session.memory()))?;
        let mut settings = session.settings_for_step(step);
        if settings.grammar.is_none() {
            settings.grammar = Some(creative_grammar().to_owned());
        }
        let generation = session.generate(&prompt, &settings)?;
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
                let details = json!({
                    "title": piece.title,
                    "chars": piece.text.chars().count(),
                    "content_hash": hash,
                    "creator": session.address(),
                    "creator_signature": signature,
                });
                session.draft(ActionKind::Creative, &prompt, &generation, details)
            }
            // Recorded, not dropped: the log shows everything the model produced.
            Err(e) => {
                tracing::warn!(step, error = %e, "model output is not a valid piece");
                let details =
                    json!({ "error": e.to_string(), "stop": format!("{:?}", generation.stop) });
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
    fn messages_carry_role_memory_instruction_and_earlier_titles() {
        let mut s = CreativeStrategy::new("Write about the sea.");
        let first = s.messages(None);
        assert_eq!(first.len(), 2);
        assert!(first[0].content.contains("JSON object"));
        assert!(first[1].content.starts_with("Write about the sea."));
        s.titles.push("Tides".into());
        let second = s.messages(Some("Notes from earlier runs:\n- wrote 3 poems"));
        assert!(second[1].content.starts_with("Notes from earlier runs:"));
        assert!(second[1].content.contains("Your last piece was \"Tides\""));
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
