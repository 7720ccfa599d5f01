"""Run the API behind a real PgBouncer in transaction mode, far from it, as on Neon's pooler.

    python benchmarks/behind_pgbouncer.py --pgbouncer PATH --track-prepared-statements yes|no \
        --delay-ms 2.5 -- uv run uvicorn main:app --port 8000

Starts PgBouncer (pool mode transaction, 20 server connections, `max_prepared_statements` 100
or 0) in front of the PostgreSQL that `DATABASE_URL` names, puts the shared yardstick's delay
proxy between the app and PgBouncer (each direction delayed by `--delay-ms`: the app is a
network away from Neon's pooler, which sits beside the compute; 0: no proxy), then runs the
command with `DATABASE_URL` pointing at the proxy, `DB_POOLER=true` and
`DB_POOLER_PREPARED_STATEMENTS` set to match. SIGTERM or SIGINT stop all three. Used by the
yardstick targets beside it (`pooler_targets.py`).
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import make_url

DELAY_PROXY = Path(__file__).resolve().parents[2] / "shared" / "bench" / "delay_proxy.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def pgbouncer_config(root: Path, port: int, upstream_port: int, track: bool) -> Path:
    (root / "userlist.txt").write_text('"postgres" ""\n')
    config = root / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={upstream_port} user=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {root / 'userlist.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 20\nmax_client_conn = 1000\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"max_prepared_statements = {100 if track else 0}\n"
    )
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pgbouncer", required=True)
    parser.add_argument("--track-prepared-statements", choices=("yes", "no"), required=True)
    parser.add_argument("--delay-ms", type=float, default=2.5)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    track = args.track_prepared_statements == "yes"

    database = make_url(os.environ["DATABASE_URL"])
    root = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
    root.chmod(0o755)
    bouncer_port, proxy_port = free_port(), free_port()
    config = pgbouncer_config(root, bouncer_port, database.port or 5432, track)
    # PgBouncer refuses to run as root; as root it drops to the `postgres` OS user.
    as_postgres = ["-u", pwd.getpwnam("postgres").pw_name] if os.geteuid() == 0 else []
    children = [
        subprocess.Popen([args.pgbouncer, *as_postgres, str(config)], cwd=root),
    ]
    wait_for_port(bouncer_port)
    if args.delay_ms > 0:
        delay = [str(proxy_port), str(bouncer_port), str(args.delay_ms)]
        children.append(subprocess.Popen([sys.executable, str(DELAY_PROXY), *delay]))
        wait_for_port(proxy_port)
    else:
        proxy_port = bouncer_port
    environment = {
        **os.environ,
        "DATABASE_URL": database.set(port=proxy_port).render_as_string(hide_password=False),
        "DB_POOLER": "true",
        "DB_POOLER_PREPARED_STATEMENTS": "true" if track else "false",
    }
    app = subprocess.Popen(command, env=environment)
    children.insert(0, app)

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = app.wait()
    stop()
    for child in children:
        child.wait(timeout=30)
    return status


if __name__ == "__main__":
    sys.exit(main())
