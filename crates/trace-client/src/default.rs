//! The process-wide default client.
//!
//! Code that records "somewhere" without carrying a [`Client`] uses this slot. It starts
//! empty (veneur builds a UDP client to `127.0.0.1:8128` at start-up; a tokio client needs
//! a runtime, so here the application sets one): recording then fails with
//! [`TryRecordError::NoClient`], which callers may ignore.
//!
//! ```
//! use ssf_proto::SsfSpan;
//! use trace_client::{Client, default};
//!
//! assert!(default::try_record(SsfSpan::default()).unwrap_err().is_no_client());
//! let (client, mut rx) = Client::channel(4);
//! default::set(Some(client));
//! default::try_record(SsfSpan { id: 9, ..Default::default() })?;
//! assert_eq!(rx.try_recv().unwrap().id, 9);
//! let old = default::set(None).unwrap();
//! assert!(old.is_closed());
//! # Ok::<(), trace_client::TryRecordError>(())
//! ```

use std::sync::{PoisonError, RwLock};

use ssf_proto::SsfSpan;

use crate::client::Client;
use crate::error::TryRecordError;

static DEFAULT: RwLock<Option<Client>> = RwLock::new(None);

/// Replaces the default client (`None` unsets it) and returns the previous one.
///
/// The previous client is [closed](Client::close) unless it is the same client as the new
/// one: it refuses new spans and, in the background, sends what it had queued, writes out
/// its buffers and closes its connections. Await
/// [`shutdown`](Client::shutdown) on the returned handle to wait for that and get a
/// report, or drop it.
pub fn set(client: Option<Client>) -> Option<Client> {
    let old = {
        let mut slot = DEFAULT.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, client.clone())
    };
    if let Some(old) = &old {
        let same = client.as_ref().is_some_and(|new| new.same_client(old));
        if !same {
            old.close();
        }
    }
    old
}

/// A handle to the default client, if one is set.
pub fn get() -> Option<Client> {
    DEFAULT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Records with the default client; see [`Client::try_record`].
///
/// # Errors
///
/// [`TryRecordError::NoClient`] when no default client is set, otherwise as
/// [`Client::try_record`].
pub fn try_record(span: SsfSpan) -> Result<(), TryRecordError> {
    match &*DEFAULT.read().unwrap_or_else(PoisonError::into_inner) {
        Some(client) => client.try_record(span),
        None => Err(TryRecordError::NoClient(span)),
    }
}
