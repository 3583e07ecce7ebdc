#!/usr/bin/env bash
# XEP-0363 uploads through one private Prosody: Prosody's own
# mod_http_file_share against satellite's upload service, same client,
# side by side with ratios, plus satellite's peak RSS over a 1 GiB upload.
# Options are passed on (see: target/release/upload-bench --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked -p satellite -p satellite-harness --bin satellite --bin upload-bench
exec target/release/upload-bench --satellite target/release/satellite "$@"
