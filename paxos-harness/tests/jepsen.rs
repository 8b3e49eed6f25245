//! `paxos-harness jepsen` end to end: a short run of three real node processes under every
//! kind of fault passes the linearizability check with real operations recorded, and the same
//! kind of run with nodes that answer reads from their local state (`--break stale-reads`)
//! fails it.
//!
//! Each test picks its seed from the nemesis schedules (which are data, drawn from the seed),
//! so the faults it needs are sure to happen; the two runs take turns, not to share the CPU.

#![cfg(feature = "rocksdb")]

use paxos_core::NodeId;
use paxos_harness::jepsen::nemesis::{Fault, NemesisOptions, Schedule};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

const NODES: u64 = 3;
const CLIENTS: u64 = 5;

/// One jepsen run at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn nodes() -> BTreeSet<NodeId> {
    (1..=NODES).map(NodeId).collect()
}

/// The first seed whose schedule for a run of `secs` satisfies `wanted`.
fn seed_where(secs: u64, options: &NemesisOptions, wanted: impl Fn(&Schedule) -> bool) -> u64 {
    (1..10_000)
        .find(|&seed| {
            wanted(&Schedule::draw(
                seed,
                &nodes(),
                Duration::from_secs(secs),
                options,
            ))
        })
        .expect("some seed draws the faults wanted")
}

/// What a run printed (its `--json` summary) and how it exited.
struct Run {
    summary: Value,
    success: bool,
    output: String,
}

fn jepsen(seed: u64, secs: u64, extra: &[&str], dir: &std::path::Path) -> Run {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_paxos-harness"))
        .args(["jepsen", "--json", "--seed", &seed.to_string()])
        .args([
            "--nodes",
            &NODES.to_string(),
            "--clients",
            &CLIENTS.to_string(),
        ])
        .args(["--duration", &format!("{secs}s")])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("run paxos-harness jepsen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let output = format!(
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("the last line is not a JSON summary ({e}):\n{output}"));
    Run {
        summary,
        success: out.status.success(),
        output,
    }
}

fn number(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"))
}

#[test]
fn a_short_run_under_every_fault_passes() {
    const SECS: u64 = 14;
    let options = NemesisOptions::default();
    // Faults of two kinds at least, one of them membership changes.
    let seed = seed_where(SECS, &options, |s| {
        let c = s.counts();
        [c.kills, c.pauses, c.partitions, c.demotions]
            .iter()
            .filter(|&&n| n > 0)
            .count()
            >= 2
            && c.demotions > 0
    });
    let schedule = Schedule::draw(seed, &nodes(), Duration::from_secs(SECS), &options);
    eprintln!("{schedule}");
    let dir = tempfile::tempdir().expect("temp dir");
    let run = jepsen(seed, SECS, &[], dir.path());
    let s = &run.summary;
    if !(run.success && s["passed"] == Value::Bool(true)) {
        let kept = dir.keep();
        panic!(
            "seed {seed} failed (files kept in {}):\n{schedule}\n{}",
            kept.display(),
            run.output
        );
    }
    assert_eq!(s["linearizable"], Value::Bool(true), "{}", run.output);
    assert!(
        number(s, "ok") > 100,
        "too few ok operations:\n{}",
        run.output
    );
    let expected = schedule.counts();
    assert_eq!(
        (
            number(s, "kills"),
            number(s, "pauses"),
            number(s, "partitions"),
            number(s, "demotions")
        ),
        (
            expected.kills,
            expected.pauses,
            expected.partitions,
            expected.demotions
        ),
        "every fault of the schedule is applied:\n{}",
        run.output
    );
    assert!(
        s["final_reads"]
            .as_object()
            .is_some_and(|reads| reads.len() == 3),
        "{}",
        run.output
    );
    assert!(dir.path().join("history.jsonl").is_file());
}

#[test]
fn stale_reads_fail_the_check() {
    const SECS: u64 = 12;
    let options = NemesisOptions {
        kill: false,
        pause: false,
        membership: false,
        ..NemesisOptions::default()
    };
    // A node cut off alone for 2 s or more, early in the run: it answers gets from a state
    // that no longer moves while the others take writes.
    let seed = seed_where(SECS, &options, |s| {
        let mut steps = s.steps.iter();
        let Some(cut) = steps.next() else {
            return false;
        };
        let Fault::Partition(sides) = &cut.fault else {
            return false;
        };
        let heal = steps.next().map_or(Duration::ZERO, |h| h.at);
        sides.iter().any(|side| side.len() == 1)
            && cut.at <= Duration::from_secs(5)
            && heal >= cut.at + Duration::from_secs(2)
    });
    eprintln!(
        "{}",
        Schedule::draw(seed, &nodes(), Duration::from_secs(SECS), &options)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let run = jepsen(
        seed,
        SECS,
        &["--nemesis", "partition", "--break", "stale-reads"],
        dir.path(),
    );
    let s = &run.summary;
    assert!(
        !run.success,
        "a broken read path must fail:\n{}",
        run.output
    );
    assert_eq!(s["passed"], Value::Bool(false), "{}", run.output);
    assert_eq!(
        s["linearizable"],
        Value::Bool(false),
        "the check itself catches the stale reads:\n{}",
        run.output
    );
    let verdict = s["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.contains("NOT linearizable"),
        "the verdict shows the failing window:\n{verdict}"
    );
    assert!(number(s, "partitions") >= 1, "{}", run.output);
}
