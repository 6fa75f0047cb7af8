"""The real ``realtime-hub`` binary as a child process, on a free loopback port.

The binary is ``$HUB_BIN``, else ``target/release/realtime-hub`` in the repository.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

REPO_ROOT = Path(__file__).resolve().parents[4]

#: Every hub the tests start: single worker, quick drain, dynamic rooms.
BASE_ENV = {
    "HUB_SERVER__WORKERS": "1",
    "HUB_SERVER__SHUTDOWN_GRACE_S": "2",
    "HUB_ROOMS__ALLOW_DYNAMIC": "true",
}


def hub_binary() -> Path:
    path = Path(os.environ.get("HUB_BIN", "target/release/realtime-hub"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        raise RuntimeError(
            f"realtime-hub binary not found at {path}: `cargo build --release` or set HUB_BIN"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class HubRefused(RuntimeError):
    """The hub exited at start (e.g. a config key it does not know: exit 2)."""

    def __init__(self, code: int, output: str) -> None:
        super().__init__(f"hub exited with {code} at start:\n{output}")
        self.code = code
        self.output = output


class HubProcess:
    """One hub process; :meth:`restart` brings it back on the same port."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        config: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.env = {**BASE_ENV, **(env or {})}
        self.config = config
        # Its own working directory: a durable store (storage.path, default
        # "data") is then this hub's alone.
        self._own_cwd = cwd is None
        self.cwd = cwd or Path(tempfile.mkdtemp(prefix="hub-"))
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> HubProcess:
        args = [str(hub_binary())]
        if self.config is not None:
            args += ["--config", str(self.config)]
        env = {
            **os.environ,
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
            **self.env,
            "HUB_SERVER__BIND": f"127.0.0.1:{self.port}",
        }
        self._proc = subprocess.Popen(
            args, env=env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise HubRefused(code, self.output())
            try:
                if (
                    httpx.get(f"{self.url}/healthz", timeout=1.0, trust_env=False).status_code
                    == 200
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"hub did not answer /healthz within {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signals the hub and waits for it to exit; its exit code."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise RuntimeError(f"hub did not exit within {timeout}s of signal {sig}") from None

    def kill(self) -> int | None:
        return self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM, *, lose_store: bool = False) -> None:
        """Stops and starts the hub on the same port; ``lose_store`` starts it
        in a fresh working directory, as if its disk were lost."""
        self.stop(sig)
        if lose_store:
            self._remove_cwd()
            self.cwd = Path(tempfile.mkdtemp(prefix="hub-"))
            self._own_cwd = True
        self.start()

    def _remove_cwd(self) -> None:
        if self._own_cwd:
            shutil.rmtree(self.cwd, ignore_errors=True)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-20_000:]

    def close(self) -> None:
        self.kill()
        self._log.close()
        self._remove_cwd()
