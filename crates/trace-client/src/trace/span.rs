//! Spans: timed, named operations of a trace.

use std::any::type_name;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use ssf_proto::time::saturating_nanos;
use ssf_proto::wire::{EncodedParts, SpanFields};
use ssf_proto::{SsfSample, SsfSpan};

use crate::client::Client;
use crate::default;
use crate::encode::WithService;
use crate::error::TryRecordError;
use crate::future::Receipt;
use crate::trace::baggage::{Baggage, BaggageError};
use crate::trace::clock::now;
use crate::trace::context::{self, SpanContext, W3cTrace};
use crate::trace::fields::{Resource, Samples, SpanSample, Str, Tags};
use crate::trace::id::new_id;

static SERVICE: OnceLock<String> = OnceLock::new();

/// Sets the process-wide service name, once.
///
/// Every span converted to SSF without a service of its own ([`Span::set_service`]) carries
/// this name; it is read at conversion time, so set it at start-up, before the first span
/// is finished. Returns `false`, changing nothing, if the name was already set: like a
/// [`OnceLock`], it can be set only once per process.
///
/// # Examples
///
/// ```
/// assert!(trace_client::set_service_name("checkout"));
/// assert!(!trace_client::set_service_name("other"));
/// assert_eq!(trace_client::service_name(), "checkout");
/// ```
pub fn set_service_name(name: &str) -> bool {
    SERVICE.set(name.to_owned()).is_ok()
}

/// The process-wide service name set by [`set_service_name`]; empty until then.
pub fn service_name() -> &'static str {
    SERVICE.get().map_or("", String::as_str)
}

/// The last path segment of a type name, without generic arguments: `my::Error<T>` →
/// `Error`. Trait objects, tuples, slices and other unnamed types give `error`, as veneur
/// does for types without a name.
fn short_type_name(full: &str) -> &str {
    let mut name = full;
    loop {
        let trimmed = name.trim_start_matches('&').trim_start_matches("mut ");
        if trimmed.len() == name.len() {
            break;
        }
        name = trimmed;
    }
    if name.starts_with("dyn ") || name.starts_with(['(', '[', '*', '<']) || name.is_empty() {
        return "error";
    }
    let path = name.split('<').next().unwrap_or(name);
    path.rsplit("::").next().unwrap_or(path)
}

/// One timed operation of a trace, sent to veneur as an SSF span when finished.
///
/// A span has a trace ID (shared by every span of the trace and equal to the root span's
/// own ID), a span ID, its parent's span ID (0 for a root), a name, start and end times,
/// tags, an error flag, an indicator flag and samples (metrics) to send along. Its
/// *resource* names the trace's entry point (an endpoint, a job); children inherit it and
/// the carriers propagate it, but it is not part of the SSF span.
///
/// Create one with [`Span::root`], [`Span::start_trace`], [`Span::child`],
/// [`Span::child_of`], [`Span::child_of_current`] or the [`span!`](crate::span!) macro.
/// Its start time is the creation time (change it with [`Span::set_start`]).
///
/// # Cost
///
/// Building a span per request costs no allocation when its name and service are
/// `&'static str` (they are [`Str`]s, `Cow<'static, str>`: a static string is borrowed,
/// a `String` moved in). Tags and samples are encoded into the span as they are set
/// (SSF fields 11 and 10, held inline up to about five tags and two samples, then on the
/// heap): a tag's key and value may be any string, borrowed for any lifetime or owned,
/// and are copied at once, and a sample is freed as soon as it is added. Children share
/// the trace's resource. A network client encodes a finished span straight from these
/// fields into its queue ([`Client::try_record_fields`]), copying the encoded tags and
/// samples whole; no [`SsfSpan`] is made. Tags are written in the order they were first
/// set (a protobuf map's order is free; [`Span::to_ssf`] gives them as a map, in key
/// order). Its start and end are read, on x86_64 Linux where the kernel keeps time with
/// the time-stamp counter, from that counter, scaled from the system clock read at most
/// 100 ms earlier on the same thread (about a third of the system clock's cost);
/// elsewhere from the system clock.
///
/// # Finishing
///
/// A span is sent at most once, when it is finished:
///
/// * [`Span::finish`] records it on its client (see [`Span::with_client`]) or else on the
///   [default client](crate::default), without waiting;
/// * [`Span::finish_with`] records it on a given client;
/// * [`Span::finish_with_receipt`] also returns a [`Receipt`] that resolves once a backend
///   has sent it (or dropped it);
/// * [`Span::into_ssf`] finishes it without recording, to send it some other way;
/// * dropping an unfinished span finishes it like [`Span::finish`], ignoring a refusal, so
///   early returns and `?` still send it. [`Span::set_finish_on_drop`] turns that off.
///
/// Finishing sets the end time to now unless [`Span::set_end`] set one. Recording never
/// blocks: a full queue refuses the span (the error hands its SSF form back).
///
/// # Examples
///
/// ```
/// use trace_client::Span;
///
/// let mut root = Span::root("checkout");
/// assert_eq!(root.trace_id(), root.span_id());
/// assert_eq!((root.parent_id(), root.resource(), root.name()), (0, "checkout", "checkout"));
///
/// let mut child = root.child("charge");
/// child.set_tag("currency", "eur");
/// assert_eq!(child.trace_id(), root.trace_id());
/// assert_eq!(child.parent_id(), root.span_id());
/// assert_eq!(child.resource(), "checkout");
///
/// let ssf = child.to_ssf();
/// assert_eq!((ssf.name.as_str(), ssf.parent_id), ("charge", root.span_id()));
/// # child.set_finish_on_drop(false);
/// # root.set_finish_on_drop(false);
/// ```
#[derive(Debug)]
pub struct Span {
    trace_id: i64,
    span_id: i64,
    parent_id: i64,
    resource: Resource,
    name: Str,
    service: Option<Str>,
    /// Nanoseconds since the epoch (SSF's own unit: converted once, when set).
    start: i64,
    end: Option<i64>,
    tags: Tags,
    error: bool,
    samples: Samples,
    indicator: bool,
    client: Option<Client>,
    finish_on_drop: bool,
    sent: bool,
    /// The trace's sampling decision so far (see [`SpanContext::sampled`]).
    sampled: Option<bool>,
    baggage: Baggage,
    w3c: Option<Arc<W3cTrace>>,
}

/// What a span inherits from its parent besides the IDs and the resource.
struct Inherited {
    sampled: Option<bool>,
    baggage: Baggage,
    w3c: Option<Arc<W3cTrace>>,
}

impl Inherited {
    const NONE: Inherited = Inherited {
        sampled: None,
        baggage: Baggage::new(),
        w3c: None,
    };
}

impl Span {
    #[inline]
    fn new(
        trace_id: i64,
        span_id: i64,
        parent_id: i64,
        resource: Resource,
        name: Str,
        client: Option<Client>,
        inherited: Inherited,
    ) -> Self {
        Span {
            trace_id,
            span_id,
            parent_id,
            resource,
            name,
            service: None,
            start: now(),
            end: None,
            tags: Tags::default(),
            error: false,
            samples: Samples::default(),
            indicator: false,
            client,
            finish_on_drop: true,
            sent: false,
            sampled: inherited.sampled,
            baggage: inherited.baggage,
            w3c: inherited.w3c,
        }
    }

    /// A new trace: a root span named `name` whose resource is also `name`.
    ///
    /// Its trace ID and span ID are the same fresh ID and its parent ID is 0. Use
    /// [`Span::start_trace`] for a root whose resource and name differ.
    #[inline]
    pub fn root(name: impl Into<Str>) -> Self {
        let name = name.into();
        let id = new_id();
        Span::new(
            id,
            id,
            0,
            Resource::from(name.clone()),
            name,
            None,
            Inherited::NONE,
        )
    }

    /// A new trace for `resource`, with an empty name, as veneur's `StartTrace`.
    ///
    /// Give it a name with [`Span::set_name`] before it is finished: veneur drops spans
    /// without one.
    pub fn start_trace(resource: impl Into<Str>) -> Self {
        let id = new_id();
        Span::new(
            id,
            id,
            0,
            Resource::from(resource.into()),
            Str::Borrowed(""),
            None,
            Inherited::NONE,
        )
    }

    /// A child of this span named `name`: same trace ID, resource, client (see
    /// [`Span::with_client`]), sampling decision and baggage, parent ID = this span's ID,
    /// a fresh span ID.
    #[inline]
    pub fn child(&self, name: impl Into<Str>) -> Self {
        Span::new(
            self.trace_id,
            new_id(),
            self.span_id,
            self.resource.clone(),
            name.into(),
            self.client.clone(),
            Inherited {
                sampled: self.sampled,
                baggage: self.baggage.clone(),
                w3c: self.w3c.clone(),
            },
        )
    }

    /// A child of the span described by `parent` (typically extracted from a carrier): trace
    /// ID, resource, sampling decision, baggage and W3C trace from `parent`, parent ID =
    /// `parent.span_id`, a fresh span ID.
    pub fn child_of(parent: &SpanContext, name: impl Into<Str>) -> Self {
        Span::new(
            parent.trace_id,
            new_id(),
            parent.span_id,
            Resource::from(Str::Owned(parent.resource.clone())),
            name.into(),
            None,
            Inherited {
                sampled: parent.sampled,
                baggage: parent.baggage.clone(),
                w3c: parent.w3c.clone().map(Arc::new),
            },
        )
    }

    /// A child of the task's [current span context](crate::context::current), or a new
    /// [root](Span::root) when there is none.
    pub fn child_of_current(name: impl Into<Str>) -> Self {
        let name = name.into();
        context::with_current(|parent| match parent {
            Some(parent) => Span::child_of(parent, name),
            None => Span::root(name),
        })
    }

    /// The trace ID.
    pub fn trace_id(&self) -> i64 {
        self.trace_id
    }

    /// This span's ID.
    pub fn span_id(&self) -> i64 {
        self.span_id
    }

    /// The parent span's ID; 0 for a root span.
    pub fn parent_id(&self) -> i64 {
        self.parent_id
    }

    /// The trace's resource (not sent in the SSF span).
    pub fn resource(&self) -> &str {
        self.resource.as_str()
    }

    /// The span's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The span's own service name, if set; see [`Span::set_service`].
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// When the span started (to the nanosecond, within SSF's range of years 1677 to
    /// 2262: a span keeps its times as the nanoseconds it sends).
    pub fn start(&self) -> SystemTime {
        ssf_proto::time::from_nanos(self.start)
    }

    /// When the span ended, if it was set or the span finished.
    pub fn end(&self) -> Option<SystemTime> {
        self.end.map(ssf_proto::time::from_nanos)
    }

    /// The span's tags.
    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// Whether [`Span::error`] marked the span as an error.
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// The samples to send with the span, as SSF (a span keeps them encoded: this
    /// decodes them).
    pub fn samples(&self) -> Vec<SsfSample> {
        self.samples.to_ssf()
    }

    /// How many samples the span holds.
    pub fn samples_len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the span is a service level indicator span.
    pub fn indicator(&self) -> bool {
        self.indicator
    }

    /// End minus start once the span has an end time; zero if the clock went backwards.
    pub fn duration(&self) -> Option<Duration> {
        let end = self.end?;
        // i128: the difference of two i64s does not overflow it.
        let nanos = (i128::from(end) - i128::from(self.start)).max(0);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// This span's context, to create children elsewhere or to inject into a carrier.
    pub fn context(&self) -> SpanContext {
        SpanContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            resource: self.resource.as_str().to_owned(),
            sampled: self.sampled,
            baggage: self.baggage.clone(),
            w3c: self.w3c.as_deref().cloned(),
        }
    }

    /// The span's baggage: the items it inherited and those set on it.
    pub fn baggage(&self) -> &Baggage {
        &self.baggage
    }

    /// The value of baggage item `key`.
    pub fn baggage_item(&self, key: &str) -> Option<&str> {
        self.baggage.get(key)
    }

    /// Sets baggage item `key` to `value`: it travels with the span's context to the
    /// children created afterwards, here and (through the carriers) in other processes.
    /// Baggage is not part of the SSF span itself.
    ///
    /// # Errors
    ///
    /// As [`Baggage::set`]: a key that is not an HTTP token, or the baggage's limits.
    pub fn set_baggage_item(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<&mut Self, BaggageError> {
        self.baggage.set(key, value)?;
        Ok(self)
    }

    /// Replaces the span's baggage with `baggage` (for example one extracted on its own
    /// with [`propagation::extract_baggage`](crate::propagation::extract_baggage)).
    pub fn set_baggage(&mut self, baggage: Baggage) -> &mut Self {
        self.baggage = baggage;
        self
    }

    /// The trace's sampling decision so far: from the caller (through the span's
    /// parent context), from [`Span::sample_with`], or `None` when none was made yet.
    pub fn sampled(&self) -> Option<bool> {
        self.sampled
    }

    /// Makes the sampling decision for this span's trace now, with `client`'s
    /// [sampler](crate::ClientBuilder::sampler), and keeps it: the children created
    /// afterwards and the headers injected from its context carry it. Recording makes the
    /// same decision; call this first when the decision must travel before the span is
    /// finished (the trace-http middleware does).
    ///
    /// ```
    /// use trace_client::{Client, Sampler, Span};
    ///
    /// let (client, mut spans) = Client::channel_sampled(8, Sampler::never());
    /// let mut span = Span::root("request");
    /// assert_eq!(span.sampled(), None);
    /// assert!(!span.sample_with(&client));
    /// assert_eq!(span.child("work").sampled(), Some(false));
    /// # let mut c = span.child("x"); c.set_finish_on_drop(false);
    /// span.finish_with(&client)?;
    /// assert!(spans.try_recv().is_err());
    /// assert_eq!(client.stats().unsampled(), 1);
    /// # Ok::<(), trace_client::TryRecordError>(())
    /// ```
    pub fn sample_with(&mut self, client: &Client) -> bool {
        let decision = client.sampler().samples(self.trace_id, self.sampled);
        self.sampled = Some(decision);
        decision
    }

    /// Sets tag `key` to `value`, replacing an earlier value. The SDK never adds tags of its
    /// own except the three of [`Span::error`].
    ///
    /// The key and value are copied into the span's encoding at once, so any string will
    /// do, borrowed for any lifetime or owned, and none costs an allocation (an owned one
    /// is freed here).
    ///
    /// ```
    /// use trace_client::Span;
    ///
    /// let header = String::from("gzip");
    /// let mut span = Span::root("request");
    /// span.set_tag("accept-encoding", &header).set_tag("status", 200.to_string());
    /// assert_eq!(&span.tags()["accept-encoding"], "gzip");
    /// # span.set_finish_on_drop(false);
    /// ```
    #[inline(always)]
    pub fn set_tag(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> &mut Self {
        self.tags.set(key.as_ref(), value.as_ref());
        self
    }

    /// Re-parents the span under `parent` (veneur's `SetParent`): the trace ID, the
    /// resource, the sampling decision, the baggage and the W3C trace become the parent's,
    /// the parent ID becomes the parent's span ID; the span's own ID, name, tags and times
    /// stay.
    ///
    /// ```
    /// use trace_client::Span;
    ///
    /// let request = Span::root("request");
    /// let mut work = Span::root("work");
    /// work.set_parent(&request.context());
    /// assert_eq!(work.trace_id(), request.trace_id());
    /// assert_eq!(work.parent_id(), request.span_id());
    /// assert_eq!(work.resource(), "request");
    /// ```
    pub fn set_parent(&mut self, parent: &SpanContext) -> &mut Self {
        self.trace_id = parent.trace_id;
        self.parent_id = parent.span_id;
        self.resource = Resource::from(Str::Owned(parent.resource.clone()));
        self.sampled = parent.sampled;
        self.baggage = parent.baggage.clone();
        self.w3c = parent.w3c.clone().map(Arc::new);
        self
    }

    /// [`set_parent`](Span::set_parent) from a span at hand: the resource is shared, not
    /// copied.
    pub fn set_parent_span(&mut self, parent: &Span) -> &mut Self {
        self.trace_id = parent.trace_id;
        self.parent_id = parent.span_id;
        self.resource = parent.resource.clone();
        self.sampled = parent.sampled;
        self.baggage = parent.baggage.clone();
        self.w3c = parent.w3c.clone();
        self
    }

    /// Sets the span's name.
    pub fn set_name(&mut self, name: impl Into<Str>) -> &mut Self {
        self.name = name.into();
        self
    }

    /// Sets the trace's resource as seen by this span and the children created from it
    /// afterwards.
    pub fn set_resource(&mut self, resource: impl Into<Str>) -> &mut Self {
        self.resource = Resource::from(resource.into());
        self
    }

    /// Sets this span's service name, overriding the process-wide
    /// [`service_name`](crate::service_name).
    #[inline]
    pub fn set_service(&mut self, service: impl Into<Str>) -> &mut Self {
        self.service = Some(service.into());
        self
    }

    /// Marks (or unmarks) the span as a service level indicator span.
    pub fn set_indicator(&mut self, indicator: bool) -> &mut Self {
        self.indicator = indicator;
        self
    }

    /// Adds a sample to send with the span: it is encoded into the span at once, and
    /// freed.
    // Always inlined: the sample is encoded where it was built, not moved first.
    #[inline(always)]
    pub fn add_sample(&mut self, sample: impl Into<SpanSample>) -> &mut Self {
        let sample = std::mem::ManuallyDrop::new(sample.into());
        self.samples.add(&sample);
        // Static strings free nothing: they are not walked.
        if !sample.is_static() {
            drop(std::mem::ManuallyDrop::into_inner(sample));
        }
        self
    }

    /// Adds samples to send with the span.
    pub fn add_samples<S: Into<SpanSample>>(
        &mut self,
        samples: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        for sample in samples {
            self.add_sample(sample);
        }
        self
    }

    /// Sets the start time.
    pub fn set_start(&mut self, start: SystemTime) -> &mut Self {
        self.start = saturating_nanos(start);
        self
    }

    /// Sets the end time; finishing keeps it instead of using the finishing time.
    #[inline]
    pub fn set_end(&mut self, end: SystemTime) -> &mut Self {
        self.end = Some(saturating_nanos(end));
        self
    }

    /// Marks the span as an error caused by `err`.
    ///
    /// Sets the error flag (the SSF `error` field) and three tags, named for Datadog as
    /// veneur names them:
    ///
    /// | tag | value |
    /// |---|---|
    /// | `error.msg` | `err.to_string()` |
    /// | `error.type` | the last path segment of `E`'s type name, without generic arguments (`std::io::Error` → `Error`); `error` when `E` is a trait object such as `dyn Error` |
    /// | `error.stack` | `err.to_string()` again: Rust errors carry no stack trace to send |
    ///
    /// A later call replaces the tags.
    ///
    /// # Examples
    ///
    /// ```
    /// use trace_client::Span;
    ///
    /// let mut span = Span::root("read");
    /// let err = std::io::Error::other("disk on fire");
    /// span.error(&err);
    /// assert!(span.is_error());
    /// assert_eq!(&span.tags()["error.msg"], "disk on fire");
    /// assert_eq!(&span.tags()["error.type"], "Error");
    /// assert_eq!(&span.tags()["error.stack"], "disk on fire");
    ///
    /// let boxed: Box<dyn std::error::Error> = "no".into();
    /// span.error(&*boxed);
    /// assert_eq!(&span.tags()["error.type"], "error");
    /// # span.set_finish_on_drop(false);
    /// ```
    pub fn error<E: std::error::Error + ?Sized>(&mut self, err: &E) -> &mut Self {
        let message = err.to_string();
        self.error = true;
        let tags = &mut self.tags;
        // In key order, as the canonical encoding writes them.
        tags.set("error.msg", &message);
        tags.set("error.stack", &message);
        tags.set("error.type", short_type_name(type_name::<E>()));
        self
    }

    /// Chooses whether dropping the span unfinished records it (the default) or discards it.
    #[inline]
    pub fn set_finish_on_drop(&mut self, finish_on_drop: bool) -> &mut Self {
        self.finish_on_drop = finish_on_drop;
        self
    }

    /// This span, recorded on `client` instead of the default client when it is finished
    /// by [`Span::finish`], [`Span::finish_with_receipt`] or dropping. Children created with
    /// [`Span::child`] use the same client.
    #[must_use]
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The client this span is recorded on, if one was attached with [`Span::with_client`].
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    /// Finishes the span and records it on its client ([`Span::with_client`]) or else the
    /// default client, without waiting.
    ///
    /// # Errors
    ///
    /// The client's [`TryRecordError`] (queue full, client closed), or
    /// [`TryRecordError::NoClient`] when the span has no client and no default client is
    /// set. The error hands back the span's SSF form.
    ///
    /// # Examples
    ///
    /// ```
    /// use trace_client::{Client, Span};
    ///
    /// let (client, mut spans) = Client::channel(8);
    /// let mut span = Span::root("checkout").with_client(client);
    /// span.set_tag("user", "42");
    /// span.finish()?;
    /// let sent = spans.try_recv()?;
    /// assert_eq!((sent.name.as_str(), sent.tags["user"].as_str()), ("checkout", "42"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(mut self) -> Result<(), TryRecordError> {
        match self.client.take() {
            Some(client) => self.record_on(&client),
            None => match default::get() {
                Some(client) => self.record_on(&client),
                None => Err(TryRecordError::NoClient(self.take_ssf())),
            },
        }
    }

    /// Sets `tags`, renames the span if `name` is not empty, and [finishes](Span::finish)
    /// it: veneur's `Trace.Record(name, tags)` in one call (an end time already set is
    /// kept).
    ///
    /// ```
    /// use trace_client::{Client, Span};
    ///
    /// let (client, mut spans) = Client::channel(8);
    /// let span = Span::root("placeholder").with_client(client);
    /// span.finish_named("charge", [("currency", "eur"), ("outcome", "ok")])?;
    /// let sent = spans.try_recv()?;
    /// assert_eq!(sent.name, "charge");
    /// assert_eq!(sent.tags["currency"], "eur");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Span::finish`].
    pub fn finish_named<K, V>(
        mut self,
        name: impl Into<Str>,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), TryRecordError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let name = name.into();
        if !name.is_empty() {
            self.name = name;
        }
        for (k, v) in tags {
            self.tags.set(k.as_ref(), v.as_ref());
        }
        self.finish()
    }

    /// Finishes the span and records it on `client`, without waiting.
    ///
    /// # Errors
    ///
    /// The client's [`TryRecordError`], handing back the span's SSF form.
    #[inline]
    pub fn finish_with(mut self, client: &Client) -> Result<(), TryRecordError> {
        self.record_on(client)
    }

    /// The end time: the one set, or now (never before the start: read on another
    /// thread than the start, the clock may be a little behind it).
    #[inline]
    fn end_now(&mut self) -> i64 {
        let start = self.start;
        *self.end.get_or_insert_with(|| now().max(start))
    }

    /// Finishes the span and records it on `client`: a network client encodes it straight
    /// from the span into its queue (no `SsfSpan` is made); other clients get its SSF
    /// form.
    #[inline]
    fn record_on(&mut self, client: &Client) -> Result<(), TryRecordError> {
        self.end_now();
        self.sent = true;
        // The client's service name comes before the process-wide one.
        let client_service = match (&self.service, client.service()) {
            (None, Some(service)) => Some(service),
            _ => None,
        };
        if !client.encodes_in_place() {
            // The client needs an `SsfSpan`: the span's strings are moved into it.
            if let Some(service) = client_service {
                self.service = Some(Str::Owned(service.to_owned()));
            }
            let sampled = self.sampled;
            return client.try_queue(self.take_ssf(), None, sampled);
        }
        if let Some(service) = client_service {
            let span = WithService {
                span: &*self,
                service,
            };
            return match client.try_record_fields_sampled(&span, self.sampled, |s| {
                let mut ssf = s.span.to_ssf();
                ssf.service = s.service.to_owned();
                ssf
            }) {
                Ok(()) => Ok(()),
                Err(refused) => {
                    self.service = Some(Str::Owned(service.to_owned()));
                    Err(refused.map(|()| self.take_ssf()))
                }
            };
        }
        match client.try_record_fields_sampled(&*self, self.sampled, Span::to_ssf) {
            Ok(()) => Ok(()),
            Err(refused) => Err(refused.map(|()| self.take_ssf())),
        }
    }

    /// Finishes the span and records it like [`Span::finish`], returning a [`Receipt`]: a
    /// future that resolves once a backend has sent the span or given up on it.
    ///
    /// # Errors
    ///
    /// As [`Span::finish`].
    pub fn finish_with_receipt(mut self) -> Result<Receipt, TryRecordError> {
        let ssf = self.take_ssf();
        let client = match self.client.take() {
            Some(client) => client,
            None => match default::get() {
                Some(client) => client,
                None => return Err(TryRecordError::NoClient(ssf)),
            },
        };
        client.record_with_receipt_sampled(ssf, self.sampled)
    }

    /// The SSF form of the span, as it would be sent now.
    ///
    /// `service` is the span's own service or else the process-wide
    /// [`service_name`](crate::service_name). Times are nanoseconds since the Unix epoch,
    /// saturated to the SSF range; an unset end time is 0 (finishing sets it). The resource
    /// is not part of SSF and is left out, as are `version` and `root_start_timestamp`.
    pub fn to_ssf(&self) -> SsfSpan {
        self.ssf_with(self.service_or_default().to_owned(), self.name.to_string())
    }

    /// The SSF form of the span with `service` and `name`.
    fn ssf_with(&self, service: String, name: String) -> SsfSpan {
        SsfSpan {
            trace_id: self.trace_id,
            id: self.span_id,
            parent_id: self.parent_id,
            start_timestamp: self.start,
            end_timestamp: self.end.unwrap_or(0),
            error: self.error,
            service,
            metrics: self.samples.to_ssf(),
            tags: self.tags.to_map(),
            indicator: self.indicator,
            name,
            ..Default::default()
        }
    }

    fn service_or_default(&self) -> &str {
        match &self.service {
            Some(own) => own,
            None => service_name(),
        }
    }

    /// Finishes the span (end time now unless set) and moves its SSF form out (its owned
    /// name and service moved, not copied), marking it sent so that dropping it does
    /// nothing more.
    pub(crate) fn take_ssf(&mut self) -> SsfSpan {
        self.end_now();
        self.sent = true;
        let service = match self.service.take() {
            Some(own) => own.into_owned(),
            None => service_name().to_owned(),
        };
        let name = std::mem::take(&mut self.name).into_owned();
        self.ssf_with(service, name)
    }

    /// Finishes the span without recording it and returns its SSF form, for sending it
    /// some other way (for example `Client::record(span).await`). The end time is now
    /// unless it was set.
    pub fn into_ssf(mut self) -> SsfSpan {
        self.take_ssf()
    }
}

impl Drop for Span {
    /// Records an unfinished span as [`Span::finish`] does, unless
    /// [`Span::set_finish_on_drop`] turned that off. A refusal is ignored (the client counts
    /// it). Never panics and never blocks.
    fn drop(&mut self) {
        if !self.sent && self.finish_on_drop {
            let _refused = match self.client.take() {
                Some(client) => self.record_on(&client),
                None => match default::get() {
                    Some(client) => self.record_on(&client),
                    None => Ok(()),
                },
            };
        }
    }
}

/// The encoder reads a span's fields in place: a network client encodes a finished span
/// straight into its queue slot. Its samples and tags are already encoded
/// ([`SpanFields::encoded_parts`]): [`SpanFields::samples`] is empty.
impl SpanFields for Span {
    type Sample = SsfSample;

    #[inline]
    fn trace_id(&self) -> i64 {
        self.trace_id
    }
    #[inline]
    fn id(&self) -> i64 {
        self.span_id
    }
    #[inline]
    fn parent_id(&self) -> i64 {
        self.parent_id
    }
    #[inline]
    fn start_timestamp(&self) -> i64 {
        self.start
    }
    #[inline]
    fn end_timestamp(&self) -> i64 {
        self.end.unwrap_or(0)
    }
    #[inline]
    fn is_error(&self) -> bool {
        self.error
    }
    #[inline]
    fn service(&self) -> &str {
        self.service_or_default()
    }
    #[inline]
    fn samples(&self) -> &[SsfSample] {
        &[]
    }
    #[inline]
    fn encoded_parts(&self) -> Option<EncodedParts<'_>> {
        Some(EncodedParts {
            samples: self.samples.encoded(),
            tags: self.tags.encoded(),
        })
    }
    #[inline]
    fn indicator(&self) -> bool {
        self.indicator
    }
    #[inline]
    fn name(&self) -> &str {
        &self.name
    }
}

impl From<&Span> for SpanContext {
    fn from(span: &Span) -> Self {
        span.context()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::time::UNIX_EPOCH;

    use super::*;

    #[derive(Debug)]
    struct LocalError;

    impl fmt::Display for LocalError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("this is an error")
        }
    }

    impl std::error::Error for LocalError {}

    #[derive(Debug)]
    struct Generic<T>(T);

    impl<T: fmt::Debug> fmt::Display for Generic<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "generic {:?}", self.0)
        }
    }

    impl<T: fmt::Debug> std::error::Error for Generic<T> {}

    fn quiet(mut span: Span) -> Span {
        span.set_finish_on_drop(false);
        span
    }

    #[test]
    fn spans_and_contexts_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Span>();
        send_sync::<SpanContext>();
    }

    #[test]
    fn a_finished_span_never_ends_before_it_starts() {
        // A start after the clock (set, or read on a thread whose clock is a little
        // ahead): the end is the start.
        let start = SystemTime::now() + Duration::from_secs(3600);
        let mut span = quiet(Span::root("op"));
        span.set_start(start);
        let ssf = span.into_ssf();
        assert_eq!(ssf.end_timestamp, ssf.start_timestamp);
        // An end set explicitly is kept as it is.
        let mut span = quiet(Span::root("op"));
        span.set_start(start).set_end(UNIX_EPOCH);
        assert_eq!(span.into_ssf().end_timestamp, 0);
    }

    #[test]
    fn root_links() {
        let before = SystemTime::now();
        let root = quiet(Span::root("op"));
        let after = SystemTime::now();
        assert_eq!(root.trace_id(), root.span_id());
        assert!(root.span_id() > 0);
        assert_eq!(root.parent_id(), 0);
        assert_eq!(root.resource(), "op");
        assert_eq!(root.name(), "op");
        assert!(before <= root.start() && root.start() <= after);
        assert_eq!(root.end(), None);
        assert_eq!(root.duration(), None);
        assert!(root.tags().is_empty());
    }

    #[test]
    fn start_trace_keeps_the_resource_and_no_name() {
        let root = quiet(Span::start_trace("GET /"));
        assert_eq!(root.trace_id(), root.span_id());
        assert_eq!(root.parent_id(), 0);
        assert_eq!(root.resource(), "GET /");
        assert_eq!(root.name(), "");
    }

    #[test]
    fn children_and_grandchildren_link_and_inherit() {
        let root = quiet(Span::start_trace("res"));
        let child = quiet(root.child("c"));
        let grandchild = quiet(child.child("g"));
        assert_eq!(child.trace_id(), root.trace_id());
        assert_eq!(child.parent_id(), root.span_id());
        assert_ne!(child.span_id(), root.span_id());
        assert_eq!(grandchild.trace_id(), root.trace_id());
        assert_eq!(grandchild.parent_id(), child.span_id());
        assert_eq!(child.resource(), "res");
        assert_eq!(grandchild.resource(), "res");
        assert_eq!(grandchild.name(), "g");
    }

    #[test]
    fn child_of_a_remote_context() {
        let remote = SpanContext::new(-5, 6).with_parent_id(7).with_resource("r");
        let span = quiet(Span::child_of(&remote, "local"));
        assert_eq!(span.trace_id(), -5);
        assert_eq!(span.parent_id(), 6);
        assert_ne!(span.span_id(), 6);
        assert_eq!(span.resource(), "r");
    }

    #[test]
    fn context_is_the_span_itself() {
        let root = quiet(Span::start_trace("res"));
        let child = quiet(root.child("c"));
        let ctx = child.context();
        assert_eq!(
            ctx,
            SpanContext {
                trace_id: root.trace_id(),
                span_id: child.span_id(),
                parent_id: root.span_id(),
                resource: "res".into(),
                ..SpanContext::default()
            }
        );
        assert_eq!(SpanContext::from(&child), ctx);
    }

    #[tokio::test]
    async fn child_of_current() {
        let root = quiet(Span::child_of_current("r"));
        assert_eq!(root.parent_id(), 0);
        assert_eq!(root.trace_id(), root.span_id());
        let child = root
            .context()
            .scope(async { quiet(Span::child_of_current("c")) })
            .await;
        assert_eq!(child.parent_id(), root.span_id());
        assert_eq!(child.trace_id(), root.trace_id());
    }

    #[test]
    fn error_sets_exactly_three_tags() {
        let mut span = quiet(Span::root("op"));
        span.error(&LocalError);
        assert!(span.is_error());
        let expected: BTreeMap<String, String> = [
            ("error.msg", "this is an error"),
            ("error.type", "LocalError"),
            ("error.stack", "this is an error"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(span.tags(), &expected);
        assert!(span.to_ssf().error);
    }

    #[test]
    fn error_type_names() {
        let mut span = quiet(Span::root("op"));
        span.error(&Generic(vec![1u8]));
        assert_eq!(&span.tags()["error.type"], "Generic");
        assert_eq!(&span.tags()["error.msg"], "generic [1]");
        let err = LocalError;
        let by_ref: &LocalError = &err;
        span.error(&by_ref);
        assert_eq!(&span.tags()["error.type"], "LocalError");
        let dynamic: &(dyn std::error::Error + Send + Sync) = &err;
        span.error(dynamic);
        assert_eq!(&span.tags()["error.type"], "error");
        assert_eq!(span.tags().len(), 3);
        assert_eq!(short_type_name("std::io::error::Error"), "Error");
        assert_eq!(short_type_name("Plain"), "Plain");
        assert_eq!(short_type_name("&mut a::B<c::D<e::F>>"), "B");
        assert_eq!(short_type_name("(u8, u8)"), "error");
        assert_eq!(short_type_name("<a::B as c::D>::E"), "error");
        assert_eq!(short_type_name(""), "error");
    }

    #[test]
    fn setters() {
        let mut span = quiet(Span::root("op"));
        let start = UNIX_EPOCH + Duration::from_secs(1_136_239_445);
        span.set_tag("foo", "bar")
            .set_tag("foo", "baz")
            .set_name("renamed")
            .set_resource("res")
            .set_service("svc")
            .set_indicator(true)
            .add_sample(ssf_proto::sample::count("c", 1.0))
            .add_samples([ssf_proto::sample::gauge("g", 2.0)])
            .set_start(start)
            .set_end(start + Duration::from_millis(5));
        assert_eq!(&span.tags()["foo"], "baz");
        assert_eq!(span.name(), "renamed");
        assert_eq!(span.resource(), "res");
        assert_eq!(span.service(), Some("svc"));
        assert!(span.indicator());
        assert_eq!((span.samples_len(), span.samples().len()), (2, 2));
        assert_eq!(span.duration(), Some(Duration::from_millis(5)));

        let ssf = span.to_ssf();
        assert_eq!(ssf.start_timestamp, 1_136_239_445_000_000_000);
        assert_eq!(ssf.end_timestamp, 1_136_239_445_005_000_000);
        assert_eq!(ssf.service, "svc");
        assert_eq!(ssf.name, "renamed");
        assert!(ssf.indicator);
        assert_eq!(ssf.metrics.len(), 2);
        assert!(!ssf.tags.contains_key("resource"));
        assert_eq!(ssf.version, 0);
        assert_eq!(ssf.root_start_timestamp, 0);
    }

    #[test]
    fn duration_saturates_when_the_clock_goes_back() {
        let mut span = quiet(Span::root("op"));
        let start = span.start();
        span.set_end(start - Duration::from_secs(1));
        assert_eq!(span.duration(), Some(Duration::ZERO));
    }

    #[test]
    fn timestamps_never_wrap() {
        let mut span = quiet(Span::root("op"));
        span.set_start(UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400));
        span.set_end(UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400));
        let ssf = span.to_ssf();
        assert_eq!(ssf.start_timestamp, i64::MIN);
        assert_eq!(ssf.end_timestamp, i64::MAX);
        let unfinished = quiet(Span::root("op")).to_ssf();
        assert_eq!(unfinished.end_timestamp, 0);
        assert!(unfinished.start_timestamp > 0);
    }

    #[test]
    fn into_ssf_finishes_and_keeps_a_preset_end() {
        let before = saturating_nanos(SystemTime::now());
        let mut span = Span::root("op");
        span.set_tag("k", "v");
        let ssf = span.into_ssf();
        assert!(ssf.end_timestamp >= before);
        assert!(ssf.end_timestamp >= ssf.start_timestamp);
        assert_eq!(ssf.tags["k"], "v");
        assert_eq!(ssf.name, "op");
        assert_eq!(ssf.service, "");

        let end = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let mut span = Span::root("op");
        span.set_end(end);
        assert_eq!(span.into_ssf().end_timestamp, 2_000_000_000_000_000_000);
    }
}
