"""A small JSON API served by an actor: items kept in the actor's state, each request a recorded call.

    GET    /items          every item
    GET    /items/{name}   one item (404 when there is none)
    PUT    /items/{name}   store the JSON body as the item
    DELETE /items/{name}   remove it
    GET    /stats          how many requests changed something
    ws     /changes        a websocket: any message gets every item back; each change is broadcast to all
"""

import json

from theater_sdk import Actor, HostError, Response, route, run, web


class ItemsApi(Actor):
    http_port = 8080  # the manifest's http-framework config allows this port (and 0)
    websocket_paths = ("/changes",)

    def init(self):
        if self.state is None:
            self.state = {"items": {}, "writes": 0}

    @route("GET", "/items")
    def list_items(self, request):
        return self.state["items"]

    @route("GET", "/items/{name}")
    def get_item(self, request, name):
        if name not in self.state["items"]:
            return Response({"error": f"no item {name}"}, status=404)
        return self.state["items"][name]

    @route("PUT", "/items/{name}")
    def put_item(self, request, name):
        try:
            value = request.json()
        except ValueError:
            return Response({"error": "the body must be JSON"}, status=400)
        self.state["items"][name] = value
        self.state["writes"] += 1
        self.broadcast({"stored": name, "value": value})
        return {"stored": name}

    @route("DELETE", "/items/{name}")
    def delete_item(self, request, name):
        if self.state["items"].pop(name, None) is None:
            return Response({"error": f"no item {name}"}, status=404)
        self.state["writes"] += 1
        self.broadcast({"deleted": name})
        return None  # 204

    @route("GET", "/stats")
    def stats(self, request):
        return {"items": len(self.state["items"]), "writes": self.state["writes"]}


    # The websocket: the connections open on /changes are kept in the state.

    def on_ws_connect(self, connection, path, query):
        self.state.setdefault("watchers", []).append(connection)

    def on_ws_message(self, connection, message):
        return json.dumps(self.state["items"], sort_keys=True)

    def on_ws_disconnect(self, connection):
        if connection in self.state.get("watchers", []):
            self.state["watchers"].remove(connection)

    def broadcast(self, change):
        """Send ``change`` to every open connection (sent once this call is durable)."""
        text = json.dumps(change, sort_keys=True)
        for connection in list(self.state.get("watchers", [])):
            try:
                web.send(connection, text)
            except HostError:  # closed meanwhile (e.g. before the server restarted)
                self.state["watchers"].remove(connection)


run(ItemsApi)
