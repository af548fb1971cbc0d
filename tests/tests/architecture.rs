//! Both crates' module graphs are the ones `ARCHITECTURE.md` draws: every `crate::` path goes to
//! a module on a lower layer, so there is no cycle, and every module has a layer; each crate's
//! drawing has exactly the edges the imports make, no more, no fewer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// The text under `## <krate>` in `ARCHITECTURE.md`.
fn section(krate: &str) -> String {
    let text =
        std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    text.split("\n## ")
        .find(|s| s.starts_with(krate))
        .unwrap_or_else(|| panic!("no `## {krate}` section in ARCHITECTURE.md"))
        .to_string()
}

/// The edges `from --> to` of the mermaid drawing under `## <krate>`.
fn drawn_edges(krate: &str) -> BTreeSet<(String, String)> {
    let section = section(krate);
    let drawing = section
        .split("```mermaid")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("no mermaid drawing under `## {krate}` in ARCHITECTURE.md"));
    drawing
        .lines()
        .filter_map(|line| line.split_once("-->"))
        .map(|(from, to)| (from.trim().to_string(), to.trim().to_string()))
        .collect()
}

/// `module -> layer`, from the table under `## <krate>` in `ARCHITECTURE.md`.
fn layers(krate: &str) -> BTreeMap<String, usize> {
    let section = section(krate);
    let mut layers = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let [_, layer, modules, ..] = cells[..] {
            if let Ok(layer) = layer.parse::<usize>() {
                for module in modules.split(',') {
                    layers.insert(module.trim().trim_matches('`').to_string(), layer);
                }
            }
        }
    }
    layers
}

/// `(file, importing module, imported module)` for every `crate::x` path in `src` outside tests
/// and comments (a doc link is not an import).
fn imports(src: &Path) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("an entry").path();
            let rel = path.strip_prefix(src).expect("inside src").to_path_buf();
            if path.is_dir() {
                if rel != Path::new("bin") {
                    stack.push(path);
                }
                continue;
            }
            if rel == Path::new("lib.rs") || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let first = rel.components().next().expect("a component");
            let module = Path::new(first.as_os_str())
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&path).expect("a source file");
            // Unit tests may reach anywhere.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let target: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !target.is_empty() && target != module {
                        found.push((rel.display().to_string(), module.clone(), target));
                    }
                }
            }
        }
    }
    found
}

/// What is wrong with `krate`'s imports, one line each.
fn wrong_imports(krate: &str) -> Vec<String> {
    let layers = layers(krate);
    assert!(
        layers.len() >= 8,
        "the {krate} table in ARCHITECTURE.md: {layers:?}"
    );
    let imports = imports(&workspace().join(krate).join("src"));
    assert!(!imports.is_empty());
    let mut wrong = Vec::new();
    for (file, from, to) in &imports {
        match (layers.get(from), layers.get(to)) {
            (Some(a), Some(b)) if b < a => {}
            (None, _) => wrong.push(format!(
                "{krate}/src/{file}: module {from} has no layer in ARCHITECTURE.md"
            )),
            (_, None) => wrong.push(format!(
                "{krate}/src/{file}: crate::{to} is not a module with a layer in ARCHITECTURE.md (import items through their module)"
            )),
            (Some(a), Some(b)) => wrong.push(format!(
                "{krate}/src/{file}: {from} (layer {a}) imports {to} (layer {b}), not below it"
            )),
        }
    }
    wrong.sort();
    wrong.dedup();
    wrong
}

#[test]
fn the_trainer_imports_go_down_the_layers_of_architecture_md() {
    let wrong = wrong_imports("trainer");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_runtime_imports_go_down_the_layers_of_architecture_md() {
    let wrong = wrong_imports("runtime");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// What the drawing of `krate` draws that the imports lack, and lacks that they make.
fn wrong_drawing(krate: &str) -> Vec<String> {
    let imported: BTreeSet<(String, String)> = imports(&workspace().join(krate).join("src"))
        .into_iter()
        .map(|(_, from, to)| (from, to))
        .collect();
    let drawn = drawn_edges(krate);
    let mut wrong: Vec<String> = drawn
        .difference(&imported)
        .map(|(from, to)| {
            format!("{krate}: drawn {from} --> {to}, but {from} does not import {to}")
        })
        .collect();
    wrong.extend(imported.difference(&drawn).map(|(from, to)| {
        format!("{krate}: {from} imports {to}, but the drawing lacks {from} --> {to}")
    }));
    wrong
}

#[test]
fn the_trainer_drawing_has_the_edges_of_the_imports() {
    let wrong = wrong_drawing("trainer");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_runtime_drawing_has_the_edges_of_the_imports() {
    let wrong = wrong_drawing("runtime");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
