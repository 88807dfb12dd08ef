//! The protobuf text format of spans and samples (veneur's `ProtoMarshalTo` promised it
//! and wrote binary instead): `Display` for [`SsfSpan`] and [`SsfSample`] prints what
//! protobuf's own text printer prints for the same message (`text_format.MessageToString`
//! of the protobuf project's Python library, default options; `testdata/text-format`
//! holds its output for the golden spans and the tests compare byte for byte).
//!
//! * Fields in field-number order, each set field on a line of its own; a field at its
//!   default value (0, `false`, empty) is left out, as proto3 does.
//! * Nested samples and map entries as `name {` … `}` blocks indented by two spaces; map
//!   entries sorted by key, an empty key or value left out of its entry.
//! * Enums by name (a number outside the enum as the number), strings in double quotes
//!   with `\"`, `\\`, `\'`, `\n`, `\r`, `\t` and octal escapes for the other control
//!   characters, other text as it is (UTF-8).
//! * Floats as the shortest decimal that reads back as the same 32-bit float (`0.5`,
//!   `58220.375`, `-322969.0`, `1e-30`, `inf`, `nan`).
//!
//! ```
//! use ssf_proto::SsfSpan;
//!
//! let span = SsfSpan { id: 7, name: "checkout".into(), ..Default::default() };
//! assert_eq!(span.to_string(), "id: 7\nname: \"checkout\"\n");
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use crate::{Metric, Scope, SsfSample, SsfSpan, Status};

impl fmt::Display for SsfSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut p = Printer { out: f, indent: 0 };
        p.int("version", i64::from(self.version))?;
        p.int("trace_id", self.trace_id)?;
        p.int("id", self.id)?;
        p.int("parent_id", self.parent_id)?;
        p.int("start_timestamp", self.start_timestamp)?;
        p.int("end_timestamp", self.end_timestamp)?;
        p.boolean("error", self.error)?;
        p.string("service", &self.service)?;
        for sample in &self.metrics {
            p.open("metrics")?;
            p.sample(sample)?;
            p.close()?;
        }
        p.map("tags", &self.tags)?;
        p.boolean("indicator", self.indicator)?;
        p.string("name", &self.name)?;
        p.int("root_start_timestamp", self.root_start_timestamp)
    }
}

impl fmt::Display for SsfSample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Printer { out: f, indent: 0 }.sample(self)
    }
}

struct Printer<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    indent: usize,
}

impl Printer<'_, '_> {
    fn key(&mut self, name: &str) -> fmt::Result {
        for _ in 0..self.indent {
            self.out.write_char(' ')?;
        }
        self.out.write_str(name)
    }

    fn line(&mut self, name: &str, value: fmt::Arguments<'_>) -> fmt::Result {
        self.key(name)?;
        self.out.write_str(": ")?;
        self.out.write_fmt(value)?;
        self.out.write_char('\n')
    }

    fn int(&mut self, name: &str, v: i64) -> fmt::Result {
        if v == 0 {
            return Ok(());
        }
        self.line(name, format_args!("{v}"))
    }

    fn boolean(&mut self, name: &str, v: bool) -> fmt::Result {
        if !v {
            return Ok(());
        }
        self.line(name, format_args!("true"))
    }

    fn float(&mut self, name: &str, v: f32) -> fmt::Result {
        // Presence by the bits, as protobuf's: -0.0 is printed.
        if v.to_bits() == 0 {
            return Ok(());
        }
        self.line(name, format_args!("{}", ShortestFloat(v)))
    }

    fn enumeration(&mut self, name: &str, v: i32, known: Option<&'static str>) -> fmt::Result {
        match (v, known) {
            (0, _) => Ok(()),
            (_, Some(label)) => self.line(name, format_args!("{label}")),
            (_, None) => self.line(name, format_args!("{v}")),
        }
    }

    fn string(&mut self, name: &str, v: &str) -> fmt::Result {
        if v.is_empty() {
            return Ok(());
        }
        self.line(name, format_args!("\"{}\"", Escaped(v)))
    }

    fn open(&mut self, name: &str) -> fmt::Result {
        self.key(name)?;
        self.out.write_str(" {\n")?;
        self.indent += 2;
        Ok(())
    }

    fn close(&mut self) -> fmt::Result {
        self.indent -= 2;
        self.key("}")?;
        self.out.write_char('\n')
    }

    fn map(&mut self, name: &str, m: &BTreeMap<String, String>) -> fmt::Result {
        for (k, v) in m {
            self.open(name)?;
            self.string("key", k)?;
            self.string("value", v)?;
            self.close()?;
        }
        Ok(())
    }

    fn sample(&mut self, s: &SsfSample) -> fmt::Result {
        let metric = Metric::try_from(s.metric).ok().map(|m| m.as_str_name());
        self.enumeration("metric", s.metric, metric)?;
        self.string("name", &s.name)?;
        self.float("value", s.value)?;
        self.int("timestamp", s.timestamp)?;
        self.string("message", &s.message)?;
        let status = Status::try_from(s.status).ok().map(|m| m.as_str_name());
        self.enumeration("status", s.status, status)?;
        self.float("sample_rate", s.sample_rate)?;
        self.map("tags", &s.tags)?;
        self.string("unit", &s.unit)?;
        let scope = Scope::try_from(s.scope).ok().map(|m| m.as_str_name());
        self.enumeration("scope", s.scope, scope)
    }
}

/// A string with protobuf's text-format escapes.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(|c: char| c.is_ascii() && needs_escape(c as u8)) {
            f.write_str(&rest[..i])?;
            let b = rest.as_bytes()[i];
            match b {
                b'\t' => f.write_str("\\t")?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'"' => f.write_str("\\\"")?,
                b'\'' => f.write_str("\\'")?,
                b'\\' => f.write_str("\\\\")?,
                _ => write!(f, "\\{b:03o}")?,
            }
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

fn needs_escape(b: u8) -> bool {
    !(32..127).contains(&b) || matches!(b, b'"' | b'\'' | b'\\')
}

/// A 32-bit float as protobuf's Python printer writes it: the shortest `%.{p}g` rounding
/// (p from 6 up) that reads back as the same float, then written as Python writes a
/// double (`repr`): fixed with at least one decimal when the decimal exponent is in
/// -4..16, else `d.ddde±XX`.
struct ShortestFloat(f32);

impl fmt::Display for ShortestFloat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("nan");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "inf" } else { "-inf" });
        }
        let wide = f64::from(v);
        let mut rounded = wide;
        // At 9 significant digits every f32 reads back as itself.
        for precision in 6..=9 {
            let text = format!("{:.*e}", precision - 1, wide);
            rounded = text.parse::<f64>().unwrap_or(wide);
            if rounded as f32 == v {
                break;
            }
        }
        python_repr(rounded, f)
    }
}

/// Writes `x` (finite) as Python's `repr(float)` does.
fn python_repr(x: f64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // Rust's `{:e}` gives the shortest digits that round-trip, as Python's repr uses.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    f.write_str(sign)?;
    if (-4..16).contains(&exp) {
        if exp < 0 {
            f.write_str("0.")?;
            for _ in 0..(-exp - 1) {
                f.write_char('0')?;
            }
            f.write_str(&digits)
        } else {
            let point = exp as usize + 1;
            if digits.len() > point {
                write!(f, "{}.{}", &digits[..point], &digits[point..])
            } else {
                f.write_str(&digits)?;
                for _ in digits.len()..point {
                    f.write_char('0')?;
                }
                f.write_str(".0")
            }
        }
    } else {
        let (first, rest) = digits.split_at(1);
        f.write_str(first)?;
        if !rest.is_empty() {
            write!(f, ".{rest}")?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        write!(f, "e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f32) -> String {
        ShortestFloat(v).to_string()
    }

    #[test]
    fn floats_are_written_as_protobufs_python_printer_writes_them() {
        for (v, want) in [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (-322969.0, "-322969.0"),
            (58220.375, "58220.375"),
            (0.1, "0.1"),
            (1e-30, "1e-30"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e17, "1.5e+17"),
            (123456789.0, "123456790.0"),
            (f32::MAX, "3.4028235e+38"),
            (f32::MIN_POSITIVE, "1.1754944e-38"),
            (-0.0, "-0.0"),
            (f32::INFINITY, "inf"),
            (f32::NEG_INFINITY, "-inf"),
            (f32::NAN, "nan"),
        ] {
            assert_eq!(float(v), want, "{v:e}");
        }
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_control_bytes_only() {
        let s = "a\"b'c\\d\te\nf\rg\u{1}h\u{7f}ü日🙂";
        assert_eq!(
            Escaped(s).to_string(),
            "a\\\"b\\'c\\\\d\\te\\nf\\rg\\001h\\177ü日🙂"
        );
    }

    #[test]
    fn unknown_enum_values_print_as_numbers_and_defaults_are_left_out() {
        let sample = SsfSample {
            metric: 9,
            status: 2,
            scope: 0,
            ..Default::default()
        };
        assert_eq!(sample.to_string(), "metric: 9\nstatus: CRITICAL\n");
        assert_eq!(SsfSpan::default().to_string(), "");
    }
}
