//! A Jepsen-style test of real node processes: clients record a history of key-value
//! operations while a nemesis kills, pauses and partitions the nodes; the history is then
//! checked for linearizability, key by key.
//!
//! - [`history`]: the operations (invoke / ok / fail / info), recorded and written as JSON lines;
//! - [`checker`]: the per-key linearizability check (Wing & Gong / Lowe's WGL search);
//! - [`proxy`]: the link proxy between every pair of nodes, which cuts and heals links;
//! - [`procs`]: node processes started, killed (SIGKILL), paused (SIGSTOP) and resumed;
//! - [`nemesis`]: the seeded fault schedule.

pub mod checker;
pub mod history;
pub mod nemesis;
pub mod procs;
pub mod proxy;
