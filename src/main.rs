//! The `realtime-hub` binary. With no subcommand it serves: parses the command
//! line, loads and validates the configuration, and runs the hub until
//! SIGTERM/SIGINT (contract section 1). The subcommands (`status`, `rooms`,
//! `publish`, `healthcheck`) talk to a running hub instead; they live in
//! `realtime_hub::cli`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use realtime_hub::cli;
use realtime_hub::config::Config;
use realtime_hub::Prepared;

/// Exit code for a configuration that cannot be used (contract section 1).
const EXIT_BAD_CONFIG: u8 = 2;

/// A realtime WebSocket hub: rooms with ordered history, HTTP publish, recovery.
#[derive(Parser, Debug)]
#[command(
    name = "realtime-hub",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "With no command, serves (HUB_LOG_FORMAT=json for one JSON object per log \
                  line). The commands talk to a running hub over HTTP at --url \
                  (default http://127.0.0.1:8080, or HUB_URL); each has its own --help."
)]
struct Cli {
    /// Talk to a running hub instead of serving.
    #[command(subcommand)]
    command: Option<cli::Subcommand>,

    /// TOML configuration file (default: the embedded config/default.toml).
    /// Any key can be overridden with HUB_<SECTION>__<KEY>.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Validate the configuration and exit: 0 if valid, 2 with the reason if not.
    #[arg(long)]
    check_config: bool,
}

fn env_vars() -> Vec<(String, String)> {
    // vars_os, not vars: a non-UTF-8 variable elsewhere must not crash us.
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return cli::run(command);
    }
    cli::logging::init();
    let config = match Config::load(cli.config.as_deref(), env_vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("realtime-hub: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    // The same preparation serving does: a config that passes the check is
    // one the hub starts with (key and certificate files read and parsed).
    let prepared = match Prepared::new(config) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("realtime-hub: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if cli.check_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    match actix_rt::System::new().block_on(realtime_hub::server::run_until_signal(prepared)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("realtime-hub: {e}");
            // What the hub was configured with cannot be used (an unusable
            // store, a bad key file): the same code as an invalid config.
            match e.kind() {
                std::io::ErrorKind::InvalidInput => ExitCode::from(EXIT_BAD_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
