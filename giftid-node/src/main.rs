//! `giftid-node`: a Maelstrom node (the default), or with `serve` the same generator as an
//! HTTP service.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use giftid::generator::Flaw;
use giftid::http::{self, Service};
use giftid::node::{GiftIds, FLAW};

/// Snowflake-style gift IDs: 41-bit milliseconds, 10-bit workshop, 12-bit sequence, 1-bit
/// gift type. Without a subcommand, speaks Maelstrom's protocol on stdin/stdout.
#[derive(Debug, Parser)]
#[command(name = "giftid-node", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Make the node wrong on purpose, to show that the harness catches it.
    #[arg(long, value_enum, hide = true)]
    broken: Option<Broken>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the generator over HTTP.
    Serve {
        /// This generator's workshop, 0 to 1023; no two running generators may share one.
        #[arg(long, value_parser = clap::value_parser!(u16).range(0..1024))]
        workshop: u16,
        #[arg(long, default_value_t = 8081)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        bind: IpAddr,
        /// Where the high-water mark is kept across restarts.
        #[arg(long, value_name = "DIR", default_value = "giftid-state")]
        state_dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Broken {
    IgnoreClockRegressions,
    ForgetHighWaterMark,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            let flaw = match cli.broken {
                None => Flaw::None,
                Some(Broken::IgnoreClockRegressions) => Flaw::IgnoreClockRegressions,
                Some(Broken::ForgetHighWaterMark) => Flaw::ForgetHighWaterMark,
            };
            let _ = FLAW.set(flaw);
            maelstrom_core::run::<GiftIds>().context("the Maelstrom driver failed")
        }
        Some(Command::Serve {
            workshop,
            port,
            bind,
            state_dir,
        }) => {
            let service = Service::open(workshop, state_dir)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(http::serve(SocketAddr::new(bind, port), Arc::new(service)))
                .context("the HTTP service stopped")
        }
    }
}
