//! A Maelstrom-compatible test harness: runs Maelstrom node binaries under a simulated
//! network and faults, records the history, checks it and writes Jepsen-style results.

pub mod analysis;
pub mod checker;
pub mod cli;
pub mod console;
pub mod edn;
pub mod engine;
pub mod history;
pub mod net;
pub mod partition;
pub mod scenario;
pub mod schema;
pub mod services;
pub mod store;
pub mod topology;
pub mod workload;
