//! `ssf`: a command-line tool for SSF (veneur's Sensor Sensibility Format).
//!
//! * `ssf tail` listens like veneur's SSF ingest and prints every span it receives, as JSON
//!   lines or as trace trees;
//! * `ssf emit` sends one span and its metrics, or times a command, the way `veneur-emit
//!   -ssf` does;
//! * `ssf bench` is an end-to-end load generator for the client and a receiver.
//!
//! `ssf emit` differs from `veneur-emit -ssf` where noted here:
//!
//! * the default service name is `ssf-emit`;
//! * a `VENEUR_EMIT_TRACE_ID` or `VENEUR_EMIT_PARENT_SPAN_ID` that is not a decimal ID is
//!   an error (exit code 2) rather than a warning, so a broken trace does not go unnoticed;
//! * a span with a trace ID needs a name (with `--command`, the command's file name);
//! * the command's timing keeps fractions of a millisecond;
//! * `tcp://` and `grpc://` addresses are accepted (gRPC is veneur's `ssf.SSFGRPC`
//!   service, for a veneur on another host; feature `grpc`, on by default); there is no
//!   statsd or explicit start/end time mode.
//!
//! Run `ssf <command> --help` for the options. Bad arguments print one line on standard
//! error and exit with code 2; failures at run time (an address that cannot be bound, a
//! span that could not be delivered) exit with code 1.

mod args;
mod bench;
mod emit;
mod ids;
mod tags;
mod tail;
mod tree;
mod usage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The `ssf` command line.
#[derive(Debug, Parser)]
#[command(
    name = "ssf",
    version,
    about = "Tail, emit and load-test SSF spans (veneur's Sensor Sensibility Format)",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Listen for SSF spans and print each one received.
    Tail(tail::TailArgs),
    /// Send one span (or metrics), optionally timing a command, like veneur-emit -ssf.
    Emit(emit::EmitArgs),
    /// Generate load through the client and report throughput, drops and resource use.
    Bench(bench::BenchArgs),
}

/// Why a command did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The arguments (or the environment they name) make no sense: exit code 2.
    Usage(String),
    /// Something failed while running: exit code 1.
    Runtime(String),
}

/// The exit code for bad arguments, as clap uses it.
const USAGE_EXIT: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return clap_error(&err),
    };
    let runtime = match &cli.command {
        Command::Bench(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Tail(a) => tail::run(a).await,
            Command::Emit(a) => emit::run(a).await,
            Command::Bench(a) => bench::run(a).await,
        }
    });
    // Do not wait for blocking stdin/stdout reads that may never end.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(USAGE_EXIT)
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Prints help and version as clap renders them, and any other error as one line.
fn clap_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = u8::try_from(err.exit_code()).unwrap_or(USAGE_EXIT);
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("error: a command is needed: tail, emit or bench (see --help)");
        }
        _ => {
            let text = err.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: invalid arguments");
            eprintln!("{} (see --help)", first.trim_end());
        }
    }
    ExitCode::from(code)
}
