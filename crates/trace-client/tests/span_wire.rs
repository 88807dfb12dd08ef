//! A span recorded through the Span API is encoded straight from the span: the bytes
//! decode to its SSF form, over any mix of static and owned strings, tags and samples,
//! and are exactly the canonical encoding of that form (veneur's bytes) when the tags
//! were set in key order (the Span API writes them in the order they were set; a map's
//! order is free).

use std::time::Duration;

use proptest::prelude::*;
use ssf_codec::{HEADER_LEN, SsfCodec};
use ssf_proto::wire;
use trace_client::{Span, SpanSample};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z.]{1,12}",
        ".{0,40}",
        "[x]{128,200}"
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_span_api_writes_the_canonical_bytes_of_its_ssf_form(
        name in text(),
        tags in proptest::collection::vec((text(), text()), 0..12),
        samples in proptest::collection::vec((text(), -1e6f32..1e6, 0u8..4, text(), text()), 0..5),
        error in any::<bool>(),
        service in proptest::option::of(text()),
        sort_tags in any::<bool>(),
    ) {
        let sorted = sort_tags;
        let mut tags = tags;
        if sorted {
            // Key order, the last value of a key winning (as setting it again does).
            tags.reverse();
            tags.sort_by(|a, b| a.0.cmp(&b.0));
            tags.dedup_by(|later, kept| later.0 == kept.0);
        }
        let mut span = Span::root(name);
        span.set_finish_on_drop(false);
        for (k, v) in tags {
            span.set_tag(k, v);
        }
        for (n, value, kind, tk, tv) in samples {
            let s = match kind {
                0 => SpanSample::count(n, value),
                1 => SpanSample::gauge(n, value),
                2 => SpanSample::timing(n, Duration::from_nanos(value.abs() as u64), Duration::from_micros(1)),
                _ => SpanSample::set(n, tv.clone()),
            };
            span.add_sample(s.with_tag(tk, tv));
        }
        if error {
            span.error(&std::io::Error::other("boom"));
        }
        if let Some(s) = service {
            span.set_service(s);
        }
        span.set_end(std::time::SystemTime::now());
        let reference = wire::encode_to_vec(&span.to_ssf());
        prop_assert_eq!(wire::fields_encoded_len(&span), reference.len());
        let mut out = vec![0u8; reference.len() + HEADER_LEN + 8];
        let n = wire::encode_fields_to_slice(&span, &mut out);
        prop_assert_eq!(n, Some(reference.len()));
        prop_assert_eq!(wire::decode(&out[..reference.len()]).unwrap(), span.to_ssf());
        if (sorted && !error) || span.tags().len() < 2 {
            prop_assert_eq!(&out[..reference.len()], &reference[..]);
        }
        let framed = ssf_codec::encode_frame_to_slice(&span, &mut out);
        prop_assert_eq!(framed, Some(HEADER_LEN + reference.len()));
        let mut frame = bytes::BytesMut::from(&out[..HEADER_LEN + reference.len()]);
        let body = SsfCodec::new().decode_frame(&mut frame).unwrap().unwrap();
        prop_assert_eq!(wire::decode(&body[..]).unwrap(), span.to_ssf());
    }
}

/// Over a real socket: spans finished through the API on a unix-stream client arrive
/// at the receiver as their SSF form.
#[tokio::test]
async fn spans_finished_through_the_api_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssf.sock");
    let mut receiver = ssf_receiver::Receiver::bind(&format!("unix://{}", path.display()))
        .await
        .unwrap();
    let client = trace_client::Client::builder(format!("unix://{}", path.display()))
        .build()
        .unwrap();
    let mut expected = Vec::new();
    for i in 0..50 {
        let mut root = Span::root("request");
        root.set_tag("n", i.to_string())
            .set_tag("kind", "server")
            .add_sample(SpanSample::count("hits", 1.0).with_tag("k", "v"));
        let mut child = root.child("db");
        child.set_tag("table", "users");
        child.set_end(std::time::SystemTime::now());
        root.set_end(std::time::SystemTime::now());
        expected.push(child.to_ssf());
        expected.push(root.to_ssf());
        child.finish_with(&client).unwrap();
        root.finish_with(&client).unwrap();
    }
    client.flush().await.unwrap();
    let got = receiver
        .collect(expected.len(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(got, expected);
    let report = client.shutdown(Duration::from_secs(5)).await;
    assert_eq!((report.sent(), report.dropped_total()), (100, 0));
}
