//! Baggage on the wire: the W3C `baggage` header and OpenTracing's `ot-baggage-*` items.
//!
//! * The W3C header ([`BAGGAGE_HEADER`]) is a list `key=value;property,...`: keys are HTTP
//!   tokens, values are percent-encoded. [`parse_baggage`] reads it strictly (a header
//!   that breaks the syntax is refused whole) and drops properties, which [`Baggage`] does
//!   not keep; [`format_baggage`] writes it, percent-encoding every byte outside the
//!   characters the specification allows unencoded (and `%`).
//! * OpenTracing carriers write one entry per item, named [`OT_BAGGAGE_PREFIX`] + key,
//!   the value percent-encoded in the same way in HTTP headers and as is in text maps.
//!   Header names are case-insensitive, so such keys come back lowercase.
//!
//! Both are bounded before anything is kept: a header longer than
//! [`MAX_BYTES`], or more than
//! [`MAX_ITEMS`] items, is refused with a [`BaggageError`]
//! without being read further. A refused baggage never costs the trace: the carriers
//! still extract the span context.
//!
//! # Examples
//!
//! ```
//! use trace_client::Baggage;
//! use trace_client::propagation::baggage::{format_baggage, parse_baggage};
//!
//! let mut baggage = Baggage::new();
//! parse_baggage("tenant=acme, note=caf%C3%A9;ttl=30", &mut baggage)?;
//! assert_eq!(baggage.get("note"), Some("café"));
//! assert_eq!(format_baggage(&baggage), "tenant=acme,note=caf%C3%A9");
//! # Ok::<(), trace_client::BaggageError>(())
//! ```

use std::fmt::Write as _;

use crate::trace::baggage::{Baggage, BaggageError, MAX_BYTES, MAX_ITEMS, is_key};

/// The W3C Baggage header, `baggage`.
pub const BAGGAGE_HEADER: &str = "baggage";

/// The prefix of OpenTracing baggage entries, `ot-baggage-`.
pub const OT_BAGGAGE_PREFIX: &str = "ot-baggage-";

/// Reads a W3C `baggage` header value into `baggage` (an item replaces one of the same
/// key). Several headers are read by calling this once for each, in order.
///
/// # Errors
///
/// [`BaggageError::TooLarge`] for a value longer than [`MAX_BYTES`] or items that would
/// take `baggage` over it, [`BaggageError::TooManyItems`], [`BaggageError::Malformed`]
/// for a value that breaks the W3C syntax, [`BaggageError::InvalidEncoding`] for a bad
/// percent-escape or a value that is not UTF-8 once decoded. `baggage` is unchanged
/// then.
pub fn parse_baggage(value: &str, baggage: &mut Baggage) -> Result<(), BaggageError> {
    if value.len() > MAX_BYTES {
        return Err(BaggageError::TooLarge { limit: MAX_BYTES });
    }
    let mut parsed = baggage.clone();
    for member in value.split(',') {
        let (key, value) = parse_member(member)?;
        parsed.set(key, value)?;
    }
    *baggage = parsed;
    Ok(())
}

/// One `key=value;properties` list member, decoded.
fn parse_member(member: &str) -> Result<(&str, String), BaggageError> {
    let mut parts = member.split(';');
    let pair = parts.next().unwrap_or_default();
    let (key, value) = pair.split_once('=').ok_or(BaggageError::Malformed)?;
    let (key, value) = (trim_ows(key), trim_ows(value));
    if !is_key(key) || !value.bytes().all(is_baggage_octet) {
        return Err(BaggageError::Malformed);
    }
    for property in parts {
        let property = match property.split_once('=') {
            Some((k, v)) if trim_ows(v).bytes().all(is_baggage_octet) => trim_ows(k),
            Some(_) => return Err(BaggageError::Malformed),
            None => trim_ows(property),
        };
        if !is_key(property) {
            return Err(BaggageError::Malformed);
        }
    }
    Ok((key, percent_decode(value)?))
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The characters a W3C baggage value holds unencoded.
const fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// The W3C `baggage` header value of `baggage`: `key=value` items in order, joined by
/// `,`. Items that would take the header over [`MAX_BYTES`] (values percent-encode to up
/// to three times their length) are left out.
pub fn format_baggage(baggage: &Baggage) -> String {
    let mut out = String::new();
    for (key, value) in baggage.iter() {
        let start = out.len();
        if start > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push('=');
        percent_encode(value, &mut out);
        if out.len() > MAX_BYTES {
            out.truncate(start);
        }
    }
    out
}

/// Appends `value` to `out`, percent-encoding the bytes outside the baggage octets, and
/// `%` itself.
pub(crate) fn percent_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if is_baggage_octet(b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `value` with its `%XX` escapes decoded.
///
/// # Errors
///
/// [`BaggageError::InvalidEncoding`] for a `%` not followed by two hex digits, or bytes
/// that are not UTF-8 once decoded.
pub(crate) fn percent_decode(value: &str) -> Result<String, BaggageError> {
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(BaggageError::InvalidEncoding)?;
            let digit = |c: u8| {
                (c as char)
                    .to_digit(16)
                    .ok_or(BaggageError::InvalidEncoding)
            };
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BaggageError::InvalidEncoding)
}

/// Collects OpenTracing baggage entries (`ot-baggage-<key>`) one at a time, within the
/// limits; the first error sticks and ends the collection.
#[derive(Debug, Default)]
pub(crate) struct OtBaggage {
    baggage: Baggage,
    bytes: usize,
    error: Option<BaggageError>,
}

impl OtBaggage {
    /// Takes entry `name` = `value` if `name` is an `ot-baggage-` entry (the prefix in any
    /// case); `decode` percent-decodes the value (HTTP headers).
    pub(crate) fn offer(&mut self, name: &str, value: &str, decode: bool) {
        let Some(key) = strip_prefix_ignore_case(name, OT_BAGGAGE_PREFIX) else {
            return;
        };
        if self.error.is_some() {
            return;
        }
        self.bytes += key.len() + value.len();
        let taken = if self.baggage.len() >= MAX_ITEMS {
            Err(BaggageError::TooManyItems { limit: MAX_ITEMS })
        } else if self.bytes > MAX_BYTES {
            Err(BaggageError::TooLarge { limit: MAX_BYTES })
        } else if decode {
            percent_decode(value).and_then(|value| self.baggage.set(key, value))
        } else {
            self.baggage.set(key, value)
        };
        if let Err(e) = taken {
            self.error = Some(e);
        }
    }

    /// The items collected, or why they were refused.
    pub(crate) fn finish(self) -> Result<Baggage, BaggageError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.baggage),
        }
    }
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Vec<(String, String)>, BaggageError> {
        let mut b = Baggage::new();
        parse_baggage(value, &mut b)?;
        Ok(b.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn w3c_examples() {
        assert_eq!(
            parse("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue").unwrap(),
            pairs(&[("key1", "value1"), ("key2", "value2"), ("key3", "value3")])
        );
        assert_eq!(
            parse("userId=alice,serverNode=DF%2028,isProduction=false").unwrap(),
            pairs(&[
                ("userId", "alice"),
                ("serverNode", "DF 28"),
                ("isProduction", "false")
            ])
        );
        assert_eq!(parse("k=").unwrap(), pairs(&[("k", "")]));
        assert_eq!(parse("a=1,a=2").unwrap(), pairs(&[("a", "2")]));
        assert_eq!(parse("\tk = v\t").unwrap(), pairs(&[("k", "v")]));
    }

    #[test]
    fn malformed_is_refused_whole() {
        for bad in [
            "",
            "k",
            "=v",
            "k=v,",
            ",k=v",
            "k=v,,j=w",
            "k v=1",
            "k=a b",
            "k=\"v\"",
            "k=a,b",
            "k=v;",
            "k=v;=x",
            "k=v;p=a b",
            "é=v",
            "k=v\\",
        ] {
            assert_eq!(parse(bad), Err(BaggageError::Malformed), "{bad:?}");
        }
        for bad in ["k=%", "k=%4", "k=%zz", "k=%FF", "k=%C3"] {
            assert_eq!(parse(bad), Err(BaggageError::InvalidEncoding), "{bad:?}");
        }
        let mut b = Baggage::new();
        b.set("kept", "1").unwrap();
        assert!(parse_baggage("x=1,bad", &mut b).is_err());
        assert_eq!(b.len(), 1, "a refused header changes nothing");
    }

    #[test]
    fn limits_are_checked_before_reading() {
        let long = format!("k={}", "v".repeat(MAX_BYTES));
        assert_eq!(
            parse(&long),
            Err(BaggageError::TooLarge { limit: MAX_BYTES })
        );
        let many = (0..=MAX_ITEMS)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            parse(&many),
            Err(BaggageError::TooManyItems { limit: MAX_ITEMS })
        );
        let enough = (0..MAX_ITEMS)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(parse(&enough).unwrap().len(), MAX_ITEMS);
    }

    #[test]
    fn round_trip_and_encoding() {
        let mut b = Baggage::new();
        for (k, v) in [
            ("a", "plain"),
            ("b", "sp ace,comma;semi=eq%pct\"q\\"),
            ("c", "é✓"),
            ("d", ""),
        ] {
            b.set(k, v).unwrap();
        }
        let header = format_baggage(&b);
        assert!(
            header
                .bytes()
                .all(|c| c == b',' || c == b'=' || is_baggage_octet(c)),
            "{header}"
        );
        let mut back = Baggage::new();
        parse_baggage(&header, &mut back).unwrap();
        assert_eq!(back, b);
        assert_eq!(format_baggage(&Baggage::new()), "");
    }

    #[test]
    fn format_leaves_out_what_does_not_fit() {
        let mut b = Baggage::new();
        b.set("small", "1").unwrap();
        // 4000 bytes of spaces encode to 12000.
        b.set("big", " ".repeat(4000)).unwrap();
        b.set("last", "2").unwrap();
        assert_eq!(format_baggage(&b), "small=1,last=2");
    }

    #[test]
    fn ot_entries() {
        let mut ot = OtBaggage::default();
        ot.offer("ot-baggage-tenant", "acme", true);
        ot.offer("OT-Baggage-Note", "caf%C3%A9", true);
        ot.offer("ot-tracer-traceid", "1", true);
        ot.offer("ot-bag", "x", true);
        let b = ot.finish().unwrap();
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            [("tenant", "acme"), ("Note", "café")]
        );

        let mut ot = OtBaggage::default();
        ot.offer("ot-baggage-raw", "50%", false);
        assert_eq!(ot.finish().unwrap().get("raw"), Some("50%"));

        let mut ot = OtBaggage::default();
        for i in 0..1000 {
            ot.offer(&format!("ot-baggage-k{i}"), "v", true);
        }
        assert_eq!(
            ot.finish(),
            Err(BaggageError::TooManyItems { limit: MAX_ITEMS })
        );

        let mut ot = OtBaggage::default();
        ot.offer("ot-baggage-a", &"v".repeat(MAX_BYTES), true);
        assert_eq!(
            ot.finish(),
            Err(BaggageError::TooLarge { limit: MAX_BYTES })
        );

        for (name, err) in [
            ("ot-baggage-", BaggageError::InvalidKey),
            ("ot-baggage-a b", BaggageError::InvalidKey),
        ] {
            let mut ot = OtBaggage::default();
            ot.offer(name, "v", true);
            assert_eq!(ot.finish(), Err(err));
        }
        let mut ot = OtBaggage::default();
        ot.offer("ot-baggage-a", "%G0", true);
        assert_eq!(ot.finish(), Err(BaggageError::InvalidEncoding));
    }
}
