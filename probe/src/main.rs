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
    let shutdown = shutdown_signal();
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
            Ok(config) => runtime.block_on(app::run(config, shutdown, std::io::stdout())).map(drop),
            Err(e) => return usage_error(&e),
        },
        Command::Watch(args) => match WatchConfig::from_args(&args) {
            Ok(config) => runtime.block_on(app::watch(config, shutdown, std::io::stdout())).map(drop),
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

/// Completes on the first SIGINT or SIGTERM; a second one ends the process at once.
///
/// The two signals are blocked in every thread (call this before the runtime starts
/// any) and taken by one thread with `sigwait`: a signal that arrives while the kernel
/// side is still loading stays pending and stops the probe as soon as it is up,
/// instead of depending on when an asynchronous handler was first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the calls only modify it and this thread's mask.
    let blocked = unsafe {
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        libc::sigaddset(&raw mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut())
    };
    if blocked != 0 {
        // The default actions still end the process.
        return signalled(rx);
    }
    let waiter = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut tx = Some(tx);
        loop {
            let mut signal = 0;
            // SAFETY: `set` is initialised and `signal` is a valid place for the number.
            if unsafe { libc::sigwait(&raw const set, &raw mut signal) } != 0 {
                continue;
            }
            let Some(tx) = tx.take() else {
                eprintln!("second signal ({signal}): exiting without flushing");
                std::process::exit(128 + signal);
            };
            // The receiver is gone only once the probe is stopping anyway.
            let _ = tx.send(());
        }
    });
    if waiter.is_err() {
        // Without the thread nobody takes the signals: let them act by default again.
        // SAFETY: as above, on this thread's mask only.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut()) };
    }
    signalled(rx)
}

/// Completes when the signal thread says so; never if it is gone without a word.
async fn signalled(rx: tokio::sync::oneshot::Receiver<()>) {
    if rx.await.is_err() {
        std::future::pending::<()>().await;
    }
}
