"""The real Better Auth, as a Next.js frontend runs it, issuing JWTs for the infra tests.

`tests/infra/better_auth/` is a Node project pinning `better-auth` (package.json, package-lock.json
from the npm registry) and `issuer.mjs`, a server with the JWT plugin and the memory adapter behind
`toNodeHandler(auth)`. Its `node_modules` is installed with `npm ci`: into that folder (ignored by
git) when needed, or, under `.ci/run`, into a temporary folder named by `BETTER_AUTH_ISSUER_DIR`
(issuer.mjs is copied there). Each issuer runs in its own process on a free loopback port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from settings import url_origin

PROJECT = Path(__file__).resolve().parent / "better_auth"
SCRIPT = "issuer.mjs"
READY_PREFIX = "ISSUER_READY "
START_TIMEOUT_SECONDS = 30
INSTALL_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 10
MINIMUM_NODE = "20.19"  # package.json `engines`
PASSWORD = "correct horse battery staple"
SECRET = "better-auth-issuer-secret-for-the-infra-tests-0123456789"


def pinned_version() -> str:
    dependencies = json.loads((PROJECT / "package.json").read_text())["dependencies"]
    return dependencies["better-auth"]


def missing_node() -> str | None:
    """Why Node cannot run the pinned Better Auth here, or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Better Auth needs Node {MINIMUM_NODE}+)"
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numbers < tuple(int(part) for part in MINIMUM_NODE.split(".")):
        # @noble/hashes and @noble/ciphers (Better Auth's crypto) need 20.19; Debian 12's
        # nodejs package is 18.
        return f"node {version} is too old: the pinned Better Auth needs Node {MINIMUM_NODE}+"
    return None


def _installed_version(directory: Path) -> str | None:
    manifest = directory / "node_modules" / "better-auth" / "package.json"
    try:
        return json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def prepare_project() -> Path:
    """A folder with issuer.mjs and the pinned packages installed (`npm ci` when needed)."""
    configured = os.environ.get("BETTER_AUTH_ISSUER_DIR", "").strip()
    directory = Path(configured) if configured else PROJECT
    if directory != PROJECT:
        for name in ("package.json", "package-lock.json", SCRIPT):
            shutil.copyfile(PROJECT / name, directory / name)
    if _installed_version(directory) != pinned_version():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm ci in {directory} failed:\n{result.stdout}\n{result.stderr}")
    installed = _installed_version(directory)
    if installed != pinned_version():
        raise RuntimeError(
            f"{directory}: better-auth {installed} installed, {pinned_version()} pinned"
        )
    return directory


@dataclass
class Issuer:
    """A running Better Auth: `base_url` is its `baseURL`, `auth_url` where its routes are."""

    process: subprocess.Popen[bytes]
    base_url: str
    auth_url: str
    version: str
    log_file: Path
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """What the JWT plugin puts in `iss` and `aud` unless told otherwise."""
        return url_origin(self.base_url)

    @property
    def jwks_url(self) -> str:
        return self.auth_url + "/jwks"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def _wait_until_ready(process: subprocess.Popen[bytes], log_file: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for line in log_file.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                return json.loads(line.removeprefix(READY_PREFIX))
        if process.poll() is not None:
            raise RuntimeError(
                f"the Better Auth issuer exited with {process.returncode}:\n{log_file.read_text()}"
            )
        time.sleep(0.05)
    raise RuntimeError(f"the Better Auth issuer is not ready after {START_TIMEOUT_SECONDS}s")


@contextmanager
def running_issuer(project: Path, log_dir: Path, **settings: str) -> Iterator[Issuer]:
    """`node issuer.mjs` with ISSUER_* `settings` (see issuer.mjs); stopped on exit."""
    log_file = log_dir / f"issuer-{len(list(log_dir.iterdir()))}.log"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "NODE_ENV": "test",
        "BETTER_AUTH_SECRET": SECRET,
        **settings,
    }
    with log_file.open("wb") as output:
        process = subprocess.Popen(
            ["node", SCRIPT],
            cwd=project,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = _wait_until_ready(process, log_file)
        yield Issuer(
            process=process,
            base_url=ready["baseURL"],
            auth_url=ready["authURL"],
            version=ready["version"],
            log_file=log_file,
            settings=settings,
        )
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        # Shown by pytest only when a test failed.
        print(f"--- Better Auth issuer {settings} ---\n{log_file.read_text()[-4000:]}")


class BetterAuthUser:
    """An account signed up through Better Auth's HTTP API, with its session cookie.

    `session_token` is the opaque session token (what `sign-up/email` returns and the cookie
    carries, signed); `jwt()` asks the JWT plugin for a token the way the frontend does.
    """

    def __init__(self, issuer: Issuer, http: httpx.AsyncClient, body: dict[str, Any]) -> None:
        self.issuer = issuer
        self.http = http
        self.id: str = body["user"]["id"]
        self.email: str = body["user"]["email"]
        self.session_token: str = body["token"]

    @property
    def session_cookie(self) -> str:
        value = self.http.cookies.get("better-auth.session_token")
        assert value, "no session cookie"
        return value

    async def jwt(self) -> str:
        """`GET /api/auth/token` with the session cookie."""
        response = await self.http.get(f"{self.issuer.auth_url}/token")
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def jwt_from_session(self) -> str:
        """The `set-auth-jwt` header of `GET /api/auth/get-session`."""
        response = await self.http.get(f"{self.issuer.auth_url}/get-session")
        assert response.status_code == 200, response.text
        return response.headers["set-auth-jwt"]

    async def sign_out(self) -> None:
        response = await self.http.post(
            f"{self.issuer.auth_url}/sign-out", headers={"Origin": self.issuer.origin}, json={}
        )
        assert response.status_code == 200, response.text


async def sign_up(issuer: Issuer, http: httpx.AsyncClient, name: str) -> BetterAuthUser:
    """`POST /api/auth/sign-up/email`; `http` keeps the session cookie it sets."""
    response = await http.post(
        f"{issuer.auth_url}/sign-up/email",
        json={"email": f"{name.lower()}@example.com", "password": PASSWORD, "name": name},
        headers={"Origin": issuer.origin},
    )
    assert response.status_code == 200, response.text
    return BetterAuthUser(issuer, http, response.json())
