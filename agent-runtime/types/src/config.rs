//! The agent configuration sealed in the token, and the order of the token's data entries.

use serde::{Deserialize, Serialize};

use crate::inference::{ContextOptions, SamplerSettings};

/// Version of the [`AgentConfig`] JSON layout.
pub const CONFIG_VERSION: u32 = 1;

/// The data entries of an agent token, in on-chain order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The GGUF model weights.
    Model = 0,
    /// The agent's secp256k1 private key, 32 raw bytes.
    AgentKey = 1,
    /// The [`AgentConfig`], as JSON.
    Config = 2,
    /// The agent's memory (the core crate's `AgentMemory`, as JSON). Optional: a
    /// token minted without memory has only the three entries before it.
    Memory = 3,
}

impl EntryKind {
    /// All entries, in on-chain order.
    pub const ALL: [EntryKind; 4] = [
        EntryKind::Model,
        EntryKind::AgentKey,
        EntryKind::Config,
        EntryKind::Memory,
    ];

    /// The entries every agent token has, in on-chain order (all but the optional memory).
    pub const REQUIRED: [EntryKind; 3] = [EntryKind::Model, EntryKind::AgentKey, EntryKind::Config];

    /// The entry's index in the token's data arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short name for messages and file names.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Model => "model",
            EntryKind::AgentKey => "agent-key",
            EntryKind::Config => "config",
            EntryKind::Memory => "memory",
        }
    }
}

/// What the agent does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum AgentKind {
    /// Writes text from a prompt and signs each piece as its creator.
    Creative {
        /// The standing instruction the agent writes from.
        prompt: String,
    },
    /// Trades on a DEX under the owner's policy firewall; the strategy and limits live in the
    /// runtime's configuration, not in the sealed data, so the owner can tighten them anytime.
    Trading {
        /// The strategy's name (e.g. `llm`, `momentum`).
        strategy: String,
        /// The owner's standing instruction to a model strategy (e.g. "Follow the trend.");
        /// absent in configs sealed before it existed, and then the runtime's default applies.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instruction: Option<String>,
    },
}

/// The agent's configuration, sealed as the token's [`EntryKind::Config`] entry.
///
/// Inference settings are part of the sealed agent (not of the runtime) so that every holder runs
/// the agent the same way and audits can replay it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Layout version ([`CONFIG_VERSION`]).
    pub version: u32,
    /// A human-readable name.
    pub name: String,
    /// What the agent does.
    pub kind: AgentKind,
    /// SHA-256 of the plaintext model (lowercase hex): ties the config to its weights.
    pub model_sha256: String,
    /// Sampling settings; the runtime varies only the seed, per step.
    pub sampler: SamplerSettings,
    /// Context settings.
    pub context: ContextOptions,
    /// Keep prompts out of the public action records (only their hashes are published). The
    /// prompt carries the owner's sealed instruction and the agent's memory notes, so an owner
    /// may want them private; replaying such an action then needs the prompt text, which only
    /// the runtime that ran it keeps (in its database) and the owner may disclose per action
    /// (the record's `prompt_hash` proves the text). Absent in configs sealed before it existed:
    /// prompts public, as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private_prompts: bool,
}

/// Why a sealed configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not valid JSON of the expected shape.
    #[error("agent config is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A layout version this runtime does not know.
    #[error("unsupported agent config version {0}")]
    Version(u32),
    /// The config names different weights than the token's model entry holds.
    #[error("agent config expects model {expected}, but the token's model is {actual}")]
    ModelMismatch {
        /// From the config.
        expected: String,
        /// Of the unsealed model.
        actual: String,
    },
}

impl AgentConfig {
    /// Parses and checks a config.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: AgentConfig = serde_json::from_slice(bytes)?;
        if config.version != CONFIG_VERSION {
            return Err(ConfigError::Version(config.version));
        }
        Ok(config)
    }

    /// The canonical JSON bytes that are sealed.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of plain data always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Checks that the config belongs to the model with plaintext hash `model_sha256` (hex).
    pub fn check_model(&self, model_sha256: &str) -> Result<(), ConfigError> {
        if self.model_sha256.eq_ignore_ascii_case(model_sha256) {
            Ok(())
        } else {
            Err(ConfigError::ModelMismatch {
                expected: self.model_sha256.clone(),
                actual: model_sha256.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AgentConfig {
        AgentConfig {
            version: CONFIG_VERSION,
            name: "poet".into(),
            kind: AgentKind::Creative {
                prompt: "Write about the sea.".into(),
            },
            model_sha256: "ab".repeat(32),
            sampler: SamplerSettings::seeded(7),
            context: ContextOptions::default(),
            private_prompts: false,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let c = config();
        assert_eq!(AgentConfig::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn refuses_unknown_version_fields_and_garbage() {
        let mut c = config();
        c.version = 2;
        assert!(matches!(
            AgentConfig::from_json(&c.to_json()),
            Err(ConfigError::Version(2))
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&config().to_json()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(matches!(
            AgentConfig::from_json(v.to_string().as_bytes()),
            Err(ConfigError::Malformed(_))
        ));
        assert!(matches!(
            AgentConfig::from_json(b"\xff\x00"),
            Err(ConfigError::Malformed(_))
        ));
    }

    #[test]
    fn private_prompts_is_absent_when_off_and_read_when_on() {
        let public = config();
        let json: serde_json::Value = serde_json::from_slice(&public.to_json()).unwrap();
        assert!(
            json.get("private_prompts").is_none(),
            "old configs stay byte-identical"
        );
        let private = AgentConfig {
            private_prompts: true,
            ..config()
        };
        assert!(
            AgentConfig::from_json(&private.to_json())
                .unwrap()
                .private_prompts
        );
    }

    #[test]
    fn model_check_compares_hashes() {
        let c = config();
        c.check_model(&"AB".repeat(32)).unwrap();
        assert!(matches!(
            c.check_model(&"cd".repeat(32)),
            Err(ConfigError::ModelMismatch { .. })
        ));
    }
}
