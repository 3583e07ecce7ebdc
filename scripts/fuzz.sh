#!/usr/bin/env bash
# Runs satellite's fuzz targets for a long time each (libFuzzer through
# cargo-fuzz, on nightly Rust). The seeds in fuzz/corpus/<target>/ are read,
# never written: what the fuzzer finds goes to target/fuzz-corpus/<target>/,
# crashes to fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh                       # every target, 10 minutes each
#   bash scripts/fuzz.sh 60 socks5_handshake   # one target for 60 s
#   FUZZ_JOBS=2 bash scripts/fuzz.sh 600       # two processes per target
#
# Needs: rustup toolchain install nightly; cargo install cargo-fuzz.
# `cargo test -p satellite-fuzz-checks` replays the seeds on stable.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
jobs=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    # libFuzzer then logs each job to fuzz-<n>.log in fuzz/.
    jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi
work="${FUZZ_WORK:-target/fuzz-corpus}"
# Built once; the binaries are run directly (`cargo fuzz run` would rebuild
# before every target whenever a source file changed meanwhile).
(cd fuzz && cargo +nightly fuzz build)
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "fuzz/artifacts/$t"
    echo "== $t: ${seconds}s"
    "fuzz/target/$host/release/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$seconds" "${jobs[@]}" -print_final_stats=1 -max_len=4096 \
        "$work/$t" "fuzz/corpus/$t" 2>&1 | tee "$work/$t.log" |
        grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|panicked|ERROR|SUMMARY" || true
done
