//! The layer's own counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of an [`SsfLayer`](crate::SsfLayer): how many closed spans it handed to the
/// client, how many the client refused, and how many samples it dropped because their span
/// already held [`max_samples`](crate::SsfLayer::max_samples).
///
/// A cheap handle: clones share the same counters, which keep counting after the layer has
/// been installed. What happens to a span after the client accepted it is counted by the
/// client's own statistics.
///
/// # Examples
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (client, mut rx) = trace_client::Client::channel(16);
/// let layer = tracing_ssf::SsfLayer::new(client);
/// let stats = layer.stats();
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info_span!("work").in_scope(|| {});
/// });
/// assert_eq!(stats.exported(), 1);
/// assert_eq!(stats.refused(), 0);
/// assert_eq!(rx.recv().await.map(|s| s.name), Some("work".to_owned()));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct LayerStats {
    inner: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    refused_full: AtomicU64,
    refused_closed: AtomicU64,
    samples_dropped: AtomicU64,
}

impl LayerStats {
    /// Spans the client accepted.
    pub fn exported(&self) -> u64 {
        self.inner.exported.load(Ordering::Relaxed)
    }

    /// Spans the client refused, for any reason: the sum of [`refused_full`] and
    /// [`refused_closed`].
    ///
    /// [`refused_full`]: LayerStats::refused_full
    /// [`refused_closed`]: LayerStats::refused_closed
    pub fn refused(&self) -> u64 {
        self.refused_full() + self.refused_closed()
    }

    /// Spans refused because the client's queue was full.
    pub fn refused_full(&self) -> u64 {
        self.inner.refused_full.load(Ordering::Relaxed)
    }

    /// Spans refused because the client was shut down (or had no receiver any more).
    pub fn refused_closed(&self) -> u64 {
        self.inner.refused_closed.load(Ordering::Relaxed)
    }

    /// Samples dropped because their span already held
    /// [`max_samples`](crate::SsfLayer::max_samples): from metric events and from
    /// [`SsfSpanExt::add_ssf_sample`](crate::SsfSpanExt::add_ssf_sample).
    pub fn samples_dropped(&self) -> u64 {
        self.inner.samples_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn add_samples_dropped(&self, n: u64) {
        self.inner.samples_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_exported(&self) {
        self.inner.exported.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal; returns the number of refusals so far, this one included.
    pub(crate) fn add_refused(&self, full: bool) -> u64 {
        let counter = if full {
            &self.inner.refused_full
        } else {
            &self.inner.refused_closed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.refused()
    }
}

impl fmt::Debug for LayerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerStats")
            .field("exported", &self.exported())
            .field("refused_full", &self.refused_full())
            .field("refused_closed", &self.refused_closed())
            .field("samples_dropped", &self.samples_dropped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counters() {
        let stats = LayerStats::default();
        let other = stats.clone();
        other.add_exported();
        other.add_samples_dropped(3);
        assert_eq!(stats.add_refused(true), 1);
        assert_eq!(stats.add_refused(false), 2);
        assert_eq!(
            (
                stats.exported(),
                stats.refused_full(),
                stats.refused_closed()
            ),
            (1, 1, 1)
        );
        assert_eq!(other.refused(), 2);
        assert_eq!(stats.samples_dropped(), 3);
        assert_eq!(
            format!("{other:?}"),
            "LayerStats { exported: 1, refused_full: 1, refused_closed: 1, samples_dropped: 3 }"
        );
    }
}
