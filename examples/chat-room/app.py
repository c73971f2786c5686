"""room: a chat room over channels. Whoever opens a channel joins under the name in its first message; every
message on a channel is passed to all other members as ``NAME: TEXT``; closing the channel leaves the room.

Requests: ``members`` answers the member names; ``history`` the last messages. State (kept small: every call
passes it through the sandbox boundary): ``{"members": {CHANNEL: NAME}, "history": [LINE, ...]}``.
"""

import json

from theater_sdk import Actor, accept, messaging, reject, run

HISTORY = 20


class Room(Actor):
    def init(self):
        self.state = {"members": {}, "history": []}

    def on_channel_open(self, channel_id, message):
        name = message.decode("utf-8").strip()
        if not name or name in self.state["members"].values():
            return reject(f"the name {name!r} is empty or taken")
        others = sorted(self.state["members"].values())
        self.broadcast(f"* {name} joined", skip=None)
        self.state["members"][channel_id] = name
        return accept(f"welcome {name}; here: {', '.join(others) or 'nobody yet'}")

    def on_channel_message(self, channel_id, message):
        name = self.state["members"][channel_id]
        self.broadcast(f"{name}: {message.decode('utf-8')}", skip=channel_id)

    def on_channel_close(self, channel_id):
        name = self.state["members"].pop(channel_id, None)
        if name is not None:
            self.broadcast(f"* {name} left", skip=None)

    def on_request(self, message):
        if message == b"members":
            return json.dumps(sorted(self.state["members"].values()))
        if message == b"history":
            return "\n".join(self.state["history"])
        raise ValueError(f"unknown request {message!r}: ask for members or history")

    def broadcast(self, line, skip):
        self.state["history"] = (self.state["history"] + [line])[-HISTORY:]
        for channel_id in self.state["members"]:
            if channel_id != skip:
                messaging.send_on_channel(channel_id, line)


run(Room)
