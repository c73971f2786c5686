"""A small JSON API served by an actor: items kept in the actor's state, each request a recorded call.

    GET    /items          every item
    GET    /items/{name}   one item (404 when there is none)
    PUT    /items/{name}   store the JSON body as the item
    DELETE /items/{name}   remove it
    GET    /stats          how many requests changed something
"""

from theater_sdk import Actor, Response, route, run


class ItemsApi(Actor):
    http_port = 8080  # the manifest's http-framework config allows this port (and 0)

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
        return {"stored": name}

    @route("DELETE", "/items/{name}")
    def delete_item(self, request, name):
        if self.state["items"].pop(name, None) is None:
            return Response({"error": f"no item {name}"}, status=404)
        self.state["writes"] += 1
        return None  # 204

    @route("GET", "/stats")
    def stats(self, request):
        return {"items": len(self.state["items"]), "writes": self.state["writes"]}


run(ItemsApi)
