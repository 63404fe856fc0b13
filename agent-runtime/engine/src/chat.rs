//! Chat prompts: a list of messages rendered with the model's own chat template.
//!
//! Instruct models are trained on one conversation format (ChatML for SmolLM2 and Qwen,
//! Llama 3 headers, Gemma turns, …) and answer poorly when given raw text. The template ships
//! in the GGUF metadata (`tokenizer.chat_template`); llama.cpp recognizes the common ones and
//! renders messages with them. A model without a template (the generated test model) gets the
//! messages as plain text instead.
//!
//! The rendered text is the prompt: it is what generation tokenizes, what the action record
//! keeps and hashes, and what a replay feeds back. Rendering happens once, when the prompt is
//! made, so a replay never depends on the template engine.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate};
use serde::{Deserialize, Serialize};

use super::{ChatMessage, EngineError, LoadedModel, plain_text};

/// How a chat prompt was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// With the model's chat template, ending with the opening of the assistant's turn.
    ChatTemplate,
    /// As plain text: the model has no template, or llama.cpp does not know its template.
    PlainText,
}

/// A rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPrompt {
    /// The text to generate from.
    pub text: String,
    /// How it was rendered.
    pub format: PromptFormat,
}

impl LoadedModel {
    /// The chat template in the model's GGUF metadata, if it has one.
    pub fn chat_template(&self) -> Option<String> {
        self.llama_model()
            .chat_template(None)
            .ok()
            .and_then(|t| t.to_string().ok())
            .filter(|t| !t.trim().is_empty())
    }

    /// Renders `messages` with the model's chat template (assistant turn opened), or as
    /// [`plain_text`] when the model has none or llama.cpp does not support its template.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<RenderedPrompt, EngineError> {
        if messages.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let Some(template) = self.chat_template() else {
            return Ok(RenderedPrompt {
                text: plain_text(messages),
                format: PromptFormat::PlainText,
            });
        };
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Chat(format!("message with a NUL byte: {e}")))?;
        let rendered = LlamaChatTemplate::new(&template)
            .map_err(|e| EngineError::Chat(e.to_string()))
            .and_then(|t| {
                self.llama_model()
                    .apply_chat_template(&t, &chat, true)
                    .map_err(|e| EngineError::Chat(e.to_string()))
            });
        match rendered {
            Ok(text) => Ok(RenderedPrompt {
                text,
                format: PromptFormat::ChatTemplate,
            }),
            // llama.cpp renders the templates it recognizes (ChatML, Llama 2/3, Gemma, Phi,
            // Mistral, …) and refuses others; such a model still runs, on plain text.
            Err(e) => {
                tracing::warn!(error = %e, "chat template not supported by llama.cpp: using plain text");
                Ok(RenderedPrompt {
                    text: plain_text(messages),
                    format: PromptFormat::PlainText,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_joins_messages() {
        let text = plain_text(&[
            ChatMessage::system("You write poems.\n"),
            ChatMessage::user("About the sea."),
        ]);
        assert_eq!(text, "You write poems.\n\nAbout the sea.\n");
    }
}
