//! `hub-bench`: load scenarios against realtime-hub, one JSON line per run.

mod cli;
mod plan;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let worker = matches!(args.command, cli::Command::ConnsWorker(_));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if worker { 1 } else { 2 })
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hub-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub-bench: {e:#}");
            ExitCode::from(1)
        }
    }
}
