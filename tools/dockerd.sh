#!/usr/bin/env bash
# Start or stop a private Docker engine for the container tests (root only): host networking
# only (--bridge=none --iptables=false), its socket, pidfile and exec root under $FYERREG_DOCKERD_DIR,
# images under $FYERREG_DOCKER_ROOT (kept, so the etcd image is reused by later runs).
#   eval "$(tools/dockerd.sh start)"   # prints export DOCKER_HOST=... once `docker info` answers
#   tools/dockerd.sh stop
set -euo pipefail
DIR="${FYERREG_DOCKERD_DIR:-/tmp/fyerreg-dockerd}"
ROOT="${FYERREG_DOCKER_ROOT:-/var/lib/fyerreg-docker}"
SOCK="unix://$DIR/docker.sock"
case "${1:-}" in
start)
    command -v dockerd >/dev/null || { echo "dockerd: not installed" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "dockerd: needs root" >&2; exit 1; }
    mkdir -p "$DIR" "$ROOT"
    dockerd --bridge=none --iptables=false --ip6tables=false -H "$SOCK" --pidfile "$DIR/docker.pid" \
        --data-root "$ROOT" --exec-root "$DIR/exec" >"$DIR/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        if DOCKER_HOST="$SOCK" timeout 5 docker info >/dev/null 2>&1; then
            echo "export DOCKER_HOST=$SOCK"
            exit 0
        fi
        kill -0 $! 2>/dev/null || break
        sleep 0.5
    done
    echo "dockerd did not answer within 30 s; its log ends:" >&2
    tail -5 "$DIR/dockerd.log" >&2
    "$0" stop >&2 || true
    exit 1
    ;;
stop)
    [ -f "$DIR/docker.pid" ] || exit 0
    pid="$(cat "$DIR/docker.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    # dockerd leaves its netns mount behind; deepest first.
    awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$DIR"
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
