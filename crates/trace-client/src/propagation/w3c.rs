//! W3C Trace Context `traceparent` headers (opt-in).
//!
//! A `traceparent` header reads `00-<trace-id>-<parent-id>-<flags>`: a version, a 128-bit
//! trace ID in 32 lowercase hex digits, a 64-bit span ID in 16 and the flags in 2. SSF IDs
//! are 64-bit, so they map like this:
//!
//! * our trace ID is the **low 64 bits** of the W3C trace ID. Injection writes zeros in the
//!   high 64 bits; extraction ignores them, so two W3C traces that differ only there become
//!   the same SSF trace, and a W3C trace ID whose low 64 bits are zero cannot be used;
//! * the span ID and W3C parent-id are the same 64 bits (a negative ID has its top bit set);
//! * injection writes version `00` and flags `01` (sampled); extraction ignores the flags.
//!
//! Extraction rejects all-zero IDs, version `ff`, upper-case or non-hex digits and wrong
//! lengths. A version above `00` may append fields after the flags, as the W3C
//! specification allows; they are ignored. `tracestate` is neither read nor written.

/// The header name, `traceparent`.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` value for a trace and span ID: version 00, flags 01.
///
/// ```
/// use trace_client::propagation::w3c::format_traceparent;
/// assert_eq!(
///     format_traceparent(255, -1),
///     "00-000000000000000000000000000000ff-ffffffffffffffff-01"
/// );
/// ```
pub fn format_traceparent(trace_id: i64, span_id: i64) -> String {
    format!("00-{:032x}-{:016x}-01", trace_id as u64, span_id as u64)
}

/// The length of a version-00 `traceparent`.
const LEN: usize = 55;

/// Parses a `traceparent` value into (trace ID, span ID); `None` when it is invalid or an
/// ID would be zero.
///
/// ```
/// use trace_client::propagation::w3c::parse_traceparent;
/// assert_eq!(
///     parse_traceparent("00-0000000000000000000000000000002a-0000000000000007-01"),
///     Some((42, 7))
/// );
/// assert_eq!(parse_traceparent("00-0000000000000000000000000000002a-0000000000000000-01"), None);
/// ```
pub fn parse_traceparent(value: &str) -> Option<(i64, i64)> {
    // Work on bytes: slicing the `str` could split a multi-byte character.
    let b = value.as_bytes();
    if b.len() < LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = &b[0..2];
    if !is_lower_hex(version) || version == b"ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; later versions may add `-`-separated fields.
    if b.len() > LEN && (version == b"00" || b[LEN] != b'-') {
        return None;
    }
    let (trace_high, trace_low, span, flags) = (&b[3..19], &b[19..35], &b[36..52], &b[53..55]);
    if ![trace_high, trace_low, span, flags]
        .iter()
        .all(|s| is_lower_hex(s))
    {
        return None;
    }
    let trace_id = hex_bits(trace_low) as i64;
    let span_id = hex_bits(span) as i64;
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id))
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The value of at most 16 lower-case hex digits (checked by the caller).
fn hex_bits(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |acc, &c| {
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            _ => c - b'a' + 10,
        };
        (acc << 4) | u64::from(nibble)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn example_from_the_w3c_specification() {
        let (trace, span) = parse_traceparent(EXAMPLE).unwrap();
        assert_eq!(trace as u64, 0x8448_eb21_1c80_319c);
        assert_eq!(span as u64, 0xb7ad_6b71_6920_3331);
        assert!(span < 0);
    }

    #[test]
    fn round_trip() {
        for (t, s) in [(1, 1), (-1, -1), (i64::MIN, i64::MAX), (12345, 67890)] {
            let value = format_traceparent(t, s);
            assert_eq!(value.len(), LEN);
            assert_eq!(parse_traceparent(&value), Some((t, s)));
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "00",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd0000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01x",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0z",
            "00-0af7651916cd43dd8448eb211c80319\u{e9}-b7ad6b7169203331-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn future_versions_may_extend() {
        let v = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-ever";
        assert!(parse_traceparent(v).is_some());
        let v = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x";
        assert_eq!(parse_traceparent(v), None);
    }

    #[test]
    fn never_panics_on_multibyte_boundaries() {
        // Slicing a &str at a byte index inside a multi-byte character would panic.
        let s = "é".repeat(40);
        assert_eq!(parse_traceparent(&s), None);
        let s = format!("00-{}-", "é".repeat(20));
        assert_eq!(parse_traceparent(&s), None);
    }
}
