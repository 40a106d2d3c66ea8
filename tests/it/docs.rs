//! The project's own docs agree with the tree: the module map of
//! docs/architecture.md names every source file (by its name, or by its
//! folder for files inside a module folder), and every `.rs` file the map
//! names exists.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

fn module_map() -> String {
    let text =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    let start = text.find("## Module map").expect("a module map section");
    let block = &text[start..];
    let open = block.find("```text").expect("the map is a text block") + "```text".len();
    let close = block[open..].find("```").expect("the block ends") + open;
    block[open..close].to_owned()
}

fn source_files(dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            source_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn module_map_matches_the_tree() {
    let map = module_map();
    let words: Vec<&str> = map
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | '+' | ':' | ';'))
        .filter(|w| !w.is_empty())
        .collect();
    // The last path segment of each word, without `.rs`: `store/view.rs` ->
    // `view`, `mmtls/` -> `mmtls`, `src/pipeline.rs` -> `pipeline`.
    let stems: BTreeSet<&str> = words
        .iter()
        .filter_map(|w| w.trim_end_matches('/').rsplit('/').next())
        .map(|w| w.trim_end_matches(".rs"))
        .collect();
    let mut files = Vec::new();
    source_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 50, "found the sources: {files:?}");
    // A file is named by its stem; a folder's mod.rs and tests.rs by the folder.
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| {
            let mut parts = f.rsplit('/');
            let stem = parts.next().unwrap().trim_end_matches(".rs");
            let parent = parts.next().unwrap();
            let stem = if matches!(stem, "mod" | "tests") {
                parent
            } else {
                stem
            };
            !stems.contains(stem)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in the module map of docs/architecture.md: {missing:?}"
    );
    // And the other way: every .rs file the map names exists.
    let stale: Vec<&&str> = words
        .iter()
        .filter(|w| w.ends_with(".rs"))
        .filter(|w| {
            !files
                .iter()
                .any(|f| f.ends_with(&format!("/{}", w.trim_start_matches("src/"))))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "the module map names files that do not exist: {stale:?}"
    );
}
