//! The `span!` macro and the function-name inference behind it.

/// Starts a span named after the enclosing function (or `name`), as a child of the task's
/// [current span context](crate::context::current), or a root when there is none.
///
/// * `span!()` names the span after the function it is written in, in the form
///   `parent::function`: the function's module (or, for a method, its type) and the
///   function's name, without the crate path, generic arguments or closure and `async`
///   block markers. A method `Cart::total` in `shop::cart` gives `Cart::total`; a free
///   function `shop::cart::checkout` gives `cart::checkout`; `main` in crate `shop` gives
///   `shop::main`; code in a closure or `async` block inside `checkout` still gives
///   `cart::checkout`.
/// * `span!(name)` uses `name` (anything `Into<String>`), like
///   [`Span::child_of_current`](crate::Span::child_of_current).
///
/// A root span started this way has the name as its resource too.
///
/// # Examples
///
/// ```
/// mod shop {
///     pub fn checkout() -> trace_client::Span {
///         trace_client::span!()
///     }
/// }
///
/// let mut span = shop::checkout();
/// assert_eq!(span.name(), "shop::checkout");
/// assert_eq!(span.parent_id(), 0);
/// # span.set_finish_on_drop(false);
///
/// let mut named = trace_client::span!("charge");
/// assert_eq!(named.name(), "charge");
/// # named.set_finish_on_drop(false);
/// ```
#[macro_export]
macro_rules! span {
    () => {
        $crate::Span::child_of_current($crate::function_name!())
    };
    ($name:expr $(,)?) => {
        $crate::Span::child_of_current($name)
    };
}

/// The name of the enclosing function in the `parent::function` form used by
/// [`span!`](crate::span!), as a `String`.
///
/// # Examples
///
/// ```
/// mod billing {
///     pub struct Invoice;
///     impl Invoice {
///         pub fn total(&self) -> String {
///             let inner = || trace_client::function_name!();
///             inner()
///         }
///     }
/// }
/// assert_eq!(billing::Invoice.total(), "Invoice::total");
/// ```
#[macro_export]
macro_rules! function_name {
    () => {{
        fn __trace_client_marker() {}
        $crate::__private::function_name_of(::core::any::type_name_of_val(&__trace_client_marker))
    }};
}

/// Shortens the type name of the marker function defined by [`function_name!`] inside the
/// function to name.
#[doc(hidden)]
pub fn function_name_of(marker_path: &str) -> String {
    let path = marker_path
        .strip_suffix("::__trace_client_marker")
        .unwrap_or(marker_path);
    let segments: Vec<&str> = split_path(path)
        .into_iter()
        .filter(|s| !s.starts_with("{{"))
        .collect();
    let start = segments.len().saturating_sub(2);
    segments[start..]
        .iter()
        .map(|s| simplify_segment(s))
        .collect::<Vec<_>>()
        .join("::")
}

/// Splits a Rust path at the `::` that are outside angle brackets.
fn split_path(path: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut depth = 0usize;
    let mut begin = 0;
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                segments.push(&path[begin..i]);
                i += 2;
                begin = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    segments.push(&path[begin..]);
    segments
}

/// `S<T>` → `S`; `<a::S<T> as b::Trait>` → `S`.
fn simplify_segment(segment: &str) -> &str {
    let inner = match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
        Some(qualified) => qualified.split(" as ").next().unwrap_or(qualified),
        None => segment,
    };
    let without_generics = inner.split('<').next().unwrap_or(inner);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "::__trace_client_marker";

    #[test]
    fn shortening_table() {
        for (path, expected) in [
            ("tn::main", "tn::main"),
            ("tn::main::{{closure}}", "tn::main"),
            ("tn::m::S<_>::method", "S::method"),
            ("<tn::m::S<u8> as tn::m::Tr>::tm", "S::tm"),
            ("<tn::m::S<a::B<c::D>> as tn::m::Tr<x::Y>>::tm", "S::tm"),
            ("tn::m::generic", "m::generic"),
            ("tn::m::asy::{{closure}}::{{closure}}", "m::asy"),
            ("a::b::c::d", "c::d"),
            ("alone", "alone"),
            ("", ""),
        ] {
            assert_eq!(function_name_of(&format!("{path}{M}")), expected, "{path}");
        }
        // Not a marker path: shortened all the same.
        assert_eq!(function_name_of("x::y::z"), "y::z");
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for path in ["::", "<<<", ">>>::a", "a::::b", "<a as>", "é::ü::ß"] {
            let _ = function_name_of(path);
        }
        assert_eq!(function_name_of("é::ü::ß"), "ü::ß");
    }

    fn free_function() -> String {
        crate::function_name!()
    }

    struct Thing;

    impl Thing {
        fn method() -> String {
            let closure = || crate::function_name!();
            closure()
        }
    }

    async fn in_async() -> String {
        async { crate::function_name!() }.await
    }

    #[tokio::test]
    async fn real_functions() {
        assert_eq!(free_function(), "tests::free_function");
        assert_eq!(Thing::method(), "Thing::method");
        assert_eq!(in_async().await, "tests::in_async");
    }

    #[tokio::test]
    async fn span_macro_names_and_links() {
        let mut root = crate::span!();
        root.set_finish_on_drop(false);
        assert_eq!(root.name(), "tests::span_macro_names_and_links");
        assert_eq!(root.resource(), root.name());
        assert_eq!(root.parent_id(), 0);
        let mut child =
            crate::context::in_span(root.context(), async { crate::span!("kid") }).await;
        child.set_finish_on_drop(false);
        assert_eq!(child.name(), "kid");
        assert_eq!(child.parent_id(), root.span_id());
        assert_eq!(child.resource(), root.name());
    }
}
