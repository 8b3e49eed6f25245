//! Node processes: [`NodeProcess`] is one child process, started from a program and its
//! arguments, killed with SIGKILL, started again with the same arguments, paused with SIGSTOP
//! and resumed with SIGCONT; [`Procs`] is the run's nodes by id.
//!
//! Each process's stdout and stderr are appended to its own log file, with one marker line
//! per start and kill, so one file tells a node's whole story across its incarnations.
//!
//! No process outlives the harness: dropping a [`NodeProcess`] kills its child (also while a
//! test unwinds from a panic), and on Linux every child also asks the kernel for SIGKILL if
//! the harness itself dies without running its destructors (SIGKILL, abort).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use paxos_core::NodeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use tokio::process::{Child, Command};

/// What a [`NodeProcess`] or [`Procs`] could not do.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The log file could not be opened or written.
    #[error("{name}: log file {}: {source}", .path.display())]
    Log {
        /// The process.
        name: String,
        /// The log file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The program could not be started.
    #[error("{name}: cannot start {}: {source}", .program.display())]
    Spawn {
        /// The process.
        name: String,
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for the killed process failed.
    #[error("{name}: cannot reap the killed process: {source}")]
    Reap {
        /// The process.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A signal could not be sent.
    #[error("{name}: cannot send {signal} to pid {pid}: {source}")]
    Signal {
        /// The process.
        name: String,
        /// Its pid.
        pid: u32,
        /// The signal.
        signal: Signal,
        /// Why.
        source: nix::Error,
    },
    /// The process is not running (never restarted after a kill, or it exited by itself).
    #[error("{name} is not running{}", .exited.map(|s| format!(" (it exited: {s})")).unwrap_or_default())]
    NotRunning {
        /// The process.
        name: String,
        /// How it ended, if it ended by itself.
        exited: Option<ExitStatus>,
    },
    /// Asked to start a process that is still running.
    #[error("{name} is already running (pid {pid})")]
    AlreadyRunning {
        /// The process.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// [`Procs`] has no process of this node.
    #[error("no process for {0}")]
    UnknownNode(NodeId),
}

/// How to start one process, every time: the same program, arguments and log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcSpec {
    /// For logs and errors (e.g. `n3`).
    pub name: String,
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Environment variables set on top of the harness's own (e.g. `RUST_LOG`).
    pub env: Vec<(OsString, OsString)>,
    /// stdout and stderr are appended here (created if missing).
    pub log: PathBuf,
}

impl ProcSpec {
    /// Run `program` with `args`, logging to `log`, with the harness's environment.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        log: impl Into<PathBuf>,
    ) -> ProcSpec {
        ProcSpec {
            name: name.into(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            log: log.into(),
        }
    }

    /// Also set `key=value` in the process's environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> ProcSpec {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// One child process, started again after every kill with the same [`ProcSpec`].
#[derive(Debug)]
pub struct NodeProcess {
    spec: ProcSpec,
    /// `None` once killed (and reaped) or found exited.
    child: Option<Child>,
    /// Stopped with SIGSTOP and not yet continued.
    paused: bool,
    /// How the last incarnation ended by itself (not by [`NodeProcess::kill`]).
    exited: Option<ExitStatus>,
    /// Incarnations started so far.
    starts: u32,
}

impl NodeProcess {
    /// Start the process.
    ///
    /// # Errors
    /// The log file cannot be opened or the program cannot be started.
    pub fn start(spec: ProcSpec) -> Result<NodeProcess, ProcError> {
        let mut process = NodeProcess {
            spec,
            child: None,
            paused: false,
            exited: None,
            starts: 0,
        };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> Result<(), ProcError> {
        let spec = &self.spec;
        let mut log = open_log(spec)?;
        let incarnation = self.starts + 1;
        self.mark(
            &mut log,
            &format!("start #{incarnation}: {}", command_line(spec)),
        )?;
        let log_err = |source| ProcError::Log {
            name: spec.name.clone(),
            path: spec.log.clone(),
            source,
        };
        let stdout = log.try_clone().map_err(log_err)?;
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            // Dropping the `Child` (e.g. while a panicking test unwinds) sends SIGKILL.
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| ProcError::Spawn {
            name: spec.name.clone(),
            program: spec.program.clone(),
            source,
        })?;
        self.starts = incarnation;
        self.paused = false;
        self.exited = None;
        tracing::debug!(name = %spec.name, pid = child.id(), incarnation, "process started");
        self.child = Some(child);
        Ok(())
    }

    /// Append one marker line to the log, between the process's own lines.
    fn mark(&self, log: &mut File, what: &str) -> Result<(), ProcError> {
        writeln!(
            log,
            "=== paxos-harness jepsen: {} {what} ===",
            self.spec.name
        )
        .map_err(|source| ProcError::Log {
            name: self.spec.name.clone(),
            path: self.spec.log.clone(),
            source,
        })
    }

    /// What it runs, and where it logs.
    pub fn spec(&self) -> &ProcSpec {
        &self.spec
    }

    /// The running incarnation's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Incarnations started so far (1 after [`NodeProcess::start`], +1 per restart).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the process is alive (paused counts as alive). Reaps it if it has exited by
    /// itself; then [`NodeProcess::exit_status`] says how.
    pub fn is_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                tracing::warn!(name = %self.spec.name, %status, "process exited by itself");
                self.exited = Some(status);
                self.child = None;
                self.paused = false;
                false
            }
            // Cannot tell: it has not been reaped, so it still holds its pid; call it alive.
            Err(_) => true,
        }
    }

    /// Whether it is stopped by [`NodeProcess::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// How the last incarnation ended by itself, if it did (a kill does not count).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exited
    }

    /// The running child's pid, or why there is none.
    fn running_pid(&mut self) -> Result<u32, ProcError> {
        if !self.is_running() {
            return Err(self.not_running());
        }
        self.pid().ok_or_else(|| self.not_running())
    }

    fn not_running(&self) -> ProcError {
        ProcError::NotRunning {
            name: self.spec.name.clone(),
            exited: self.exited,
        }
    }

    /// SIGKILL the process (paused or not) and wait until it is reaped.
    ///
    /// # Errors
    /// It is not running, or waiting for it failed.
    pub async fn kill(&mut self) -> Result<(), ProcError> {
        let pid = self.running_pid()?;
        let Some(mut child) = self.child.take() else {
            return Err(self.not_running());
        };
        self.paused = false;
        // `Child::kill` sends SIGKILL, which also ends a stopped process, then waits for it.
        child.kill().await.map_err(|source| ProcError::Reap {
            name: self.spec.name.clone(),
            source,
        })?;
        tracing::debug!(name = %self.spec.name, pid, "process killed");
        let mut log = open_log(&self.spec)?;
        self.mark(&mut log, &format!("killed pid {pid} (SIGKILL)"))
    }

    /// Start the process again with the same program, arguments and log file.
    ///
    /// # Errors
    /// It is still running (kill it first), or it cannot be started.
    pub fn restart(&mut self) -> Result<(), ProcError> {
        if self.is_running()
            && let Some(pid) = self.pid()
        {
            return Err(ProcError::AlreadyRunning {
                name: self.spec.name.clone(),
                pid,
            });
        }
        self.spawn()
    }

    /// Stop the process with SIGSTOP (it keeps its sockets; peers see silence).
    ///
    /// # Errors
    /// It is not running, or the signal could not be sent.
    pub fn pause(&mut self) -> Result<(), ProcError> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// Continue a paused process with SIGCONT (harmless if it is not paused).
    ///
    /// # Errors
    /// It is not running, or the signal could not be sent.
    pub fn resume(&mut self) -> Result<(), ProcError> {
        self.signal(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    fn signal(&mut self, signal: Signal) -> Result<(), ProcError> {
        // The child is not reaped before `running_pid` says so, so the pid is still ours.
        let pid = self.running_pid()?;
        let target = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        kill(target, signal).map_err(|source| ProcError::Signal {
            name: self.spec.name.clone(),
            pid,
            signal,
            source,
        })
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // `kill_on_drop` sends SIGKILL (which ends a stopped process too) and tokio reaps the
        // child in the background; say so, since a node dying here is worth a line.
        if let Some(pid) = self.pid() {
            tracing::debug!(name = %self.spec.name, pid, "process dropped: SIGKILL");
        }
    }
}

fn open_log(spec: &ProcSpec) -> Result<File, ProcError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|source| ProcError::Log {
            name: spec.name.clone(),
            path: spec.log.clone(),
            source,
        })
}

fn command_line(spec: &ProcSpec) -> String {
    let mut line = spec.program.display().to_string();
    for arg in &spec.args {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Ask the kernel to SIGKILL the child when the harness dies, even by SIGKILL (when no
/// destructor runs). Linux only; elsewhere `kill_on_drop` is the only guard.
///
/// Linux sends the signal when the *thread* that forked the child exits, not the process:
/// start processes from the runtime's tasks (whose worker threads live as long as the
/// runtime), never from a `spawn_blocking` thread, which exits when idle.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes one prctl system call and allocates
    // nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// The run's node processes, by id.
#[derive(Debug, Default)]
pub struct Procs {
    nodes: BTreeMap<NodeId, NodeProcess>,
}

impl Procs {
    /// No processes yet.
    pub fn new() -> Procs {
        Procs::default()
    }

    /// Start `node`'s process.
    ///
    /// # Errors
    /// `node` already has a running process, or it cannot be started.
    pub fn start(&mut self, node: NodeId, spec: ProcSpec) -> Result<(), ProcError> {
        if let Some(p) = self.nodes.get_mut(&node)
            && p.is_running()
            && let Some(pid) = p.pid()
        {
            return Err(ProcError::AlreadyRunning {
                name: p.spec.name.clone(),
                pid,
            });
        }
        self.nodes.insert(node, NodeProcess::start(spec)?);
        Ok(())
    }

    /// The nodes with a process (running or not).
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.keys().copied()
    }

    /// `node`'s process.
    pub fn get(&self, node: NodeId) -> Option<&NodeProcess> {
        self.nodes.get(&node)
    }

    /// `node`'s process, to act on it.
    ///
    /// # Errors
    /// No such node.
    pub fn get_mut(&mut self, node: NodeId) -> Result<&mut NodeProcess, ProcError> {
        self.nodes
            .get_mut(&node)
            .ok_or(ProcError::UnknownNode(node))
    }

    /// SIGKILL `node` and reap it.
    ///
    /// # Errors
    /// See [`NodeProcess::kill`].
    pub async fn kill(&mut self, node: NodeId) -> Result<(), ProcError> {
        self.get_mut(node)?.kill().await
    }

    /// Start `node` again with its arguments.
    ///
    /// # Errors
    /// See [`NodeProcess::restart`].
    pub fn restart(&mut self, node: NodeId) -> Result<(), ProcError> {
        self.get_mut(node)?.restart()
    }

    /// SIGSTOP `node`.
    ///
    /// # Errors
    /// See [`NodeProcess::pause`].
    pub fn pause(&mut self, node: NodeId) -> Result<(), ProcError> {
        self.get_mut(node)?.pause()
    }

    /// SIGCONT `node`.
    ///
    /// # Errors
    /// See [`NodeProcess::resume`].
    pub fn resume(&mut self, node: NodeId) -> Result<(), ProcError> {
        self.get_mut(node)?.resume()
    }

    /// Resume every paused node and restart every node that is not running, so the cluster is
    /// whole again (e.g. after a nemesis run that was stopped halfway). Returns what failed.
    pub fn recover_all(&mut self) -> Vec<ProcError> {
        let mut failed = Vec::new();
        for p in self.nodes.values_mut() {
            let recovered = if !p.is_running() {
                p.restart()
            } else if p.is_paused() {
                p.resume()
            } else {
                Ok(())
            };
            failed.extend(recovered.err());
        }
        failed
    }

    /// SIGKILL every running node and reap it (the end of a run).
    pub async fn kill_all(&mut self) {
        for p in self.nodes.values_mut() {
            if p.is_running()
                && let Err(e) = p.kill().await
            {
                tracing::warn!(error = %e, "cannot kill a node process");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Failure;
    use crate::wait::{Look, eventually};
    use std::path::Path;
    use std::time::Duration;

    const WITHIN: Duration = Duration::from_secs(5);
    const EVERY: Duration = Duration::from_millis(10);

    /// The state letter of `/proc/<pid>/stat` (`S` sleeping, `T` stopped, `Z` zombie...);
    /// `None` once the pid is gone.
    fn proc_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) S ...`: the command may hold spaces and parentheses; the state follows
        // the last `)`.
        let after = stat.rsplit_once(')')?.1;
        after.trim_start().chars().next()
    }

    /// Wait until `pid`'s state is `want` (`None`: the pid is gone).
    async fn state_becomes(pid: u32, want: Option<char>) -> Result<(), Failure> {
        eventually(WITHIN, EVERY, || async move {
            Ok(match proc_state(pid) {
                s if s == want => Look::Done(()),
                s => Look::Wait(format!("pid {pid} is {s:?}, not {want:?}")),
            })
        })
        .await
    }

    fn sleeper(dir: &Path, name: &str) -> ProcSpec {
        ProcSpec::new(name, "sleep", ["30"], dir.join(format!("{name}.log")))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pause_stops_and_resume_continues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = NodeProcess::start(sleeper(dir.path(), "n1")).expect("start");
        let pid = p.pid().expect("pid");
        assert!(p.is_running());
        p.pause().expect("pause");
        assert!(p.is_paused());
        assert!(p.is_running(), "a paused process is alive");
        state_becomes(pid, Some('T')).await.expect("stopped");
        p.resume().expect("resume");
        assert!(!p.is_paused());
        state_becomes(pid, Some('S')).await.expect("sleeping again");
    }

    /// Kill reaps the process (paused or not: SIGKILL ends a stopped process); restart runs
    /// the same program again under a new pid; the log file tells both incarnations.
    #[tokio::test(flavor = "current_thread")]
    async fn kill_reaps_and_restart_starts_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = NodeProcess::start(sleeper(dir.path(), "n2")).expect("start");
        let first = p.pid().expect("pid");
        p.pause().expect("pause");
        p.kill().await.expect("kill");
        assert!(!p.is_running());
        assert!(!p.is_paused());
        assert_eq!(p.pid(), None);
        assert_eq!(p.exit_status(), None, "a kill is not an exit of its own");
        // Reaped, not a zombie: the pid is gone.
        assert_eq!(proc_state(first), None);
        assert!(matches!(p.kill().await, Err(ProcError::NotRunning { .. })));
        assert!(matches!(p.pause(), Err(ProcError::NotRunning { .. })));

        p.restart().expect("restart");
        assert!(p.is_running());
        assert_eq!(p.starts(), 2);
        let second = p.pid().expect("pid");
        assert_ne!(first, second);
        assert!(matches!(p.restart(), Err(ProcError::AlreadyRunning { .. })));

        let log = std::fs::read_to_string(&p.spec().log).expect("log");
        assert!(log.contains("n2 start #1: sleep 30"), "{log}");
        assert!(log.contains(&format!("killed pid {first}")), "{log}");
        assert!(log.contains("n2 start #2: sleep 30"), "{log}");
    }

    /// stdout and stderr both land in the log, appended across incarnations.
    #[tokio::test(flavor = "current_thread")]
    async fn output_is_appended_to_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = ProcSpec::new(
            "n3",
            "sh",
            ["-c", "echo out $GREETING; echo err >&2"],
            dir.path().join("n3.log"),
        )
        .env("GREETING", "hello");
        let mut p = NodeProcess::start(spec).expect("start");
        eventually(WITHIN, EVERY, || {
            let running = p.is_running();
            async move {
                Ok(match running {
                    false => Look::Done(()),
                    true => Look::Wait("sh still running".into()),
                })
            }
        })
        .await
        .expect("sh exits");
        assert!(p.exit_status().is_some_and(|s| s.success()));
        assert!(matches!(
            p.resume(),
            Err(ProcError::NotRunning {
                exited: Some(_),
                ..
            })
        ));
        p.restart().expect("restart");
        eventually(WITHIN, EVERY, || {
            let running = p.is_running();
            async move {
                Ok(match running {
                    false => Look::Done(()),
                    true => Look::Wait("sh still running".into()),
                })
            }
        })
        .await
        .expect("sh exits again");
        let log = std::fs::read_to_string(dir.path().join("n3.log")).expect("log");
        let lines = |want: &str| log.lines().filter(|l| *l == want).count();
        assert_eq!(lines("out hello"), 2, "{log}");
        assert_eq!(lines("err"), 2, "{log}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = ProcSpec::new(
            "n4",
            "/nonexistent/paxos-node",
            Vec::<String>::new(),
            dir.path().join("n4.log"),
        );
        assert!(matches!(
            NodeProcess::start(spec),
            Err(ProcError::Spawn { .. })
        ));
        let spec = ProcSpec::new(
            "n4",
            "sleep",
            ["1"],
            dir.path().join("no-such-dir").join("n4.log"),
        );
        assert!(matches!(
            NodeProcess::start(spec),
            Err(ProcError::Log { .. })
        ));
    }

    /// Dropping the processes kills them (paused ones too): no orphans.
    #[tokio::test(flavor = "current_thread")]
    async fn dropping_procs_kills_every_child() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut procs = Procs::new();
        for i in 1..=3 {
            procs
                .start(NodeId(i), sleeper(dir.path(), &format!("n{i}")))
                .expect("start");
        }
        assert!(matches!(
            procs.start(NodeId(1), sleeper(dir.path(), "n1")),
            Err(ProcError::AlreadyRunning { .. })
        ));
        procs.pause(NodeId(2)).expect("pause");
        assert!(matches!(
            procs.pause(NodeId(9)),
            Err(ProcError::UnknownNode(_))
        ));
        let pids: Vec<u32> = procs
            .nodes()
            .filter_map(|n| procs.get(n).and_then(NodeProcess::pid))
            .collect();
        assert_eq!(pids.len(), 3);
        drop(procs);
        for pid in pids {
            // Gone, or at worst a zombie waiting for tokio's background reaper.
            eventually(WITHIN, EVERY, || async move {
                Ok(match proc_state(pid) {
                    None | Some('Z') => Look::Done(()),
                    s => Look::Wait(format!("pid {pid} still {s:?}")),
                })
            })
            .await
            .expect("killed on drop");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn recover_all_makes_the_cluster_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut procs = Procs::new();
        for i in 1..=3 {
            procs
                .start(NodeId(i), sleeper(dir.path(), &format!("n{i}")))
                .expect("start");
        }
        procs.kill(NodeId(1)).await.expect("kill");
        procs.pause(NodeId(2)).expect("pause");
        assert!(procs.recover_all().is_empty());
        for n in [1, 2, 3] {
            let p = procs.get_mut(NodeId(n)).expect("node");
            assert!(p.is_running() && !p.is_paused(), "n{n}");
        }
        assert_eq!(procs.get(NodeId(1)).map(NodeProcess::starts), Some(2));
        procs.kill_all().await;
        for n in [1, 2, 3] {
            assert!(!procs.get_mut(NodeId(n)).expect("node").is_running());
        }
    }
}
