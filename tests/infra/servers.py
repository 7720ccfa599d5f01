"""Private PostgreSQL servers, and PgBouncer in front of one, for tests that need a server
configured their own way: TLS only, stopped and restarted, behind a transaction pooler.

Each server lives in its own temporary directory, listens on a free loopback port, runs as the
`postgres` OS user when we are root, and is stopped and deleted by whoever started it. The
machine's shared server is never touched.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

START_TIMEOUT_SECONDS = 60
TLS_USER = "todo_owner"
TLS_PASSWORD = "neon-like password/with:specials"


def postgres_bin_dir() -> Path | None:
    """`PG_BIN`, or the newest `/usr/lib/postgresql/<version>/bin` with `initdb`."""
    configured = os.environ.get("PG_BIN")
    if configured:
        return Path(configured)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def missing_tools(*, pgbouncer: bool = False, openssl: bool = False) -> str | None:
    """Why private servers cannot run here, or None when everything needed is installed."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0 and not _has_user("postgres"):
        return "running as root but there is no `postgres` OS user to run PostgreSQL as"
    if pgbouncer and shutil.which(pgbouncer_binary()) is None:
        return f"pgbouncer is not installed ({pgbouncer_binary()})"
    if openssl and shutil.which("openssl") is None:
        return "openssl is not installed"
    return None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(int(low), int(high) + 1)


def free_port() -> int:
    """A port free now, for a server started next, taken from below the kernel's ephemeral
    range: an outgoing connection (thousands during a run) is never given it in the moment
    between this check and the server's bind, as it could be one the kernel picked itself."""
    ephemeral = _ephemeral_ports()
    candidates = range(20000, ephemeral.start) if ephemeral.start > 21000 else range(10000, 20000)
    for _ in range(100):
        port = random.choice(candidates)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {candidates}")


def wait_for_port(port: int, *, alive: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"process exited with {alive.returncode} before listening")
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT_SECONDS}s")


class _Runner:
    """Runs commands as the `postgres` OS user when we are root (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres" if self.as_postgres else None

    def own(self, path: Path) -> None:
        if self.as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def run(self, *command: str | Path, cwd: Path) -> None:
        result = subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            user=self.user,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS * 2,
            env=_child_environment(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(str(part) for part in command)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )

    def popen(self, *command: str | Path, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            return subprocess.Popen(
                [str(part) for part in command],
                cwd=cwd,
                user=self.user,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=_child_environment(),
            )


def _child_environment() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    return {key: os.environ[key] for key in keep if key in os.environ}


@dataclass
class PostgresServer:
    """One initdb'd cluster. `tls=True`: only TLS connections, password (SCRAM) authentication."""

    root: Path
    port: int
    tls: bool = False

    def __post_init__(self) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries are not installed")
        self.bin_dir = bin_dir
        self.runner = _Runner()

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def certificate(self) -> Path:
        """The self-signed server certificate (TLS servers); a client's `sslrootcert`."""
        return self.root / "server.crt"

    @property
    def user(self) -> str:
        return TLS_USER if self.tls else "postgres"

    def url(self, database: str = "postgres", **query: str) -> str:
        """A `postgresql://` URL to this server, as a user would paste it."""
        credentials = f"{TLS_USER}:{quote(TLS_PASSWORD, safe='')}" if self.tls else "postgres"
        suffix = f"?{urlencode(query)}" if query else ""
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}{suffix}"

    def neon_url(self, database: str = "postgres") -> str:
        """The form Neon's console shows: TLS required, channel binding required."""
        return self.url(database, sslmode="require", channel_binding="require")

    def init(self) -> None:
        self.runner.own(self.root)
        self.runner.run(
            self.bin_dir / "initdb",
            "-D",
            self.data_dir,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            # A UTF-8 character type, as on Neon and Debian's clusters: lower() folds non-ASCII
            # letters, which case-insensitive search relies on.
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
            cwd=self.root,
        )
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "100",
            "fsync": "off",
            "full_page_writes": "off",
            "log_min_messages": "warning",
        }
        host_rules = ["host all all 127.0.0.1/32 trust"]
        if self.tls:
            self._make_certificate()
            settings |= {
                "ssl": "on",
                "ssl_cert_file": f"'{self.certificate}'",
                "ssl_key_file": f"'{self.root / 'server.key'}'",
                "password_encryption": "'scram-sha-256'",
            }
            host_rules = ["hostssl all all 127.0.0.1/32 scram-sha-256"]
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n" + "".join(f"{rule}\n" for rule in host_rules)
        )

    def _make_certificate(self) -> None:
        """A self-signed certificate for `localhost` (not for 127.0.0.1: verify-full must fail)."""
        key = self.root / "server.key"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(self.certificate),
            ],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_SECONDS,
        )
        key.chmod(0o600)
        self.runner.own(key)
        self.runner.own(self.certificate)

    def start(self) -> None:
        self.runner.run(
            self.bin_dir / "pg_ctl",
            "-D",
            self.data_dir,
            "-l",
            self.log_file,
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "start",
            cwd=self.root,
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back and disconnects clients; `immediate` is a crash (WAL replay next)."""
        self.runner.run(
            self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", mode, "-w", "stop", cwd=self.root
        )

    def is_running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def psql(self, sql: str, database: str = "postgres") -> None:
        """Run `sql` as the superuser over the Unix socket (allowed on every server we make)."""
        self.runner.run(
            self.bin_dir / "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.root,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
            cwd=self.root,
        )

    def create_tls_user(self) -> None:
        password = TLS_PASSWORD.replace("'", "''")
        self.psql(f"CREATE ROLE {TLS_USER} LOGIN CREATEDB PASSWORD '{password}'")


def _temporary_root(prefix: str) -> Path:
    # Not under pytest's tmp_path: its parents are private to root and `postgres` must enter.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


@contextmanager
def postgres_server(*, tls: bool = False) -> Iterator[PostgresServer]:
    """A fresh, running private PostgreSQL; stopped and deleted on exit."""
    root = _temporary_root("todo-pg-")
    server = PostgresServer(root=root, port=free_port(), tls=tls)
    try:
        server.init()
        server.start()
        if tls:
            server.create_tls_user()
        yield server
    finally:
        if server.is_running():
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def pgbouncer_binary() -> str:
    """`TEST_PGBOUNCER` (a path), else the `pgbouncer` on PATH (Debian 12's is 1.18)."""
    return os.environ.get("TEST_PGBOUNCER") or "pgbouncer"


def pgbouncer_version(binary: str) -> tuple[int, ...]:
    first_line = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()[0]  # "PgBouncer 1.24.1"
    return tuple(int(part) for part in first_line.split()[1].split("."))


def pgbouncer_tracks_prepared_statements(binary: str) -> bool:
    """PgBouncer 1.21 and later can track protocol-level prepared statements."""
    return pgbouncer_version(binary) >= (1, 21)


@dataclass(frozen=True)
class PgBouncer:
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@contextmanager
def pgbouncer(
    backend: PostgresServer, *, pool_size: int = 4, track_prepared_statements: bool | None = None
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of `backend`, every database name passed through.

    The server pool is deliberately small, so client connections constantly share and swap
    server connections: the strict case for anything that relies on session state.
    `track_prepared_statements`: whether it tracks protocol-level prepared statements, as
    Neon's does (`max_prepared_statements`; None: when the binary can, 1.21 and later).
    """
    binary = pgbouncer_binary()
    can_track = pgbouncer_tracks_prepared_statements(binary)
    if track_prepared_statements and not can_track:
        raise RuntimeError(f"{binary} is older than 1.21: it cannot track prepared statements")
    tracks = can_track if track_prepared_statements is None else track_prepared_statements
    tracking_line = f"max_prepared_statements = {100 if tracks else 0}\n" if can_track else ""
    root = _temporary_root("todo-pgbouncer-")
    runner = _Runner()
    runner.own(root)
    port = free_port()
    (root / "userlist.txt").write_text('"postgres" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host=127.0.0.1 port={backend.port} user=postgres\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {root / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 500\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"pidfile = {root / 'pgbouncer.pid'}\n" + tracking_line
    )
    process = runner.popen(binary, root / "pgbouncer.ini", cwd=root, log=root / "pgbouncer.log")
    try:
        wait_for_port(port, alive=process)
        yield PgBouncer(port=port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
