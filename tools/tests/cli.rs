//! `inft keys`, `inft seal` and `inft unseal` end to end, through the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;

const PASS: &str = "test passphrase";

fn inft(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_inft"));
    c.current_dir(dir)
        .env("INFT_PASSPHRASE", PASS)
        .env_remove("INFT_KEY_FILE")
        .env_remove("RUST_LOG");
    c
}

struct Setup {
    dir: tempfile::TempDir,
    plain: Vec<u8>,
}

impl Setup {
    /// A key file and a 50 KiB input sealed to it in 4 KiB chunks (13 chunks).
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..50_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(dir.path().join("model.bin"), &plain).unwrap();
        inft(dir.path())
            .args(["keys", "new", "--out", "owner.key"])
            .assert()
            .success();
        inft(dir.path())
            .args([
                "seal",
                "model.bin",
                "-o",
                "model.sealed",
                "--key-file",
                "owner.key",
            ])
            .args(["--chunk-size", "4096"])
            .assert()
            .success();
        Self { dir, plain }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn unseal(&self, out: &str) -> std::process::Output {
        inft(self.dir.path())
            .args([
                "unseal",
                "model.sealed",
                "-o",
                out,
                "--key-file",
                "owner.key",
            ])
            .output()
            .unwrap()
    }

    /// The directory holds exactly these names (no output, no partial temp file).
    fn assert_files(&self, expected: &[&str]) {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(names, expected);
    }

    fn assert_refused(&self, out: &std::process::Output, needle: &str) {
        assert!(!out.status.success(), "unseal succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one-line error expected, got: {err}");
        assert!(lines[0].starts_with("error: "), "{err}");
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        assert!(!self.path("out.bin").exists(), "output left behind");
        self.assert_files(&["model.bin", "model.sealed", "model.sealed.key", "owner.key"]);
    }
}

#[test]
fn seal_unseal_round_trip() {
    let s = Setup::new();
    s.assert_files(&["model.bin", "model.sealed", "model.sealed.key", "owner.key"]);
    let out = s.unseal("out.bin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(s.path("out.bin")).unwrap(), s.plain);
    // Refuses to overwrite without --force.
    let again = s.unseal("out.bin");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn keys_show_and_seal_to_public_key_with_context() {
    let s = Setup::new();
    let out = inft(s.dir.path())
        .args(["--json", "keys", "show", "owner.key"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pk = v["public_key"].as_str().unwrap().to_owned();
    assert_eq!(pk.len(), 64);

    let out = inft(s.dir.path())
        .args([
            "--json",
            "seal",
            "model.bin",
            "-o",
            "tok.sealed",
            "--to",
            &pk,
        ])
        .args([
            "--chain-id",
            "31337",
            "--contract",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ])
        .args(["--token-id", "7"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["recipient"], pk.as_str());
    assert_eq!(v["chain_id"], 31337);
    assert!(v["commitment"].as_str().unwrap().starts_with("0x"));

    inft(s.dir.path())
        .args([
            "unseal",
            "tok.sealed",
            "-o",
            "tok.out",
            "--key-file",
            "owner.key",
        ])
        .assert()
        .success();
    assert_eq!(std::fs::read(s.path("tok.out")).unwrap(), s.plain);

    // The context in the .key file is authenticated: moving it to another token fails.
    let kp = s.path("tok.sealed.key");
    let text = std::fs::read_to_string(&kp).unwrap();
    let moved = text.replace(
        "0x0000000000000000000000000000000000000000000000000000000000000007",
        "0x0000000000000000000000000000000000000000000000000000000000000008",
    );
    assert_ne!(moved, text);
    std::fs::write(&kp, moved).unwrap();
    let out = inft(s.dir.path())
        .args([
            "unseal",
            "tok.sealed",
            "-o",
            "tok2.out",
            "--key-file",
            "owner.key",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening sealed key"));
    assert!(!s.path("tok2.out").exists());
}

#[test]
fn one_flipped_byte_anywhere_is_refused_without_output() {
    let s = Setup::new();
    let blob = std::fs::read(s.path("model.sealed")).unwrap();
    let n = blob.len();
    // Header fields (magic, version, chunk size, nonce prefix, key check, MAC), first chunk,
    // a middle chunk's ciphertext and tag, the last byte.
    let positions = [
        0,
        8,
        14,
        18,
        30,
        60,
        72,
        80,
        72 + 5 * 4112 + 100,
        72 + 6 * 4112 - 1,
        n - 1,
    ];
    for &pos in &positions {
        let mut b = blob.clone();
        b[pos] ^= 0x04;
        std::fs::write(s.path("model.sealed"), &b).unwrap();
        let out = s.unseal("out.bin");
        s.assert_refused(&out, "refused, no output written");
    }
    // Truncated at a chunk boundary, and data appended.
    std::fs::write(s.path("model.sealed"), &blob[..72 + 3 * 4112]).unwrap();
    s.assert_refused(&s.unseal("out.bin"), "truncated after 3 chunks");
    let mut longer = blob.clone();
    longer.extend_from_slice(b"junk");
    std::fs::write(s.path("model.sealed"), &longer).unwrap();
    s.assert_refused(&s.unseal("out.bin"), "trailing data");
    // Intact again: opens.
    std::fs::write(s.path("model.sealed"), &blob).unwrap();
    assert!(s.unseal("out.bin").status.success());
}

#[test]
fn wrong_passphrase_and_missing_passphrase() {
    let s = Setup::new();
    let out = inft(s.dir.path())
        .env("INFT_PASSPHRASE", "wrong")
        .args([
            "unseal",
            "model.sealed",
            "-o",
            "out.bin",
            "--key-file",
            "owner.key",
        ])
        .output()
        .unwrap();
    s.assert_refused(&out, "wrong passphrase");
    let out = inft(s.dir.path())
        .env_remove("INFT_PASSPHRASE")
        .args([
            "unseal",
            "model.sealed",
            "-o",
            "out.bin",
            "--key-file",
            "owner.key",
        ])
        .output()
        .unwrap();
    s.assert_refused(&out, "INFT_PASSPHRASE");
}

#[test]
fn sealed_to_someone_else() {
    let s = Setup::new();
    inft(s.dir.path())
        .args(["keys", "new", "--out", "other.key"])
        .assert()
        .success();
    let out = inft(s.dir.path())
        .args([
            "unseal",
            "model.sealed",
            "-o",
            "out.bin",
            "--key-file",
            "other.key",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not to this key"));
    assert!(!s.path("out.bin").exists());
}

#[test]
fn dev_model_real_finds_the_model_or_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.gguf");
    let out = inft(dir.path())
        .args(["dev", "model", "--real"])
        .env("INFT_REAL_MODEL", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("absent.gguf"), "{err}");
    assert!(err.contains("run scripts/setup.sh"), "{err}");

    // A file of the right size (sparse: the size is all that is checked here).
    let file = dir.path().join("model.gguf");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(inft_engine::models::REAL_MODEL_BYTES)
        .unwrap();
    let out = inft(dir.path())
        .args(["--json", "dev", "model", "--real"])
        .env("INFT_REAL_MODEL", &file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"], file.to_str().unwrap());
    assert_eq!(v["bytes"], inft_engine::models::REAL_MODEL_BYTES);
    assert_eq!(v["sha256"], inft_engine::models::REAL_MODEL_SHA256);
}
