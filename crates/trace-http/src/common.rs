//! What the server and client middleware share: span names, tags and error marking.

use std::error::Error;
use std::fmt;

use http::StatusCode;
use http::request::Parts;
use trace_client::Span;

use crate::tags;

/// The longest method or path, in bytes, that the default span name and the `http.method`
/// and `http.path` tags carry; longer ones are cut at a character boundary.
///
/// A span must fit one UDP datagram (16 KiB by default), and these come from the request.
pub const MAX_TAG_LEN: usize = 1024;

/// The default span name: the request's method and path, as in `GET /users/42`. The query
/// string is left out; each part is cut to [`MAX_TAG_LEN`] bytes.
///
/// # Examples
///
/// ```
/// let (parts, ()) = http::Request::post("http://example.com/orders?id=7")
///     .body(())?
///     .into_parts();
/// assert_eq!(trace_http::default_span_name(&parts), "POST /orders");
/// # Ok::<(), http::Error>(())
/// ```
pub fn default_span_name(parts: &Parts) -> String {
    let method = truncate(parts.method.as_str());
    let path = truncate(parts.uri.path());
    let mut name = String::with_capacity(method.len() + 1 + path.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(path);
    name
}

/// The default exclusion predicate: traces every request.
pub(crate) fn exclude_nothing(_: &Parts) -> bool {
    false
}

/// `s` cut to at most [`MAX_TAG_LEN`] bytes, at a character boundary.
pub(crate) fn truncate(s: &str) -> &str {
    if s.len() <= MAX_TAG_LEN {
        return s;
    }
    let mut end = MAX_TAG_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Sets the request tags: method, path and span kind.
pub(crate) fn tag_request(span: &mut Span, parts: &Parts, kind: &'static str) {
    // Tags are copied into the span when set: borrowing costs no allocation.
    span.set_tag(tags::HTTP_METHOD, truncate(parts.method.as_str()))
        .set_tag(tags::HTTP_PATH, truncate(parts.uri.path()))
        .set_tag(tags::SPAN_KIND, kind);
}

/// Sets the status tag and marks a 5xx status as an error.
pub(crate) fn tag_status(span: &mut Span, status: StatusCode) {
    span.set_tag(tags::HTTP_STATUS_CODE, status.as_str());
    if status.is_server_error() {
        span.error(&StatusError(status));
    }
}

/// Marks the span as failed by the service error `err`: the error flag and the `error.*`
/// tags, with `error.type` naming `E`.
pub(crate) fn mark_failure<E: fmt::Display>(span: &mut Span, err: &E) {
    span.error(&Failure(err));
    span.set_tag("error.type", short_type_name(std::any::type_name::<E>()));
}

/// Marks the span as failed because the response body failed.
pub(crate) fn mark_body_failure(span: &mut Span) {
    span.error(&BodyError);
}

/// A response with a 5xx status, recorded as the span's error.
#[derive(Debug)]
struct StatusError(StatusCode);

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server error status {}", self.0)
    }
}

impl Error for StatusError {}

/// A response body that failed while being sent.
#[derive(Debug)]
struct BodyError;

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response body failed")
    }
}

impl Error for BodyError {}

/// A service error that is only known to be displayable, seen as an [`Error`].
struct Failure<'a, E>(&'a E);

impl<E: fmt::Display> fmt::Display for Failure<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: fmt::Display> fmt::Debug for Failure<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: fmt::Display> Error for Failure<'_, E> {}

/// The unqualified name of a type, without generic arguments; for a box or other smart
/// pointer the name of what it holds; `error` for trait objects and other unnamed types.
pub(crate) fn short_type_name(full: &str) -> &str {
    let name = full.trim_start_matches('&').trim_start_matches("mut ");
    if name.is_empty() || name.starts_with("dyn ") || name.starts_with(['(', '[', '*', '<']) {
        return "error";
    }
    let (path, args) = match name.split_once('<') {
        Some((path, rest)) => (path, rest.strip_suffix('>')),
        None => (name, None),
    };
    let last = path.rsplit("::").next().unwrap_or(path);
    match (last, args) {
        ("Box" | "Arc" | "Rc", Some(inner)) => short_type_name(inner.trim()),
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str) -> Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn default_name_is_method_and_path() {
        assert_eq!(default_span_name(&parts("GET", "/")), "GET /");
        assert_eq!(
            default_span_name(&parts("DELETE", "/a/b?c=d")),
            "DELETE /a/b"
        );
        assert_eq!(default_span_name(&parts("GET", "http://h:1")), "GET /");
    }

    #[test]
    fn long_paths_are_cut_at_a_char_boundary() {
        let path = format!("/{}", "é".repeat(MAX_TAG_LEN));
        let name = default_span_name(&parts("GET", &path));
        assert!(name.len() <= 4 + MAX_TAG_LEN);
        assert!(name.len() >= MAX_TAG_LEN);
        assert!(name.starts_with("GET /é"));
        assert_eq!(truncate("short"), "short");
        let ascii = "a".repeat(MAX_TAG_LEN + 10);
        assert_eq!(truncate(&ascii).len(), MAX_TAG_LEN);
    }

    #[test]
    fn request_tags_are_cut_like_the_name() {
        let method = "M".repeat(MAX_TAG_LEN + 10);
        let path = format!("/{}", "p".repeat(MAX_TAG_LEN));
        let mut span = Span::root("x");
        span.set_finish_on_drop(false);
        tag_request(&mut span, &parts(&method, &path), "server");
        assert_eq!(span.tags()[tags::HTTP_METHOD].len(), MAX_TAG_LEN);
        assert_eq!(span.tags()[tags::HTTP_PATH].len(), MAX_TAG_LEN);
        assert_eq!(&span.tags()[tags::SPAN_KIND], "server");
    }

    #[test]
    fn type_names() {
        fn name_of<T: ?Sized>() -> &'static str {
            short_type_name(std::any::type_name::<T>())
        }
        assert_eq!(name_of::<std::io::Error>(), "Error");
        assert_eq!(name_of::<Box<dyn Error + Send + Sync>>(), "error");
        assert_eq!(name_of::<std::sync::Arc<std::fmt::Error>>(), "Error");
        assert_eq!(name_of::<std::convert::Infallible>(), "Infallible");
        assert_eq!(name_of::<Vec<u8>>(), "Vec");
        assert_eq!(name_of::<(u8, u8)>(), "error");
        assert_eq!(name_of::<&str>(), "str");
        assert_eq!(short_type_name(""), "error");
    }

    #[test]
    fn marking() {
        let mut span = Span::root("x");
        span.set_finish_on_drop(false);
        tag_status(&mut span, StatusCode::NOT_FOUND);
        assert!(!span.is_error());
        assert_eq!(&span.tags()[tags::HTTP_STATUS_CODE], "404");
        tag_status(&mut span, StatusCode::BAD_GATEWAY);
        assert!(span.is_error());
        assert_eq!(
            &span.tags()["error.msg"],
            "server error status 502 Bad Gateway"
        );
        assert_eq!(&span.tags()["error.type"], "StatusError");

        let mut span = Span::root("y");
        span.set_finish_on_drop(false);
        mark_failure(&mut span, &std::io::Error::other("boom"));
        assert!(span.is_error());
        assert_eq!(&span.tags()["error.msg"], "boom");
        assert_eq!(&span.tags()["error.type"], "Error");

        let mut span = Span::root("z");
        span.set_finish_on_drop(false);
        mark_body_failure(&mut span);
        assert_eq!(&span.tags()["error.msg"], "response body failed");
    }
}
