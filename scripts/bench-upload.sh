#!/usr/bin/env bash
# XEP-0363 uploads through one private Prosody: Prosody's own
# mod_http_file_share against satellite's upload service, same client,
# side by side with ratios, plus satellite's peak RSS over a 1 GiB upload;
# then the curl phase: ejabberd's mod_http_upload, nginx (sendfile) serving
# the same stored file, and satellite, 5 curl runs each (min/median/max,
# CPU per GB). nginx is installed here if missing (the tests do not need it).
# Options are passed on (see: target/release/upload-bench --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if ! command -v nginx >/dev/null; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y nginx-light
fi
cargo build --release --locked -p satellite -p satellite-harness --bin satellite --bin upload-bench
exec target/release/upload-bench --satellite target/release/satellite "$@"
