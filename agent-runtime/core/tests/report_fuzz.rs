//! Fuzzing, as property tests in the ordinary test build: the public record envelope parser
//! (what a gateway stores and an audit fetches) and the audit's HTML report, over arbitrary
//! bytes and arbitrary record content. Anyone who can log or publish a record chooses this
//! input, so parsing and rendering must never panic, a parsed envelope re-encodes canonically to
//! the same record and hash, and record text never becomes markup.
//!
//! Property tests rather than a cargo-fuzz target: this crate links llama.cpp, and a
//! coverage-instrumented build would compile it a second time (half an hour on two cores) for
//! code that never calls it. proptest shrinks a failure to a small input and saves its seed in
//! `proptest-regressions/`.

use agent_runtime::audit::html::{html_report, short, truncate_chars};
use agent_runtime::audit::{
    AuditReport, AuditedAction, Finding, OwnershipChange, ReplayOutcome, ReplayedAction,
};
use agent_runtime::blobstore::records::verify_record_bytes;
use agent_runtime::record::{ActionDraft, ActionKind, ActionRecord, LogId, SignedRecord};
use alloy::primitives::{Address, B256, U256};
use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A real signed trade record envelope: mutations of it reach deep into the parser.
const SEED_ENVELOPE: &[u8] = include_bytes!("data/trade-envelope.json");

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_a_record_envelope(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_envelope(&data);
    }

    #[test]
    fn a_mutated_real_envelope(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..12)
    ) {
        let mut data = SEED_ENVELOPE.to_vec();
        for (at, byte, op) in edits {
            let at = at % (data.len() + 1);
            match op {
                0 if at < data.len() => data[at] = byte,
                1 => data.insert(at, byte),
                _ if at < data.len() => { data.remove(at); }
                _ => {}
            }
        }
        check_envelope(&data);
    }

    #[test]
    fn the_html_report_over_arbitrary_content(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
        if let Ok(input) = Input::arbitrary(&mut Unstructured::new(&bytes)) {
            check_report(&input);
        }
    }

    #[test]
    fn multi_byte_text_is_cut_by_characters(text in "\\PC{0,80}", max in 0usize..40) {
        let cut = truncate_chars(&text, max);
        prop_assert!(text.starts_with(cut) && cut.chars().count() <= max);
        let _ = short(&text);
    }
}

#[test]
fn the_seed_envelope_parses_and_renders() {
    let signed = SignedRecord::from_envelope_json(SEED_ENVELOPE).expect("the seed is a record");
    check_envelope(SEED_ENVELOPE);
    assert!(signed.signer().is_ok());
}

fn check_envelope(data: &[u8]) {
    if let Ok(signed) = SignedRecord::from_envelope_json(data) {
        let canonical = signed.to_envelope_json().expect("a parsed record encodes");
        let back = SignedRecord::from_envelope_json(&canonical).expect("its canonical form parses");
        assert_eq!(back, signed);
        assert_eq!(back.record_hash(), signed.record_hash());
        assert_eq!(
            back.to_envelope_json().unwrap(),
            canonical,
            "canonical form is stable"
        );
        let checked = verify_record_bytes(data, signed.record_hash()).expect("same bytes verify");
        assert_eq!(checked, signed);
        assert!(
            verify_record_bytes(data, B256::repeat_byte(0x5a)).is_err()
                || signed.record_hash() == B256::repeat_byte(0x5a)
        );
        let signer = signed.signer().ok();
        render(signed.into_record(), signer);
    } else if let Ok(record) = ActionRecord::from_json(data) {
        let _ = record.record_hash();
        render(record, None);
    }
}

fn render(record: ActionRecord, signer: Option<Address>) {
    let report = AuditReport {
        chain_id: record.chain_id,
        agent_nft: Address::repeat_byte(1),
        action_log: record.action_log,
        token_id: record.token_id,
        chain_seq: record.seq,
        chain_head: B256::ZERO,
        history: vec![],
        actions: vec![AuditedAction {
            seq: record.seq,
            record_hash: B256::ZERO,
            block_number: 1,
            log_tx: B256::ZERO,
            sender: Address::ZERO,
            agent: Address::ZERO,
            signer,
            record: Some(record),
            ok: true,
        }],
        findings: vec![],
    };
    let html = html_report(&report, None);
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "record text is escaped"
    );
}

#[derive(Arbitrary, Debug)]
struct Input {
    actions: Vec<Action>,
    findings: Vec<(u8, u64, String)>,
    replay: Option<Vec<(u64, u8, String)>>,
    history: Vec<(u64, bool, Option<u64>)>,
    cut: (String, u8),
}

#[derive(Arbitrary, Debug)]
struct Action {
    seq: u64,
    has_record: bool,
    ok: bool,
    kind: String,
    output: String,
    reason: Option<String>,
    intent_reason: Option<String>,
    fill: Option<(String, String, String, String)>,
    memory: Option<(String, u8)>,
    pnl: Option<String>,
    pnl_number: Option<f64>,
    details_json: Option<String>,
    tx: Option<[u8; 32]>,
    timestamp_ms: u64,
}

fn record(a: &Action) -> ActionRecord {
    let log = LogId {
        chain_id: 31337,
        action_log: Address::repeat_byte(2),
        token_id: U256::from(9u64),
    };
    let mut details = a
        .details_json
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .unwrap_or_else(|| json!({}));
    if details.is_object() {
        if let Some(r) = &a.reason {
            details["reason"] = json!(r);
        }
        if let Some(r) = &a.intent_reason {
            details["intent"] = json!({ "reason": r });
        }
        if let Some((token_in, token_out, amount_in, amount_out)) = &a.fill {
            details["fill"] = json!({
                "token_in": token_in, "token_out": token_out,
                "amount_in": amount_in, "amount_out": amount_out,
            });
        }
        if let Some(p) = &a.pnl {
            details["pnl_quote"] = json!(p);
        } else if let Some(p) = a.pnl_number {
            details["pnl_quote"] = json!(p);
        }
        if let Some((new_hash, entry)) = &a.memory {
            details["new_data_hash"] = json!(new_hash);
            details["entry"] = json!(entry);
        }
    }
    let kind = ActionKind::parse(&a.kind).unwrap_or(if a.memory.is_some() {
        ActionKind::Other("memory-update".into())
    } else {
        ActionKind::Trade
    });
    let draft = ActionDraft {
        kind,
        model_hash: B256::ZERO,
        prompt: String::new(),
        keep_prompt: true,
        output: a.output.clone(),
        sampler: Value::Null,
        seed: 0,
        llama_build: String::new(),
        tx_hash: a.tx.map(B256::from),
        details,
    };
    ActionRecord::new(&log, a.seq, B256::ZERO, draft, a.timestamp_ms)
}

fn check_report(input: &Input) {
    let (text, max) = &input.cut;
    let cut = truncate_chars(text, usize::from(*max));
    assert!(text.starts_with(cut) && cut.chars().count() <= usize::from(*max));
    let _ = short(text);

    let actions: Vec<AuditedAction> = input
        .actions
        .iter()
        .take(16)
        .map(|a| AuditedAction {
            seq: a.seq,
            record_hash: B256::repeat_byte(a.seq as u8),
            block_number: a.seq,
            log_tx: B256::ZERO,
            sender: Address::ZERO,
            agent: Address::ZERO,
            signer: a.ok.then_some(Address::repeat_byte(3)),
            record: a.has_record.then(|| record(a)),
            ok: a.ok,
        })
        .collect();
    let findings = input
        .findings
        .iter()
        .take(16)
        .map(|(kind, seq, detail)| match kind % 3 {
            0 => Finding::ModifiedRecord {
                seq: *seq,
                record_hash: B256::ZERO,
                detail: detail.clone(),
            },
            1 => Finding::ReceiptMismatch {
                seq: *seq,
                tx_hash: B256::ZERO,
                detail: detail.clone(),
            },
            _ => Finding::Unchecked {
                seq: *seq,
                detail: detail.clone(),
            },
        })
        .collect();
    let history = input
        .history
        .iter()
        .take(8)
        .map(|(block, agent, epoch)| OwnershipChange {
            block_number: *block,
            tx_hash: B256::ZERO,
            event: if *agent { "AgentSet" } else { "Transfer" },
            to: Address::repeat_byte(4),
            epoch: *epoch,
        })
        .collect();
    let report = AuditReport {
        chain_id: 31337,
        agent_nft: Address::repeat_byte(1),
        action_log: Address::repeat_byte(2),
        token_id: U256::from(9u64),
        chain_seq: actions.len() as u64,
        chain_head: B256::ZERO,
        history,
        actions,
        findings,
    };
    let replayed: Option<Vec<ReplayedAction>> = input.replay.as_ref().map(|rs| {
        rs.iter()
            .take(16)
            .map(|(seq, kind, reason)| ReplayedAction {
                seq: *seq,
                outcome: match kind % 3 {
                    0 => ReplayOutcome::Reproduced,
                    1 => ReplayOutcome::Diverged {
                        replayed_output_hash: B256::ZERO,
                        reason: reason.clone(),
                    },
                    _ => ReplayOutcome::NotReplayable {
                        reason: reason.clone(),
                    },
                },
            })
            .collect()
    });
    let html = html_report(&report, replayed.as_deref());
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "record text is escaped"
    );
}
