//! SIGKILL durability of the embedded store: no acknowledged write may be
//! lost when the process dies without warning.
//!
//! This binary is its own child: run plainly it is the test, which re-runs
//! itself with `FERROKUBE_DURABILITY_CHILD=<dir>` as a writer process that
//! prints each key only after its create has been acknowledged, SIGKILLs it
//! mid-stream, reopens the store and checks every printed key. Three rounds
//! share one directory, so a store recovered from a crash is crashed again.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use apiserver::storage::{EmbeddedStore, Storage};

const CHILD_ENV: &str = "FERROKUBE_DURABILITY_CHILD";
const WRITERS: usize = 32;
/// Acknowledgements the parent waits for before it kills the writer.
const KILL_AFTER: usize = 3000;
const ROUNDS: usize = 3;

fn main() -> ExitCode {
    // Speak enough of libtest's CLI for cargo-nextest: it lists tests with
    // `--list --format terse` (and `--ignored` for ignored ones: none here).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("embedded_durability: test");
        }
        return ExitCode::SUCCESS;
    }
    match std::env::var(CHILD_ENV) {
        Ok(dir) => child(Path::new(&dir)),
        Err(_) => parent(),
    }
}

/// Writes until killed (or a minute passes, should the parent be gone).
fn child(dir: &Path) -> ExitCode {
    let round: usize = std::env::var("FERROKUBE_DURABILITY_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir).expect("open the store");
        let deadline = Instant::now() + Duration::from_secs(60);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut i = 0usize;
                    while Instant::now() < deadline {
                        let key = format!("/registry/crash/r{round}/w{w:02}-{i:07}");
                        store
                            .create(&key, bytes::Bytes::from_static(b"{}"))
                            .await
                            .expect("create");
                        // Printed only once acknowledged: the parent's list of
                        // keys that must survive.
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{key}").expect("stdout");
                        out.flush().expect("stdout");
                        i += 1;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
    });
    ExitCode::SUCCESS
}

fn parent() -> ExitCode {
    let dir = tempfile::tempdir().expect("temporary directory");
    let exe = std::env::current_exe().expect("own executable");
    let mut acknowledged = BTreeSet::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, dir.path())
            .env("FERROKUBE_DURABILITY_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut this_round = 0;
        for line in lines.by_ref() {
            acknowledged.insert(line.expect("a key"));
            this_round += 1;
            if this_round == KILL_AFTER {
                break;
            }
        }
        assert_eq!(
            this_round, KILL_AFTER,
            "round {round}: the writer died early"
        );
        child.kill().expect("SIGKILL the writer");
        // Keys printed before the kill landed are acknowledged too.
        for line in lines {
            match line {
                Ok(key) if key.starts_with("/registry/crash/") => {
                    acknowledged.insert(key);
                }
                // A line cut in half by the kill was never fully printed.
                _ => break,
            }
        }
        let status = child.wait().expect("reap the writer");
        assert!(!status.success(), "round {round}: the writer was killed");

        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let (missing, stored, opened_in) = runtime.block_on(async {
            let started = Instant::now();
            let store = EmbeddedStore::open(dir.path()).expect("reopen after SIGKILL");
            let opened_in = started.elapsed();
            let listed = store
                .list("/registry/crash/", None, 0, None)
                .await
                .expect("list");
            let stored: BTreeSet<String> = listed.kvs.into_iter().map(|kv| kv.key).collect();
            let missing: Vec<String> = acknowledged.difference(&stored).cloned().collect();
            (missing, stored.len(), opened_in)
        });
        println!(
            "round {round}: {} acknowledged, {stored} stored, reopened in {opened_in:?}",
            acknowledged.len()
        );
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged writes lost, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        assert!(
            opened_in < Duration::from_secs(5),
            "round {round}: reopening took {opened_in:?}"
        );
    }
    println!("test embedded_durability ... ok");
    ExitCode::SUCCESS
}
