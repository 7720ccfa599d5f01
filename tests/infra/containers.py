"""Containers of the application's image, driven through the Docker CLI as a user would.

`TEST_IMAGE` names the image (built by `.ci/container` from the real Dockerfile); `TEST_DOCKER`
the client (default `docker`); `DOCKER_HOST` the daemon. Every container started here is removed
by whoever started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

START_TIMEOUT_SECONDS = 60
COMMAND_TIMEOUT_SECONDS = 120


def docker_client() -> str:
    return os.environ.get("TEST_DOCKER") or "docker"


def image() -> str | None:
    return os.environ.get("TEST_IMAGE") or None


def missing_docker() -> str | None:
    """Why containers cannot run here, or None."""
    if image() is None:
        return "TEST_IMAGE is not set (bash .ci/container builds the image and sets it)"
    if shutil.which(docker_client()) is None:
        return f"no Docker client ({docker_client()})"
    return None


def docker(*arguments: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    result = subprocess.run(
        [docker_client(), *arguments], capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(arguments)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout.strip()


@dataclass
class Container:
    id: str
    base_url: str

    def logs(self) -> str:
        result = subprocess.run(
            [docker_client(), "logs", self.id],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
        return result.stdout + result.stderr

    def state(self, field: str) -> str:
        return docker("inspect", "-f", f"{{{{.State.{field}}}}}", self.id)

    def running(self) -> bool:
        return self.state("Running") == "true"

    def exec(self, *command: str) -> str:
        return docker("exec", self.id, *command)

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> httpx.Response:
        """Poll `/readyz` until it answers 200; fail with the logs if the container exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=5)
            except httpx.HTTPError as exc:
                last = repr(exc)
            else:
                if response.status_code == 200:
                    return response
                last = f"{response.status_code} {response.text}"
            if not self.running():
                raise AssertionError(f"the container exited:\n{self.logs()}")
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout} s ({last}):\n{self.logs()}")

    def wait_exit(self, timeout: float = START_TIMEOUT_SECONDS) -> int:
        return int(docker("wait", self.id, timeout=timeout))


def create(*arguments: str, port: int, host: str = "127.0.0.1") -> Container:
    """`docker create` of the image (not started): `arguments` go before the image name."""
    assert image() is not None
    container_id = docker("create", *arguments, image())
    return Container(id=container_id, base_url=f"http://{host}:{port}")


@contextmanager
def removed(*containers: Container) -> Iterator[None]:
    """Remove the containers on the way out, showing their logs (pytest prints them on failure)."""
    try:
        yield
    finally:
        for container in containers:
            print(f"--- container {container.id[:12]} ---\n{container.logs()[-6000:]}")
            docker("rm", "-f", container.id, check=False)


def start(*containers: Container) -> None:
    """Start them with one command, so their starts overlap."""
    docker("start", *(container.id for container in containers))
