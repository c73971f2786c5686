"""An agent: it answers questions by calling a model's OpenAI-compatible chat-completions API over ``http-client``
and serves its own API over ``http-framework``, keeping the conversation in its state.

    POST   /ask       {"question": "..."}: asks the model with the conversation so far; {"answer": "..."}
    GET    /history   the conversation: [{"role": "user", "content": ...}, {"role": "assistant", ...}, ...]
    DELETE /history   forget it

Where the model is comes from ``init_state`` (the manifest's, merged with the caller's): ``base_url`` (up to
``/v1``), ``model``, ``system`` (the system prompt) and ``max_history`` (messages kept). The API key is not the
actor's business: the manifest's http-client ``secrets`` rule has the host add ``Authorization`` to the requests to
the model, so the key is neither seen by this code nor written to the chain. Each model call (the request as sent
by this actor and the whole answer) is in the chain, so ``theater verify`` re-executes the conversation with the
model gone.
"""

from theater_sdk import Actor, Response, http, route, run

DEFAULTS = {
    "base_url": "http://127.0.0.1:8090/v1",
    "model": "stand-in",
    "system": "You are a helpful assistant. Answer briefly.",
    "max_history": 40,
}


class Agent(Actor):
    http_port = 8080  # the manifest's http-framework config must allow it; 0 takes an ephemeral port

    def init(self):
        settings = {**DEFAULTS, **(self.state or {})}
        self.http_port = settings.pop("port", self.http_port)  # an init_state {"port": 0} serves elsewhere
        self.state = {**settings, "history": [], "asked": 0}

    @route("POST", "/ask")
    def ask(self, request):
        try:
            question = request.json()["question"]
        except (ValueError, KeyError, TypeError):
            return Response({"error": 'send {"question": "..."}'}, status=400)
        if not isinstance(question, str) or not question.strip():
            return Response({"error": "the question must be a non-empty string"}, status=400)
        history = self.state["history"]
        messages = [{"role": "system", "content": self.state["system"]}, *history,
                    {"role": "user", "content": question}]
        try:
            response = http.post(self.state["base_url"].rstrip("/") + "/chat/completions",
                                 json={"model": self.state["model"], "messages": messages})
        except http.HttpError as exc:
            return Response({"error": f"the model could not be reached: {exc.message}"}, status=502)
        if not response.ok:
            return Response({"error": f"the model answered {response.status}", "body": response.text[:500]},
                            status=502)
        try:
            answer = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return Response({"error": "the model's answer is not a chat completion", "body": response.text[:500]},
                            status=502)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        del history[:max(0, len(history) - self.state["max_history"])]
        self.state["asked"] += 1
        return {"answer": answer}

    @route("GET", "/history")
    def history(self, request):
        return self.state["history"]

    @route("DELETE", "/history")
    def forget(self, request):
        self.state["history"] = []
        return None  # 204


run(Agent)
