"""A real ``theater server`` process for the tests, a plain HTTP client (urllib) and the real CLI (subprocess).

Every wait has a timeout: the server announces its port on stdout; streams are read with a socket timeout.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.components import wat

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from theater.cli import main; main()"]
WAIT = 30.0  # seconds any single wait may take before the test fails


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THEATER_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """An HTTP answer."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Http:
    """A plain HTTP client of the API (urllib, no proxy)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(self, method: str, path: str, body: Any, data: bytes | None,
                 headers: dict[str, str] | None) -> urllib.request.Request:
        content_type = "application/octet-stream"  # raw bytes, as a binary client sends them
        if body is not None:
            data = json.dumps(body).encode()
            content_type = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)  # urllib would send a form type otherwise
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        return request

    def request(self, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = WAIT) -> Reply:
        try:
            with self._opener.open(self._request(method, path, body, data, headers), timeout=timeout) as response:
                return Reply(status=response.status, body=response.read(), headers=dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Reply(status=exc.code, body=exc.read(), headers=dict(exc.headers))

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body if body is not None or "data" in kwargs else {}, **kwargs)

    def delete(self, path: str) -> Reply:
        return self.request("DELETE", path)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """The JSON of a call that must succeed with ``status``."""
        reply = self.request(method, path, body)
        assert reply.status == status, (reply.status, reply.body)
        return reply.json

    def sse(self, path: str, timeout: float = WAIT) -> Iterator[tuple[str, Any]]:
        """The (kind, payload) messages of an SSE stream; no message for ``timeout`` s (pings aside) raises
        TimeoutError."""
        request = self._request("GET", path, None, None, {"Accept": "text/event-stream"})
        with self._opener.open(request, timeout=timeout) as response:
            kind, data = "message", []
            deadline = time.monotonic() + timeout
            for raw in response:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no message on {path} within {timeout} s")
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        yield kind, json.loads("\n".join(data))
                        deadline = time.monotonic() + timeout
                    kind, data = "message", []
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])


class ServerProcess:
    """``theater server`` on a home, on a free port of 127.0.0.1."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.home = home
        self.env = cli_env(env)
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.address = ""
        self.banner = ""
        self.starts = 0

    def start(self) -> ServerProcess:
        self.starts += 1
        stderr = (self.home.parent / f"{self.home.name}-server-{self.starts}.err").open("w")
        self.process = subprocess.Popen(
            [*CLI, "--home", str(self.home), "server", "--address", "127.0.0.1:0", *self.args],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT, env=self.env,
        )
        stderr.close()
        lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=_pump, args=(self.process.stdout, lines), daemon=True)
        self._reader.start()
        try:
            self.banner = lines.get(timeout=WAIT)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"the server did not start within {WAIT} s: {self.stderr()}") from None
        self.address = self.banner.split("http://", 1)[1].split()[0]
        return self

    def stderr(self) -> str:
        path = self.home.parent / f"{self.home.name}-server-{self.starts}.err"
        return path.read_text() if path.exists() else ""

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def http(self, token: str | None = None) -> Http:
        return Http(self.url, token)

    def cli(self, *args: str, input: str | None = None, check: bool = True, timeout: float = WAIT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CLI, "--home", str(self.home), "--address", self.address, *args], input=input, capture_output=True,
            text=True, timeout=timeout, cwd=ROOT, env=cli_env(env),
        )
        if check:
            assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        return done

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            self.process.wait(WAIT)  # type: ignore[union-attr]
        self._reader.join(WAIT)

    def stop(self) -> int:
        """SIGTERM, and wait for a clean exit; returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            self.process.wait(WAIT)  # type: ignore[union-attr]
        self._reader.join(WAIT)
        return self.process.returncode  # type: ignore[union-attr]


def _pump(stream: Any, lines: queue.Queue[str]) -> None:
    with stream:
        for line in stream:
            lines.put(line)


def write_actor(directory: Path, name: str, component: str, *, handlers: tuple[str, ...] = (),
                extra: str = "") -> Path:
    """Write WAT text and a manifest next to it; return the manifest's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.wat").write_text(component)
    lines = [f'name = "{name}"', f'component = "{name}.wat"', extra]
    for handler in handlers:
        lines += ["[[handlers]]", f'type = "{handler}"']
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_body(name: str, component: str, *, extra: str = "", handlers: tuple[str, ...] = ()) -> dict[str, Any]:
    """A ``POST /v1/actors`` body with the component's text sent inline."""
    lines = [f'name = "{name}"', 'component = "ignored.wat"', extra]
    for handler in handlers:
        lines += ["[[handlers]]", f'type = "{handler}"']
    return {"manifest": "\n".join(lines) + "\n",
            "component": {"base64": base64.b64encode(component.encode()).decode()}}


def channel_component(welcome: bytes | None = None) -> str:
    """Accepts channels (with a welcome); echoes every channel message back, closes the channel on ``bye``."""
    opening = [wat.respond(welcome)] if welcome is not None else []
    return wat.actor_wat(
        channel_open=wat.seq(*opening, wat.store_msg()),
        channel_message=wat.match_msg(
            {b"bye": wat.close_channel(wat.PARAM)},
            wat.seq(wat.send_on_channel(wat.PARAM, wat.MSG), wat.store_msg()),
        ),
        channel_close=wat.set_state(b"closed"),
    )
