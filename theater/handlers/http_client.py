"""Handler ``http-client``: ``send-http(request) -> result<response, string>``, a real HTTP request, recorded whole.

The request runs with aiohttp on a loop of the actor's worker thread (``NetLoop.run_here``: no hand-off to another
thread; each worker keeps its loop and connection pools for its later calls, closed with the runtime), marked as a
wait with ``theater.scheduler.blocking`` so other actors keep their threads; a stop of the actor cancels it within
``netloop.STOP_POLL_S``. Called from a thread that runs a loop already, it goes to the runtime's shared network
loop (``theater.netloop``) and waits with ``actor.wait_for``. The boundary records the
request (the call's parameters) and the response or the error text (its result) whole; bodies above the store's
spill threshold go to the blob store like every payload. Replay answers from the record and never touches the
network.

What an actor may reach (its config, checked at start):

- ``allowed_urls``: host patterns (``api.example.com``, ``*.example.com``) or URL prefixes
  (``https://api.example.com/v1/``); none listed means any public host.
- ``allow_loopback``, ``allow_private``, ``allow_link_local``: host names (or address literals, as written in the
  URL) that may reach a loopback, private or link-local address. Without them every such address is refused: the
  address a name resolves to is checked by the connection's own resolver (aiohttp's ``TCPConnector`` connects only
  to the addresses it returns), so there is no window between a check and the connection (DNS rebinding). What is
  kept between calls depends on no lookup: the parsed URL and the grant's verdict per URL text (``CheckedUrls``)
  and the kind of an address per address text; connections and cached lookups are pooled per set of allowances.
  Unspecified, multicast, reserved, IPv4-mapped IPv6 and other non-global addresses are always refused.
- ``max_response_bytes`` (default 2 MiB), ``timeout_ms`` (default 30 s, for the whole exchange with its
  redirects), ``follow_redirects`` (default true) and ``max_redirects`` (default 10). Every redirect hop is checked
  against the same rules before it is sent.

- ``secrets``: credentials the host adds to requests, so the guest never sees them and the chain never holds them
  (see ``Secret``): ``{ env = "MODEL_API_KEY", header = "Authorization", prefix = "Bearer ", urls =
  ["https://api.example.com/v1/"], optional = false }``. The value is read from the runtime's environment when the
  actor's instance starts; it is added (replacing any header of that name the guest set) to each request, and each
  redirect hop, whose URL one of ``urls`` matches, and only over https or to a loopback address literal
  (``127.0.0.1``, ``::1``, ``localhost``). Only the operator's own manifests may name secrets (one from an API
  client or a guest's ``spawn`` is refused: it would send a host variable of its choosing to an address of its
  choosing). The chain records the rule (in ``actor/created``'s grants) and each request as the guest made it, so
  which requests carried the secret follows from the record; the value itself is in neither.

A refused request is never sent: the refusal is the call's ``err``. Responses are not decompressed (the body is the
bytes the server sent; ``Accept-Encoding`` is sent only when the actor sets it); no cookies are kept between calls;
TLS certificates are verified against the system's trust store.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import re
import socket
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from theater import netloop
from theater.errors import ManifestError, ResourceExhausted
from theater.handlers._base import Handler
from theater.host import ActorHost
from theater.scheduler import blocking

DEFAULT_MAX_RESPONSE_BYTES = 2 * 1024 * 1024
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # the most a config may ask for
DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 10 * 60_000
DEFAULT_MAX_REDIRECTS = 10
MAX_REDIRECTS = 50
# How long the actor waits beyond the request's own timeout for the loop to give up (the loop is shared).
_WAIT_GRACE_S = 5.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# aiohttp's own timeouts are off: ``asyncio.timeout`` bounds the whole exchange, redirects included.
_NO_CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=None)
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_POOL_LIMIT = 100  # connections open at once per session (one session per set of non-public allowances)
_METADATA = ipaddress.ip_address("169.254.169.254")
# Shared address space (RFC 6598) is carrier-grade NAT: private to the operator's network.
_SHARED = ipaddress.ip_network("100.64.0.0/10")


# Addresses.


@dataclass(frozen=True, slots=True, kw_only=True)
class Allowances:
    """Host names (lower case, as in the URL) that may reach non-public addresses, by kind."""

    loopback: frozenset[str] = frozenset()
    private: frozenset[str] = frozenset()
    link_local: frozenset[str] = frozenset()

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``host`` may not connect to ``address`` (an IP address text), or None when it may."""
        found = _address(address)
        if found is None:
            return f"{address!r} is not an IP address"
        kind, ip = found
        if kind == "public":
            return None
        allowed = {"loopback": self.loopback, "private": self.private, "link-local": self.link_local}.get(kind)
        if allowed is None:
            return f"{host} is {_a(kind)} address ({ip}), which is never reachable"
        if host.lower() in allowed:
            return None
        key = "allow_" + kind.replace("-", "_")
        return f"{host} is {_a(kind)} address ({ip}); name it in the handler's {key} to allow it"

    def within(self, parent: Allowances) -> str | None:
        """What these allowances grant beyond ``parent``'s, or None."""
        for kind in ("loopback", "private", "link_local"):
            more = getattr(self, kind) - getattr(parent, kind)
            if more:
                return f"allow_{kind} names {', '.join(sorted(more))}, which the parent does not allow"
        return None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0].lower() in "aeiou" else f"a {kind}"


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> tuple[str, str] | None:
    """The kind (``address_kind``) and the canonical spelling of the IP address ``text`` (a zone after ``%`` is
    ignored), or None when it is not one. A function of the text alone (no lookup: the resolver hands its answers
    in as texts), so it is cached: an address's kind costs a parse and a dozen range checks."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return address_kind(ip), str(ip)


def address_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``public``, ``loopback``, ``private`` or ``link-local`` (reachable when allowed by name), or what makes it
    never reachable: ``unspecified``, ``multicast``, ``IPv4-mapped IPv6``, ``cloud metadata``, ``reserved``,
    ``non-global``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "IPv4-mapped IPv6"
    if ip == _METADATA:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED):
        # is_private covers 10/8, 172.16/12, 192.168/16, fc00::/7, but also documentation and benchmark ranges:
        # those are not reachable on the internet either, so treating them as private refuses them by default.
        return "private"
    if not ip.is_global:
        return "non-global"
    return "public"


class AddressRefused(OSError):
    """Every address a name resolved to is refused by the actor's rules (raised inside aiohttp's connector)."""


class FilteringResolver(AbstractResolver):
    """A resolver that keeps only the addresses the allowances let the host reach, and refuses the name when none
    is left. aiohttp's connector connects only to what it returns, so the check is the connection path itself."""

    def __init__(self, allowances: Allowances) -> None:
        self._allowances = allowances
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refusals: list[str] = []
        for entry in found:
            why = self._allowances.refusal(host, entry["host"])
            if why is None:
                kept.append(entry)
            else:
                refusals.append(why)
        if not kept:
            raise AddressRefused(refusals[0] if refusals else f"{host} resolved to no address")
        return kept

    async def close(self) -> None:
        await self._inner.close()


# URLs.


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlRule:
    """One entry of ``allowed_urls``: a host pattern (``host``, ``*.host``) or a URL prefix (scheme, host, port,
    path)."""

    text: str
    host: str
    wildcard: bool = False
    scheme: str | None = None  # set for a URL prefix
    port: int | None = None
    path: str = "/"

    @classmethod
    def parse(cls, text: str) -> UrlRule:
        """Raises ValueError naming what is wrong."""
        if "://" in text:
            url = URL(text)
            if url.scheme not in ("http", "https"):
                raise ValueError(f"{text!r}: a URL prefix must start with http:// or https://")
            if not url.host or url.user or url.password or url.query_string or url.fragment:
                raise ValueError(f"{text!r}: a URL prefix is scheme://host[:port][/path], with no user, query or #")
            return cls(text=text, host=url.host.lower(), scheme=url.scheme, port=url.port, path=url.path or "/")
        pattern = text.strip().lower()
        wildcard = pattern.startswith("*.")
        host = pattern[2:] if wildcard else pattern
        if not host or any(c in host for c in "/*:@?#[] ") and not _is_ip(host):
            raise ValueError(f"{text!r}: a host pattern is a host name or *.domain (or a URL prefix with ://)")
        return cls(text=text, host=host.strip("[]"), wildcard=wildcard)

    def matches_host(self, host: str) -> bool:
        host = host.lower()
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def matches(self, url: URL) -> bool:
        if not url.host or not self.matches_host(url.host):
            return False
        if self.scheme is None:
            return True
        return url.scheme == self.scheme and url.port == self.port and _under(url.path or "/", self.path)

    def within(self, parent: UrlRule) -> bool:
        """Whether everything this rule allows, ``parent`` allows too."""
        if parent.scheme is None:
            if parent.wildcard:
                return self.host.endswith("." + parent.host)
            return not self.wildcard and self.host == parent.host
        if self.scheme is None:
            return False
        return (not self.wildcard and self.host == parent.host and self.scheme == parent.scheme
                and self.port == parent.port and _under(self.path, parent.path))


@functools.lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _under(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


# Secrets.

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_SECRET_KEYS = frozenset({"env", "header", "prefix", "urls", "optional"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Secret:
    """One entry of ``secrets``: the host adds ``header: prefix + $env`` to the requests ``urls`` match (over https,
    or to a loopback address literal). The value is not here: ``SecretValues`` holds it, out of every record."""

    env: str
    header: str
    prefix: str
    urls: tuple[UrlRule, ...]
    optional: bool

    @classmethod
    def parse(cls, value: Any, where: str) -> Secret:
        """Raises ValueError naming what is wrong (``where`` says which entry)."""
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a table {{ env = ..., urls = [...] }}, got {value!r}")
        unknown = set(value) - _SECRET_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}; allowed keys: "
                             f"{', '.join(sorted(_SECRET_KEYS))}")
        env, header, prefix = value.get("env"), value.get("header", "Authorization"), value.get("prefix", "")
        urls, optional = value.get("urls"), value.get("optional", False)
        if not isinstance(env, str) or not _ENV_NAME.fullmatch(env):
            raise ValueError(f"{where}.env: expected an environment variable name, got {env!r}")
        if not isinstance(header, str) or not _TOKEN.fullmatch(header):
            raise ValueError(f"{where}.header: expected a header name, got {header!r}")
        if not isinstance(prefix, str) or any(c in prefix for c in "\r\n\0"):
            raise ValueError(f"{where}.prefix: expected a string without line breaks, got {prefix!r}")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise ValueError(f"{where}.urls: expected a non-empty list of host patterns or URL prefixes, "
                             f"got {urls!r}")
        if not isinstance(optional, bool):
            raise ValueError(f"{where}.optional: expected a boolean, got {optional!r}")
        return cls(env=env, header=header, prefix=prefix, urls=tuple(UrlRule.parse(u) for u in urls),
                   optional=optional)

    def applies(self, url: URL) -> bool:
        """Whether a request to ``url`` carries this secret: one of ``urls`` matches, over https or to loopback."""
        if url.scheme != "https" and (url.host or "").lower().strip("[]") not in _LOOPBACK_NAMES:
            return False
        return any(rule.matches(url) for rule in self.urls)

    def within(self, parent: Secret) -> bool:
        """Whether ``parent`` grants at least this: the same variable, header and prefix, and wider URLs."""
        return ((self.env, self.header, self.prefix) == (parent.env, parent.header, parent.prefix)
                and all(any(rule.within(p) for p in parent.urls) for rule in self.urls))


class SecretValues:
    """The values of an actor's secrets, read from the runtime's environment at start; never shown (``repr``
    names the variables only) and never recorded."""

    __slots__ = ("_values",)

    def __init__(self, secrets: tuple[Secret, ...], environ: Any, source: str) -> None:
        """Raises ManifestError: a variable that is not optional is unset, or holds a line break."""
        values: list[tuple[Secret, str]] = []
        for index, secret in enumerate(secrets):
            value = environ.get(secret.env)
            field = f"handlers.http-client.config.secrets[{index}].env"
            if value is None:
                if secret.optional:
                    continue
                raise ManifestError(source, field, f"the environment variable {secret.env} is not set (the "
                                                   f"runtime reads it when the actor starts; optional = true "
                                                   f"sends the requests without it)")
            if any(c in value for c in "\r\n\0"):
                raise ManifestError(source, field, f"the environment variable {secret.env} holds a line break")
            values.append((secret, value))
        self._values = tuple(values)

    def headers(self, url: URL, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``headers`` with the secrets that apply to ``url`` added (each replacing the guest's of its name)."""
        for secret, value in self._values:
            if secret.applies(url):
                name = secret.header.lower()
                headers = [(k, v) for k, v in headers if k.lower() != name] + [(secret.header, secret.prefix + value)]
        return headers

    def __repr__(self) -> str:
        return f"<SecretValues of {', '.join(s.env for s, _ in self._values) or 'nothing'}>"


NO_SECRETS = SecretValues((), {}, "")


# The config.


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientGrant:
    """What an ``http-client`` config grants, as comparable values."""

    urls: tuple[UrlRule, ...]  # empty: any public host
    allowances: Allowances
    max_response_bytes: int
    timeout_ms: int
    follow_redirects: bool
    max_redirects: int
    secrets: tuple[Secret, ...] = ()

    @classmethod
    def parse(cls, config: dict[str, Any], source: str) -> ClientGrant:
        """Raises ManifestError naming the key."""

        def field(key: str) -> str:
            return f"handlers.http-client.config.{key}"

        def names(key: str) -> list[str]:
            value = config.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ManifestError(source, field(key), f"expected a list of non-empty strings, got {value!r}")
            return value

        def bounded(key: str, default: int, low: int, high: int) -> int:
            value = config.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ManifestError(source, field(key), f"expected an integer from {low} to {high}, got {value!r}")
            return value

        rules = []
        for text in names("allowed_urls"):
            try:
                rules.append(UrlRule.parse(text))
            except ValueError as exc:
                raise ManifestError(source, field("allowed_urls"), str(exc)) from None

        def hosts(key: str) -> frozenset[str]:
            return frozenset(n.strip().lower().strip("[]") for n in names(key))

        secrets = config.get("secrets", [])
        if not isinstance(secrets, list):
            raise ManifestError(source, field("secrets"), f"expected a list of tables, got {secrets!r}")
        parsed = []
        for index, entry in enumerate(secrets):
            try:
                parsed.append(Secret.parse(entry, f"secrets[{index}]"))
            except ValueError as exc:
                raise ManifestError(source, field("secrets"), str(exc)) from None
        follow = config.get("follow_redirects", True)
        return cls(
            secrets=tuple(parsed),
            urls=tuple(rules),
            allowances=Allowances(loopback=hosts("allow_loopback"), private=hosts("allow_private"),
                                  link_local=hosts("allow_link_local")),
            max_response_bytes=bounded("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, 0, MAX_RESPONSE_BYTES),
            timeout_ms=bounded("timeout_ms", DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS),
            follow_redirects=bool(follow),
            max_redirects=bounded("max_redirects", DEFAULT_MAX_REDIRECTS, 0, MAX_REDIRECTS),
        )

    def url_refusal(self, url: URL) -> str | None:
        """Why ``url`` may not be requested (before anything is sent), or None."""
        if url.scheme not in ("http", "https"):
            return f"{url.scheme or 'a relative'} URL {str(url)!r}: only http and https URLs can be requested"
        if not url.host:
            return f"{str(url)!r} has no host"
        if "\\" in url.raw_path or any(seg in ("..", ".") for seg in url.path.split("/")):
            return f"{str(url)!r} has a dot segment in its path"
        if self.urls and not any(rule.matches(url) for rule in self.urls):
            allowed = ", ".join(rule.text for rule in self.urls)
            return f"{url.with_query(None).with_fragment(None)} is not in the allowed URLs ({allowed})"
        host = url.host.lower()
        if _is_ip(host):  # aiohttp does not resolve an address literal: check it here
            return self.allowances.refusal(host, host)
        return None

    def within(self, parent: ClientGrant) -> str | None:
        """What this grant allows beyond ``parent``'s, or None."""
        if parent.urls:
            if not self.urls:
                return "allowed_urls is empty (any public host), the parent's is not"
            for rule in self.urls:
                if not any(rule.within(p) for p in parent.urls):
                    return f"allowed_urls entry {rule.text!r} is not within the parent's allowed URLs"
        more = self.allowances.within(parent.allowances)
        if more:
            return more
        for key in ("max_response_bytes", "timeout_ms", "max_redirects"):
            if getattr(self, key) > getattr(parent, key):
                return f"{key} {getattr(self, key)} is more than the parent's {getattr(parent, key)}"
        if self.follow_redirects and not parent.follow_redirects:
            return "follow_redirects is on, the parent's is off"
        for secret in self.secrets:
            if not any(secret.within(p) for p in parent.secrets):
                return f"secret {secret.env} ({secret.header}) is not among the parent's, or reaches more URLs"
        return None


class HttpClientHandler(Handler):
    """The ``http-client`` interface (see the module's docstring for its config)."""

    type = "http-client"
    interface = "theater:simple/http-client"
    config_keys = {
        "allowed_urls": list,
        "allow_loopback": list,
        "allow_private": list,
        "allow_link_local": list,
        "max_response_bytes": int,
        "timeout_ms": int,
        "follow_redirects": bool,
        "max_redirects": int,
        "secrets": list,
    }

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        self.grant = ClientGrant.parse(config, actor.source)
        self._checked = CheckedUrls(self.grant)
        self._secrets = NO_SECRETS
        if self.grant.secrets:
            files = actor.manifest.files
            if files.mode not in ("trusted", "recorded"):
                raise ManifestError(actor.source, "handlers.http-client.config.secrets",
                                    f"secrets are read from the host's environment: only the operator's own "
                                    f"manifests may name them, and this one comes from {files.origin}")
            self._secrets = SecretValues(self.grant.secrets, os.environ, actor.source)

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        """What a child's config grants beyond its parent's (a text naming it), or None when it grants no more.

        Raises:
            ManifestError: either config is malformed.
        """
        parent = ClientGrant.parse(parent_config, "<parent>")
        child = ClientGrant.parse(child_config, "<child>")
        return child.within(parent)

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"send-http": self.send_http}

    def send_http(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            method, url, refusal, headers, body = _request_parts(request, self._checked)
        except ValueError as exc:
            return {"err": f"invalid request: {exc}"}
        if refusal is not None:
            return {"err": f"refused: {refusal}"}
        loop = netloop.of(self.actor.store)
        if loop.can_run_here():
            # On the actor's own thread, with a loop of its own: no hand-off to the shared loop and back.
            own = _exchange(lambda: _own_session(loop, self.grant.allowances), self.grant, self._secrets, method,
                            url, headers, body)
            try:
                with blocking():
                    return loop.run_here(own, self.actor.stop_requested)
            except netloop.Stopped:
                return {"err": "the request was cut short: the actor is stopping"}
            except (RuntimeError, ResourceExhausted) as exc:
                return {"err": f"the request could not be made: {exc}"}
        try:
            future = loop.submit(_exchange(lambda: _session(loop, self.grant.allowances), self.grant, self._secrets,
                                           method, url, headers, body))
        except RuntimeError as exc:
            return {"err": f"the request could not be made: {exc}"}
        waited = self.grant.timeout_ms / 1000 + _WAIT_GRACE_S
        if not self.actor.wait_for(future, waited):
            future.cancel()
            if self.actor.stop_requested.is_set():
                return {"err": "the request was cut short: the actor is stopping"}
            return {"err": f"timed out after {self.grant.timeout_ms} ms"}
        try:
            return future.result()
        except CancelledError:
            return {"err": "the request was cancelled: the runtime is closing"}


_BAD_HEADER_NAME = re.compile("[\r\n:\0 ]")
_BAD_HEADER_VALUE = re.compile("[\r\n\0]")


def _request_parts(
    request: dict[str, Any], checked: CheckedUrls,
) -> tuple[str, URL, str | None, list[tuple[str, str]], bytes | None]:
    """The method, the URL, why the grant refuses it (or None), the headers and the body of a request.

    Raises:
        ValueError: the request is malformed (names what is wrong).
    """
    method = request["method"]
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"method {method!r} is not an HTTP token")
    url, refusal = checked.check(request["uri"])
    headers = []
    for name, value in request["headers"]:
        if not name or _BAD_HEADER_NAME.search(name) or _BAD_HEADER_VALUE.search(value):
            raise ValueError(f"header {name!r} has a character a header cannot hold")
        headers.append((name, value))
    body = request["body"]
    return method.upper(), url, refusal, headers, None if body is None else body["some"]


_CHECKED_URLS = 256  # the URL texts whose parse and verdict an actor's handler keeps
_CHECKED_URL_CHARS = 2048  # longer URL texts are checked on every call, never kept (at most 256 x 2 KiB per actor)


class CheckedUrls:
    """The parsed URL and the grant's verdict (``ClientGrant.url_refusal``) of the URL texts an actor asked for
    lately, so a loop of calls to the same URLs pays for neither again. The verdict is a function of the text and
    the grant alone (an address literal is judged by its text; a name is judged by the connection's resolver on
    every lookup, never here), and a handler's grant never changes, so a kept verdict is the one a new check would
    give. At most ``_CHECKED_URLS`` texts of at most ``_CHECKED_URL_CHARS`` are kept, the oldest dropped first: a
    guest asking for many long URLs cannot make the handler hold more."""

    __slots__ = ("_grant", "_kept")

    def __init__(self, grant: ClientGrant) -> None:
        self._grant = grant
        self._kept: dict[str, tuple[URL, str | None]] = {}

    def check(self, uri: str) -> tuple[URL, str | None]:
        """``uri`` parsed and why the grant refuses it, or None.

        Raises:
            ValueError: ``uri`` is not an absolute URL (nothing is kept).
        """
        kept = self._kept.get(uri)
        if kept is not None:
            return kept
        try:
            url = URL(uri)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"URI {uri!r}: {exc}") from None
        if not url.is_absolute():
            raise ValueError(f"URI {uri!r} is not absolute (scheme://host/...)")
        kept = (url, self._grant.url_refusal(url))
        if len(uri) > _CHECKED_URL_CHARS:
            return kept
        if len(self._kept) >= _CHECKED_URLS:
            del self._kept[next(iter(self._kept))]
        self._kept[uri] = kept
        return kept


def _new_session(allowances: Allowances) -> aiohttp.ClientSession:
    """A session (a connection pool) whose connections reach only what ``allowances`` let (on the running loop)."""
    connector = aiohttp.TCPConnector(resolver=FilteringResolver(allowances), limit=_POOL_LIMIT)
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False,
        skip_auto_headers=("Accept-Encoding",), headers={"User-Agent": "theater-http-client"},
    )


def _session(loop: netloop.NetLoop, allowances: Allowances) -> aiohttp.ClientSession:
    """The shared loop's session for ``allowances`` (on the shared loop)."""
    def make() -> aiohttp.ClientSession:
        session = _new_session(allowances)
        loop.close_with(session.close)
        return session

    return loop.shared(("http-client", allowances), make)


def _own_session(loop: netloop.NetLoop, allowances: Allowances) -> aiohttp.ClientSession:
    """The calling thread's own session for ``allowances`` (in a coroutine ``run_here`` runs)."""
    return loop.local_shared(("http-client", allowances), lambda: _new_session(allowances))


async def _exchange(
    session_of: Callable[[], aiohttp.ClientSession], grant: ClientGrant, secrets: SecretValues, method: str,
    url: URL, headers: list[tuple[str, str]], body: bytes | None,
) -> dict[str, Any]:
    """The request and its redirects, within the grant's timeout; the recorded result."""
    session = session_of()
    try:
        async with asyncio.timeout(grant.timeout_ms / 1000):
            return await _follow(session, grant, secrets, method, url, headers, body)
    except TimeoutError:
        return {"err": f"timed out after {grant.timeout_ms} ms ({method} {_where(url)})"}


async def _follow(
    session: aiohttp.ClientSession, grant: ClientGrant, secrets: SecretValues, method: str, url: URL,
    headers: list[tuple[str, str]], body: bytes | None,
) -> dict[str, Any]:
    for hop in range(grant.max_redirects + 1):
        if hop:
            refusal = grant.url_refusal(url)
            if refusal is not None:
                return {"err": f"refused: redirect to {url}: {refusal}"}
        try:
            async with session.request(method, url, headers=secrets.headers(url, headers), data=body,
                                       allow_redirects=False, timeout=_NO_CLIENT_TIMEOUT) as response:
                location = response.headers.get("Location")
                if not (grant.follow_redirects and response.status in _REDIRECTS and location):
                    return await _response(response, grant.max_response_bytes)
                try:
                    target = url.join(URL(location))
                except ValueError:
                    return {"err": f"redirect from {_where(url)} to an invalid location {location!r}"}
        except AddressRefused as exc:
            return {"err": f"refused: {exc}"}
        except aiohttp.ClientConnectorCertificateError as exc:
            return {"err": f"TLS certificate verification failed for {_where(url)}: {exc.certificate_error}"}
        except aiohttp.ClientSSLError as exc:
            return {"err": f"TLS error with {_where(url)}: {exc}"}
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return {"err": f"refused: {exc.os_error}"}
            return {"err": f"DNS lookup of {url.host} failed: {exc.os_error.strerror or exc.os_error}"}
        except aiohttp.ClientConnectorError as exc:
            return {"err": f"could not connect to {_where(url)}: {exc.os_error.strerror or exc.os_error}"}
        except aiohttp.InvalidURL as exc:
            return {"err": f"invalid URL {str(url)!r}: {exc}"}
        except aiohttp.ClientError as exc:
            return {"err": f"{method} {_where(url)} failed: {type(exc).__name__}: {exc}"}
        except (ValueError, TypeError) as exc:
            return {"err": f"invalid request: {exc}"}
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = ("HEAD" if method == "HEAD" else "GET"), None
        if target.origin() != url.origin():
            headers = [(k, v) for k, v in headers if k.lower() not in _CREDENTIAL_HEADERS]
        url = target
    return {"err": f"more than {grant.max_redirects} redirects (the last to {_where(url)})"}


async def _response(response: aiohttp.ClientResponse, limit: int) -> dict[str, Any]:
    declared = response.content_length
    if declared is not None and declared > limit:
        return {"err": f"the response body of {declared} bytes is larger than max_response_bytes ({limit})"}
    if declared is not None and not response.headers.get("Transfer-Encoding"):
        # One read: aiohttp's parser reads exactly the declared length of a body that is not chunked (it refuses
        # a response declaring both), so no more than the limit is held.
        body = await response.read()
        if len(body) > limit:
            return {"err": f"the response body is larger than max_response_bytes ({limit}); it was cut off"}
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                return {"err": f"the response body is larger than max_response_bytes ({limit}); it was cut off"}
            chunks.append(chunk)
        body = b"".join(chunks)
    headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in response.raw_headers]
    # Fields in canonical CBOR key order (shorter names first), as ``replay.values`` lifts records.
    return {"ok": {"body": {"some": body} if body else None, "status": response.status, "headers": headers}}


def _where(url: URL) -> str:
    return f"{url.scheme}://{url.host}:{url.port}"


__all__ = ["AddressRefused", "Allowances", "ClientGrant", "FilteringResolver", "HttpClientHandler", "Secret",
           "SecretValues", "address_kind"]
