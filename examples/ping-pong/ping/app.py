"""ping: told ``play PONG-ID N``, it plays N rallies: each one a request ``ping i`` to pong, answered ``pong i``.

The request ``score`` answers the rallies played and the last answer. Every answer pong gives is a host call
result in ping's chain, so ping's chain replays on its own, without pong.
"""

import json

from theater_sdk import Actor, messaging, run


class Ping(Actor):
    def init(self):
        self.state = {"rallies": 0, "last": None}

    def on_send(self, message):
        command, pong, count = message.decode("utf-8").split(" ")
        if command != "play":
            raise ValueError(f"ping understands 'play PONG-ID N', got {message!r}")
        for i in range(int(count)):
            answer = messaging.request(pong, f"ping {i}").decode("utf-8")
            if answer != f"pong {i}":
                raise RuntimeError(f"pong answered {answer!r} to ping {i}")
            self.state["rallies"] += 1
            self.state["last"] = answer
        print(f"played {count} rallies with {pong[:8]}")

    def on_request(self, message):
        return json.dumps(self.state)


run(Ping)
