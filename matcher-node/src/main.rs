//! `matcher-node`: Secret Santa across regions, committed all-or-nothing, as a Maelstrom
//! node (stdin/stdout).

use clap::{Parser, ValueEnum};
use matcher::node::{Flaw, MatcherNode, Settings, SETTINGS};
use rand::RngCore;

/// Participants register in regions (Raft groups); a Raft-elected coordinator draws a
/// valid Secret Santa assignment and commits it to every region by two-phase commit;
/// each participant reads only their own sealed box.
#[derive(Debug, Parser)]
#[command(name = "matcher-node", version)]
struct Cli {
    /// Regions participants live in; 3 by default (the node count, when fewer).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    regions: Option<u32>,

    /// Make the node wrong on purpose, to show that the harness catches it.
    #[arg(long, value_enum, hide = true)]
    broken: Option<Broken>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Broken {
    CommitBeforeLog,
    ReadAtPrepare,
    #[value(name = "no-2pc")]
    No2pc,
    EnqueueBeforeLog,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let flaw = match cli.broken {
        None => Flaw::None,
        Some(Broken::CommitBeforeLog) => Flaw::CommitBeforeLog,
        Some(Broken::ReadAtPrepare) => Flaw::ReadAtPrepare,
        Some(Broken::No2pc) => Flaw::No2pc,
        Some(Broken::EnqueueBeforeLog) => Flaw::EnqueueBeforeLog,
    };
    // Sealing draws ephemeral keys from this seed: from the operating system, so that
    // nobody can recompute them.
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let _ = SETTINGS.set(Settings {
        regions: cli.regions,
        flaw,
        seed: Some(seed),
    });
    maelstrom_core::run::<MatcherNode>()?;
    Ok(())
}
