//! The workspace README reads as plain Markdown: its Rust blocks carry no rustdoc-hidden
//! (`# …`) lines, and each is exactly the doctested copy in `tests/README-doctests.md` with
//! the hidden lines taken out, so what the README shows is what the doc tests run.

use std::path::Path;

/// The Rust blocks of a Markdown text: (fence info line, lines).
fn rust_blocks(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.starts_with("```rust") => current = Some((line.to_owned(), Vec::new())),
            None => {}
            Some(_) if line.starts_with("```") => blocks.extend(current.take()),
            Some((_, lines)) => lines.push(line.to_owned()),
        }
    }
    blocks
}

/// Whether rustdoc hides the line (`# …` or a lone `#`, after indentation).
fn hidden(line: &str) -> bool {
    let line = line.trim_start();
    line == "#" || line.starts_with("# ")
}

#[test]
fn readme_rust_blocks_have_no_hidden_lines_and_match_their_doctested_copies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let doctests = std::fs::read_to_string(root.join("README-doctests.md")).unwrap();
    let shown = rust_blocks(&readme);
    let tested = rust_blocks(&doctests);
    assert!(
        shown.len() >= 10,
        "only {} Rust blocks in the README",
        shown.len()
    );
    for (index, (_, lines)) in shown.iter().enumerate() {
        if let Some(line) = lines.iter().find(|line| hidden(line)) {
            panic!(
                "README Rust block {} shows a rustdoc-hidden line: {line}",
                index + 1
            );
        }
    }
    assert_eq!(
        shown.len(),
        tested.len(),
        "the README and tests/README-doctests.md have different numbers of Rust blocks"
    );
    for (index, ((shown_fence, shown), (tested_fence, tested))) in
        shown.iter().zip(&tested).enumerate()
    {
        let visible: Vec<&String> = tested.iter().filter(|line| !hidden(line)).collect();
        let shown: Vec<&String> = shown.iter().collect();
        assert_eq!(
            (shown_fence, &shown),
            (tested_fence, &visible),
            "README Rust block {} differs from its doctested copy (update both together)",
            index + 1
        );
    }
}

#[test]
fn hidden_lines_are_recognised_as_rustdoc_does() {
    for (line, expected) in [
        ("# let x = 1;", true),
        ("    # fn main() {", true),
        ("#", true),
        ("#[derive(Debug)]", false),
        ("#![allow(unused)]", false),
        ("let x = \"# not hidden\";", false),
    ] {
        assert_eq!(hidden(line), expected, "{line}");
    }
}
