//! The trainer's module graph is the one `ARCHITECTURE.md` draws: every `crate::` import goes to
//! a module on a lower layer, so there is no cycle, and every module has a layer.

use std::collections::BTreeMap;
use std::path::Path;

/// `module -> layer`, from the table in `ARCHITECTURE.md`.
fn layers() -> BTreeMap<String, usize> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let mut layers = BTreeMap::new();
    for line in text.lines() {
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

/// `(file, importing module, imported module)` for every `crate::x` path outside tests.
fn imports() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("an entry").path();
            let rel = path.strip_prefix(&src).expect("inside src").to_path_buf();
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
            for (at, _) in code.match_indices("crate::") {
                let target: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !target.is_empty() && target != module {
                    found.push((rel.display().to_string(), module.clone(), target));
                }
            }
        }
    }
    found
}

#[test]
fn imports_go_down_the_layers_of_architecture_md() {
    let layers = layers();
    assert!(
        layers.len() >= 10,
        "the table in ARCHITECTURE.md: {layers:?}"
    );
    let imports = imports();
    assert!(!imports.is_empty());
    let mut wrong = Vec::new();
    for (file, from, to) in &imports {
        match (layers.get(from), layers.get(to)) {
            (Some(a), Some(b)) if b < a => {}
            (None, _) => wrong.push(format!(
                "{file}: module {from} has no layer in ARCHITECTURE.md"
            )),
            (_, None) => wrong.push(format!(
                "{file}: crate::{to} has no layer in ARCHITECTURE.md"
            )),
            (Some(a), Some(b)) => wrong.push(format!(
                "{file}: {from} (layer {a}) imports {to} (layer {b}), not below it"
            )),
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
