//! The binary carrier: a span context as the protobuf encoding of an `SSFSpan`.
//!
//! Injection writes a span holding only `trace_id`, `id` (the span ID), `parent_id`, a
//! `resource` tag (left out when the resource is empty), an `ot-tracer-sampled` tag (the
//! sampling decision, when one was made), an `ot-baggage-<key>` tag per baggage item, and
//! the process's
//! [`service_name`](crate::service_name) (left out when unset), in the canonical encoding of
//! [`ssf_proto::wire`]. Its timestamps are 0; veneur wrote its overflowed "zero time" there.
//!
//! Extraction reads `trace_id`, `id` and the `resource`, `ot-tracer-sampled` and
//! `ot-baggage-*` tags of any `SSFSpan` (baggage over its limits is left out); like veneur it
//! ignores `parent_id` (the context describes the remote span, and its parent is not needed
//! to start a child). Unlike veneur it rejects spans whose trace or span ID is zero.

use bytes::{Buf, BufMut};
use ssf_proto::{SsfSpan, wire};

use super::baggage::{OT_BAGGAGE_PREFIX, OtBaggage};
use super::parse::{ExtractError, RESOURCE_KEY, SAMPLED_KEY, parse_sampled};
use crate::trace::context::SpanContext;

fn carrier_span(ctx: &SpanContext) -> SsfSpan {
    let mut span = SsfSpan {
        trace_id: ctx.trace_id,
        id: ctx.span_id,
        parent_id: ctx.parent_id,
        service: crate::trace::span::service_name().to_owned(),
        ..Default::default()
    };
    if !ctx.resource.is_empty() {
        span.tags
            .insert(RESOURCE_KEY.to_owned(), ctx.resource.clone());
    }
    if let Some(sampled) = ctx.sampled {
        span.tags
            .insert(SAMPLED_KEY.to_owned(), sampled.to_string());
    }
    for (k, v) in ctx.baggage.iter() {
        span.tags
            .insert(format!("{OT_BAGGAGE_PREFIX}{k}"), v.to_owned());
    }
    span
}

/// Appends the binary form of `ctx` to `buf`.
///
/// # Panics
///
/// If `buf` cannot grow to hold the encoding (for example a fixed-size `&mut [u8]` that is
/// too small), as [`BufMut`] writes do; growable buffers such as `Vec<u8>` and
/// `bytes::BytesMut` never panic.
pub fn inject_binary(ctx: &SpanContext, buf: &mut impl BufMut) {
    wire::encode(&carrier_span(ctx), buf);
}

/// The binary form of `ctx`.
///
/// # Examples
///
/// ```
/// use trace_client::SpanContext;
/// use trace_client::propagation::{extract_binary, to_binary};
///
/// let ctx = SpanContext::new(10, 11).with_parent_id(12).with_resource("res");
/// let bytes = to_binary(&ctx);
/// let remote = extract_binary(&bytes[..])?;
/// assert_eq!(remote, SpanContext::new(10, 11).with_resource("res"));
/// # Ok::<(), trace_client::propagation::ExtractError>(())
/// ```
pub fn to_binary(ctx: &SpanContext) -> Vec<u8> {
    wire::encode_to_vec(&carrier_span(ctx))
}

/// Extracts a span context from the protobuf encoding of an `SSFSpan`.
///
/// # Errors
///
/// [`ExtractError::Decode`] when the bytes are not an `SSFSpan`;
/// [`ExtractError::MissingIds`] when its trace or span ID is zero.
pub fn extract_binary(buf: impl Buf) -> Result<SpanContext, ExtractError> {
    let mut span = wire::decode(buf).map_err(ExtractError::Decode)?;
    if span.trace_id == 0 || span.id == 0 {
        return Err(ExtractError::MissingIds);
    }
    let mut baggage = OtBaggage::default();
    for (k, v) in &span.tags {
        baggage.offer(k, v, false);
    }
    Ok(SpanContext {
        trace_id: span.trace_id,
        span_id: span.id,
        parent_id: 0,
        resource: span.tags.remove(RESOURCE_KEY).unwrap_or_default(),
        sampled: span.tags.get(SAMPLED_KEY).and_then(|v| parse_sampled(v)),
        baggage: baggage.finish().unwrap_or_default(),
        w3c: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_span_has_exactly_the_context_fields() {
        let ctx = SpanContext::new(10, 11)
            .with_parent_id(12)
            .with_resource("res");
        let span = wire::decode(&to_binary(&ctx)[..]).unwrap();
        let expected = SsfSpan {
            trace_id: 10,
            id: 11,
            parent_id: 12,
            tags: [("resource".to_owned(), "res".to_owned())].into(),
            service: crate::trace::span::service_name().to_owned(),
            ..Default::default()
        };
        assert_eq!(span, expected);
        assert_eq!(span.start_timestamp, 0);
        assert_eq!(span.end_timestamp, 0);
    }

    #[test]
    fn bytes_match_the_veneur_vector_without_the_zero_time() {
        // veneur's vector for trace 10 / span 11 / parent 12 / resource `res` is
        // 100a180b200c 28.. 30.. 5a0f...; ours drops the two bogus timestamps.
        let ctx = SpanContext::new(10, 11)
            .with_parent_id(12)
            .with_resource("res");
        let mut buf = Vec::new();
        inject_binary(&ctx, &mut buf);
        // Unit tests never set the process-wide service name, so none is written.
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "100a180b200c5a0f0a087265736f757263651203726573");
        assert_eq!(buf, to_binary(&ctx));
    }

    #[test]
    fn extracts_from_a_full_span() {
        let span = SsfSpan {
            trace_id: -3,
            id: 4,
            parent_id: 5,
            name: "n".into(),
            start_timestamp: 1,
            tags: [("resource".to_owned(), "r".to_owned())].into(),
            ..Default::default()
        };
        let ctx = extract_binary(&wire::encode_to_vec(&span)[..]).unwrap();
        assert_eq!(ctx, SpanContext::new(-3, 4).with_resource("r"));
    }

    #[test]
    fn rejects_zero_ids_and_garbage() {
        let zero = wire::encode_to_vec(&SsfSpan {
            trace_id: 1,
            ..Default::default()
        });
        assert!(matches!(
            extract_binary(&zero[..]),
            Err(ExtractError::MissingIds)
        ));
        assert!(matches!(
            extract_binary(&[][..]),
            Err(ExtractError::MissingIds)
        ));
        assert!(matches!(
            extract_binary(&[0xff, 0xff, 0xff][..]),
            Err(ExtractError::Decode(_))
        ));
    }

    #[test]
    fn sampled_and_baggage_travel_as_tags() {
        let mut ctx = SpanContext::new(3, 4).with_sampled(true);
        ctx.baggage.set("tenant", "acme").unwrap();
        let bytes = to_binary(&ctx);
        let span = wire::decode(&bytes[..]).unwrap();
        assert_eq!(span.tags["ot-tracer-sampled"], "true");
        assert_eq!(span.tags["ot-baggage-tenant"], "acme");
        let back = extract_binary(&bytes[..]).unwrap();
        assert_eq!((back.sampled, back.baggage), (Some(true), ctx.baggage));
    }
}
