"""A counter actor in Python: one-way messages add to the count, a request reads it.

Messages: ``+N`` (or anything else, which counts as ``+1``) adds N; the request ``get`` answers the count.
State: ``{"count": N}``, JSON, recorded in the chain after every call.
"""

from theater_sdk import Actor, run


class Counter(Actor):
    def init(self):
        if self.state is None:
            self.state = {"count": 0}
        print(f"counter {self.id} starts at {self.state['count']}")

    def on_send(self, message):
        text = message.decode("utf-8", "replace")
        step = int(text[1:]) if text.startswith("+") and text[1:].isdigit() else 1
        self.state["count"] += step
        print(f"count is now {self.state['count']}")

    def on_request(self, message):
        if message != b"get":
            raise ValueError(f"unknown request {message!r}; ask for b'get'")
        return str(self.state["count"])


run(Counter)
