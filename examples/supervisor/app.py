"""supervisor: a supervisor and its workers, one component in two roles.

The supervisor (``manifest.toml``) starts workers from ``worker.toml`` (the same component, started with the
state ``{"role": "worker"}``) and records what it hears about them. Requests to the supervisor: ``start``
answers the new worker's id; ``children`` the ids of its children; ``stop ID`` stops one; ``report`` what it
heard. Requests to a worker: ``work`` answers ``done``; ``crash`` fails the worker, which the supervisor hears in
``on_child_error`` (and the runtime restarts it, as ``[supervision]`` in manifest.toml says).
"""

import json

from theater_sdk import Actor, run, supervisor


class Supervisor(Actor):
    def init(self):
        if self.state is None:
            self.state = {"role": "supervisor", "started": 0, "failures": [], "exits": []}

    def on_request(self, message):
        command, _, arg = message.decode("utf-8").partition(" ")
        if self.state["role"] == "worker":
            return self.work(command)
        if command == "start":
            self.state["started"] += 1
            return supervisor.spawn("worker.toml", json.dumps({"role": "worker", "n": self.state["started"]}))
        if command == "children":
            return " ".join(supervisor.children())
        if command == "stop":
            supervisor.stop_child(arg)
            return "stopped"
        if command == "report":
            return json.dumps({"failures": self.state["failures"], "exits": self.state["exits"]})
        raise ValueError(f"unknown command {command!r}: use start, children, stop ID or report")

    def work(self, command):
        if command == "crash":
            raise RuntimeError(f"worker {self.state['n']} was asked to crash")
        return f"done by worker {self.state['n']}"

    def on_child_error(self, child_id, error):
        self.state["failures"].append([child_id, error.kind])

    def on_child_exit(self, child_id, data):
        self.state["exits"].append(child_id)


run(Supervisor)
