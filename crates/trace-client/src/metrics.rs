//! Reporting metrics without a trace.
//!
//! veneur extracts the samples of every span it receives, so metrics can travel on their
//! own in a *metrics-only* span: no trace or span IDs, no timestamps, no name and no
//! service, just the samples. veneur does not treat such a span as part of a trace.
//!
//! ```
//! use ssf_proto::sample;
//! use trace_client::{Client, metrics};
//!
//! let (client, mut spans) = Client::channel(8);
//! metrics::report(&client, [sample::count("jobs.done", 1.0), sample::gauge("queue", 3.0)])?;
//! metrics::report_one(&client, sample::count("jobs.failed", 1.0))?;
//! assert_eq!(spans.try_recv()?.metrics.len(), 2);
//! assert_eq!(spans.try_recv()?.metrics[0].name, "jobs.failed");
//!
//! assert!(matches!(
//!     metrics::report(&client, Vec::new()),
//!     Err(metrics::ReportError::NoMetrics)
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::error::Error;
use std::fmt;

use ssf_proto::{SsfSample, SsfSpan};

use crate::client::Client;
use crate::error::TryRecordError;
use crate::future::Receipt;

/// Why metrics could not be reported.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReportError {
    /// There were no samples to send; nothing was recorded.
    NoMetrics,
    /// The client refused the metrics-only span; the error hands it back.
    Record(TryRecordError),
}

impl ReportError {
    /// The refused metrics-only span, if the client refused one.
    pub fn into_span(self) -> Option<SsfSpan> {
        match self {
            ReportError::NoMetrics => None,
            ReportError::Record(e) => Some(e.into_span()),
        }
    }
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReportError::NoMetrics => "no metrics to send",
            ReportError::Record(_) => "could not record the metrics span",
        })
    }
}

impl Error for ReportError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ReportError::NoMetrics => None,
            ReportError::Record(e) => Some(e),
        }
    }
}

impl From<TryRecordError> for ReportError {
    fn from(e: TryRecordError) -> Self {
        ReportError::Record(e)
    }
}

/// The metrics-only span carrying `samples`, or `NoMetrics` if there are none.
fn metrics_span(samples: impl IntoIterator<Item = SsfSample>) -> Result<SsfSpan, ReportError> {
    let metrics: Vec<SsfSample> = samples.into_iter().collect();
    if metrics.is_empty() {
        return Err(ReportError::NoMetrics);
    }
    Ok(SsfSpan {
        metrics,
        ..Default::default()
    })
}

/// Records `samples` in one metrics-only span on `client`, without waiting.
///
/// `samples` is anything iterable: a `Vec`, an array, an [`ssf_proto::sample::Samples`]
/// batch.
///
/// # Errors
///
/// [`ReportError::NoMetrics`] when `samples` is empty; [`ReportError::Record`] when the
/// client refuses the span (queue full, client closed).
pub fn report(
    client: &Client,
    samples: impl IntoIterator<Item = SsfSample>,
) -> Result<(), ReportError> {
    Ok(client.try_record(metrics_span(samples)?)?)
}

/// Records one sample in a metrics-only span on `client`, without waiting.
///
/// # Errors
///
/// [`ReportError::Record`] when the client refuses the span.
pub fn report_one(client: &Client, sample: SsfSample) -> Result<(), ReportError> {
    report(client, [sample])
}

/// Records `samples` in one metrics-only span on `client` and returns a [`Receipt`] that
/// resolves once a backend has sent the span or given up on it.
///
/// # Errors
///
/// As [`report`]; on an error there is no receipt.
///
/// # Examples
///
/// ```
/// use ssf_proto::sample;
/// use trace_client::{Client, metrics};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (client, mut spans) = Client::channel(8);
/// let receipt = metrics::report_async(&client, [sample::count("hits", 1.0)])?;
/// assert_eq!(spans.recv().await.map(|s| s.metrics.len()), Some(1));
/// receipt.await?;
/// # Ok(())
/// # }
/// ```
pub fn report_async(
    client: &Client,
    samples: impl IntoIterator<Item = SsfSample>,
) -> Result<Receipt, ReportError> {
    Ok(client.record_with_receipt(metrics_span(samples)?)?)
}

#[cfg(test)]
mod tests {
    use ssf_proto::sample::{self, Samples};

    use super::*;

    #[test]
    fn empty_batches_are_refused_before_the_client() {
        let (client, mut rx) = Client::channel(4);
        for result in [
            report(&client, Vec::new()),
            report(&client, Samples::new()),
            report_async(&client, []).map(|_| ()),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, ReportError::NoMetrics));
            assert_eq!(err.to_string(), "no metrics to send");
            assert!(err.source().is_none());
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn metrics_only_span_has_nothing_else() {
        let (client, mut rx) = Client::channel(4);
        let mut batch = Samples::new();
        batch.add([sample::count("a", 1.0), sample::gauge("b", 2.0)]);
        batch.add([sample::histogram("c", 3.0)]);
        report(&client, batch).unwrap();
        let span = rx.try_recv().unwrap();
        assert_eq!(span.metrics.len(), 3);
        assert_eq!(
            span,
            SsfSpan {
                metrics: span.metrics.clone(),
                ..Default::default()
            }
        );
        report_one(&client, sample::count("one", 1.0)).unwrap();
        assert_eq!(rx.try_recv().unwrap().metrics[0].name, "one");
    }

    #[test]
    fn client_refusals_hand_the_span_back() {
        let (client, rx) = Client::channel(1);
        report_one(&client, sample::count("first", 1.0)).unwrap();
        let err = report_one(&client, sample::count("second", 1.0)).unwrap_err();
        assert!(matches!(&err, ReportError::Record(e) if e.is_full()));
        assert!(err.source().is_some());
        let span = err.into_span().unwrap();
        assert_eq!(span.metrics[0].name, "second");

        drop(rx);
        let err = report_one(&client, sample::count("third", 1.0)).unwrap_err();
        assert!(matches!(&err, ReportError::Record(e) if e.is_closed()));
    }
}
