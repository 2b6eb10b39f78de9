"""Start the real `ui.py` in a subprocess on a free port, for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    def __init__(self, docs: Path, index: Path, env: dict[str, str] | None = None, args: list[str] | None = None, timeout: float = 300,
                 port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = index.parent / f"ui-{self.port}.log"
        full_env = dict(os.environ, **(env or {}))
        cmd = [sys.executable, str(ROOT / "ui.py"), "--port", str(self.port), "--docs", str(docs), "--index", str(index), *(args or [])]
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ui.py exited: {self.log.read_text()[-2000:]}")
            if "ready: http" in self.log.read_text():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ui.py not ready in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log_file.close()
