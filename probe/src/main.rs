//! The `packetless` binary: parse the command line, set up logging and the runtime,
//! run the command, map the result to an exit code (0 ok, 1 runtime failure, 2 usage
//! or environment problem the user must fix).

use std::process::ExitCode;

use clap::Parser;
use packetless::app;
use packetless::cli::{Cli, Command};
use packetless::config::{ConfigError, RunConfig, WatchConfig};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    app::limit_heap_arenas();
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.log_level) {
        eprintln!("error: --log-level {}: {e}", cli.log_level);
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Run(args) => match RunConfig::from_args(&args) {
            Ok(config) => runtime.block_on(app::run(config, shutdown_signal(), std::io::stdout())).map(drop),
            Err(e) => return usage_error(&e),
        },
        Command::Watch(args) => match WatchConfig::from_args(&args) {
            Ok(config) => runtime.block_on(app::watch(config, shutdown_signal(), std::io::stdout())).map(drop),
            Err(e) => return usage_error(&e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn usage_error(e: &ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn init_logging(level: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = EnvFilter::try_new(level)?;
    // Colours only on a terminal: journald, `docker logs` and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    Ok(())
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the default actions still end the process.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
