#!/usr/bin/env bash
# Runs every test: unit tests, mock-server tests, and the integration tests
# against a real Prosody, a real ejabberd and a real XMPP client (slixmpp),
# which the suite starts itself on 127.0.0.1. Installs missing Debian
# packages first (needs root or passwordless apt).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo test --workspace --all-features --locked "$@"
