//! `ssf bench`: end-to-end load through the client.

use std::process::ExitCode;

use clap::Args;

use crate::Failure;

/// Options of `ssf bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {}

/// Runs `ssf bench`.
pub(crate) async fn run(a: BenchArgs) -> Result<ExitCode, Failure> {
    Err(Failure::Runtime(format!("not yet: {a:?}")))
}
