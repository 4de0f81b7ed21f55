//! The promise index (`docs/promises.md`) is a contract: every row names at least one test,
//! and every test it names exists. A reference is `` `path/to/file.rs::function_name` `` (the
//! file must define `fn function_name`) or `` `path/to/file.rs::"case name"` `` (the file must
//! contain that text: the interop suite's cases are named by strings, not functions).

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives in the workspace")
        .to_path_buf()
}

/// The backticked spans of a line.
fn code_spans(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// `(file, target)` when `span` is a test reference.
fn reference(span: &str) -> Option<(&str, &str)> {
    let (file, target) = span.split_once(".rs::")?;
    if file.contains(' ') || target.is_empty() {
        return None;
    }
    Some((&span[..file.len() + 3], target))
}

fn defines(source: &str, target: &str) -> bool {
    if let Some(text) = target.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return source.contains(text);
    }
    source
        .match_indices(&format!("fn {target}"))
        .any(|(at, m)| {
            source[at + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c == '(' || c == '<')
        })
}

#[test]
fn every_promise_names_a_test_that_exists() {
    let root = workspace_root();
    let index = std::fs::read_to_string(root.join("docs/promises.md")).expect("docs/promises.md");
    let mut rows = 0;
    let mut problems = Vec::new();
    for (number, line) in index.lines().enumerate() {
        // Table rows of the index; the header and its rule name no tests.
        let is_row =
            line.starts_with('|') && !line.starts_with("|---") && !line.starts_with("| promise");
        if !is_row {
            continue;
        }
        rows += 1;
        let references: Vec<(&str, &str)> = code_spans(line).filter_map(reference).collect();
        if references.is_empty() {
            problems.push(format!("line {}: no test named: {line}", number + 1));
        }
        for (file, target) in references {
            match std::fs::read_to_string(root.join(file)) {
                Ok(source) if defines(&source, target) => {}
                Ok(_) => problems.push(format!("line {}: {file} has no test {target}", number + 1)),
                Err(error) => problems.push(format!("line {}: {file}: {error}", number + 1)),
            }
        }
    }
    assert!(rows >= 40, "the index lists only {rows} promises");
    assert!(
        problems.is_empty(),
        "promise index problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn references_are_recognised() {
    assert_eq!(reference("a/b.rs::name"), Some(("a/b.rs", "name")));
    assert_eq!(
        reference("a/b.rs::\"a case\""),
        Some(("a/b.rs", "\"a case\""))
    );
    assert_eq!(reference("Authorization: Bearer"), None);
    assert!(defines("fn name() {}", "name"));
    assert!(!defines("fn name_longer() {}", "name"));
    assert!(defines("run(\"a case\", ..)", "\"a case\""));
}
