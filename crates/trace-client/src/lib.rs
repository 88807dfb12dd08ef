//! The async SSF tracing client (work in progress).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(no_crate_inject, attr(deny(warnings, rust_2018_idioms))))]

// --- client core (issue 4): modules and re-exports below this line ---

// --- end of client core ---

// --- trace API pure parts (issue 5): modules and re-exports below this line ---

// --- end of trace API ---
