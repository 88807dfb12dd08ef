//! The [`SsfLayer`].

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use ssf_proto::time::now_nanos;
use trace_client::Client;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::INTERNAL_TARGET;
use crate::data::{EventVisitor, FieldVisitor, SpanData, metric_field};
use crate::ext::WithContext;
use crate::stats::LayerStats;

/// The default for [`SsfLayer::max_value_len`]: 4 KiB.
pub const DEFAULT_MAX_VALUE_LEN: usize = 4096;

/// The default for [`SsfLayer::max_samples`]: 1024 samples per span.
pub const DEFAULT_MAX_SAMPLES: usize = 1024;

/// A [`Layer`] that turns every closed `tracing` span into an SSF span and hands it to a
/// [`trace_client::Client`].
///
/// See the [crate documentation](crate) for how spans, fields and events map to SSF.
///
/// # Defaults
///
/// | setting | default |
/// |---|---|
/// | [`service`](SsfLayer::service) | the process-wide [`trace_client::service_name`] at export time |
/// | [`with_event_errors`](SsfLayer::with_event_errors) | `true`: an error-level event marks its span as an error |
/// | [`with_event_metrics`](SsfLayer::with_event_metrics) | `true`: an event with `counter.`, `monotonic_counter.`, `histogram.` or `gauge.` fields adds samples to its span |
/// | [`max_value_len`](SsfLayer::max_value_len) | [`DEFAULT_MAX_VALUE_LEN`] bytes per tag value |
/// | [`max_samples`](SsfLayer::max_samples) | [`DEFAULT_MAX_SAMPLES`] samples per span |
///
/// # Examples
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = trace_client::Client::builder("udp://127.0.0.1:8128").build()?;
/// let layer = tracing_ssf::SsfLayer::new(client.clone()).service("checkout");
/// tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;
///
/// tracing::info_span!("charge", amount = 42).in_scope(|| {
///     // ...
/// });
/// client.flush().await?;
/// # Ok(())
/// # }
/// ```
pub struct SsfLayer {
    client: Client,
    service: Option<String>,
    event_errors: bool,
    event_metrics: bool,
    max_value_len: usize,
    max_samples: usize,
    stats: LayerStats,
    with_context: WithContext,
}

impl SsfLayer {
    /// A layer sending spans to `client`, with the defaults above.
    pub fn new(client: Client) -> Self {
        SsfLayer {
            client,
            service: None,
            event_errors: true,
            event_metrics: true,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            max_samples: DEFAULT_MAX_SAMPLES,
            stats: LayerStats::default(),
            with_context: WithContext::detached(),
        }
    }

    /// Sets the service name every exported span carries.
    #[must_use]
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }

    /// Chooses whether an error-level event inside a span sets the span's error flag and
    /// its `error.msg` tag (the default) or is treated like any other event.
    #[must_use]
    pub fn with_event_errors(mut self, yes: bool) -> Self {
        self.event_errors = yes;
        self
    }

    /// Chooses whether an event with metric fields (`counter.…`, `monotonic_counter.…`,
    /// `histogram.…`, `gauge.…`) inside a span adds samples to the span (the default) or
    /// is ignored. See the [crate documentation](crate#events-as-samples) for the mapping.
    #[must_use]
    pub fn with_event_metrics(mut self, yes: bool) -> Self {
        self.event_metrics = yes;
        self
    }

    /// Sets the most samples one span carries, from metric events and
    /// [`SsfSpanExt::add_ssf_sample`](crate::SsfSpanExt::add_ssf_sample) together; further
    /// samples are dropped and counted in [`LayerStats::samples_dropped`].
    #[must_use]
    pub fn max_samples(mut self, samples: usize) -> Self {
        self.max_samples = samples;
        self
    }

    /// Sets the longest tag value, span name or error message kept, in bytes; longer
    /// renderings are cut at a character boundary.
    #[must_use]
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// A live handle on the layer's counters; take it before installing the layer.
    pub fn stats(&self) -> LayerStats {
        self.stats.clone()
    }

    /// The client spans are sent to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Counts a span handed to the client (`ok`), or reports its refusal (`full`: the
    /// queue was full).
    fn exported(&self, ok: bool, full: bool) {
        if ok {
            self.stats.add_exported();
        } else {
            {
                let refused = self.stats.add_refused(full);
                // Report the 1st, 2nd, 4th, 8th… refusal: enough to notice, never a flood.
                if refused.is_power_of_two() {
                    tracing::warn!(
                        target: INTERNAL_TARGET,
                        refused,
                        queue_full = full,
                        "ssf span refused by the client",
                    );
                }
            }
        }
    }
}

impl fmt::Debug for SsfLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsfLayer")
            .field("service", &self.service)
            .field("event_errors", &self.event_errors)
            .field("event_metrics", &self.event_metrics)
            .field("max_value_len", &self.max_value_len)
            .field("max_samples", &self.max_samples)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Whether the metadata belongs to the layer's own diagnostics.
fn is_internal(metadata: &Metadata<'_>) -> bool {
    is_internal_target(metadata.target())
}

/// Whether `target` is [`INTERNAL_TARGET`] or a module below it.
fn is_internal_target(target: &str) -> bool {
    target
        .strip_prefix(INTERNAL_TARGET)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

impl<S> Layer<S> for SsfLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        self.with_context = WithContext::new::<S>(self.max_samples, self.stats.clone());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if is_internal(attrs.metadata()) {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let start = now_nanos();
        let span_id = trace_client::new_id();

        // The nearest exported ancestor (the scope skips spans filtered out of this layer);
        // else the task's trace-client context, for a span that is not an explicit root;
        // else a new trace.
        let inherited = span.scope().skip(1).find_map(|ancestor| {
            let extensions = ancestor.extensions();
            extensions
                .get::<SpanData>()
                .map(|p| (p.trace_id, p.span_id, p.resource.clone(), p.carried.clone()))
        });
        let data = match inherited {
            Some((trace_id, parent_id, resource, carried)) => {
                let mut data = SpanData::new(trace_id, span_id, parent_id, resource, start);
                data.carried = carried;
                data
            }
            None => match trace_client::context::current().filter(|_| !attrs.is_root()) {
                Some(remote) if remote.is_valid() => {
                    let resource =
                        (!remote.resource.is_empty()).then(|| Arc::from(remote.resource.as_str()));
                    let mut data =
                        SpanData::new(remote.trace_id, span_id, remote.span_id, resource, start);
                    data.carried = crate::data::Carried::of(&remote);
                    data
                }
                _ => SpanData::new(span_id, span_id, 0, None, start),
            },
        };

        let mut data = data;
        attrs.record(&mut FieldVisitor::new(&mut data, self.max_value_len));
        let mut extensions = span.extensions_mut();
        // With two SSF layers on one subscriber, the first one's state wins.
        if extensions.get_mut::<SpanData>().is_none() {
            extensions.insert(data);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(data) = extensions.get_mut::<SpanData>() {
            values.record(&mut FieldVisitor::new(data, self.max_value_len));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if is_internal(metadata) {
            return;
        }
        let errors = self.event_errors && *metadata.level() == Level::ERROR;
        let metrics = self.event_metrics
            && metadata
                .fields()
                .iter()
                .any(|field| metric_field(field.name()).is_some());
        if !errors && !metrics {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(data) = extensions.get_mut::<SpanData>() else {
            return;
        };
        let mut visitor = EventVisitor::new(self.max_value_len, errors, metrics);
        event.record(&mut visitor);
        if errors {
            data.error = true;
            if let Some(message) = visitor.take_message() {
                data.tags.insert("error.msg".to_owned(), message);
            }
        }
        // Build only the samples that fit; count the others.
        let room = self.max_samples.saturating_sub(data.samples.len());
        let count = visitor.sample_count();
        data.samples.extend(visitor.into_samples().take(room));
        if count > room {
            self.stats.add_samples_dropped((count - room) as u64);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        if !data.export {
            // It stands for a span recorded elsewhere (`SsfSpanExt::set_ssf_context`).
            return;
        }
        let service = match &self.service {
            Some(own) => own.as_str(),
            None => trace_client::service_name(),
        };
        // Encoded straight from the span's data by a network client: no `SsfSpan` is
        // made (other clients get one).
        let end = now_nanos();
        let result = if self.client.encodes_in_place() {
            let view = crate::data::Finished {
                data: &data,
                default_name: span.name(),
                service,
                end,
            };
            self.client.try_record_fields_sampled(
                &view,
                data.sampled(),
                crate::data::Finished::to_ssf,
            )
        } else {
            // The client needs an `SsfSpan`: the data's strings and maps are moved in.
            let sampled = data.sampled();
            let ssf = data.into_ssf(span.name(), service.to_owned(), end);
            self.client
                .try_record_sampled(ssf, sampled)
                .map_err(|e| e.map(drop))
        };
        drop(span);
        self.exported(result.is_ok(), result.err().is_some_and(|e| e.is_full()));
    }

    // Implementing an unsafe trait method is the only unsafe code: the body only hands out
    // pointers to `self` or one of its fields, typed as `downcast_raw`'s contract requires.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == TypeId::of::<WithContext>() {
            Some(&self.with_context as *const WithContext as *const ())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_targets() {
        assert!(is_internal_target("tracing_ssf::internal"));
        assert!(is_internal_target("tracing_ssf::internal::send"));
        assert!(!is_internal_target("tracing_ssf::internals"));
        assert!(!is_internal_target("tracing_ssf"));
        assert!(!is_internal_target("app"));
    }
}
