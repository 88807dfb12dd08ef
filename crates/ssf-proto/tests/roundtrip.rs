//! Property tests: any span survives canonical encoding, and agrees with prost's own
//! encoder on content.

use std::collections::BTreeMap;

use proptest::prelude::*;
use ssf_proto::prost::Message;
use ssf_proto::{SsfSample, SsfSpan, wire};

fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(".{0,8}", ".{0,8}", 0..4)
}

fn sample() -> impl Strategy<Value = SsfSample> {
    (
        (-2i32..7, ".{0,10}", any::<f32>(), any::<i64>(), ".{0,6}"),
        (-1i32..5, any::<f32>(), tags(), ".{0,4}", -1i32..4),
    )
        .prop_map(
            |(
                (metric, name, value, timestamp, message),
                (status, sample_rate, tags, unit, scope),
            )| SsfSample {
                metric,
                name,
                value: if value.is_nan() { 0.5 } else { value },
                timestamp,
                message,
                status,
                sample_rate: if sample_rate.is_nan() {
                    1.0
                } else {
                    sample_rate
                },
                tags,
                unit,
                scope,
            },
        )
}

fn span() -> impl Strategy<Value = SsfSpan> {
    (
        (
            any::<i32>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
        ),
        (
            any::<bool>(),
            ".{0,12}",
            prop::collection::vec(sample(), 0..4),
            tags(),
        ),
        (any::<bool>(), ".{0,12}", any::<i64>()),
    )
        .prop_map(
            |(
                (version, trace_id, id, parent_id, start, end),
                (error, service, metrics, tags),
                (indicator, name, root),
            )| SsfSpan {
                version,
                trace_id,
                id,
                parent_id,
                start_timestamp: start,
                end_timestamp: end,
                error,
                service,
                metrics,
                tags,
                indicator,
                name,
                root_start_timestamp: root,
            },
        )
}

proptest! {
    #[test]
    fn canonical_round_trip(span in span()) {
        let bytes = wire::encode_to_vec(&span);
        prop_assert_eq!(bytes.len(), wire::encoded_len(&span));
        prop_assert_eq!(wire::decode(&bytes[..]).unwrap(), span.clone());
        // prost's encoding decodes to the same span.
        prop_assert_eq!(SsfSpan::decode(&span.encode_to_vec()[..]).unwrap(), span);
    }

    #[test]
    fn unknown_fields_are_skipped(span in span(), field in 15u32..1000, payload in prop::collection::vec(any::<u8>(), 0..20)) {
        let mut bytes = wire::encode_to_vec(&span);
        ssf_proto::prost::encoding::bytes::encode(field, &payload, &mut bytes);
        prop_assert_eq!(wire::decode(&bytes[..]).unwrap(), span);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = wire::decode(&bytes[..]);
    }
}
