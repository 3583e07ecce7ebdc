#!/usr/bin/env bash
# Echo round trips per second through one private Prosody: Prosody's own
# XEP-0199 ping against satellite's echo component (and a bare-bones
# component as the ceiling), with 1 and 32 in flight, plus CPU seconds.
# Options are passed on (see: target/release/satellite-bench --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p satellite -p satellite-harness --bin satellite --bin satellite-bench
exec target/release/satellite-bench --satellite target/release/satellite "$@"
