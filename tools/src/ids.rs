//! Token ids for people: a short form in every human line, and prefixes accepted wherever a
//! token id is expected (like git's abbreviated hashes).
//!
//! A token id is the minter's address followed by a 96-bit salt, a 77-digit decimal. A person
//! sees the first [`SHORT_LEN`] hex digits of its handle (the salt first, then the minter: see
//! [`hex_digits`]), e.g. `667cd2fe`, and may type any unambiguous start of the handle back;
//! `--json` output and `--full-ids` keep the full decimal, and `0x`-hex is the id itself.
//! The short form carries no marker such as `#`: pasted into a shell, a word starting with `#`
//! is a comment and would vanish from the command line.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use alloy::primitives::U256;
use anyhow::Context as _;

use crate::cmd::node::Node;

/// Hex digits in the short form: a collision between two tokens needs 32 equal bits.
pub(crate) const SHORT_LEN: usize = 8;

/// A string of decimal digits at least this long is a full decimal id, never a prefix: a hash
/// id has about 77 decimal digits, and nobody types 20 hex digits of a prefix.
const FULL_DECIMAL_FROM: usize = 20;

/// `--full-ids`: human lines show the full decimal id instead of the short form. Set once at
/// start, before any line is written.
static FULL_IDS: AtomicBool = AtomicBool::new(false);

/// Shows full decimal ids in human lines from now on (`--full-ids`).
pub(crate) fn show_full_ids(full: bool) {
    FULL_IDS.store(full, Ordering::Relaxed);
}

/// Bits of a token id above its salt: the minter's address.
const MINTER_BITS: usize = 160;

/// The id's handle, what short forms show and prefixes are matched against: its hex form with
/// the salt (the low 96 bits) moved in front of the minter's address (the high 160), in
/// lowercase without `0x` or leading zeros. An id is the minter's address followed by a salt,
/// so the plain hex form of every token one account minted starts with the same digits; the
/// salt (random unless given) tells them apart. The rotation is one-to-one.
fn hex_digits(id: U256) -> String {
    format!("{:x}", id.rotate_left(MINTER_BITS))
}

/// The short form of a token id: its first [`SHORT_LEN`] hex digits (all of them for a small id).
pub(crate) fn short_id(id: U256) -> String {
    let mut hex = hex_digits(id);
    hex.truncate(SHORT_LEN);
    hex
}

/// A token id as human lines show it: [`short_id`], or the full decimal with `--full-ids`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Id(pub(crate) U256);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if FULL_IDS.load(Ordering::Relaxed) {
            write!(f, "{}", self.0)
        } else {
            f.write_str(&short_id(self.0))
        }
    }
}

/// A token id as typed on the command line: a full id, or the start of one to look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenArg {
    /// A full id (`0x`-hex, or a long decimal): used as it is, without a lookup.
    Full(U256),
    /// Hex digits of the id's start (`1a2b3c4d`, as human lines show it).
    Prefix(String),
    /// A short string of decimal digits: a small decimal id or a hex prefix without letters;
    /// the lookup decides.
    Digits(String),
}

impl fmt::Display for TokenArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(id) => write!(f, "{id}"),
            Self::Prefix(p) | Self::Digits(p) => f.write_str(p),
        }
    }
}

/// Parses a token id argument: `0x`-hex or a long decimal (a full id), or hex digits of its
/// start (a leading `#` and a trailing `…` are ignored, so a copied short form works).
pub(crate) fn parse_token_arg(s: &str) -> Result<TokenArg, String> {
    let full = |parsed: Result<U256, _>| {
        parsed
            .map(TokenArg::Full)
            .map_err(|e| format!("invalid token id {s:?}: {e}"))
    };
    if let Some(hex) = s.strip_prefix("0x") {
        if hex.is_empty() {
            return Err(format!("invalid token id {s:?}: no hex digits after 0x"));
        }
        return full(U256::from_str_radix(hex, 16));
    }
    let t = s.trim_start_matches('#').trim_end_matches('…');
    if t.is_empty() {
        return Err("expected a token id: decimal, 0x-hex, or the start of its hex form".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        if t.len() >= FULL_DECIMAL_FROM {
            return full(U256::from_str_radix(t, 10));
        }
        return Ok(TokenArg::Digits(t.to_owned()));
    }
    if t.len() <= 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(TokenArg::Prefix(t.to_ascii_lowercase()));
    }
    Err(format!(
        "invalid token id {s:?}: expected a decimal number, 0x-hex, or the first hex digits of \
         the id (as human output shows it)"
    ))
}

/// Why a prefix did not name one token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PrefixError {
    /// No known token starts so.
    Unknown(String),
    /// Several do (all of them, in order).
    Ambiguous(String, Vec<U256>),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(p) => write!(
                f,
                "no token whose id starts with {p} is known to this deployment's index: check \
                 the id, or pass the full id (decimal or 0x-hex) as `inft mint` printed it"
            ),
            Self::Ambiguous(p, ids) => {
                write!(
                    f,
                    "{p} is ambiguous: {} tokens start with it; give more digits",
                    ids.len()
                )?;
                for id in ids {
                    write!(f, "\n  {}  {id}", short_id(*id))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PrefixError {}

/// The one token among `known` that `arg` names. A full id is returned as it is; a decimal
/// string that is a known id is that id; otherwise the id's hex form must start with the
/// digits, in exactly one known token. Unknown digits fall back to their decimal value, so a
/// small full id still reaches the command (which says whether the token exists).
pub(crate) fn resolve_among(arg: &TokenArg, known: &BTreeSet<U256>) -> Result<U256, PrefixError> {
    let prefix = match arg {
        TokenArg::Full(id) => return Ok(*id),
        TokenArg::Digits(d) => {
            if let Ok(id) = U256::from_str_radix(d, 10)
                && known.contains(&id)
            {
                return Ok(id);
            }
            d
        }
        TokenArg::Prefix(p) => p,
    };
    let matches: Vec<U256> = known
        .iter()
        .copied()
        .filter(|id| hex_digits(*id).starts_with(prefix.as_str()))
        .collect();
    match (matches.as_slice(), arg) {
        ([one], _) => Ok(*one),
        ([], TokenArg::Digits(d)) => {
            U256::from_str_radix(d, 10).map_err(|_| PrefixError::Unknown(d.clone()))
        }
        ([], _) => Err(PrefixError::Unknown(prefix.clone())),
        _ => Err(PrefixError::Ambiguous(prefix.clone(), matches)),
    }
}

impl TokenArg {
    /// The token id, looked up in the node's index when only its start was given.
    pub(crate) async fn resolve(&self, node: &Node) -> anyhow::Result<U256> {
        if let TokenArg::Full(id) = self {
            return Ok(*id);
        }
        let known = known_tokens(node)
            .await
            .with_context(|| format!("looking up the token id starting with {self}"))?;
        Ok(resolve_among(self, &known)?)
    }
}

/// The tokens of the node's deployment a user can know about: every token the AgentNFT emitted
/// an event for (mints and transfers included), indexed from the chain up to its latest block,
/// and the agents in the local database.
async fn known_tokens(node: &Node) -> anyhow::Result<BTreeSet<U256>> {
    let d = &node.deployment;
    let indexed = node.indexed().await?;
    let events = indexed
        .db
        .chain_events_in_blocks(d.chain_id, d.start_block, i64::MAX as u64)
        .await?;
    let agents = indexed.db.agents().await?;
    Ok(events
        .into_iter()
        .filter(|e| e.contract == d.agent_nft)
        .filter_map(|e| e.token_id)
        .chain(
            agents
                .into_iter()
                .filter(|a| a.agent.chain_id == d.chain_id && a.agent.inft_contract == d.agent_nft)
                .map(|a| a.agent.token_id),
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id whose handle is `hex`.
    fn id(hex: &str) -> U256 {
        U256::from_str_radix(hex, 16)
            .unwrap()
            .rotate_right(MINTER_BITS)
    }

    #[test]
    fn the_short_form_is_the_start_of_the_hex_form() {
        let big = id("1a2b3c4d5e6f00000000000000000000000000000000000000000000000000ff");
        assert_eq!(short_id(big), "1a2b3c4d");
        assert_eq!(Id(big).to_string(), "1a2b3c4d");
        // A hash id with a leading zero nibble has 63 hex digits; a small id shows whole.
        assert_eq!(short_id(id("0abcdef0123")), "abcdef01");
        assert_eq!(short_id(id("3e8")), "3e8");
        assert_eq!(short_id(U256::ZERO), "0");
        // Two tokens one account minted differ in their salt, which the handle shows first.
        let minter = U256::from_str_radix("70997970c51812dc3a010c7d01b50e0d17dc79c8", 16).unwrap();
        let a = (minter << 96) | U256::from(0x0667_cd2f_e28d_36a1u64);
        let b = (minter << 96) | U256::from(0x1f00_0000_0000_0002u64);
        assert_eq!(short_id(a), "667cd2fe");
        assert_eq!(short_id(b), "1f000000");
        assert_eq!(short_id((minter << 96) | U256::from(1u64)), "17099797");
    }

    #[test]
    fn arguments_parse_as_full_ids_or_prefixes() {
        let big = id("1a2b3c4d5e6f00000000000000000000000000000000000000000000000000ff");
        assert_eq!(
            parse_token_arg(&format!("{big:#x}")),
            Ok(TokenArg::Full(big)),
            "0x-hex is the id itself, not its handle"
        );
        assert_eq!(parse_token_arg(&big.to_string()), Ok(TokenArg::Full(big)));
        assert_eq!(
            parse_token_arg("1A2b3c4d"),
            Ok(TokenArg::Prefix("1a2b3c4d".into()))
        );
        // A copied short form, with a marker or an ellipsis around it.
        assert_eq!(
            parse_token_arg("#1a2b…"),
            Ok(TokenArg::Prefix("1a2b".into()))
        );
        assert_eq!(parse_token_arg("4021"), Ok(TokenArg::Digits("4021".into())));
        assert!(parse_token_arg("").is_err());
        assert!(parse_token_arg("#").is_err());
        assert!(parse_token_arg("12g4").is_err());
        assert!(parse_token_arg("0x").is_err());
        assert!(parse_token_arg(&"9".repeat(80)).is_err());
    }

    fn known() -> BTreeSet<U256> {
        [
            id("1a2b3c4d5e6f00000000000000000000000000000000000000000000000000ff"),
            id("1a2b3c4d9999000000000000000000000000000000000000000000000000aaaa"),
            id("40213377ffff000000000000000000000000000000000000000000000000bbbb"),
            id("0c0ffee0000000000000000000000000000000000000000000000000000000cc"),
        ]
        .into()
    }

    #[test]
    fn a_unique_prefix_names_its_token() {
        let k = known();
        let arg = |s: &str| parse_token_arg(s).unwrap();
        assert_eq!(
            resolve_among(&arg("1a2b3c4d5"), &k),
            Ok(id(
                "1a2b3c4d5e6f00000000000000000000000000000000000000000000000000ff"
            ))
        );
        // Without letters, digits are still a prefix.
        assert_eq!(
            resolve_among(&arg("4021"), &k),
            Ok(id(
                "40213377ffff000000000000000000000000000000000000000000000000bbbb"
            ))
        );
        // Matched against the hex form without leading zeros.
        assert_eq!(
            resolve_among(&arg("c0ffee"), &k),
            Ok(id(
                "0c0ffee0000000000000000000000000000000000000000000000000000000cc"
            ))
        );
    }

    #[test]
    fn an_ambiguous_prefix_lists_the_candidates() {
        let err = resolve_among(&parse_token_arg("1a2b").unwrap(), &known()).unwrap_err();
        let PrefixError::Ambiguous(_, ids) = &err else {
            panic!("{err}");
        };
        assert_eq!(ids.len(), 2);
        let text = err.to_string();
        assert!(text.contains("1a2b is ambiguous: 2 tokens"), "{text}");
        for id in ids {
            // Each candidate with its short and its full form.
            assert!(text.contains(&format!("1a2b3c4d  {id}")), "{text}");
        }
    }

    #[test]
    fn an_unknown_prefix_says_what_to_do() {
        let err = resolve_among(&parse_token_arg("dead").unwrap(), &known()).unwrap_err();
        assert_eq!(err, PrefixError::Unknown("dead".into()));
        assert!(err.to_string().contains("pass the full id"), "{err}");
    }

    #[test]
    fn a_full_id_needs_no_lookup() {
        let nobody = BTreeSet::new();
        let big = id("deadbeef00000000000000000000000000000000000000000000000000000001");
        assert_eq!(
            resolve_among(&parse_token_arg(&big.to_string()).unwrap(), &nobody),
            Ok(big)
        );
        assert_eq!(
            resolve_among(&parse_token_arg("0x7").unwrap(), &nobody),
            Ok(U256::from(7u64))
        );
        // Short decimal digits no token's hex starts with: the small decimal id they spell.
        assert_eq!(
            resolve_among(&parse_token_arg("7").unwrap(), &nobody),
            Ok(U256::from(7u64))
        );
        // A known small id wins over hex prefixes of other tokens.
        let mut k = known();
        k.insert(U256::from(1u64));
        assert_eq!(
            resolve_among(&parse_token_arg("1").unwrap(), &k),
            Ok(U256::from(1u64))
        );
    }
}
