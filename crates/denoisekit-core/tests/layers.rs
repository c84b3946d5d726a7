//! The core's modules form layers that read bottom-up: base → descriptor → kernels →
//! noise → methods → pipeline → eval (as `lib.rs`'s docs list them). Code
//! outside tests may use its own layer and those below, never one above: this test reads
//! every source file and resolves each `crate::name` it uses to the layer that defines
//! `name`, from the sources themselves (a folder, a module `lib.rs` re-exports from one,
//! or the file that defines an item), so moving code cannot leave the check stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layer folders, bottom up, from the line of `lib.rs`'s docs that lists them
/// (`Layers, bottom up: `base` → ...`, which may wrap): declaration order would not do,
/// as rustfmt sorts `mod` lines.
fn layers(lib: &str) -> Vec<String> {
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join(" ");
    let start = docs
        .find("Layers, bottom up:")
        .expect("lib.rs lists the layers");
    let end = docs[start..].find('.').map_or(docs.len(), |e| start + e);
    docs[start..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .filter(|m| src().join(m).is_dir())
        .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable src") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code a file runs outside tests: up to its test module, without comments.
fn code(text: &str) -> String {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_after(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Names the file defines at its top level or anywhere (`pub fn run`, `macro_rules! x`).
fn definitions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kw in [
        "pub fn ",
        "pub struct ",
        "pub enum ",
        "pub const ",
        "pub static ",
        "pub trait ",
        "pub type ",
        "macro_rules! ",
        "pub mod ",
    ] {
        for (i, _) in text.match_indices(kw) {
            let name = ident_after(&text[i + kw.len()..]);
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn modules_use_only_their_layer_and_those_below() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let order = layers(&lib);
    let mut folders: Vec<String> = std::fs::read_dir(src())
        .expect("readable src")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    folders.sort();
    let mut listed = order.clone();
    listed.sort();
    assert_eq!(
        listed, folders,
        "every folder of src/ is a layer listed in lib.rs"
    );
    let rank = |l: &str| order.iter().position(|x| x == l);

    let mut all = Vec::new();
    files(&src(), &mut all);
    let layer_of = |p: &Path| {
        let rel = p.strip_prefix(src()).expect("under src");
        let first = rel.components().next()?.as_os_str().to_str()?.to_string();
        rank(&first).map(|_| first)
    };

    // name → layers that define it.
    let mut defined: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &order {
        defined.entry(l.clone()).or_default().push(l.clone());
    }
    // Modules re-exported at the root from a layer: `pub use base::{control, error};`.
    for line in lib.lines().filter_map(|l| l.strip_prefix("pub use ")) {
        let Some((head, rest)) = line.split_once("::") else {
            continue;
        };
        if rank(head).is_some() {
            for m in rest.trim_matches(|c| "{};".contains(c)).split(',') {
                let m = m.trim();
                if !m.is_empty() {
                    defined.entry(m.into()).or_default().push(head.into());
                }
            }
        }
    }
    for p in &all {
        if let Some(l) = layer_of(p) {
            let text = std::fs::read_to_string(p).expect("source");
            for d in definitions(&text) {
                let v = defined.entry(d).or_default();
                if !v.contains(&l) {
                    v.push(l.clone());
                }
            }
        }
    }

    let mut bad = Vec::new();
    let mut checked = 0;
    for p in &all {
        let Some(own) = layer_of(p) else { continue };
        let text = code(&std::fs::read_to_string(p).expect("source"));
        for (i, _) in text.match_indices("crate::") {
            let name = ident_after(&text[i + "crate::".len()..]);
            let Some(homes) = defined.get(&name) else {
                bad.push(format!(
                    "{}: crate::{name} is defined nowhere under src/",
                    p.display()
                ));
                continue;
            };
            checked += 1;
            // The lowest layer that defines it (a name may be re-declared above, as
            // `memory` re-exports the budget).
            let home = homes.iter().filter_map(|h| rank(h)).min().expect("ranked");
            if home > rank(&own).expect("ranked") {
                bad.push(format!(
                    "{} (layer {own}) uses crate::{name}, from layer {}",
                    p.strip_prefix(src()).unwrap_or(p).display(),
                    order[home]
                ));
            }
        }
    }
    assert!(checked > 100, "only {checked} uses of crate:: found");
    bad.sort();
    bad.dedup();
    assert!(
        bad.is_empty(),
        "uses against the layers:\n{}",
        bad.join("\n")
    );
}
