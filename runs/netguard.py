"""The SSRF guard: which targets a run may reach. Pure Python, no Django.

    guard = make_url_guard(allow_private=False, allowed_hosts=["erp.internal"])
    execute(..., url_guard=guard)  # each request's URL is checked before it is sent

A URL is refused (`BlockedURL`) when it is not http(s), or when its host resolves to an
address that is loopback, private (RFC 1918, unique local), carrier-grade NAT,
link-local (cloud metadata lives at 169.254.169.254), multicast, reserved or
unspecified — unless the host is listed in `allowed_hosts`. `allow_private` (local and
test settings) lets loopback and private ranges through, so the demo systems on
127.0.0.1 work; link-local and the rest stay refused even then. Every address a name
resolves to is checked, so a name with one public and one private address is refused.
The engine never follows redirects, so a public URL cannot bounce a run inward.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from runs.engine import BlockedURL

__all__ = ["BlockedURL", "make_url_guard"]

Resolver = Callable[[str, int], Iterable[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [info[4][0] for info in infos]


def _why_refused(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool):
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_unspecified:
        return "an unspecified address"
    if addr.is_loopback:
        return None if allow_private else "a loopback address"
    if addr.is_private or addr in ipaddress.ip_network("100.64.0.0/10"):
        return None if allow_private else "a private address"
    if addr.is_reserved:
        return "a reserved address"
    return None


def make_url_guard(
    *,
    allow_private: bool,
    allowed_hosts: Iterable[str] = (),
    resolve: Resolver = _resolve,
) -> Callable[[str], None]:
    """A function that raises `BlockedURL` for a URL a run may not reach.

    Make one per run: it keeps the verdict on each host and port it resolved for its own
    life, so a run's thousand requests to one host resolve it once (a name lookup per
    request cost more than the request on a fast API). A name that did not resolve is
    tried again on the next request. (httpx resolves again when it connects, so a
    verdict never covered the connection itself: the engine's keep-alive connections
    outlive any single check.)
    """
    allowed = {h.strip().lower().rstrip(".") for h in allowed_hosts if h and h.strip()}
    verdicts: dict[tuple[str, int], str | None] = {}  # (host, port) → refusal, or None

    def guard(url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise BlockedURL(f"only http and https are allowed, not {parts.scheme or 'none'!r}")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise BlockedURL("the URL has no host")
        if host in allowed:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise BlockedURL("the URL has a bad port") from None
        if (host, port) in verdicts:
            refusal = verdicts[(host, port)]
            if refusal:
                raise BlockedURL(refusal)
            return
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolve(host, port)]
            except (OSError, UnicodeError) as exc:
                raise BlockedURL(f"{host} does not resolve ({exc})") from None
        if not addresses:
            raise BlockedURL(f"{host} does not resolve")
        verdicts[(host, port)] = None
        for addr in addresses:
            why = _why_refused(addr, allow_private)
            if why:
                shown = host if str(addr) == host else f"{host} ({addr})"
                refusal = f"{shown} is {why}; list the host in ILM_RUN_ALLOWED_HOSTS to allow it"
                verdicts[(host, port)] = refusal
                raise BlockedURL(refusal)

    return guard
