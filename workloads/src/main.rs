//! `workloads`: the command-line entry point. Parses the options (any refusal leaves with
//! Maelstrom's bad-arguments status, 254), runs the subcommand on one tokio runtime, and
//! exits with the run's status: 0 valid, 1 invalid, 2 unknown or crashed.

use clap::Parser;
use workloads::analysis::{EXIT_BAD_ARGS, EXIT_UNKNOWN};
use workloads::cli::{Cli, Command};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let status = if e.use_stderr() { EXIT_BAD_ARGS } else { 0 };
            let _ = e.print();
            std::process::exit(status);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("workloads: cannot start the runtime: {e}");
            std::process::exit(EXIT_UNKNOWN);
        }
    };
    let status = runtime.block_on(async move {
        match cli.command {
            Command::Test(args) => workloads::engine::run_test(args.into()).await,
            Command::Analyze(args) => workloads::analysis::analyze(
                &args.test,
                args.workload.as_deref(),
                args.availability,
            ),
            Command::Scenarios(args) => workloads::scenario::print(args.listing()),
            Command::Serve(args) => match workloads::serve::serve(&args).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("workloads serve: {e:#}");
                    EXIT_UNKNOWN
                }
            },
        }
    });
    // Node tasks may still hold pipes; they are not worth waiting for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(status);
}
