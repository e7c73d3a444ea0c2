# Shared by scripts/test, scripts/demo and .ci/run. Source it; do not run it.

# One target directory outside the clone, so that repeated runs (and CI) reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/ics-target}"

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Fails with the exact command to run when Postgres or NATS is not listening.
require_services() {
    local missing=0
    if ! listening 127.0.0.1 5432; then
        echo "PostgreSQL is not listening on 127.0.0.1:5432. Start it with:" >&2
        echo "    pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
        missing=1
    fi
    if ! listening 127.0.0.1 4222; then
        echo "NATS is not listening on 127.0.0.1:4222. Start it (with JetStream) with:" >&2
        echo "    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server" >&2
        missing=1
    fi
    return "$missing"
}
