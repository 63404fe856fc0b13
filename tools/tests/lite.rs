//! The engine-free `inft` (`cargo build -p inft --no-default-features`, which never compiles
//! llama.cpp) does an auditor's, a provenance checker's and a gateway operator's work on a real
//! chain: it audits an agent that the full binary minted and ran, refuses `--replay` with a clear
//! message, verifies a proof bundle from an empty home with only an RPC URL, and serves a blob
//! store through which another engine-free `inft` finds a piece by its text.
//!
//! The engine-free binary is built by `scripts/test.sh`, which runs this test with
//! `INFT_LITE_BIN` naming it (one cargo target directory holds one `target/debug/inft`, so the
//! two builds cannot both be this package's binary).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

const PASS: &str = "lite test passphrase";

fn command(binary: &Path, home: &Path) -> Command {
    let mut c = Command::new(binary);
    c.env("INFT_HOME", home)
        .env("INFT_PASSPHRASE", PASS)
        .env_remove("INFT_DATABASE_URL")
        .env_remove("INFT_RPC_URL")
        .env_remove("INFT_GATEWAY")
        .env_remove("RUST_LOG");
    c
}

fn run(binary: &Path, home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = command(binary, home).args(args).output()?;
    ensure!(
        out.status.success(),
        "{} {} failed: {}",
        binary.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Stops the dev chain and the gateway however the test ends.
struct Cleanup {
    full: PathBuf,
    home: PathBuf,
    gateway: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        let _ = command(&self.full, &self.home)
            .args(["dev", "down"])
            .output();
    }
}

#[test]
#[ignore = "needs the engine-free binary: scripts/test.sh builds it and runs this with INFT_LITE_BIN"]
fn the_engine_free_binary_audits_verifies_provenance_and_serves_a_gateway() -> anyhow::Result<()> {
    let lite = PathBuf::from(
        std::env::var_os("INFT_LITE_BIN")
            .context("INFT_LITE_BIN must name an inft built with --no-default-features")?,
    );
    let full = PathBuf::from(env!("CARGO_BIN_EXE_inft"));
    let home_dir = tempfile::tempdir()?;
    let home = home_dir.path();
    let mut cleanup = Cleanup {
        full: full.clone(),
        home: home.to_owned(),
        gateway: None,
    };

    // The engine-free binary has no command that runs a model.
    let help = run(&lite, home, &["--help"])?;
    for engine_command in ["run", "serve", "mint", "backtest"] {
        ensure!(
            !help
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{engine_command} "))),
            "the engine-free inft lists `{engine_command}`:\n{help}"
        );
    }

    // The full binary makes a creative agent and runs it for two steps.
    run(&full, home, &["dev", "up"])?;
    let model = home.join("model.gguf");
    let model_arg = model.to_string_lossy().into_owned();
    run(
        &full,
        home,
        &["dev", "make-model", "--size", "4MiB", "-o", &model_arg],
    )?;
    let minted: Value = serde_json::from_str(&run(
        &full,
        home,
        &[
            "--json",
            "mint",
            "--account",
            "alice",
            "--model",
            &model_arg,
            "--prompt",
            "Write a line about the sea.",
        ],
    )?)?;
    let token = minted["token_id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| minted["token_id"].as_u64().map(|t| t.to_string()))
        .with_context(|| format!("no token_id in {minted}"))?;
    run(
        &full,
        home,
        &["run", &token, "--account", "alice", "--steps", "2"],
    )?;
    let pieces = home.join("pieces");
    let pieces_arg = pieces.to_string_lossy().into_owned();
    run(&full, home, &["creations", &token, "--out", &pieces_arg])?;

    // Audit, without a wallet: clean, with the two actions.
    let audit: Value = serde_json::from_str(&run(&lite, home, &["--json", "audit", &token])?)?;
    ensure!(
        audit["clean"] == Value::Bool(true),
        "audit not clean: {audit}"
    );
    // Replay needs the engine: refused in one line that says what to do.
    let out = command(&lite, home)
        .args(["audit", &token, "--replay", "--account", "alice"])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success(),
        "--replay succeeded without an engine"
    );
    ensure!(
        err.lines().count() == 1 && err.contains("built without the inference engine"),
        "unexpected --replay error: {err}"
    );

    // A stranger with an empty home and an RPC URL verifies a piece.
    let node: Value = serde_json::from_str(&std::fs::read_to_string(home.join("node.json"))?)?;
    let rpc = node["rpc_url"].as_str().context("rpc_url in node.json")?;
    let stranger = tempfile::tempdir()?;
    let bundle = pieces.join("piece-1.proof.json");
    let piece = pieces.join("piece-1.txt");
    let verified = run(
        &lite,
        stranger.path(),
        &[
            "provenance",
            "verify",
            &bundle.to_string_lossy(),
            &piece.to_string_lossy(),
            "--rpc-url",
            rpc,
        ],
    )?;
    ensure!(
        !verified.trim().is_empty(),
        "provenance verify printed nothing"
    );
    // A piece with one byte changed is refused.
    let mut tampered = std::fs::read(&piece)?;
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    let tampered_path = stranger.path().join("tampered.txt");
    std::fs::write(&tampered_path, &tampered)?;
    let out = command(&lite, stranger.path())
        .args([
            "provenance",
            "verify",
            &bundle.to_string_lossy(),
            &tampered_path.to_string_lossy(),
            "--rpc-url",
            rpc,
        ])
        .output()?;
    ensure!(!out.status.success(), "a tampered piece verified");

    // The gateway serves alice's store; the stranger finds the piece by its text through it.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let gateway = command(&lite, home)
        .args(["gateway", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    cleanup.gateway = Some(gateway);
    let url = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&listen).is_err() {
        if Instant::now() > deadline {
            bail!("the gateway did not listen on {listen}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text: Value = serde_json::from_str(&std::fs::read_to_string(&piece)?)?;
    let text = text["text"].as_str().context("text in the piece")?;
    std::fs::copy(
        home.join("deployment.json"),
        stranger.path().join("deployment.json"),
    )?;
    let found = run(
        &lite,
        stranger.path(),
        &[
            "--json",
            "provenance",
            "--text",
            text,
            "--gateway",
            &url,
            "--rpc-url",
            rpc,
        ],
    )?;
    let found: Value = serde_json::from_str(&found)?;
    let creation = &found["matches"][0];
    let attributed: U256 = creation["creation"]["token_id"]
        .as_str()
        .context("token_id in the match")?
        .parse()?;
    ensure!(
        creation["verified"] == Value::Bool(true) && attributed == token.parse::<U256>()?,
        "the piece was not attributed to token {token}: {found}"
    );
    drop(cleanup);
    Ok(())
}
