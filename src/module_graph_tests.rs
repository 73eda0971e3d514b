//! The dependency direction between top-level modules, checked from the source.
//!
//! Reads every file of the crate's module tree (from `src/lib.rs`, following `mod` declarations
//! and `#[path]`), collects each `crate::<module>` path (`use crate::x::…`, `use crate::{x, y}`,
//! `crate::x::f()` in expressions) and fails on any cycle between top-level modules, naming the modules and a file:line of each edge.
//!
//! Test-only code (`#[cfg(test)]` modules, inline or in their own file) is left out: a test may
//! reach up to check that two layers agree (a CRD's printer columns against the CLI's table),
//! which is no dependency of the product. Comments and string literals are blanked before
//! scanning, so a doc line mentioning `crate::x` is no edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One edge: the first place seen where `from` names `to`.
type Edges = BTreeMap<(String, String), String>;

#[test]
fn top_level_modules_have_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = crate_edges(&src);
    assert!(
        edges.len() > 20,
        "the scan found only {} edges; is the parser broken?",
        edges.len()
    );
    let cycles = cycles(&edges);
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn a_cycle_is_found_and_named_with_its_edges() {
    let mut edges = Edges::new();
    edges.insert(("a".into(), "b".into()), "src/a.rs:3".into());
    edges.insert(("b".into(), "c".into()), "src/b/x.rs:9".into());
    edges.insert(("c".into(), "a".into()), "src/c.rs:1".into());
    edges.insert(("c".into(), "d".into()), "src/c.rs:2".into());
    let found = cycles(&edges);
    assert_eq!(found.len(), 1, "{found:?}");
    for needle in [
        "a -> b (src/a.rs:3)",
        "b -> c (src/b/x.rs:9)",
        "c -> a (src/c.rs:1)",
    ] {
        assert!(found[0].contains(needle), "{} lacks {needle}", found[0]);
    }
    assert!(!found[0].contains("-> d"), "{}", found[0]);
}

#[test]
fn the_scanner_sees_grouped_and_inline_paths_but_not_comments_strings_or_tests() {
    let text = r#"
use crate::alpha::X;
use crate::{beta::Y, gamma};
// use crate::comment;
/// see `crate::doc`
fn f() { let s = "crate::string"; crate::delta::run(); }
#[cfg(test)]
mod tests {
    use crate::testonly::Z;
    fn g() { let c = '{'; }
}
fn h() { crate::epsilon::go(); }
"#;
    let mut found = BTreeMap::new();
    let (_, children) = scan_file(text, |name, line| {
        found.entry(name.to_string()).or_insert(line);
    });
    assert!(children.is_empty());
    let names: Vec<_> = found.keys().map(String::as_str).collect();
    assert_eq!(names, ["alpha", "beta", "delta", "epsilon", "gamma"]);
    assert_eq!(found["epsilon"], 12);
}

/// Every edge between different top-level modules in the module tree under `src`.
fn crate_edges(src: &Path) -> Edges {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    let (_, tops) = scan_file(&lib, |_, _| {});
    let mut edges = Edges::new();
    for (top, attr_path) in tops {
        let file = child_file(&src.join("lib.rs"), &top, attr_path.as_deref());
        walk(src, &top, &file, &mut edges);
    }
    edges
}

fn walk(src: &Path, top: &str, file: &Path, edges: &mut Edges) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file:?}: {e}"));
    let shown = file
        .strip_prefix(src.parent().unwrap())
        .unwrap_or(file)
        .display()
        .to_string();
    let (_, children) = scan_file(&text, |to, line| {
        if to != top && to != "self" && to != "super" {
            let key = (top.to_string(), to.to_string());
            edges
                .entry(key)
                .or_insert_with(|| format!("{shown}:{line}"));
        }
    });
    for (child, attr_path) in children {
        walk(
            src,
            top,
            &child_file(file, &child, attr_path.as_deref()),
            edges,
        );
    }
}

/// Where `mod name;` declared in `parent` lives (the 2018 layout, or `#[path]` beside `parent`).
fn child_file(parent: &Path, name: &str, attr_path: Option<&str>) -> PathBuf {
    let dir = parent.parent().unwrap();
    if let Some(p) = attr_path {
        return dir.join(p);
    }
    let stem = parent.file_stem().unwrap().to_str().unwrap();
    let base = match stem {
        "lib" | "main" | "mod" => dir.to_path_buf(),
        _ => dir.join(stem),
    };
    let flat = base.join(format!("{name}.rs"));
    if flat.exists() {
        flat
    } else {
        base.join(name).join("mod.rs")
    }
}

/// Scans one file: calls `edge(module, line)` for each crate-root path outside test code and
/// returns the non-test out-of-line child modules (name, `#[path]`).
fn scan_file(text: &str, mut edge: impl FnMut(&str, usize)) -> ((), Vec<(String, Option<String>)>) {
    let clean = blank_comments_and_strings(text);
    let raw_lines: Vec<&str> = text.lines().collect();
    let lines: Vec<&str> = clean.lines().collect();
    let skip = skip_ranges(&lines);
    let mut children = Vec::new();
    let (mut cfg_test, mut attr_path) = (false, None);
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if skip.iter().any(|&(a, b)| a <= i && i <= b) {
            continue;
        }
        if line.starts_with("#[") {
            cfg_test |= line.replace(' ', "").starts_with("#[cfg(test)]");
            if line.starts_with("#[path") {
                attr_path = raw_lines[i].split('"').nth(1).map(str::to_string);
            }
            continue;
        }
        if let Some(name) = mod_decl(line)
            && !cfg_test
            && line.ends_with(';')
        {
            children.push((name.to_string(), attr_path.take()));
        }
        (cfg_test, attr_path) = (false, None);
    }
    paths_to_root(&lines, &skip, &mut edge);
    ((), children)
}

/// `mod x;` / `pub(crate) mod x {` -> `x`.
fn mod_decl(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("pub ")
        .or_else(|| line.strip_prefix("pub(crate) "));
    let rest = rest.unwrap_or(line).strip_prefix("mod ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// Line ranges (0-based, inclusive) of inline `#[cfg(test)] mod … { … }` blocks.
fn skip_ranges(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let is_test_mod = line.ends_with('{')
            && mod_decl(line).is_some()
            && i > 0
            && lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim().starts_with("#["))
                .any(|l| l.replace(' ', "").contains("#[cfg(test)]"));
        if !is_test_mod {
            i += 1;
            continue;
        }
        let mut depth = 0i64;
        let start = i;
        loop {
            depth += lines[i].matches('{').count() as i64 - lines[i].matches('}').count() as i64;
            if depth <= 0 || i + 1 == lines.len() {
                break;
            }
            i += 1;
        }
        ranges.push((start, i));
        i += 1;
    }
    ranges
}

/// Reports the first segment after each `crate::` (or each item of `crate::{a, b::c}`).
fn paths_to_root(lines: &[&str], skip: &[(usize, usize)], edge: &mut impl FnMut(&str, usize)) {
    let text = lines.join("\n");
    let line_of = |pos: usize| text[..pos].matches('\n').count();
    let skipped = |line: usize| skip.iter().any(|&(a, b)| a <= line && line <= b);
    for (pos, _) in text.match_indices("crate::") {
        let before = text[..pos].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let line = line_of(pos);
        if skipped(line) {
            continue;
        }
        let rest = &text[pos + "crate::".len()..];
        for name in first_segments(rest) {
            edge(name, line + 1);
        }
    }
}

/// `alpha::X` -> [alpha]; `{beta::Y, gamma}` -> [beta, gamma] (top level of the group only).
fn first_segments(rest: &str) -> Vec<&str> {
    if !rest.starts_with('{') {
        return vec![ident(rest)];
    }
    let mut out = Vec::new();
    let (mut depth, mut at_item) = (0, true);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => {
                depth += 1;
                at_item = depth == 1;
            }
            '}' if depth == 1 => break,
            '}' => depth -= 1,
            ',' if depth == 1 => at_item = true,
            c if at_item && depth == 1 && !c.is_whitespace() => {
                out.push(ident(&rest[i..]));
                at_item = false;
            }
            _ => {}
        }
    }
    out
}

/// The text with comments and the contents of string and char literals replaced by spaces,
/// newlines kept, so line numbers and braces outside literals stay as they were.
fn blank_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        let end = if c == '/' && next == Some('/') {
            chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p)
        } else if c == '/' && next == Some('*') {
            block_comment_end(&chars, i)
        } else if c == '"' || (c == 'r' && matches!(next, Some('"' | '#')) && is_raw(&chars, i)) {
            string_end(&chars, i)
        } else if c == '\'' {
            char_literal_end(&chars, i).unwrap_or(i + 1)
        } else {
            i + 1
        };
        if end == i + 1 {
            out.push(c);
        } else {
            out.extend(chars[i..end].iter().map(|&c| blank(c)));
        }
        i = end;
    }
    out
}

fn block_comment_end(chars: &[char], start: usize) -> usize {
    let (mut depth, mut i) = (0, start);
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => (depth, i) = (depth + 1, i + 2),
            ('*', '/') if depth == 1 => return i + 2,
            ('*', '/') => (depth, i) = (depth - 1, i + 2),
            _ => i += 1,
        }
    }
    chars.len()
}

/// `r"…"` / `r#"…"#` start at `i` (and `r` is not the end of an identifier).
fn is_raw(chars: &[char], i: usize) -> bool {
    let prev = i.checked_sub(1).map(|p| chars[p]);
    let after_hashes = chars[i + 1..]
        .iter()
        .position(|&c| c != '#')
        .map(|p| chars[i + 1 + p]);
    !prev.is_some_and(|c| c.is_alphanumeric() || c == '_') && after_hashes == Some('"')
}

fn string_end(chars: &[char], start: usize) -> usize {
    if chars[start] == 'r' {
        let hashes = chars[start + 1..].iter().take_while(|&&c| c == '#').count();
        let body = start + 2 + hashes;
        let close: Vec<char> = std::iter::once('"')
            .chain(std::iter::repeat_n('#', hashes))
            .collect();
        return (body..chars.len())
            .find(|&j| chars[j..].starts_with(&close))
            .map_or(chars.len(), |j| j + close.len());
    }
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// `'x'`, `'\n'`, `'\u{..}'` -> the index after the closing quote; `None` for a lifetime.
fn char_literal_end(chars: &[char], start: usize) -> Option<usize> {
    match chars.get(start + 1)? {
        '\\' => (start + 2..chars.len().min(start + 12))
            .find(|&j| chars[j] == '\'')
            .map(|j| j + 1),
        _ if chars.get(start + 2) == Some(&'\'') => Some(start + 3),
        _ => None,
    }
}

/// Every cycle between modules (one per strongly connected component of more than one
/// module), written as its modules and each edge inside it with the file:line that makes it.
fn cycles(edges: &Edges) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().insert(to);
        graph.entry(to).or_default();
    }
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(m) = todo.pop() {
            for &next in &graph[m] {
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<&str>> = graph.keys().map(|&m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &m in graph.keys() {
        if done.contains(m) || !reaches[m].contains(m) {
            continue;
        }
        let component: BTreeSet<&str> = reaches[m]
            .iter()
            .copied()
            .filter(|&o| reaches[o].contains(m))
            .collect();
        done.extend(component.iter().copied());
        let inside: Vec<String> = edges
            .iter()
            .filter(|((f, t), _)| component.contains(f.as_str()) && component.contains(t.as_str()))
            .map(|((f, t), at)| format!("  {f} -> {t} ({at})"))
            .collect();
        let names: Vec<&str> = component.into_iter().collect();
        out.push(format!(
            "cycle among {}:\n{}",
            names.join(", "),
            inside.join("\n")
        ));
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_'));
    &s[..end.unwrap_or(s.len())]
}
