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

/// The usage block of README's `serve` and `client` section: each flag it
/// shows is one the command's `--help` lists.
#[test]
fn readme_serve_and_client_flags_are_in_their_help() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("## `syncscope serve` and `syncscope client`")
        .expect("the serve section");
    let block = &readme[start..];
    let open = block.find("```\n").expect("a usage block") + 4;
    let close = block[open..].find("```").expect("the block ends") + open;
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncscope"))
            .args(args)
            .arg("--help")
            .output()
            .expect("run --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let serve = help(&["serve"]);
    let client = ["", "send", "send-image", "send-voice", "listen", "confirm"]
        .iter()
        .map(|sub| {
            let mut a = vec!["client"];
            a.extend(Some(*sub).filter(|s| !s.is_empty()));
            help(&a)
        })
        .collect::<String>();
    let mut command = "";
    let mut checked = 0;
    for line in block[open..close].lines() {
        let t = line.trim_start();
        if t.starts_with("syncscope serve") {
            command = "serve";
        } else if t.starts_with("syncscope client") {
            command = "client";
        }
        let text = if command == "serve" { &serve } else { &client };
        for flag in t
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            assert!(
                text.contains(flag),
                "README shows {flag} for `{command}`, its --help does not"
            );
            checked += 1;
        }
    }
    assert!(checked > 25, "read the usage block ({checked} flags)");
}

/// Every relative link of README.md and docs/*.md names a file or
/// directory of the checkout (resolved from the page that links it).
#[test]
fn relative_links_in_the_docs_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for e in fs::read_dir(root.join("docs")).expect("docs/") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let mut checked = 0;
    let mut broken = Vec::new();
    for page in &pages {
        let text = fs::read_to_string(page).expect("page");
        let mut rest = text.as_str();
        // Inline links: `](target)`, the target up to the closing parenthesis.
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let dir = page.parent().expect("a directory");
            if !dir.join(path).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
    assert!(checked >= 8, "found the links ({checked})");
}
