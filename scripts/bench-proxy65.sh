#!/usr/bin/env bash
# Relay throughput of XEP-0065 proxies on one private Prosody: direct
# loopback, Prosody's mod_proxy65 and satellite's proxy65, with ratios.
# Options are passed on: --mb N (MB per transfer), --runs N (median of N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p satellite -p satellite-harness --bin satellite --bin proxy65-bench
exec target/release/proxy65-bench --satellite target/release/satellite "$@"
