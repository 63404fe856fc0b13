//! `inft backtest` through the real binary: classical policies on seeded markets, a short run
//! of the llm policy on a generated model, and SmolLM2 following two instructions.
#![cfg(feature = "engine")]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn inft(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inft"));
    c.current_dir(dir).env_remove("RUST_LOG");
    c
}

/// Runs `inft backtest ARGS --json` and parses its stdout.
fn backtest(dir: &Path, args: &[&str]) -> Value {
    let out = inft(dir)
        .arg("backtest")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Every policy's counts add up to its steps, and its refusals to the refused count.
fn check_counts(report: &Value, steps: u64) {
    for p in report["policies"].as_array().unwrap() {
        assert_eq!(n(p, "steps"), steps, "{p}");
        assert_eq!(
            n(p, "trades") + n(p, "holds") + n(p, "refused"),
            steps,
            "{p}"
        );
        assert_eq!(n(p, "valid"), n(p, "trades") + n(p, "holds"), "{p}");
        let by_rule: u64 = p["refusals"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_rule, n(p, "refused"), "{p}");
        assert_eq!(p["decisions"].as_array().unwrap().len() as u64, steps);
    }
}

#[test]
fn classical_policies_are_compared_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--policies",
        "momentum,mean-reversion",
        "--steps",
        "40",
        "--seed",
        "3",
    ];
    let report = backtest(dir.path(), &args);
    assert_eq!(report["steps"], 40);
    assert_eq!(report["seed"], 3);
    let names: Vec<&str> = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["momentum", "mean-reversion"]);
    check_counts(&report, 40);
    let [momentum, reversion] = &report["policies"].as_array().unwrap()[..] else {
        panic!("two policies")
    };
    // Something happened on a 40-step market, and momentum is its own reference.
    assert!(n(momentum, "trades") > 0, "{momentum}");
    assert!(momentum["agreement"].is_null());
    let agreement = &reversion["agreement"];
    assert_eq!(n(agreement, "compared"), 40);
    assert!(n(agreement, "same_side") < 40, "{agreement}");

    // The same seed gives the same result; another seed another market.
    assert_eq!(backtest(dir.path(), &args), report);
    let other = backtest(
        dir.path(),
        &[
            "--policies",
            "momentum,mean-reversion",
            "--steps",
            "40",
            "--seed",
            "4",
        ],
    );
    assert_ne!(other["setup"]["path"], report["setup"]["path"]);
    assert_ne!(other["policies"], report["policies"]);
}

#[test]
fn several_seeds_compare_with_the_named_rule() {
    let dir = tempfile::tempdir().unwrap();
    let report = backtest(
        dir.path(),
        &[
            "--policies",
            "momentum,mean-reversion",
            "--steps",
            "20",
            "--seed",
            "3,4",
            "--agree-with",
            "mean-reversion",
        ],
    );
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for (run, seed) in runs.iter().zip([3, 4]) {
        assert_eq!(run["seed"], seed);
        check_counts(run, 20);
        assert_eq!(run["setup"]["reference"], "mean-reversion");
        let [momentum, reversion] = &run["policies"].as_array().unwrap()[..] else {
            panic!("two policies")
        };
        // Now mean reversion is the reference, and momentum is compared with it.
        assert!(reversion["agreement"].is_null(), "{reversion}");
        assert_eq!(momentum["agreement"]["reference"], "mean-reversion");
        assert_eq!(n(&momentum["agreement"], "compared"), 20);
    }
    // The table ends with the per-seed summary.
    let out = inft(dir.path())
        .args(["backtest", "--steps", "20", "--seed", "3,4"])
        .args(["--policies", "momentum,mean-reversion"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("agreement with momentum over 2 seeds:\n  mean-reversion: seed 3 "),
        "{table}"
    );
    let bad = inft(dir.path())
        .args(["backtest", "--agree-with", "vibes"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "clap refuses it");
}

#[test]
fn without_a_model_the_llm_is_skipped_and_the_table_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = inft(dir.path())
        .args(["backtest", "--steps", "8", "--seed", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the llm policy is skipped"), "{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[1].starts_with("policy") && lines[1].contains("agrees w/ reference"));
    assert!(lines[0].ends_with("reference: momentum"), "{table}");
    assert!(lines[2].starts_with("momentum"), "{table}");
    assert!(lines[3].starts_with("mean-reversion"), "{table}");

    // Unknown policies and empty runs are refused.
    let bad = inft(dir.path())
        .args(["backtest", "--policies", "yolo"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown policy"));
    let none = inft(dir.path())
        .args(["backtest", "--policies", "llm"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
}

#[test]
fn the_llm_policy_runs_end_to_end_on_a_generated_model() {
    let dir = tempfile::tempdir().unwrap();
    let made = inft(dir.path())
        .args(["dev", "make-model", "--size", "8MiB", "-o", "model.gguf"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let report = backtest(
        dir.path(),
        &[
            "--model",
            "model.gguf",
            "--policies",
            "llm,momentum",
            "--steps",
            "3",
            "--threads",
            "2",
        ],
    );
    check_counts(&report, 3);
    let llm = &report["policies"][0];
    assert_eq!(llm["name"], "llm");
    // Random weights: whatever it decided, each step is accounted for.
    assert!(llm["agreement"].is_object(), "{llm}");
}

/// Issue 28's must-show, kept short: SmolLM2 told to follow the trend picks momentum's side, and
/// told to buy the dips mean reversion's, on most steps of a seeded market. Over 5 seeds × 20
/// steps each it agreed on 93% and 100% of steps (the table is in strategies/README.md); with
/// the pick taken per state alone rather than by pairing, on 71% and 75%.
#[test]
fn smollm2_picks_the_side_of_the_rule_its_instruction_names() {
    use strategies::trading::{BUY_THE_DIPS, FOLLOW_THE_TREND};
    let model = inft_engine::models::real_model_path().unwrap();
    let model = model.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (instruction, reference) in [
        (FOLLOW_THE_TREND, "momentum"),
        (BUY_THE_DIPS, "mean-reversion"),
    ] {
        let report = backtest(
            dir.path(),
            &[
                "--model",
                model,
                "--policies",
                "llm",
                "--steps",
                "20",
                "--seed",
                "1",
                "--agree-with",
                reference,
                "--instruction",
                instruction,
            ],
        );
        check_counts(&report, 20);
        let agreement = &report["policies"][0]["agreement"];
        assert_eq!(agreement["reference"], reference, "{agreement}");
        let share = n(agreement, "same_side") as f64 / n(agreement, "compared") as f64;
        assert!(share >= 0.75, "{instruction}: {agreement}");
    }
}
