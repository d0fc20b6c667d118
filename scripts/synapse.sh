#!/usr/bin/env bash
# A Matrix homeserver for the tests: installs Synapse from PyPI into a virtual
# environment (once per machine, cached), writes a loopback-only configuration for
# server name `localhost` with SQLite and raised rate limits, starts it, and registers
# the accounts the tests use. Prints the homeserver URL. Nothing leaves 127.0.0.1.
#
#   scripts/synapse.sh start DIR PORT   -> starts (or restarts) a homeserver in DIR
#   scripts/synapse.sh stop DIR         -> stops it
#   scripts/synapse.sh register DIR PORT USER PASSWORD [admin] -> an account by shared secret
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sportello"
VENV="$CACHE/synapse-venv"
PYTHON="${PYTHON:-python3}"

install() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import synapse" 2>/dev/null; then
        return
    fi
    mkdir -p "$CACHE"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==1.163.*" >&2
}

configure() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    if [ ! -f "$dir/homeserver.yaml" ]; then
        (cd "$dir" && "$VENV/bin/python" -m synapse.app.homeserver --server-name localhost \
            --config-path "$dir/homeserver.yaml" --generate-config --report-stats=no >/dev/null)
        cat >> "$dir/homeserver.yaml" <<YAML

# --- sportello tests: loopback only, no federation, no limits that tests would meet ---
listeners:
  - port: $port
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
# Open registration is safe here: the server listens on 127.0.0.1 only, for tests.
enable_registration: true
enable_registration_without_verification: true
rc_message: { per_second: 1000, burst_count: 10000 }
rc_login:
  address: { per_second: 1000, burst_count: 10000 }
  account: { per_second: 1000, burst_count: 10000 }
  failed_attempts: { per_second: 1000, burst_count: 10000 }
rc_registration: { per_second: 1000, burst_count: 10000 }
rc_joins:
  local: { per_second: 1000, burst_count: 10000 }
  remote: { per_second: 1000, burst_count: 10000 }
rc_invites:
  per_room: { per_second: 1000, burst_count: 10000 }
  per_user: { per_second: 1000, burst_count: 10000 }
  per_issuer: { per_second: 1000, burst_count: 10000 }
rc_admin_redaction: { per_second: 1000, burst_count: 10000 }
rc_room_creation: { per_second: 1000, burst_count: 10000 }
YAML
    fi
}

start() {
    local dir=$1 port=$2
    install
    configure "$dir" "$port"
    stop "$dir" || true
    # The server must hold none of this script's output: a caller reading it with $(...)
    # waits for every writer to close it.
    (cd "$dir" && exec "$VENV/bin/python" -m synapse.app.homeserver --config-path "$dir/homeserver.yaml") \
        >"$dir/synapse.log" 2>&1 </dev/null &
    echo $! >"$dir/synapse.pid"
    for _ in $(seq 1 120); do
        if curl -fsS "http://127.0.0.1:$port/_matrix/client/versions" >/dev/null 2>&1; then
            echo "http://127.0.0.1:$port"
            return
        fi
        sleep 0.5
    done
    echo "synapse did not start; see $dir/synapse.log" >&2
    exit 1
}

stop() {
    local dir=$1
    if [ -f "$dir/synapse.pid" ]; then
        kill "$(cat "$dir/synapse.pid")" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$(cat "$dir/synapse.pid")" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$(cat "$dir/synapse.pid")" 2>/dev/null || true
        rm -f "$dir/synapse.pid"
    fi
}

register() {
    local dir=$1 port=$2 user=$3 password=$4 flag=--no-admin
    if [ -n "${5:-}" ]; then flag=--admin; fi
    "$VENV/bin/register_new_matrix_user" -c "$dir/homeserver.yaml" -u "$user" -p "$password" \
        "$flag" "http://127.0.0.1:$port" >&2
}

case "${1:-}" in
    install) install ;;
    start) start "$2" "$3" ;;
    stop) stop "$2" ;;
    register) register "$2" "$3" "$4" "$5" "${6:-}" ;;
    *) echo "usage: $0 install | start DIR PORT | stop DIR | register DIR PORT USER PASSWORD [admin]" >&2; exit 2 ;;
esac
