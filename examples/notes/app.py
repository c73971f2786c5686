"""Notes: documents kept by content hash in the store, each name a history of versions, files in and out.

Requests (UTF-8 text, the first word is the command):

- ``save NAME TEXT``: store TEXT as a new version of NAME; answers its hash;
- ``get NAME [N]``: the latest version of NAME, or version N (0 is the first);
- ``history NAME``: the hashes of NAME's versions, oldest first, one a line;
- ``export NAME``: write the latest version to ``NAME.txt`` in the granted folder;
- ``import NAME``: read ``NAME.txt`` from the granted folder as a new version of NAME;
- ``list``: the names, one a line.

The store keeps each version once by its hash (the same text saved twice is stored once) and the label NAME
points at the latest; the actor's state keeps the history of hashes. Every read of the store or of a file is in
the chain, so a replay needs neither.
"""

from theater_sdk import Actor, HostError, fs, run, store

STORE = "notes"


class Notes(Actor):
    def init(self):
        self.state = {"history": {}}

    def on_request(self, message):
        command, _, rest = message.decode().partition(" ")
        try:
            return self.answer(command, rest)
        except HostError as exc:
            return f"error: {exc.message}"

    def answer(self, command, rest):
        history = self.state["history"]
        if command == "save":
            name, _, text = rest.partition(" ")
            return self.save(name, text.encode())
        if command == "get":
            name, _, which = rest.partition(" ")
            if name not in history:
                return f"error: no note {name!r}"
            versions = history[name]
            index = int(which) if which else len(versions) - 1
            if not 0 <= index < len(versions):
                return f"error: {name!r} has versions 0 to {len(versions) - 1}"
            return store.get(STORE, versions[index])
        if command == "history":
            return "\n".join(history.get(rest, []))
        if command == "export":
            if rest not in history:
                return f"error: no note {rest!r}"
            fs.write(f"{rest}.txt", store.get(STORE, history[rest][-1]).decode())
            return f"{rest}.txt"
        if command == "import":
            return self.save(rest, fs.read(f"{rest}.txt"))
        if command == "list":
            return "\n".join(sorted(history))
        return f"error: unknown command {command!r}"

    def save(self, name, data):
        if not name:
            return "error: a note needs a name"
        digest = store.put_at_label(STORE, name, data)
        versions = self.state["history"].setdefault(name, [])
        if not versions or versions[-1] != digest:
            versions.append(digest)
        return digest


run(Notes)
