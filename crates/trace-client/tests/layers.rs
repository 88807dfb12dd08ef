//! The crate's modules form layers: a module uses only modules of lower layers, never
//! one above it, so that no two modules import each other (ARCHITECTURE.md draws the
//! layers). Inside a folder the files form layers too, with the folder's `mod.rs` (its
//! declarations and re-exports) on top.
//!
//! This reads the sources: every `crate::` path in code (comments and test modules
//! left out) and every `super::` path of a folder's file is an arrow, and each arrow
//! must point down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The crate's top-level modules, lowest layer first; modules on one line share a layer
/// (and do not use each other).
const LAYERS: &[&[&str]] = &[
    &["sync", "padded", "waiters", "sampling"],
    &["error"],
    &["stats"],
    &["encode"],
    &["message"],
    &["queue"],
    &["shared"],
    &["transport"],
    &["worker"],
    &["future"],
    &["client"],
    &["builder"],
    &["default", "metrics"],
    &["trace"],
    &["propagation"],
    &["testing"],
    &["lib"],
];

/// The files of each folder, lowest first (`mod` is the folder's `mod.rs`).
const FOLDERS: &[(&str, &[&str])] = &[
    ("sync", &["model", "mod"]),
    ("queue", &["ring", "slot", "wake", "mod", "loom"]),
    (
        "transport",
        &[
            "backoff",
            "sys_linux",
            "write",
            "ledger",
            "api",
            "link",
            "staged",
            "stream",
            "udp",
            "grpc",
            "user",
            "mod",
        ],
    ),
    ("builder", &["config", "spawn", "mod"]),
    (
        "trace",
        &[
            "clock", "id", "baggage", "context", "fields", "span", "macros", "mod",
        ],
    ),
    (
        "propagation",
        &[
            "parse", "w3c", "baggage", "binary", "http", "text_map", "mod",
        ],
    ),
];

/// Names re-exported at the crate's root, and the module that defines each: a path
/// through the root is an arrow to that module.
const ROOT_NAMES: &[(&str, &str, Option<&str>)] = &[
    ("Span", "trace", Some("span")),
    ("SpanContext", "trace", Some("context")),
    ("W3cTrace", "trace", Some("context")),
    ("Baggage", "trace", Some("baggage")),
    ("BaggageError", "trace", Some("baggage")),
    ("baggage", "trace", Some("baggage")),
    ("Sampler", "sampling", None),
    ("function_name", "trace", Some("macros")),
    ("span", "trace", Some("macros")),
    ("__private", "trace", Some("macros")),
    ("context", "trace", Some("context")),
    ("id", "trace", Some("id")),
    ("Client", "client", None),
    ("ClientBuilder", "builder", Some("mod")),
    ("DropReason", "error", None),
    ("DeliveryError", "error", None),
    ("BackendError", "error", None),
    ("TryRecordError", "error", None),
    ("Receipt", "future", None),
    ("ClientStats", "stats", None),
    ("DropCounts", "stats", None),
    ("Backend", "transport", Some("user")),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rank(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer: add it to LAYERS"))
}

fn folder_rank(folder: &str, file: &str) -> usize {
    let (_, files) = FOLDERS
        .iter()
        .find(|(f, _)| *f == folder)
        .unwrap_or_else(|| panic!("folder `{folder}` is not listed in FOLDERS"));
    files
        .iter()
        .position(|f| *f == file)
        .unwrap_or_else(|| panic!("`{folder}/{file}.rs` is not listed in FOLDERS"))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file: comments removed, and nothing from its test module on.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let without_comment = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(without_comment);
        out.push('\n');
    }
    out
}

/// The identifiers of the path starting at `rest` (after `crate::` or `super::`): the
/// first segment, and the second when there is one.
fn segments(rest: &str) -> Vec<(String, Option<String>)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(group) = rest.strip_prefix('{') {
        // `crate::{a, b::c}`: each member.
        let end = group.find('}').unwrap_or(group.len());
        return group[..end]
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .flat_map(segments)
            .collect();
    }
    let first = ident(rest);
    let after = &rest[first.len()..];
    let second = after
        .strip_prefix("::")
        .map(ident)
        .filter(|s| !s.is_empty());
    vec![(first, second)]
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Unit {
    module: String,
    /// The file within a folder (`mod` for its `mod.rs`), if the module is a folder.
    file: Option<String>,
}

fn unit_of(path: &Path) -> Unit {
    let rel = path.strip_prefix(src()).expect("under src");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    match parts.as_slice() {
        [file] => {
            // `sync.rs` beside a `sync/` folder is that folder's top.
            let is_folder_top = FOLDERS.iter().any(|(f, _)| f == file);
            Unit {
                module: file.clone(),
                file: is_folder_top.then(|| "mod".to_owned()),
            }
        }
        [folder, file] => Unit {
            module: folder.clone(),
            file: Some(file.clone()),
        },
        _ => panic!("unexpected depth: {}", rel.display()),
    }
}

/// The unit an arrow from `from` with path segments `(first, second)` points to.
fn target(from: &Unit, via_super: bool, first: &str, second: Option<&str>) -> Option<Unit> {
    let folder_files = |m: &str| FOLDERS.iter().find(|(f, _)| *f == m).map(|(_, fs)| *fs);
    if via_super {
        // A folder's file naming a sibling, or the folder's top.
        let files = folder_files(&from.module)?;
        let file = if files.contains(&first) { first } else { "mod" };
        return Some(Unit {
            module: from.module.clone(),
            file: Some(file.to_owned()),
        });
    }
    let is_module = LAYERS.iter().any(|l| l.contains(&first));
    if !is_module {
        let Some((_, module, file)) = ROOT_NAMES.iter().find(|(n, _, _)| *n == first) else {
            panic!("`crate::{first}` in {from:?}: not a module nor a known root name");
        };
        return Some(Unit {
            module: (*module).to_owned(),
            file: file.map(str::to_owned),
        });
    }
    let module = first.to_owned();
    let file = folder_files(&module).map(|files| match second {
        Some(s) if files.contains(&s) => s.to_owned(),
        _ => "mod".to_owned(),
    });
    Some(Unit { module, file })
}

#[test]
fn every_arrow_points_to_a_lower_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut arrows: BTreeMap<(Unit, Unit), String> = BTreeMap::new();
    for path in &files {
        let from = unit_of(path);
        let text = code(&std::fs::read_to_string(path).expect("readable"));
        for (prefix, via_super) in [("crate::", false), ("super::", true)] {
            let mut at = 0;
            while let Some(i) = text[at..].find(prefix) {
                let start = at + i;
                at = start + prefix.len();
                // `$crate::` in a macro is the same arrow as `crate::`.
                let before = text[..start].chars().last();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                for (first, second) in segments(&text[at..]) {
                    if first.is_empty() || first == "self" {
                        continue;
                    }
                    if let Some(to) = target(&from, via_super, &first, second.as_deref()) {
                        if to != from {
                            arrows
                                .entry((from.clone(), to))
                                .or_insert_with(|| path.display().to_string());
                        }
                    }
                }
            }
        }
    }
    assert!(
        arrows.len() > 50,
        "the sources were read ({} arrows)",
        arrows.len()
    );
    let mut wrong = Vec::new();
    for ((from, to), file) in &arrows {
        let ok = if from.module == to.module {
            let (f, t) = (from.file.as_deref(), to.file.as_deref());
            match (f, t) {
                (Some(f), Some(t)) => folder_rank(&from.module, t) < folder_rank(&from.module, f),
                _ => true,
            }
        } else {
            rank(&to.module) < rank(&from.module)
        };
        if !ok {
            wrong.push(format!("{from:?} -> {to:?} (in {file})"));
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows pointing up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_arrows_and_skips_comments() {
    let text = "use crate::queue::Queue; // crate::builder\n/// crate::client\n#[cfg(test)]\nmod tests { use crate::builder; }\n";
    let code = code(text);
    assert!(code.contains("crate::queue"));
    assert!(!code.contains("builder") && !code.contains("client"));
    assert_eq!(
        segments("{error::A, queue::{B}}"),
        [
            ("error".to_owned(), Some("A".to_owned())),
            ("queue".to_owned(), None)
        ]
    );
}
