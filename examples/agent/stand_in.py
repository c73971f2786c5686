"""A local stand-in for an OpenAI-compatible chat-completions API, so the agent runs with no network and no key.

    python stand_in.py [--port 8090] [--key KEY]

``POST /v1/chat/completions`` answers with a deterministic completion that repeats the last user message and counts
the messages it was sent. With ``--key`` (or ``MODEL_API_KEY`` set), a request without ``Authorization: Bearer
KEY`` gets 401, as a hosted API would answer. Standard library only; the tests start it on an ephemeral port with
``StandIn``.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def complete(body: dict[str, Any]) -> dict[str, Any]:
    """The stand-in's chat completion for a request ``body``."""
    messages = body.get("messages") or []
    asked = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    turns = sum(1 for m in messages if m.get("role") == "user")
    content = f"You asked: {asked} (question {turns} of this conversation)"
    return {
        "id": f"chatcmpl-stand-in-{turns}", "object": "chat.completion", "created": 0,
        "model": body.get("model", "stand-in"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


class StandIn:
    """The stand-in served on 127.0.0.1 from a background thread.

    Attributes:
        port: the port it listens on. requests: the JSON bodies it received. authorizations: the ``Authorization``
        header of each request (None when absent).
    """

    def __init__(self, port: int = 0, key: str | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._answer(404, {"error": {"message": f"no route {self.path}"}})
                authorization = self.headers.get("Authorization")
                stand_in.authorizations.append(authorization)
                if key is not None and authorization != f"Bearer {key}":
                    return self._answer(401, {"error": {"message": "invalid API key"}})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                except ValueError:
                    return self._answer(400, {"error": {"message": "the body is not JSON"}})
                stand_in.requests.append(body)
                self._answer(200, complete(body))

            def _answer(self, status: int, value: dict[str, Any]) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and wait for the thread (a second call does nothing)."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--key", default=os.environ.get("MODEL_API_KEY"))
    options = parser.parse_args()
    served = StandIn(options.port, options.key)
    print(f"stand-in model on {served.base_url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        served.close()


if __name__ == "__main__":
    main()
