//! W3C Trace Context `traceparent` and `tracestate` headers (opt-in).
//!
//! A `traceparent` header reads `00-<trace-id>-<parent-id>-<flags>`: a version, a 128-bit
//! trace ID in 32 lowercase hex digits, a 64-bit span ID in 16 and the flags in 2. SSF IDs
//! are 64-bit, so they map like this, without losing what does not fit:
//!
//! * our trace ID is the **low 64 bits** of the W3C trace ID. The high 64 bits, the flags
//!   and the `tracestate` header are kept beside it in the span context
//!   ([`W3cTrace`](crate::W3cTrace)) and written back on injection, so a W3C trace
//!   continues downstream with the same 128-bit ID, its flags and its `tracestate`
//!   untouched. A trace that started here has zeros in the high bits. A W3C trace ID
//!   whose low 64 bits are zero cannot be used (SSF has no trace 0);
//! * the span ID and W3C parent-id are the same 64 bits (a negative ID has its top bit set);
//! * the sampled flag (`01`) is the trace's sampling decision: read into
//!   [`SpanContext::sampled`](crate::SpanContext::sampled), written from it (set when no
//!   decision was made, as veneur's headers say `sampled: true`). Other flag bits pass
//!   through.
//!
//! Parsing follows the W3C specification strictly: the header name matches in any case
//! (as every HTTP header name), the value must be lowercase hex; all-zero IDs, version
//! `ff`, upper-case or non-hex digits and wrong lengths are refused. A version above `00`
//! is read by its first four fields, and may append fields after the flags, as the
//! specification allows; they are not passed on (injection writes version `00`).
//!
//! `tracestate` is kept only with a valid `traceparent`, only when it is valid itself (at
//! most 32 list members of `key=value`, keys and values as the specification allows, no
//! key twice) and at most [`MAX_TRACESTATE_LEN`] bytes; otherwise it is not propagated, as
//! the specification asks. Several `tracestate` headers are joined with `,`.

/// The header name, `traceparent`.
pub const TRACEPARENT: &str = "traceparent";

/// The header name, `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` kept, in bytes.
pub const MAX_TRACESTATE_LEN: usize = 8192;

/// The most list members a valid `tracestate` holds.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// The fields of a `traceparent` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Traceparent {
    /// The version (`00` to `fe`).
    pub version: u8,
    /// The high 64 bits of the trace ID.
    pub trace_id_high: u64,
    /// The low 64 bits of the trace ID: the SSF trace ID. Never 0.
    pub trace_id: i64,
    /// The caller's span ID (W3C parent-id). Never 0.
    pub span_id: i64,
    /// The trace flags; bit `0x01` is "sampled".
    pub flags: u8,
}

impl Traceparent {
    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// The sampled bit of the trace flags.
pub const SAMPLED: u8 = 0x01;

/// The version-00 `traceparent` value for a 128-bit trace ID (`trace_id_high` and the SSF
/// `trace_id`), a span ID and flags.
///
/// ```
/// use trace_client::propagation::w3c::format_traceparent_full;
/// assert_eq!(
///     format_traceparent_full(0x0af7651916cd43dd, 0x1c80319c, 7, 0x03),
///     "00-0af7651916cd43dd000000001c80319c-0000000000000007-03"
/// );
/// ```
pub fn format_traceparent_full(
    trace_id_high: u64,
    trace_id: i64,
    span_id: i64,
    flags: u8,
) -> String {
    format!(
        "00-{trace_id_high:016x}{:016x}-{:016x}-{flags:02x}",
        trace_id as u64, span_id as u64
    )
}

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
    format_traceparent_full(0, trace_id, span_id, SAMPLED)
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
    parse_traceparent_full(value).map(|t| (t.trace_id, t.span_id))
}

/// Parses a `traceparent` value into all its fields; `None` when it is invalid or the
/// SSF trace ID (its low 64 bits) or the span ID would be zero.
///
/// ```
/// use trace_client::propagation::w3c::parse_traceparent_full;
/// let t = parse_traceparent_full("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
/// assert_eq!((t.trace_id_high, t.trace_id as u64), (0x0af7651916cd43dd, 0x8448eb211c80319c));
/// assert!(t.sampled());
/// ```
pub fn parse_traceparent_full(value: &str) -> Option<Traceparent> {
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
    (trace_id != 0 && span_id != 0).then(|| Traceparent {
        version: hex_bits(version) as u8,
        trace_id_high: hex_bits(trace_high),
        trace_id,
        span_id,
        flags: hex_bits(flags) as u8,
    })
}

/// Whether `value` is a `tracestate` this crate passes on: at most
/// [`MAX_TRACESTATE_LEN`] bytes and 32 list members, each `key=value` (or empty) with a
/// key and a value as the W3C specification allows, no key twice.
///
/// ```
/// use trace_client::propagation::w3c::is_valid_tracestate;
/// assert!(is_valid_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
/// assert!(is_valid_tracestate("tenant@vendor=x, ,b=2"));
/// assert!(!is_valid_tracestate("Upper=1"));
/// assert!(!is_valid_tracestate("a=1,a=2"));
/// ```
pub fn is_valid_tracestate(value: &str) -> bool {
    if value.len() > MAX_TRACESTATE_LEN {
        return false;
    }
    let mut keys: Vec<&str> = Vec::new();
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let Some((key, val)) = member.split_once('=') else {
            return false;
        };
        if !is_tracestate_key(key) || !is_tracestate_value(val) || keys.contains(&key) {
            return false;
        }
        if keys.len() == MAX_TRACESTATE_MEMBERS {
            return false;
        }
        keys.push(key);
    }
    true
}

fn is_key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `lcalpha 0*255(keychar)`, or `tenant@system` with `(lcalpha / DIGIT) 0*240(keychar)`
/// and `lcalpha 0*13(keychar)`.
fn is_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.split_once('@') {
        None => {
            !b.is_empty()
                && b.len() <= 256
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| is_key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| is_key_char(c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| is_key_char(c))
        }
    }
}

/// `0*255(chr) nblk-chr`: printable ASCII but `,` and `=`, spaces allowed inside.
fn is_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    let nblk = |c: u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    !b.is_empty()
        && b.len() <= 256
        && b.last().copied().is_some_and(nblk)
        && b.iter().all(|&c| c == b' ' || nblk(c))
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

    #[test]
    fn full_fields_and_future_versions() {
        let t = parse_traceparent_full(EXAMPLE).unwrap();
        assert_eq!(
            (t.version, t.flags, t.trace_id_high),
            (0, 1, 0x0af7_6519_16cd_43dd)
        );
        assert!(t.sampled());
        let v = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09-future-stuff";
        let t = parse_traceparent_full(v).unwrap();
        assert_eq!((t.version, t.flags), (0xcc, 0x09));
        let back = format_traceparent_full(t.trace_id_high, t.trace_id, t.span_id, t.flags);
        assert_eq!(
            back,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09"
        );
        // Zero low bits cannot be an SSF trace, even with high bits set.
        assert_eq!(
            parse_traceparent_full("00-0af7651916cd43dd0000000000000000-b7ad6b7169203331-01"),
            None
        );
        // Upper-case hex is refused, as the specification requires.
        assert_eq!(
            parse_traceparent_full("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"),
            None
        );
    }

    #[test]
    fn tracestate_validity() {
        for good in [
            "",
            "a=1",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            " a=1 ,\tb=2 ",
            "a=1,,b=2",
            "tenant@sys=v a l",
            "0tenant@s=x",
            "k*/_-=~!",
        ] {
            assert!(is_valid_tracestate(good), "{good:?}");
        }
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let enough = (0..32)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(is_valid_tracestate(&enough));
        let long_key = format!("{}=v", "k".repeat(257));
        let long_value = format!("k={}", "v".repeat(257));
        let huge = "a".repeat(MAX_TRACESTATE_LEN + 1);
        for bad in [
            "A=1",
            "1a=1",
            "a",
            "a=",
            "a=1,a=2",
            "a=b=c",
            "a=x,y",
            "@s=1",
            "t@=1",
            "t@S=1",
            "t@s23456789012345=1",
            "a=\u{e9}",
            &many,
            &long_key,
            &long_value,
            &huge,
        ] {
            assert!(!is_valid_tracestate(bad), "{bad:?}");
        }
    }
}
