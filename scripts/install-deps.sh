#!/usr/bin/env bash
# Installs the Debian packages the integration tests need (real XMPP servers
# and a real client), only when they are missing. Idempotent; fast (one
# dpkg-query) when everything is already present.
#
# The tests start private server instances on loopback with their own config,
# so if installing a server package started a system-wide instance, it is
# stopped again here.
set -euo pipefail

PACKAGES=(prosody prosody-modules ejabberd python3-slixmpp python3-aiohttp systemd openssl curl)

missing=()
# One dpkg-query for all packages; unknown packages make it exit non-zero.
status="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)"
for pkg in "${PACKAGES[@]}"; do
    if ! grep -qx "$pkg installed" <<<"$status"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
fi

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${missing[@]}"

# --- stop system-wide instances that the package scripts may have started ---

pid_alive() { # pidfile
    local pid
    [ -r "$1" ] || return 1
    pid="$(tr -dc '0-9' <"$1")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

systemd_running() {
    [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]
}

stop_service() { # name pidfile user
    local name="$1" pidfile="$2" user="$3"
    if systemd_running; then
        if systemctl is-active --quiet "$name"; then
            echo "install-deps.sh: stopping system-wide $name (started by its package)" >&2
            systemctl stop "$name" || true
        fi
        return 0
    fi
    if pid_alive "$pidfile"; then
        echo "install-deps.sh: stopping system-wide $name (started by its package)" >&2
        service "$name" stop || true
        # Debian 12's prosody init script matches the process name "lua5.2"
        # while prosody runs under lua5.4: fall back to the pid file.
        if pid_alive "$pidfile"; then
            start-stop-daemon --stop --quiet --oknodo --retry TERM/10/KILL/5 \
                --pidfile "$pidfile" --user "$user" || true
        fi
    fi
}

stop_service prosody /run/prosody/prosody.pid prosody
stop_service ejabberd /run/ejabberd/ejabberd.pid ejabberd
