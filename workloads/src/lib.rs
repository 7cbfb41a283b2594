//! A Maelstrom-compatible test harness: runs Maelstrom node binaries under a simulated
//! network and faults, records the history, checks it and writes Jepsen-style results.

pub mod analysis;
pub mod checker;
pub mod cli;
pub mod console;
pub mod edn;
pub mod engine;
pub mod facts;
pub mod history;
pub mod journal;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod scenario;
pub mod schema;
pub mod serve;
pub mod services;
pub mod store;
pub mod topology;
pub mod workload;
