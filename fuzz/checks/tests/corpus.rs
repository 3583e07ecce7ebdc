//! Every fuzz target on its seed corpus (`fuzz/corpus/<target>/`), on
//! stable: what `cargo test --workspace` runs of the fuzzing. The long runs
//! are `scripts/fuzz.sh`.

use std::path::PathBuf;

use satellite_fuzz_checks::TARGETS;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target)
}

#[test]
fn every_target_runs_its_seed_corpus() {
    for (name, check) in TARGETS {
        let dir = corpus(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{name}: only {} seeds", files.len());
        for file in files {
            let data = std::fs::read(&file).expect("seed");
            let run = std::panic::catch_unwind(|| check(&data));
            assert!(run.is_ok(), "{name} panicked on {}", file.display());
        }
    }
}

#[test]
fn every_target_has_a_libfuzzer_entry() {
    let targets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz_targets");
    for (name, _) in TARGETS {
        let source = std::fs::read_to_string(targets.join(format!("{name}.rs")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(source.contains("fuzz_target!"), "{name}");
    }
}
