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

/// Most characters of a creative piece's text (a line break counts as one).
pub const CREATIVE_TEXT_MAX: usize = 256;

/// Most characters of a creative piece's title.
pub const CREATIVE_TITLE_MAX: usize = 48;

/// Fewest characters of a creative piece's text: more than any title, so a title is never
/// longer than its piece.
const CREATIVE_TEXT_MIN: usize = CREATIVE_TITLE_MAX;

/// Characters after which the text's next sentence end closes it.
const CREATIVE_TEXT_SOFT: usize = 160;

static CREATIVE: LazyLock<String> = LazyLock::new(|| creative_grammar_avoiding(&[], &[]));

/// `{"text": …, "title": …}`: the piece first, then a title for it.
///
/// The text has [`CREATIVE_TEXT_MAX`] characters at most and ends on a sentence: its last
/// character is `.`, `!` or `?` after a letter, digit, `'` or `)`, and the closing quote is
/// admitted nowhere else. Past its first 160 characters it cannot continue after a sentence
/// end, so the model's next `.`, `!` or `?` closes the piece: the text stops where the model
/// ends a sentence, not where a length cap falls. Only a sentence still open at the cap is cut
/// (the strategy sees that from the length, [`CREATIVE_TEXT_MAX`], and writes again). Line
/// breaks (`\n`) are allowed, quotes and backslashes not.
///
/// The title comes after the text, so it names the piece rather than starting it: 1 to
/// [`CREATIVE_TITLE_MAX`] characters of letters, spaces, `'` and `-`, starting with a capital
/// and ending with a letter or `'` (no sentence punctuation, so a title cannot be a sentence).
pub fn creative_grammar() -> &'static str {
    &CREATIVE
}

/// [`creative_grammar`] whose title cannot be any of `titles` (exactly as written; titles the
/// grammar could not produce anyway are ignored), nor start with any of `prefixes`: a run that
/// passes its earlier titles never repeats one, and a prompt's example title cannot be copied,
/// whole or as the start of a longer one. The model still writes its own title; the grammar
/// only closes the paths that spell an earlier title to its end or enter a prefix.
pub fn creative_grammar_avoiding(titles: &[&str], prefixes: &[&str]) -> String {
    let text_short = CREATIVE_TEXT_SOFT - 3;
    let text_long = CREATIVE_TEXT_MAX - CREATIVE_TEXT_SOFT - 1;
    let mut g = String::new();
    g.push_str("root ::= \"{\\\"text\\\":\" text \",\\\"title\\\":\" title \"}\"\n");
    g.push_str("text ::= \"\\\"\" [A-Z] (short | long) \"\\\"\"\n");
    let _ = writeln!(
        g,
        "short ::= textchar{{{},{text_short}}} end",
        CREATIVE_TEXT_MIN - 3
    );
    let _ = writeln!(
        g,
        "long ::= textchar{{{}}} sentchar{{0,{text_long}}} end",
        text_short + 1
    );
    g.push_str("end ::= [a-zA-Z0-9')] [.!?]\n");
    g.push_str("title ::= \"\\\"\" t0 \"\\\"\"\n");
    g.push_str(&TitleTrie::new(titles, prefixes).rules());
    g.push_str("tchar ::= [a-zA-Z' -]\n");
    g.push_str("tend ::= [a-zA-Z']\n");
    // Printable ASCII except '"' (0x22) and '\' (0x5C); a sentence character also without
    // '!' (0x21), '.' (0x2E) and '?' (0x3F).
    g.push_str("char ::= [ !#-\\[\\]-~]\n");
    g.push_str("textchar ::= char | \"\\\\n\"\n");
    g.push_str("sentchar ::= [ #-,/->@-\\[\\]-~] | \"-\" | \"\\\\n\"\n");
    g
}

/// Whether `b` may start a title.
fn title_first(b: u8) -> bool {
    b.is_ascii_uppercase()
}

/// Whether `b` may be in a title.
fn title_char(b: u8) -> bool {
    b.is_ascii_alphabetic() || matches!(b, b'\'' | b' ' | b'-')
}

/// Whether `b` may end a title.
fn title_end(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'\''
}

/// The titles to avoid as a trie; its rules spell every title except those.
struct TitleTrie {
    /// Node 0 is the root (nothing written yet).
    nodes: Vec<TitleNode>,
}

#[derive(Default)]
struct TitleNode {
    children: std::collections::BTreeMap<u8, usize>,
    /// An avoided title ends here.
    avoided: bool,
    /// A refused prefix ends here: no title goes through this node.
    blocked: bool,
}

impl TitleTrie {
    fn new(titles: &[&str], prefixes: &[&str]) -> Self {
        let mut nodes = vec![TitleNode::default()];
        let entries = titles.iter().map(|t| (t, false));
        for (title, is_prefix) in entries.chain(prefixes.iter().map(|p| (p, true))) {
            let b = title.as_bytes();
            let producible = !b.is_empty()
                && b.len() <= CREATIVE_TITLE_MAX
                && title_first(b[0])
                && b.iter().all(|&c| title_char(c))
                && title_end(b[b.len() - 1]);
            if !producible {
                continue;
            }
            let mut at = 0;
            for &c in b {
                at = match nodes[at].children.get(&c) {
                    Some(&next) => next,
                    None => {
                        nodes.push(TitleNode::default());
                        let next = nodes.len() - 1;
                        nodes[at].children.insert(c, next);
                        next
                    }
                };
            }
            if is_prefix {
                nodes[at].blocked = true;
            } else {
                nodes[at].avoided = true;
            }
        }
        Self { nodes }
    }

    /// Rules `t<node>` for the trie's nodes, and `tfree<n>` / `tmore<n>` for a title that left
    /// the trie after `n` characters ending with a character that may (free) or may not
    /// (more) end it.
    fn rules(&self) -> String {
        let mut out = String::new();
        let mut free = std::collections::BTreeSet::new();
        let mut more = std::collections::BTreeSet::new();
        // The root always has a rule: avoided titles are finitely many.
        let _ = self.node_rule(0, 0, None, &mut out, &mut free, &mut more);
        for n in free {
            let left = CREATIVE_TITLE_MAX - n;
            let _ = writeln!(out, "tfree{n} ::= (tchar{{0,{}}} tend)?", left - 1);
        }
        for n in more {
            let left = CREATIVE_TITLE_MAX - n;
            let _ = writeln!(out, "tmore{n} ::= tchar{{0,{}}} tend", left - 1);
        }
        out
    }

    /// Writes node `id`'s rule (and its children's), `depth` characters in, `last` the last
    /// one. Returns what follows the node's character in its parent's rule: ` t<id>`, nothing
    /// for a title that can only end there, `None` for a node no title can go on from or end
    /// at (an avoided title of the longest length).
    fn node_rule(
        &self,
        id: usize,
        depth: usize,
        last: Option<u8>,
        out: &mut String,
        free: &mut std::collections::BTreeSet<usize>,
        more: &mut std::collections::BTreeSet<usize>,
    ) -> Option<String> {
        let node = &self.nodes[id];
        if node.blocked {
            return None;
        }
        let mut alts = Vec::new();
        for (&c, &child) in &node.children {
            if let Some(rest) = self.node_rule(child, depth + 1, Some(c), out, free, more) {
                alts.push(format!("\"{}\"{rest}", c as char));
            }
        }
        if depth < CREATIVE_TITLE_MAX {
            let allowed = |b: u8| {
                (if depth == 0 {
                    title_first(b)
                } else {
                    title_char(b)
                }) && !node.children.contains_key(&b)
            };
            let ends: Vec<u8> = (0x20..0x7f)
                .filter(|&b| allowed(b) && title_end(b))
                .collect();
            let mids: Vec<u8> = (0x20..0x7f)
                .filter(|&b| allowed(b) && !title_end(b))
                .collect();
            let n = depth + 1;
            if !ends.is_empty() {
                if n < CREATIVE_TITLE_MAX {
                    alts.push(format!("{} tfree{n}", char_class(&ends)));
                    free.insert(n);
                } else {
                    alts.push(char_class(&ends));
                }
            }
            if !mids.is_empty() && n < CREATIVE_TITLE_MAX {
                alts.push(format!("{} tmore{n}", char_class(&mids)));
                more.insert(n);
            }
        }
        let closes = depth > 0 && !node.avoided && last.is_some_and(title_end);
        let body = alts.join(" | ");
        let rule = match (closes, alts.is_empty()) {
            (true, false) => format!("({body})?"),
            (false, false) => body,
            (true, true) => return Some(String::new()),
            (false, true) => return None,
        };
        let _ = writeln!(out, "t{id} ::= {rule}");
        Some(format!(" t{id}"))
    }
}

/// A GBNF character class of the given bytes (letters, digits, `'`, ` ` and `-` only), as
/// ranges where they run on.
fn char_class(bytes: &[u8]) -> String {
    let mut class = String::from("[");
    let mut dash = false;
    let mut i = 0;
    while i < bytes.len() {
        let start = bytes[i];
        let mut end = start;
        while i + 1 < bytes.len() && bytes[i + 1] == end + 1 && end.is_ascii_alphanumeric() {
            i += 1;
            end = bytes[i];
        }
        if start == b'-' {
            dash = true;
        } else if end == start {
            class.push(start as char);
        } else {
            let _ = write!(class, "{}-{}", start as char, end as char);
        }
        i += 1;
    }
    // A '-' is literal only last.
    if dash {
        class.push('-');
    }
    class.push(']');
    class
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
            g.starts_with("root ::= \"{\\\"text\\\":\" text \",\\\"title\\\":\" title \"}\"\n"),
            "{g}"
        );
        // 1 + 45..=157 + 2 = 48..=160 characters, or 1 + 158 + 0..=95 + 2 = 161..=256 of which
        // the last 95 before the end hold no sentence end.
        assert!(g.contains("short ::= textchar{45,157} end\n"), "{g}");
        assert!(
            g.contains("long ::= textchar{158} sentchar{0,95} end\n"),
            "{g}"
        );
        assert!(g.contains("end ::= [a-zA-Z0-9')] [.!?]\n"), "{g}");
        assert!(g.contains("t0 ::= [A-Z] tfree1\n"), "{g}");
        assert!(g.contains("tfree1 ::= (tchar{0,46} tend)?\n"), "{g}");
        assert!(g.contains("char ::= [ !#-\\[\\]-~]"));
    }

    #[test]
    fn avoided_titles_cannot_end_where_they_end() {
        let g = creative_grammar_avoiding(&["Sea", "Sea Wind", "not a title", "Bad."], &[]);
        // "S" enters the trie, any other capital leaves it at once.
        assert!(g.contains("t0 ::= \"S\" t1 | [A-RT-Z] tfree1\n"), "{g}");
        // After "Sea" the title may go on but not end; after "Sea " it must go on.
        assert!(
            g.contains("t3 ::= \" \" t4 | ['A-Za-z] tfree4 | [-] tmore4\n"),
            "{g}"
        );
        assert!(
            g.contains("t4 ::= \"W\" t5 | ['A-VX-Za-z] tfree5 | [ -] tmore5\n"),
            "{g}"
        );
        assert!(g.contains("t8 ::= ['A-Za-z] tfree9 | [ -] tmore9\n"), "{g}");
        assert!(g.contains("tmore4 ::= tchar{0,43} tend\n"), "{g}");
        // Strings the grammar cannot produce are ignored.
        assert!(!g.contains("\"o\""), "{g}");
        assert!(!g.contains("\"B\""), "{g}");
        // A title of the longest length is avoided by refusing its last character (it may end
        // one shorter, or with another character).
        let longest = format!("A{}", "b".repeat(CREATIVE_TITLE_MAX - 1));
        let g = creative_grammar_avoiding(&[&longest], &[]);
        let last = CREATIVE_TITLE_MAX - 1;
        assert!(g.contains(&format!("t{last} ::= (['A-Zac-z])?\n")), "{g}");
    }

    #[test]
    fn no_title_starts_with_a_refused_prefix() {
        let g = creative_grammar_avoiding(&["Sea Wind"], &["Sea", "Fog"]);
        // "S" and "F" enter the trie; after "Se" and "Fo" the prefix's last letter is refused
        // (the title may end there or go on with any other character), and nothing follows
        // it, the avoided "Sea Wind" included.
        assert!(
            g.contains("t0 ::= \"F\" t9 | \"S\" t1 | [A-EG-RT-Z] tfree1\n"),
            "{g}"
        );
        assert!(
            g.contains("t1 ::= (\"e\" t2 | ['A-Za-df-z] tfree2 | [ -] tmore2)?\n"),
            "{g}"
        );
        assert!(
            g.contains("t2 ::= (['A-Zb-z] tfree3 | [ -] tmore3)?\n"),
            "{g}"
        );
        assert!(
            g.contains("t10 ::= (['A-Za-fh-z] tfree3 | [ -] tmore3)?\n"),
            "{g}"
        );
        for gone in ["\"a\"", "\"g\"", "\"W\"", "t3 "] {
            assert!(!g.contains(gone), "{gone} in {g}");
        }
    }

    #[test]
    fn invalid_keys_and_values_are_refused() {
        assert!(json_object_grammar(&[("bad key", JsonField::Address)]).is_none());
        assert!(json_object_grammar(&[("k", JsonField::Enum(&["a\"b"]))]).is_none());
        assert!(json_object_grammar(&[("k", JsonField::Enum(&[]))]).is_none());
    }

    #[test]
    fn max_tokens_constants_cover_the_longest_output() {
        // {"text":"<256 characters, line breaks two bytes each>","title":"<48>"}
        let longest_creative =
            r#"{"text":"","title":""}"#.len() + 2 * CREATIVE_TEXT_MAX + CREATIVE_TITLE_MAX;
        assert!(longest_creative < CREATIVE_MAX_TOKENS as usize);
    }
}
