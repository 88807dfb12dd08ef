//! What the carriers share: the extraction error, the resource key, and the parsing and
//! formatting of IDs.

use std::error::Error;
use std::fmt;

/// The carrier key (and binary-carrier tag) holding the trace's resource.
pub const RESOURCE_KEY: &str = "resource";

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
