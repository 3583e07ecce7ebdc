//! One naming scheme for every series: whatever the framework, a bundled
//! service or an example records through the `metrics` macros is called
//! `satellite_…` (a service's own: `satellite_<service>_…`).

use std::path::Path;

/// The `.rs` files under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_series_is_named_satellite_something() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["framework/src", "gateways", "examples"] {
        sources(&root.join(dir), &mut files);
    }
    let mut names = Vec::new();
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for macro_ in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(macro_) {
                let rest = text[at + macro_.len()..].trim_start();
                // Only literal names; a name built at run time is not checked.
                let Some(rest) = rest.strip_prefix('"') else {
                    continue;
                };
                let name = rest.split('"').next().unwrap_or_default();
                names.push(name.to_owned());
                let in_docs = text[..at]
                    .rsplit('\n')
                    .next()
                    .is_some_and(|l| l.contains("//"));
                if !name.starts_with("satellite_") && !in_docs {
                    wrong.push(format!("{}: {name}", file.display()));
                }
            }
        }
    }
    assert!(
        names.iter().any(|n| n == "satellite_link_up"),
        "the framework's series were not found: {names:?}"
    );
    assert!(
        wrong.is_empty(),
        "series outside the satellite_ scheme:\n{}",
        wrong.join("\n")
    );
}
