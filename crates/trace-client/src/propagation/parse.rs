//! What the carriers share: the extraction error, the resource key, and the parsing and
//! formatting of IDs.

use std::error::Error;
use std::fmt;

/// The carrier key (and binary-carrier tag) holding the trace's resource.
pub const RESOURCE_KEY: &str = "resource";

/// The key (HTTP header, text-map key, binary-carrier tag) holding the trace's sampling
/// decision.
pub(crate) const SAMPLED_KEY: &str = "ot-tracer-sampled";

/// Reads a sampled flag written as `true`/`false` or `1`/`0` (any case).
pub(crate) fn parse_sampled(value: &str) -> Option<bool> {
    let value = value.trim();
    if value == "1" || value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value == "0" || value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Why no span context could be extracted from a carrier.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExtractError {
    /// No key group held a complete pair of valid, non-zero trace and span IDs.
    MissingIds,
    /// The binary carrier's bytes are not a protobuf `SSFSpan`.
    Decode(ssf_proto::wire::DecodeError),
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::MissingIds => f.write_str(
                "error parsing fields from text map: no complete pair of non-zero trace and span ids",
            ),
            ExtractError::Decode(_) => f.write_str("error decoding span from binary carrier"),
        }
    }
}

impl Error for ExtractError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ExtractError::MissingIds => None,
            ExtractError::Decode(e) => Some(e),
        }
    }
}

/// Splits an optional leading `+` or `-` from `s`; `true` means negative.
fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// Parses a base-10 ID: optional sign, ASCII digits, within `i64`. No whitespace.
pub(crate) fn parse_decimal(s: &str) -> Option<i64> {
    let (negative, digits) = split_sign(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The std parser rejects overflow without allocating, however long the input.
    let magnitude: u64 = digits.parse().ok()?;
    apply_sign(negative, magnitude)
}

/// Parses a base-16 ID: optional sign, hex digits of either case, no `0x`, no whitespace.
///
/// Without a sign, up to 64 bits are read as the two's complement bits of the ID
/// (`ffffffffffffffff` is −1); with a `-`, the magnitude must fit `i64` (veneur writes
/// negative IDs that way).
pub(crate) fn parse_hex(s: &str) -> Option<i64> {
    let (negative, digits) = split_sign(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, 16).ok()?;
    if negative || s.starts_with('+') {
        apply_sign(negative, magnitude)
    } else {
        Some(magnitude as i64)
    }
}

fn apply_sign(negative: bool, magnitude: u64) -> Option<i64> {
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Formats the 64 bits of an ID as lowercase hex without leading zeros (−1 is
/// `ffffffffffffffff`), the form Envoy uses.
pub(crate) fn format_hex(id: i64) -> String {
    format!("{:x}", id as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_values() {
        for (v, want) in [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            (" false ", Some(false)),
            ("0", Some(false)),
            ("yes", None),
            ("", None),
        ] {
            assert_eq!(parse_sampled(v), want, "{v:?}");
        }
    }

    #[test]
    fn decimal() {
        assert_eq!(parse_decimal("12345"), Some(12345));
        assert_eq!(parse_decimal("+7"), Some(7));
        assert_eq!(parse_decimal("-7"), Some(-7));
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_decimal("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_decimal("000000000000000000000000000042"), Some(42));
        for bad in [
            "",
            "-",
            "+",
            "+-1",
            "--1",
            " 1",
            "1 ",
            "0x10",
            "1e3",
            "١٢",
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("3039"), Some(12345));
        assert_eq!(parse_hex("10932"), Some(67890));
        assert_eq!(parse_hex("FF"), Some(255));
        assert_eq!(parse_hex("-ff"), Some(-255));
        assert_eq!(parse_hex("+ff"), Some(255));
        assert_eq!(parse_hex("ffffffffffffffff"), Some(-1));
        assert_eq!(parse_hex("8000000000000000"), Some(i64::MIN));
        assert_eq!(parse_hex("-8000000000000000"), Some(i64::MIN));
        assert_eq!(parse_hex("7fffffffffffffff"), Some(i64::MAX));
        for bad in [
            "",
            "-",
            "0x1",
            "++1",
            "+-1",
            "g",
            " a",
            "10000000000000000",
            "-8000000000000001",
            "+8000000000000000",
        ] {
            assert_eq!(parse_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hex_round_trips_every_bit_pattern() {
        for id in [1, -1, i64::MIN, i64::MAX, 255, -255, 0x1234_5678_9abc_def0] {
            assert_eq!(parse_hex(&format_hex(id)), Some(id), "{id}");
        }
        assert_eq!(format_hex(-1), "ffffffffffffffff");
        assert_eq!(format_hex(12345), "3039");
    }

    #[test]
    fn error_messages_are_lowercase_and_sourced() {
        let e = ExtractError::MissingIds;
        assert!(
            e.to_string()
                .starts_with("error parsing fields from text map")
        );
        assert!(e.source().is_none());
        let decode = ssf_proto::wire::decode(&[0xff_u8][..]).unwrap_err();
        let e = ExtractError::Decode(decode);
        assert_eq!(e.to_string(), "error decoding span from binary carrier");
        assert!(e.source().is_some());
    }
}
