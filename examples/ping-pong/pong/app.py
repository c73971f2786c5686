"""pong: answers every ``ping N`` request with ``pong N`` and counts the pings it answered."""

from theater_sdk import Actor, run


class Pong(Actor):
    def init(self):
        self.state = {"pings": 0}

    def on_request(self, message):
        word, _, n = message.decode("utf-8").partition(" ")
        if word != "ping":
            raise ValueError(f"pong only answers 'ping N', got {message!r}")
        self.state["pings"] += 1
        return f"pong {n}"


run(Pong)
