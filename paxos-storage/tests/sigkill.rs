//! Crash test: every write `RocksDbStorage` acknowledged survives a `SIGKILL` of the process.
//!
//! The test binary re-executes itself as the writer (`sigkill child <dir> <epoch> <tasks>`): the
//! child opens a store in `<dir>` and saves in a loop from `<tasks>` concurrent tokio tasks,
//! printing `ack <task> <step>` only after `save` returned `Ok`. The parent reads those lines,
//! kills the child with `SIGKILL` after a seeded random number of acks, reads the acks still in
//! the pipe, reopens the directory and checks that
//! 1. every acknowledged save is present (storage correctness 1 and 4),
//! 2. every save is all-or-nothing: each instance has both its accepted and its decided record,
//!    and the promise / proposer round equal the maxima of the saves present (correctness 2),
//! 3. each task's saves are a prefix of its sequence, at most one save past its last ack (the
//!    save in flight at the kill; correctness 3).
//!
//! The same directory is reused for 20 kills in a row (each child recovers the previous crash),
//! once with a single writer, once with 8 concurrent writers (group commit), and once with a
//! single writer whose every 8th save also installs a 64 KiB snapshot covering everything saved
//! so far and truncates the log below it (as a follower installing a snapshot does): then
//! every acknowledged save is present *or covered by the snapshot kept*, the snapshot's bytes
//! are the ones saved with it, and the log starts exactly at its index (the snapshot and its
//! truncation are one atomic step). A process kill
//! keeps the OS page cache, so this checks that `Ok` means "in the WAL", atomicity and recovery;
//! power loss additionally relies on the `sync = true` of every batch.
//!
//! Replay a run with `PAXOS_SIGKILL_SEED=<seed> cargo test -p paxos-storage --features rocksdb
//! --test sigkill` (the seed is printed first).

use paxos_core::{Ballot, DurableState, Entry, InstanceId, NodeId, ProposalId, Storage, Write};
use paxos_storage::RocksDbStorage;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const CHILD: &str = "child";
const EPOCHS: u64 = 20;
const MAX_ACKS_BEFORE_KILL: u64 = 120;
/// Name, writer tasks, whether every 8th save installs a snapshot.
const SCENARIOS: [(&str, u64, bool); 3] = [
    ("single_writer", 1, false),
    ("concurrent_writers", 8, false),
    ("snapshot_installs", 1, true),
];
const SNAPSHOT_EVERY: u64 = 8;

fn instance_of(e: u64, t: u64, k: u64) -> InstanceId {
    InstanceId((e << 40) | (t << 20) | k)
}

/// The bytes of the snapshot below `index`: 64 KiB derived from it.
fn payload(index: InstanceId) -> Vec<u8> {
    (0..64 * 1024u64)
        .map(|i| {
            (index.0 ^ i)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .to_be_bytes()[0]
        })
        .collect()
}

/// The save of step `k` of task `t` in child `e`: one instance's accept and decision plus the
/// promise and round of its ballot, all in one call.
fn script(e: u64, t: u64, k: u64) -> Vec<Write<u64>> {
    let instance = instance_of(e, t, k);
    let ballot = Ballot::new(e * 1_000_000 + k + 1, NodeId(t));
    let value = instance.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let entry = |value| Entry::Value {
        id: ProposalId::default(),
        value,
    };
    vec![
        Write::Promise(ballot),
        Write::Accept {
            instance,
            ballot,
            entry: entry(value),
        },
        Write::ProposerRound(ballot.round),
        Write::Decided {
            instance,
            entry: entry(value ^ 1),
        },
    ]
}

/// [`script`], and for every 8th step a snapshot covering it and everything before, with the
/// truncation below it, in the same save.
fn script_with_snapshots(e: u64, t: u64, k: u64) -> Vec<Write<u64>> {
    let mut writes = script(e, t, k);
    if k % SNAPSHOT_EVERY == SNAPSHOT_EVERY - 1 {
        let index = instance_of(e, t, k).next();
        writes.push(Write::Snapshot(paxos_core::Snapshot::new(
            index,
            Ballot::new(e, NodeId(t)),
            payload(index),
        )));
        writes.push(Write::TruncateBelow(index));
    }
    writes
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        child(&args[2..]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        for (name, _, _) in SCENARIOS {
            println!("{name}: test");
        }
        return;
    }
    let seed = std::env::var("PAXOS_SIGKILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!(
        "sigkill: seed {seed} (replay: PAXOS_SIGKILL_SEED={seed} cargo test -p paxos-storage \
         --features rocksdb --test sigkill)"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, tasks, snapshots) in SCENARIOS {
        let start = Instant::now();
        let acks = scenario(name, tasks, snapshots, seed, &mut rng);
        println!(
            "sigkill: {name}: {EPOCHS} kills, {acks} acknowledged saves verified in {:.1?}",
            start.elapsed()
        );
    }
}

/// The writer process. Never returns normally: it is killed (or exits on an error).
fn child(args: &[String]) {
    let (Some(dir), Some(epoch), Some(tasks)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: sigkill child <dir> <epoch> <tasks> [snapshots]");
        std::process::exit(2);
    };
    let snapshots = args.get(3).is_some_and(|a| a == "snapshots");
    let (epoch, tasks): (u64, u64) = match (epoch.parse(), tasks.parse()) {
        (Ok(e), Ok(t)) => (e, t),
        _ => {
            eprintln!("child: bad epoch/tasks");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("child runtime");
    rt.block_on(async move {
        let store = Arc::new(RocksDbStorage::<u64>::open(dir).unwrap_or_else(|e| {
            eprintln!("child: open {dir}: {e}");
            std::process::exit(3);
        }));
        let mut writers = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for k in 0..(1 << 20) {
                    let writes = if snapshots {
                        script_with_snapshots(epoch, t, k)
                    } else {
                        script(epoch, t, k)
                    };
                    if let Err(e) = store.save(&writes).await {
                        eprintln!("child: save {t} {k}: {e}");
                        std::process::exit(4);
                    }
                    println!("ack {t} {k}");
                }
            }));
        }
        for w in writers {
            let _ = w.await;
        }
    });
}

/// `EPOCHS` children on one directory; returns the number of acknowledged saves.
fn scenario(name: &str, tasks: u64, snapshots: bool, seed: u64, rng: &mut StdRng) -> u64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("current exe");
    // Last acknowledged step per (epoch, task).
    let mut acked: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut total = 0;
    for epoch in 0..EPOCHS {
        let context = format!("sigkill {name} epoch {epoch} (PAXOS_SIGKILL_SEED={seed})");
        let kill_after = rng.gen_range(1..=MAX_ACKS_BEFORE_KILL);
        let mut child = Command::new(&exe)
            .arg(CHILD)
            .arg(dir.path())
            .arg(epoch.to_string())
            .arg(tasks.to_string())
            .arg(if snapshots { "snapshots" } else { "log" })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| fail(&context, format!("spawn child: {e}")));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout);
        let mut seen = 0;
        let mut killed = false;
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) if line.ends_with('\n') => {}
                // A line cut by the kill: its save was acked, but we cannot tell which one.
                Ok(_) => break,
                Err(e) => fail(&context, format!("read child stdout: {e}")),
            }
            let mut words = line.split_whitespace();
            let (Some("ack"), Some(t), Some(k)) = (words.next(), words.next(), words.next()) else {
                fail(&context, format!("unexpected child output {line:?}"));
            };
            let (t, k): (u64, u64) = match (t.parse(), k.parse()) {
                (Ok(t), Ok(k)) => (t, k),
                _ => fail(&context, format!("unexpected child output {line:?}")),
            };
            let last = acked.entry((epoch, t)).or_insert(k);
            *last = (*last).max(k);
            seen += 1;
            if seen == kill_after && !killed {
                // `Child::kill` is SIGKILL on Unix. Acks already in the pipe are read below.
                child
                    .kill()
                    .unwrap_or_else(|e| fail(&context, format!("kill child: {e}")));
                killed = true;
            }
        }
        let status = child
            .wait()
            .unwrap_or_else(|e| fail(&context, format!("wait child: {e}")));
        if !killed {
            fail(
                &context,
                format!("child exited by itself ({status}) after {seen} acks"),
            );
        }
        total += seen;
        if let Err(msg) = verify(dir.path(), epoch, tasks, snapshots, &acked) {
            fail(
                &context,
                format!("after a kill at {kill_after} acks ({seen} read): {msg}"),
            );
        }
    }
    total
}

fn fail(context: &str, msg: String) -> ! {
    panic!("{context}: {msg}")
}

/// Reopen the directory and check the three properties of the module doc.
fn verify(
    dir: &Path,
    epoch: u64,
    tasks: u64,
    snapshots: bool,
    acked: &BTreeMap<(u64, u64), u64>,
) -> Result<(), String> {
    let state: DurableState<u64> = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(async {
            let store = RocksDbStorage::open(dir).map_err(|e| format!("reopen: {e}"))?;
            store.load().await.map_err(|e| format!("load: {e}"))
        })?;
    // Every present save is whole and decodes to a step of the script.
    let mut present: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
    let mut max_ballot = Ballot::ZERO;
    for (instance, got) in &state.accepted {
        let (e, t, k) = (
            instance.0 >> 40,
            (instance.0 >> 20) & 0xF_FFFF,
            instance.0 & 0xF_FFFF,
        );
        if e > epoch || t >= tasks {
            return Err(format!("unexpected instance {instance}"));
        }
        let writes = script(e, t, k);
        let (Write::Promise(ballot), Write::Decided { entry: decided, .. }) =
            (&writes[0], &writes[3])
        else {
            unreachable!("script shape");
        };
        if let Write::Accept { ballot, entry, .. } = &writes[1]
            && got != &(*ballot, entry.clone())
        {
            return Err(format!(
                "{instance}: accepted {got:?}, saved ({ballot}, {entry})"
            ));
        }
        if state.decided.get(instance) != Some(decided) {
            return Err(format!(
                "{instance}: accepted present but decided is {:?}: a save was split",
                state.decided.get(instance)
            ));
        }
        max_ballot = max_ballot.max(*ballot);
        present.entry((e, t)).or_default().push(k);
    }
    if state.decided.len() != state.accepted.len() {
        return Err(format!(
            "{} decided but {} accepted instances: a save was split",
            state.decided.len(),
            state.accepted.len()
        ));
    }
    // The last save may be covered by its own snapshot: then the promise is above what is present.
    let promise_ok = if snapshots {
        state.promised >= max_ballot
    } else {
        state.promised == max_ballot
    };
    if !promise_ok || state.proposer_round != state.promised.round {
        return Err(format!(
            "promise {} / round {} but the highest saved ballot present is {max_ballot}",
            state.promised, state.proposer_round
        ));
    }
    // What is covered by the snapshot kept is not in the log.
    let covered = |i: InstanceId| i < state.log_start;
    if snapshots {
        verify_snapshot(&state)?;
    }
    // Acknowledged saves are present or covered; each task's saves present are consecutive,
    // everything before them covered, and at most one past its ack.
    for e in 0..=epoch {
        for t in 0..tasks {
            let ks = present.get(&(e, t)).map_or(&[][..], Vec::as_slice);
            if ks.windows(2).any(|w| w[1] != w[0] + 1) {
                return Err(format!(
                    "epoch {e} task {t}: saves present out of order: {ks:?}"
                ));
            }
            if let Some(&first) = ks.first()
                && first > 0
                && !covered(instance_of(e, t, first - 1))
            {
                return Err(format!(
                    "epoch {e} task {t}: saves below step {first} are neither present nor covered \
                     by the snapshot (log starts at {})",
                    state.log_start
                ));
            }
            let acked_count = acked.get(&(e, t)).map_or(0, |&k| k + 1);
            let Some(&last) = ks.last() else {
                if acked_count > 0 && !covered(instance_of(e, t, acked_count - 1)) {
                    return Err(format!(
                        "epoch {e} task {t}: {acked_count} saves acknowledged, none present \
                         or covered"
                    ));
                }
                continue;
            };
            let count = last + 1;
            if count < acked_count {
                return Err(format!(
                    "epoch {e} task {t}: {acked_count} saves acknowledged, only {count} present"
                ));
            }
            if count > acked_count + 1 {
                return Err(format!(
                    "epoch {e} task {t}: {count} saves present, only {acked_count} acknowledged \
                     and one can be in flight"
                ));
            }
        }
    }
    Ok(())
}

/// The snapshot kept is whole, holds the bytes saved with it, and the log starts exactly at its
/// index: the snapshot and its truncation were one atomic step.
fn verify_snapshot(state: &DurableState<u64>) -> Result<(), String> {
    let Some(snapshot) = &state.snapshot else {
        return if state.log_start == InstanceId(0) {
            Ok(())
        } else {
            Err(format!(
                "the log starts at {} without a snapshot",
                state.log_start
            ))
        };
    };
    let index = snapshot.meta.index;
    if state.log_start != index {
        return Err(format!(
            "snapshot below {index} but the log starts at {}: split from its truncation",
            state.log_start
        ));
    }
    snapshot.verify().map_err(|e| e.to_string())?;
    if snapshot.data != payload(index) {
        return Err(format!(
            "the snapshot below {index} holds other bytes than saved"
        ));
    }
    Ok(())
}
