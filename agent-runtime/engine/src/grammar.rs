//! GBNF grammars that make a model emit one compact JSON object of a fixed shape.
//!
//! Every string and number is length-bounded, so even a random-weight model finishes: once the
//! closing `}` is produced the grammar only admits end-of-generation. Strings are printable
//! ASCII without `"` and `\` (no escapes needed, and each character is one byte token), keys
//! come in a fixed order and there is no whitespace, so the output is also canonical JSON.
//!
//! The grammars are plain strings (data): strategies can store them, hash them, and build
//! their own shapes with [`json_object_grammar`].

use std::fmt::Write as _;
use std::sync::LazyLock;

/// The type of one field of a JSON object grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonField<'a> {
    /// A string of `min_len..=max_len` printable ASCII characters (no `"` or `\`).
    String {
        /// Fewest characters.
        min_len: u16,
        /// Most characters.
        max_len: u16,
    },
    /// Prose or verse: starts with a capital letter, then printable ASCII (no `"` or `\`) and
    /// the `\n` escape (a line break). `min_len` and `max_len` count a line break as one
    /// character (`min_len` is at least 1). A small model given room to write nothing writes
    /// punctuation or a number: the capital letter and a minimum length make it write words.
    Text {
        /// Fewest characters.
        min_len: u16,
        /// Most characters.
        max_len: u16,
    },
    /// One of the given strings (written as JSON strings; must not contain `"` or `\`).
    Enum(&'a [&'a str]),
    /// A `"0x…"` string with 40 hex digits (an EVM address).
    Address,
    /// A non-negative integer as a JSON string of at most `max_digits` digits, no leading
    /// zeros (token amounts in base units exceed JSON's safe integer range).
    DecimalString {
        /// Most digits.
        max_digits: u16,
    },
    /// A non-negative JSON integer of at most `max_digits` digits, no leading zeros.
    Integer {
        /// Most digits.
        max_digits: u16,
    },
}

/// Longest string field accepted by [`json_object_grammar`] (llama.cpp caps repetitions).
pub const MAX_FIELD_LEN: u16 = 1024;

/// Build a GBNF grammar (root rule `root`) for a JSON object with exactly `fields`, in order.
///
/// Keys must be non-empty and consist of ASCII letters, digits and `_`; lengths are clamped to
/// [`MAX_FIELD_LEN`]. Returns `None` for an invalid key or enum value.
pub fn json_object_grammar(fields: &[(&str, JsonField<'_>)]) -> Option<String> {
    let key_ok =
        |k: &str| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let lit_ok = |v: &str| {
        v.bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    };
    let mut root = String::from("root ::= \"{\"");
    let mut rules = String::new();
    for (i, (key, field)) in fields.iter().enumerate() {
        if !key_ok(key) {
            return None;
        }
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(root, " \"{sep}\\\"{key}\\\":\" f{i}");
        let rule = match *field {
            JsonField::String { min_len, max_len } => {
                let max = max_len.min(MAX_FIELD_LEN);
                let min = min_len.min(max);
                format!("\"\\\"\" char{{{min},{max}}} \"\\\"\"")
            }
            JsonField::Text { min_len, max_len } => {
                let max = max_len.clamp(1, MAX_FIELD_LEN);
                let min = min_len.clamp(1, max);
                format!(
                    "\"\\\"\" [A-Z] textchar{{{},{}}} \"\\\"\"",
                    min - 1,
                    max - 1
                )
            }
            JsonField::Enum(values) => {
                if values.is_empty() || !values.iter().all(|v| lit_ok(v)) {
                    return None;
                }
                let alts: Vec<String> = values.iter().map(|v| format!("\"\\\"{v}\\\"\"")).collect();
                alts.join(" | ")
            }
            JsonField::Address => "\"\\\"0x\" [0-9a-fA-F]{40} \"\\\"\"".to_owned(),
            JsonField::DecimalString { max_digits } => {
                let rest = max_digits.clamp(1, MAX_FIELD_LEN) - 1;
                format!("\"\\\"\" (\"0\" | [1-9] [0-9]{{0,{rest}}}) \"\\\"\"")
            }
            JsonField::Integer { max_digits } => {
                let rest = max_digits.clamp(1, MAX_FIELD_LEN) - 1;
                format!("\"0\" | [1-9] [0-9]{{0,{rest}}}")
            }
        };
        let _ = writeln!(rules, "f{i} ::= {rule}");
    }
    root.push_str(" \"}\"\n");
    root.push_str(&rules);
    // Printable ASCII except '"' (0x22) and '\' (0x5C).
    root.push_str("char ::= [ !#-\\[\\]-~]\n");
    root.push_str("textchar ::= char | \"\\\\n\"\n");
    Some(root)
}

static CREATIVE: LazyLock<String> = LazyLock::new(|| {
    json_object_grammar(&[
        (
            "title",
            JsonField::Text {
                min_len: 3,
                max_len: 48,
            },
        ),
        (
            "text",
            JsonField::Text {
                min_len: 40,
                max_len: 256,
            },
        ),
    ])
    .unwrap_or_default()
});

/// `{"title": text of 3..=48 chars, "text": text of 40..=256 chars}`, each starting with a
/// capital letter, line breaks allowed.
pub fn creative_grammar() -> &'static str {
    &CREATIVE
}

/// Most tokens a byte-level model can need to complete [`creative_grammar`] (one token per
/// byte, plus end-of-generation): a safe `max_tokens`.
pub const CREATIVE_MAX_TOKENS: u32 = 600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creative_grammar_text() {
        let g = creative_grammar();
        assert!(
            g.starts_with("root ::= \"{\" \"\\\"title\\\":\" f0 \",\\\"text\\\":\" f1 \"}\"\n"),
            "{g}"
        );
        assert!(
            g.contains("f0 ::= \"\\\"\" [A-Z] textchar{2,47} \"\\\"\""),
            "{g}"
        );
        assert!(
            g.contains("f1 ::= \"\\\"\" [A-Z] textchar{39,255} \"\\\"\""),
            "{g}"
        );
        assert!(g.contains("char ::= [ !#-\\[\\]-~]"));
    }

    #[test]
    fn invalid_keys_and_values_are_refused() {
        assert!(json_object_grammar(&[("bad key", JsonField::Address)]).is_none());
        assert!(json_object_grammar(&[("k", JsonField::Enum(&["a\"b"]))]).is_none());
        assert!(json_object_grammar(&[("k", JsonField::Enum(&[]))]).is_none());
    }

    #[test]
    fn max_tokens_constants_cover_the_longest_output() {
        // {"title":"<48>","text":"<256 line breaks, two bytes each>"}
        let longest_creative = r#"{"title":"","text":""}"#.len() + 48 + 2 * 256;
        assert!(longest_creative < CREATIVE_MAX_TOKENS as usize);
    }
}
