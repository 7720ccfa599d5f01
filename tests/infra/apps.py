"""The application as production runs it: `alembic upgrade head`, then uvicorn processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config

from settings import load_settings
from tests.helpers import TEST_SECRET
from tests.infra.servers import free_port, wait_for_port
from web.protocol import UVICORN_OPTIONS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_SECONDS = 60


def alembic_cli(*arguments: str, database_url: str) -> str:
    """Run the Alembic CLI against `database_url`, as the README tells operators to."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *arguments],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"alembic {' '.join(arguments)} failed:\n{output}"
    return output


def alembic(command_name: str, revision: str, *, database_url: str) -> None:
    """`alembic <upgrade|downgrade> <revision>` in this process (the CLI costs seconds per call).

    It runs in a thread of its own because the environment script starts its own event loop.
    """
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["settings"] = load_settings(database_url=database_url)
    run = getattr(command, command_name)
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(run, config, revision).result(timeout=120)


@dataclass
class RunningApp:
    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


@contextmanager
def running_app(
    database_url: str, log_dir: Path, *, options: Sequence[str] = (), **environment: str
) -> Iterator[RunningApp]:
    """`uvicorn main:app` with the README's options (and `options`, such as `--workers 2`) in
    its own process on a free port; stopped (SIGTERM) on exit."""
    port = free_port()
    log_file = log_dir / f"uvicorn-{port}.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": TEST_SECRET,
        "BCRYPT_ROUNDS": "4",
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "INFO",
        **environment,
    }
    with log_file.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "main:app",
                *UVICORN_OPTIONS,
                *options,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    app = RunningApp(process=process, port=port, log_file=log_file)
    try:
        wait_for_port(port, alive=process)
        yield app
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        # Shown by pytest only when the test failed.
        print(f"--- uvicorn on port {port} ---\n{app.log()[-6000:]}")
