//! What every example shares: where spans go (`SSF_ADDR`, or a receiver in this
//! process), a client for it, and turning the example's result into an exit code.
#![allow(dead_code)] // each example uses only part of it

use std::error::Error;
use std::process::ExitCode;

use ssf_receiver::Receiver;
use trace_client::Client;

/// The example's result as an exit code, printing the error if there is one.
pub(crate) fn exit_code(result: Result<(), Box<dyn Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The address in `SSF_ADDR` when it is set, else a receiver bound to `local` in this
/// process (whose address is returned with it).
pub(crate) async fn destination(local: &str) -> Result<(String, Option<Receiver>), Box<dyn Error>> {
    match std::env::var("SSF_ADDR")
        .ok()
        .filter(|a| !a.trim().is_empty())
    {
        Some(addr) => {
            println!("sending to {addr} (from SSF_ADDR); no receiver in this process");
            Ok((addr, None))
        }
        None => {
            let receiver = Receiver::bind(local).await?;
            println!("receiver listening on {}", receiver.local_addr());
            Ok((receiver.local_addr().to_string(), Some(receiver)))
        }
    }
}

/// A client for `addr` with a short connect timeout, so that an address nobody listens
/// on fails fast.
pub(crate) fn client(addr: &str) -> Result<Client, Box<dyn Error>> {
    // The library's connect timeout (10 s): a loaded machine or a slow receiver may
    // take longer than a second to accept.
    Ok(Client::builder(addr).build()?)
}
