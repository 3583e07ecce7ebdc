#!/usr/bin/env bash
# Soak: mixed load on all of satellite's bundled services in one process
# (uploads and downloads, SOCKS5 bytestreams, echo round trips, hostile
# idle sockets) through a private Prosody on loopback, 30 minutes by
# default (--minutes N); then satellite's RSS growth after warm-up, its
# open descriptors against those before the load, and the errors.
# Not part of the test command. Options: target/release/soak --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p satellite -p satellite-harness --bin satellite --bin soak
exec target/release/soak --satellite target/release/satellite "$@"
