//! No file in the repository cites a document the repository does not contain: every markdown
//! link `](path)` of a `.md` file, and every `*.md` named in a `.md` file or in a comment line of
//! any other text file, resolves to a file of the checkout; and no file names the interface
//! documents that lived outside the repository before `docs/` held what they said.
//!
//! Scanned: the tracked files (`git ls-files`; without git, every file but `target/` and
//! `.git/`), except `fuzz/corpus/` (fuzzer inputs) and `sdk-releases/` (released SDKs, kept
//! byte for byte). Files that are not UTF-8 are skipped.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use plughost_testkit::workspace_dir;

/// Skipped: inputs and frozen copies, not documentation.
const SKIPPED: &[&str] = &["fuzz/corpus/", "sdk-releases/", "target/"];

/// The documents that were kept outside the repository, spelled in pieces so that this file
/// does not name them itself.
fn outside_documents() -> Vec<String> {
    [["CONT", "RACT"], ["NO", "TES"], ["STY", "LE"]].iter().map(|[a, b]| format!("{a}{b}.md")).collect()
}

#[test]
fn every_cited_document_is_in_the_repository() {
    let root = workspace_dir();
    let outside = outside_documents();
    let mut problems = Vec::new();
    for relative in repository_files(root) {
        if SKIPPED.iter().any(|skipped| relative.starts_with(skipped)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(&relative)) else { continue };
        let is_markdown = relative.ends_with(".md");
        for (number, line) in text.lines().enumerate() {
            let at = format!("{relative}:{}", number + 1);
            for name in &outside {
                if line.contains(name.as_str()) {
                    problems.push(format!("{at}: names {name}, which is not part of this repository; cite docs/"));
                }
            }
            if is_markdown {
                for target in markdown_links(line) {
                    if !resolves(root, &relative, &target, false) {
                        problems.push(format!("{at}: link to {target}, which the repository does not contain"));
                    }
                }
            }
            if is_markdown || is_comment(line) {
                for mention in md_mentions(line) {
                    if !resolves(root, &relative, &mention, true) {
                        problems.push(format!("{at}: names {mention}, which the repository does not contain"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "documents cited but not in the repository:\n{}", problems.join("\n"));
}

/// The scanner's own rules, on lines like the ones it meets.
#[test]
fn the_scanner_finds_links_and_mentions() {
    assert_eq!(markdown_links("see [the guide](docs/operator.md#settings) and [x](#anchor)"), ["docs/operator.md"]);
    assert_eq!(
        markdown_links("[site](https://example.com/a.md) [mail](mailto:a@b.c) [rel](../README.md)"),
        ["../README.md"]
    );
    assert_eq!(md_mentions("`fuzz/README.md` says, and README.md, not x.mdx"), ["fuzz/README.md", "README.md"]);
    assert!(md_mentions("https://github.com/o/r/blob/main/README.md").is_empty(), "URLs are not citations");
    assert!(is_comment("    //! Settings: see docs/operator.md") && is_comment("# a shell comment"));
    assert!(!is_comment("    let path = \"missing.md\";"));
    let root = workspace_dir();
    assert!(resolves(root, "deploy/systemd/plughost.service", "docs/operator.md", true), "from the root");
    assert!(resolves(root, "docs/README.md", "operator.md", false), "beside the file");
    assert!(!resolves(root, "docs/README.md", "../../shared/contract.md", false), "outside the checkout");
    assert!(!resolves(root, "README.md", "docs/no-such-document.md", false));
}

/// Paths relative to `root`, with `/` separators.
fn repository_files(root: &Path) -> Vec<String> {
    match Command::new("git").arg("-C").arg(root).args(["ls-files", "-z"]).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|path| !path.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => {
            let mut files = Vec::new();
            walk(root, root, &mut files);
            files
        }
    }
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if entry.file_name() != ".git" && entry.file_name() != "target" {
                walk(root, &path, files);
            }
        } else if kind.is_file() {
            if let Ok(relative) = path.strip_prefix(root) {
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
}

/// A comment line of Rust, TOML, shell or a systemd unit: where prose cites documents.
fn is_comment(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("//") || line.starts_with('#') || line.starts_with("/*") || line.starts_with('*')
}

/// The targets of `[text](target)` that name a file: anchors, URLs and mail addresses are left
/// out, and so is a `#fragment`.
fn markdown_links(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].trim().trim_start_matches('<').trim_end_matches('>');
        // `[text](path "title")`: the path is the first word.
        let target = target.split_whitespace().next().unwrap_or("");
        let path = target.split('#').next().unwrap_or("");
        if !path.is_empty() && !path.contains("://") && !path.starts_with("mailto:") {
            targets.push(path.to_owned());
        }
        rest = &after[end..];
    }
    targets
}

/// Every path on the line that ends in the markdown extension, outside URLs.
fn md_mentions(line: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    let mut mentions = Vec::new();
    for word in line.split(|c: char| !is_path_char(c) && c != ':') {
        if word.contains("://") {
            continue;
        }
        for part in word.split(':') {
            let part = part.trim_end_matches('.');
            let Some(stem) = part.strip_suffix(".md") else { continue };
            let name = stem.rsplit('/').next().unwrap_or("");
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
                mentions.push(part.to_owned());
            }
        }
    }
    mentions
}

/// Whether `target`, cited in the file `from` (relative to `root`), is a file or directory of
/// the checkout: relative to the citing file's directory, or (for `from_root_too`, bare
/// mentions, which prose often gives from the repository's root) relative to the root. A path
/// leaving the checkout never resolves.
fn resolves(root: &Path, from: &str, target: &str, from_root_too: bool) -> bool {
    let base = Path::new(from).parent().unwrap_or(Path::new(""));
    let candidates: Vec<PathBuf> = match target.strip_prefix('/') {
        Some(absolute) => vec![PathBuf::from(absolute)],
        None if from_root_too => vec![base.join(target), PathBuf::from(target)],
        None => vec![base.join(target)],
    };
    candidates.into_iter().filter_map(|path| normalize(&path)).any(|path| root.join(path).exists())
}

/// `a/./b/../c` as `a/c`; `None` when the path climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}
