//! The self-contained HTML report of an audit (`inft audit --html`) and the short forms the
//! text summary shares with it.
//!
//! Everything here is pure (no I/O) so it can be unit-tested and fuzzed (property tests over
//! arbitrary content in `agent-runtime/core/tests/report_fuzz.rs`). Record content is attacker-controlled: anyone who
//! can log an action chooses its output, kind details and amounts. So every text taken from a
//! record is HTML-escaped, and every shortened text is cut by characters, never by bytes (a
//! multi-byte character at the cut point must not panic the report).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{AuditReport, ReplayOutcome, ReplayedAction};
use crate::record::ActionRecord;

/// Characters of a model output shown in the report's table.
pub const OUTPUT_CHARS: usize = 240;

/// `0x1234ab…cdef` for long values (more than 14 characters), the value itself otherwise.
/// Cuts by characters, so any text is safe to shorten.
pub fn short(value: &impl std::fmt::Display) -> String {
    let s = value.to_string();
    let n = s.chars().count();
    if n > 14 {
        let head: String = s.chars().take(8).collect();
        let tail: String = s.chars().skip(n - 4).collect();
        format!("{head}…{tail}")
    } else {
        s
    }
}

/// At most `max` characters of `s`.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC for milliseconds since the Unix epoch.
pub fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms"),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// (reproduced, diverged, not replayable) counts.
pub fn replay_counts(replayed: &[ReplayedAction]) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for r in replayed {
        match r.outcome {
            ReplayOutcome::Reproduced => c.0 += 1,
            ReplayOutcome::Diverged { .. } => c.1 += 1,
            _ => c.2 += 1,
        }
    }
    c
}

/// One line on a replay outcome.
pub fn replay_text(outcome: &ReplayOutcome) -> String {
    match outcome {
        ReplayOutcome::Reproduced => "reproduced".into(),
        ReplayOutcome::Diverged { reason, .. } => format!("DIVERGED: {reason}"),
        ReplayOutcome::NotReplayable { reason } => format!("not replayable: {reason}"),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An inline SVG line chart of PnL over the action sequence.
fn pnl_svg(report: &AuditReport) -> Option<String> {
    let points = report.pnl_series();
    if points.is_empty() {
        return None;
    }
    let (w, h, pad) = (720.0_f64, 240.0_f64, 36.0_f64);
    let min = points.iter().map(|p| p.pnl).fold(0.0_f64, f64::min);
    let max = points.iter().map(|p| p.pnl).fold(0.0_f64, f64::max);
    let span = if max - min > 0.0 { max - min } else { 1.0 };
    let n = points.len().max(2) - 1;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n as f64;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - min) / span;
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.pnl)))
        .collect();
    let dots: String = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="3"><title>seq {}: {:+.6}</title></circle>"#,
                x(i),
                y(p.pnl),
                p.seq,
                p.pnl
            )
        })
        .collect();
    Some(format!(
        r##"<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="PnL over time">
<line x1="{pad}" x2="{x2}" y1="{zy:.1}" y2="{zy:.1}" stroke="#999" stroke-dasharray="4"/>
<text x="4" y="{ty:.1}" font-size="11">{max:+.4}</text><text x="4" y="{by:.1}" font-size="11">{min:+.4}</text>
<polyline fill="none" stroke="#2a6" stroke-width="2" points="{pts}"/>{dots}
<text x="{pad}" y="{h}" font-size="11">seq {first}</text><text x="{x2}" y="{h}" font-size="11" text-anchor="end">seq {last}</text>
</svg>"##,
        x2 = w - pad,
        zy = y(0.0),
        ty = pad,
        by = h - pad,
        pts = path.join(" "),
        first = points.first().map_or(0, |p| p.seq),
        last = points.last().map_or(0, |p| p.seq),
    ))
}

/// One line on what an action did, from its record's details: a refusal's reason, a trade's
/// fill and transaction, or else the reason the policy gave for its intent. Not escaped.
pub fn action_note(record: &ActionRecord) -> String {
    // The memory is private: its update shows only the new hash.
    if let Some(update) = crate::memory::LoggedMemoryUpdate::from_record(record) {
        return format!("memory updated → {}", short(&update.new_data_hash));
    }
    let d = &record.details;
    if let Some(reason) = d["reason"].as_str() {
        return reason.to_owned();
    }
    let fill = &d["fill"];
    let mut note = match (fill["amount_in"].as_str(), fill["amount_out"].as_str()) {
        (Some(amount_in), Some(amount_out)) => format!(
            "{amount_in} of {} for {amount_out} of {}",
            short(&fill["token_in"].as_str().unwrap_or("?")),
            short(&fill["token_out"].as_str().unwrap_or("?")),
        ),
        // No refusal and no fill (e.g. a hold): the reason the policy gave for its intent.
        _ => d["intent"]["reason"]
            .as_str()
            .map(|r| format!("intent: {r}"))
            .unwrap_or_default(),
    };
    if let Some(tx) = record.tx_hash {
        let _ = write!(note, " (tx {})", short(&tx));
    }
    note.trim_start().to_owned()
}

/// The self-contained HTML report: verdict, findings, owner and agent history, PnL chart and
/// the action timeline (with replay outcomes, if any).
pub fn html_report(report: &AuditReport, replayed: Option<&[ReplayedAction]>) -> String {
    html_report_linked(report, replayed, &BTreeMap::new())
}

/// [`html_report`], with each creative action whose seq is in `pieces` linking to its
/// exported piece there (a URL relative to the report, e.g. `pieces/piece-3.txt`, as
/// [`provenance::exported_pieces`](crate::provenance::exported_pieces) finds them) and to the
/// proof bundle beside it.
pub fn html_report_linked(
    report: &AuditReport,
    replayed: Option<&[ReplayedAction]>,
    pieces: &BTreeMap<u64, String>,
) -> String {
    let mut rows = String::new();
    for a in &report.actions {
        let (kind, output, note, ts) = match &a.record {
            Some(r) => (
                r.kind.to_string(),
                truncate_chars(&r.output, OUTPUT_CHARS).to_owned(),
                action_note(r),
                utc(r.timestamp_ms),
            ),
            None => ("?".into(), String::new(), String::new(), "-".into()),
        };
        let problems: Vec<String> = report
            .findings_for(a.seq)
            .map(|f| esc(&f.to_string()))
            .collect();
        let replay = replayed
            .and_then(|rs| rs.iter().find(|r| r.seq == a.seq))
            .map(|r| esc(&replay_text(&r.outcome)))
            .unwrap_or_default();
        let mut note = esc(&note);
        if let Some(href) = pieces.get(&a.seq) {
            let bundle = href
                .strip_suffix(".txt")
                .map(|stem| format!("{stem}.proof.json"))
                .unwrap_or_default();
            let _ = write!(
                note,
                " <a class=\"piece\" href=\"{}\">exported piece</a> · <a href=\"{}\">proof bundle</a>",
                esc(href),
                esc(&bundle)
            );
        }
        let _ = writeln!(
            rows,
            "<tr class=\"{cls}\"><td>{seq}</td><td>{kind}</td><td>{block}</td><td>{ts}</td><td><code title=\"{hash}\">{hash_short}</code></td><td><code title=\"{signer}\">{signer_short}</code></td><td>{note}</td><td class=\"out\">{output}</td><td>{status}</td><td>{replay}</td></tr>",
            cls = if a.ok { "ok" } else { "bad" },
            seq = a.seq,
            kind = esc(&kind),
            block = a.block_number,
            hash = a.record_hash,
            hash_short = short(&a.record_hash),
            signer = a.signer.map(|s| s.to_string()).unwrap_or_default(),
            signer_short = a.signer.map(|s| short(&s)).unwrap_or_default(),
            output = esc(&output),
            status = if problems.is_empty() {
                "verified".to_owned()
            } else {
                problems.join("<br>")
            },
        );
    }
    let mut history = String::new();
    for h in &report.history {
        let _ = write!(
            history,
            "<li>block {} — {} → <code>{}</code>{}</li>",
            h.block_number,
            esc(h.event),
            h.to,
            h.epoch.map(|e| format!(" (epoch {e})")).unwrap_or_default()
        );
    }
    let verdict = if report.is_clean() {
        format!(
            "<p class=\"verdict ok\">Audit clean: hash chain, signatures and receipts verified for all {} action(s).</p>",
            report.actions.len()
        )
    } else {
        let items: String = report
            .findings
            .iter()
            .map(|f| format!("<li>{}</li>", esc(&f.to_string())))
            .collect();
        format!(
            "<p class=\"verdict bad\">{} finding(s):</p><ul>{items}</ul>",
            report.findings.len()
        )
    };
    let replay_summary = replayed
        .map(|rs| {
            let (ok, diverged, skipped) = replay_counts(rs);
            format!(
                "<p>Replay: {ok} reproduced, {diverged} diverged, {skipped} not replayable (of {}).</p>",
                rs.len()
            )
        })
        .unwrap_or_default();
    let chart = pnl_svg(report)
        .map(|svg| format!("<h2>PnL over time</h2>{svg}"))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>inft audit — token {token}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ddd;padding:4px 6px;vertical-align:top}}
tr.bad{{background:#fee}}.verdict.ok{{color:#171}}.verdict.bad{{color:#b11;font-weight:bold}}
code{{font-size:11px;word-break:break-all}}circle{{fill:#2a6}}
h1 code{{display:block;font-size:14px;font-weight:normal}}
td.out{{font-family:monospace;font-size:11px;max-width:36em;white-space:pre-wrap;word-break:break-all}}
</style></head><body>
<h1>Audit of token <code>{token}</code></h1>
<p>Chain {chain} · AgentNFT <code>{nft}</code> · ActionLog <code>{log}</code></p>
<p>{seq} action(s) on chain · head <code>{head}</code></p>
{verdict}{replay_summary}
<h2>Owners and agent keys</h2><ul>{history}</ul>
{chart}
<h2>Action timeline</h2>
<table><thead><tr><th>seq</th><th>kind</th><th>block</th><th>time (UTC)</th><th>record hash</th><th>signer</th><th>what happened</th><th>model output</th><th>status</th><th>replay</th></tr></thead>
<tbody>
{rows}</tbody></table>
</body></html>
"#,
        token = report.token_id,
        chain = report.chain_id,
        nft = report.agent_nft,
        log = report.action_log,
        seq = report.chain_seq,
        head = report.chain_head,
    )
}

/// The plain-text summary of an audit (`inft audit`): history, actions, memory updates,
/// findings, replay counts, and where the HTML report went.
pub fn text_summary(
    report: &AuditReport,
    replayed: Option<&[ReplayedAction]>,
    html: Option<&std::path::Path>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "token {} on chain {}: {} action(s) on chain, head {}",
        report.token_id, report.chain_id, report.chain_seq, report.chain_head
    );
    for h in &report.history {
        let _ = writeln!(
            out,
            "  block {:>6}  {:<8} → {}{}",
            h.block_number,
            h.event,
            h.to,
            h.epoch.map(|e| format!(" (epoch {e})")).unwrap_or_default()
        );
    }
    for a in &report.actions {
        let (kind, when) = match &a.record {
            Some(r) => (r.kind.to_string(), utc(r.timestamp_ms)),
            None => ("?".into(), "-".into()),
        };
        let replay = replayed
            .and_then(|rs| rs.iter().find(|r| r.seq == a.seq))
            .map(|r| format!("  [{}]", replay_text(&r.outcome)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  seq {:>3}  {:<10} {}  block {:>6}  {when}  {}{replay}",
            a.seq,
            kind,
            short(&a.record_hash),
            a.block_number,
            if a.ok { "ok" } else { "PROBLEM" },
        );
    }
    let memory = report.memory_updates();
    if !memory.is_empty() {
        let _ = writeln!(out, "memory: {} update(s)", memory.len());
        for (seq, u) in &memory {
            let _ = writeln!(
                out,
                "  seq {seq:>3}  {} → {} ({} notes)",
                u.old_data_hash
                    .map_or_else(|| "none".to_owned(), |h| short(&h)),
                short(&u.new_data_hash),
                u.notes
            );
        }
    }
    if report.is_clean() {
        let _ = writeln!(
            out,
            "audit clean: hash chain, signatures and receipts verified for all {} action(s)",
            report.actions.len()
        );
    } else {
        let _ = writeln!(out, "{} finding(s):", report.findings.len());
        for f in &report.findings {
            let _ = writeln!(out, "  - {f}");
        }
    }
    if let Some(rs) = replayed {
        let (ok, diverged, skipped) = replay_counts(rs);
        let _ = writeln!(
            out,
            "replay: {ok} reproduced, {diverged} diverged, {skipped} not replayable (of {})",
            rs.len()
        );
    }
    if let Some(p) = html {
        let _ = writeln!(out, "HTML report: {}", p.display());
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256, U256};
    use serde_json::json;

    use super::*;
    use crate::audit::{AuditedAction, Finding};
    use crate::record::{ActionDraft, ActionKind, LogId};

    /// A report of three trade actions with `output` and `pnl` in each record.
    pub(crate) fn report(output: &str, pnl: &str, findings: Vec<Finding>) -> AuditReport {
        let log = LogId {
            chain_id: 31337,
            action_log: Address::repeat_byte(2),
            token_id: U256::from(9u64),
        };
        let actions = (1..=3u64)
            .map(|seq| {
                let draft = ActionDraft {
                    kind: ActionKind::Trade,
                    model_hash: B256::ZERO,
                    prompt: String::new(),
                    keep_prompt: true,
                    output: output.into(),
                    sampler: serde_json::Value::Null,
                    seed: 0,
                    llama_build: String::new(),
                    tx_hash: None,
                    details: json!({ "pnl_quote": pnl }),
                };
                AuditedAction {
                    seq,
                    record_hash: B256::repeat_byte(seq as u8),
                    block_number: seq,
                    log_tx: B256::ZERO,
                    sender: Address::ZERO,
                    agent: Address::ZERO,
                    signer: Some(Address::ZERO),
                    record: Some(ActionRecord::new(&log, seq, B256::ZERO, draft, seq)),
                    ok: !findings.iter().any(|f| f.seq() == seq),
                }
            })
            .collect();
        AuditReport {
            chain_id: 31337,
            agent_nft: Address::repeat_byte(1),
            action_log: Address::repeat_byte(2),
            token_id: U256::from(9u64),
            chain_seq: 3,
            chain_head: B256::ZERO,
            history: vec![],
            actions,
            findings,
        }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_317_347_751), "2026-11-22 03:15:47");
        assert_eq!(utc(u64::MAX), format!("{} ms", u64::MAX));
    }

    #[test]
    fn html_report_escapes_record_content_and_charts_pnl() {
        let html = html_report(
            &report("<script>alert(1)</script>", "-1500000000000000000", vec![]),
            None,
        );
        assert!(!html.contains("<script>"), "record text must be escaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<svg"), "PnL chart");
        assert!(html.contains("Audit clean"));
    }

    #[test]
    fn html_report_says_what_each_action_did() {
        let mut r = report("{}", "0", vec![]);
        let records: Vec<&mut ActionRecord> = r
            .actions
            .iter_mut()
            .filter_map(|a| a.record.as_mut())
            .collect();
        let [refused, traded, held] = records.try_into().expect("three records");
        held.details = json!({ "intent": { "action": "hold", "reason": "warming up" } });
        refused.details = json!({ "reason": "amount over the per-trade cap" });
        traded.details = json!({ "fill": {
            "token_in": format!("{:#x}", Address::repeat_byte(0xaa)),
            "token_out": format!("{:#x}", Address::repeat_byte(0xbb)),
            "amount_in": "1000", "amount_out": "997" } });
        traded.tx_hash = Some(B256::repeat_byte(0xcc));
        let html = html_report(&r, None);
        assert!(
            html.contains("amount over the per-trade cap"),
            "refusal reason"
        );
        assert!(html.contains("intent: warming up"), "a hold's reason");
        assert!(
            html.contains("1000 of 0xaaaaaa…aaaa for 997 of 0xbbbbbb…bbbb (tx 0xcccccc…cccc)"),
            "trade fill and transaction"
        );
    }

    #[test]
    fn exported_pieces_are_linked_from_their_action_and_hrefs_are_escaped() {
        let r = report("{}", "0", vec![]);
        let seq = r.actions[0].seq;
        let pieces = BTreeMap::from([(seq, "my \"pieces\"/piece-1.txt".to_owned())]);
        let html = html_report_linked(&r, None, &pieces);
        assert!(
            html.contains(
                "href=\"my &quot;pieces&quot;/piece-1.txt\">exported piece</a> · <a href=\"my &quot;pieces&quot;/piece-1.proof.json\">proof bundle</a>"
            ),
            "{html}"
        );
        assert_eq!(html.matches("exported piece").count(), 1);
        assert!(!html_report(&r, None).contains("exported piece"));
    }

    #[test]
    fn memory_updates_show_their_new_hash() {
        let mut r = report("{}", "0", vec![]);
        let record = r.actions[0].record.as_mut().expect("a record");
        record.kind = ActionKind::parse("memory-update").expect("a valid kind");
        record.details = json!({
            "entry": 3,
            "old_data_hash": B256::repeat_byte(0xaa),
            "new_data_hash": B256::repeat_byte(0xbb),
            "tx": B256::repeat_byte(0xcc),
            "notes": 2,
        });
        let html = html_report(&r, None);
        assert!(html.contains("memory updated → 0xbbbbbb…bbbb"), "{html}");
    }

    #[test]
    fn findings_show_in_the_html() {
        let f = Finding::MissingRecord {
            seq: 2,
            record_hash: B256::repeat_byte(2),
        };
        let r = report("x", "not a number", vec![f]);
        assert!(r.pnl_series().is_empty());
        let html = html_report(&r, None);
        assert!(html.contains("1 finding(s)") && html.contains("action 2"));
        assert!(!html.contains("<svg"), "no chart without PnL");
    }

    /// L3: a field the report shortens, with a multi-byte character across the byte cut point
    /// (byte 8 of a fill's token, the 240th character of an output), panicked the report.
    #[test]
    fn multi_byte_text_at_the_cut_point_does_not_panic_the_html_report() {
        // "0x12345" is 7 bytes: 'é' occupies bytes 7 and 8, so a cut at byte 8 splits it.
        let token = "0x12345é6789abcdef0123€";
        let mut r = report(&format!("{}é€🦀", "a".repeat(239)), "1", vec![]);
        let record = r.actions[1].record.as_mut().expect("a record");
        record.details = json!({ "fill": {
            "token_in": token, "token_out": "🦀".repeat(20),
            "amount_in": "1", "amount_out": "2" } });
        let html = html_report(&r, None);
        assert!(
            html.contains("1 of 0x12345é…123€ for 2 of 🦀🦀🦀🦀🦀🦀🦀🦀…🦀🦀🦀🦀"),
            "{html}"
        );
        assert!(
            html.contains(&format!("{}é<", "a".repeat(239))),
            "240 characters kept"
        );
        assert_eq!(
            short(&"🦀".repeat(20)),
            format!("{}…{}", "🦀".repeat(8), "🦀".repeat(4))
        );
        assert_eq!(truncate_chars("żółw", 2), "żó");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }

    /// The seed envelope of the report fuzz tests is a valid envelope whose fill has a
    /// multi-byte character at the cut point (kept valid as the format evolves).
    #[test]
    fn the_fuzz_seed_envelope_parses_and_renders() {
        let bytes = include_bytes!("../../tests/data/trade-envelope.json");
        let signed = crate::record::SignedRecord::from_envelope_json(bytes).unwrap();
        let mut r = report("x", "0", vec![]);
        r.actions[0].record = Some(signed.into_record());
        let html = html_report(&r, None);
        assert!(html.contains("1000 of 0x12345é…123€ for 997 of"), "{html}");
    }

    #[test]
    fn non_finite_pnl_is_not_charted() {
        for bad in ["NaN", "inf", "-inf", "1e999"] {
            let r = report("x", bad, vec![]);
            assert!(r.pnl_series().is_empty(), "{bad}");
            assert!(!html_report(&r, None).contains("NaN"), "{bad}");
        }
    }

    #[test]
    fn memory_updates_show_their_old_and_new_hash_and_no_note() {
        let mut r = report("{}", "0", vec![]);
        let record = r.actions[0].record.as_mut().expect("a record");
        record.kind = ActionKind::parse("memory-update").expect("a valid kind");
        record.details = json!({
            "entry": 3,
            "old_data_hash": B256::repeat_byte(0xaa),
            "new_data_hash": B256::repeat_byte(0xbb),
            "tx": B256::repeat_byte(0xcc),
            "notes": 2,
        });
        let text = text_summary(&r, None, None);
        assert!(
            text.contains("memory: 1 update(s)")
                && text.contains("0xaaaaaa…aaaa → 0xbbbbbb…bbbb (2 notes)"),
            "{text}"
        );
    }

    #[test]
    fn findings_show_in_the_summary() {
        let f = Finding::MissingRecord {
            seq: 2,
            record_hash: B256::repeat_byte(2),
        };
        let r = report("x", "not a number", vec![f]);
        assert!(r.pnl_series().is_empty());
        let text = text_summary(&r, None, None);
        assert!(text.contains("PROBLEM") && text.contains("action 2"));
    }
}
