//! Trace and parent IDs from a command-line parameter or the environment, the way
//! `veneur-emit` infers them.

use std::ffi::OsStr;
use std::fmt;

/// The environment variable carrying the trace ID into `ssf emit` (and out of it, to the
/// child of `--command`).
pub(crate) const TRACE_ID_ENV: &str = "VENEUR_EMIT_TRACE_ID";

/// The environment variable carrying the parent span ID into `ssf emit`; `--command` sets
/// it to the ID of the span it times.
pub(crate) const PARENT_ID_ENV: &str = "VENEUR_EMIT_PARENT_SPAN_ID";

/// An environment variable that should hold a decimal ID and does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEnvId {
    pub(crate) var: &'static str,
    pub(crate) value: String,
}

impl fmt::Display for BadEnvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "environment variable {} is not a decimal 64-bit ID: {:?}",
            self.var, self.value
        )
    }
}

impl std::error::Error for BadEnvId {}

/// The ID to use: the parameter when it is given and not 0; otherwise the environment
/// variable's value (decimal, surrounding blanks ignored) when it is set and not blank;
/// otherwise 0, meaning "none".
///
/// # Errors
///
/// [`BadEnvId`] when the parameter is absent or 0 and the variable is set to something
/// that is not a decimal `i64`. A bad variable is not an error when the parameter wins.
pub(crate) fn infer(
    param: Option<i64>,
    var: &'static str,
    env: Option<&OsStr>,
) -> Result<i64, BadEnvId> {
    if let Some(id) = param.filter(|&id| id != 0) {
        return Ok(id);
    }
    let Some(raw) = env else { return Ok(0) };
    let bad = || BadEnvId {
        var,
        value: raw.to_string_lossy().chars().take(64).collect(),
    };
    let text = raw.to_str().ok_or_else(bad)?.trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<i64>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn parameter_wins_over_env() {
        assert_eq!(infer(Some(5), TRACE_ID_ENV, env("7")), Ok(5));
        // Even over a bad environment value, which is then never looked at.
        assert_eq!(infer(Some(5), TRACE_ID_ENV, env("nope")), Ok(5));
        assert_eq!(infer(Some(-3), TRACE_ID_ENV, None), Ok(-3));
    }

    #[test]
    fn env_used_when_parameter_is_zero_or_absent() {
        assert_eq!(infer(Some(0), TRACE_ID_ENV, env("7")), Ok(7));
        assert_eq!(infer(None, TRACE_ID_ENV, env("7")), Ok(7));
        assert_eq!(infer(None, TRACE_ID_ENV, env(" 42\n")), Ok(42));
        assert_eq!(infer(None, TRACE_ID_ENV, env("-9")), Ok(-9));
    }

    #[test]
    fn nothing_given_is_zero() {
        assert_eq!(infer(None, TRACE_ID_ENV, None), Ok(0));
        assert_eq!(infer(Some(0), PARENT_ID_ENV, None), Ok(0));
        assert_eq!(infer(None, PARENT_ID_ENV, env("")), Ok(0));
        assert_eq!(infer(None, PARENT_ID_ENV, env("  ")), Ok(0));
        assert_eq!(infer(None, PARENT_ID_ENV, env("0")), Ok(0));
    }

    #[test]
    fn bad_env_with_parameter_zero_is_an_error() {
        for bad in ["abc", "1.5", "0x10", "99999999999999999999", "1 2"] {
            let err = infer(Some(0), PARENT_ID_ENV, env(bad)).unwrap_err();
            assert_eq!(err.var, PARENT_ID_ENV);
            assert_eq!(err.value, bad);
            assert!(err.to_string().contains(PARENT_ID_ENV), "{err}");
        }
        assert!(infer(None, TRACE_ID_ENV, env("x")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_env_is_an_error_not_a_panic() {
        use std::os::unix::ffi::OsStrExt;
        let raw = OsStr::from_bytes(b"\xff12");
        let err = infer(None, TRACE_ID_ENV, Some(raw)).unwrap_err();
        assert_eq!(err.value, "\u{fffd}12");
    }

    #[test]
    fn long_bad_values_are_shortened_in_the_message() {
        let long = "x".repeat(10_000);
        let err = infer(None, TRACE_ID_ENV, env(&long)).unwrap_err();
        assert_eq!(err.value.len(), 64);
    }
}
