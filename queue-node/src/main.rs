//! `queue-node`: the elf workshop task queue as a Maelstrom node (stdin/stdout).

use clap::{Parser, ValueEnum};
use queue::node::{Flaw, Settings, SETTINGS};

/// Gift-production tasks in Raft-replicated partitions, delivered at least once under
/// leases, with retries, a dead-letter queue, priorities and dependencies.
#[derive(Debug, Parser)]
#[command(name = "queue-node", version)]
struct Cli {
    /// Partitions the tasks are spread over; the number of nodes by default.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    partitions: Option<u32>,

    /// Make the node wrong on purpose, to show that the harness catches it.
    #[arg(long, value_enum, hide = true)]
    broken: Option<Broken>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Broken {
    AckBeforeReplication,
    ForgetLeases,
    NackRefund,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let flaw = match cli.broken {
        None => Flaw::None,
        Some(Broken::AckBeforeReplication) => Flaw::AckBeforeReplication,
        Some(Broken::ForgetLeases) => Flaw::ForgetLeases,
        Some(Broken::NackRefund) => Flaw::NackRefund,
    };
    let _ = SETTINGS.set(Settings {
        partitions: cli.partitions,
        flaw,
    });
    maelstrom_core::run::<queue::node::QueueNode>()?;
    Ok(())
}
