//! The first SIGTERM asks for a graceful shutdown; a second signal exits at once with 130.
//! Real signals, sent to a child process (this test binary, run as `signal_child`).

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inft_service::Shutdown;
use inft_service::shutdown::FORCED_EXIT_STATUS;

const CHILD: &str = "INFT_SIGNAL_CHILD";

/// Run as a child only: reports when it listens and when the shutdown was triggered, then
/// waits for the second signal.
#[test]
fn signal_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // Never outlive a parent that stopped listening.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(20));
        std::process::exit(2);
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let shutdown = Shutdown::on_signals();
        // Let the listener task register its handlers.
        tokio::time::sleep(Duration::from_millis(100)).await;
        say("ready");
        shutdown.triggered().await;
        say("triggered");
        std::future::pending::<()>().await;
    });
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

fn kill(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {signal} {pid}");
}

#[test]
fn the_first_signal_shuts_down_gracefully_and_a_second_exits_at_once() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signal_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut wait_for = |what: &str| {
        for line in lines.by_ref() {
            // libtest may print "test signal_child ... " before it on the same line.
            if line.unwrap().trim_end().ends_with(what) {
                return;
            }
        }
        panic!("the child ended before saying {what:?}");
    };
    wait_for("ready");
    kill(pid, "-TERM");
    wait_for("triggered");
    let second = Instant::now();
    kill(pid, "-INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(FORCED_EXIT_STATUS));
    assert!(second.elapsed() < Duration::from_secs(10));
}
