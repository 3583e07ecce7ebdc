#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing (Prosody & co.),
# builds satellite, starts a private Prosody on 127.0.0.1 with satellite's
# bundled services attached (embedded defaults, no manual steps), checks
# them with a real XMPP client, and keeps running until Ctrl-C.
# Pass --check to exit right after the check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p satellite -p satellite-harness --bin satellite --bin satellite-demo
exec target/release/satellite-demo --satellite target/release/satellite "$@"
