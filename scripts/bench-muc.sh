#!/usr/bin/env bash
# MUC through one private Prosody: Prosody's own mod_muc against satellite's
# MUC (and a trivial fan-out component, the ceiling of any component), same
# Rust c2s client with thousands of connections, side by side with ratios:
# paced latency, blast deliveries/s, a 1000-occupant room, idle rooms' RSS,
# CPU seconds of each process; then the same paced/blast on ejabberd.
# Options are passed on (see: target/release/muc-bench --help; --quick for a
# short run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p satellite -p satellite-harness --bin satellite --bin muc-bench
exec target/release/muc-bench --satellite target/release/satellite "$@"
