"""Which URLs a webhook may be sent to: no way into the deployment's own network (SSRF).

Two checks, both needed:

1. When an endpoint is created or its URL changed: the URL's syntax
   (``https`` only in production, no credentials), then every address its
   host is or resolves to (:func:`check_destination`; refused → 422).
2. At every delivery attempt the host is resolved again and each address
   checked again, and the connection goes to the checked address itself
   (``webhooks.sender``): a name that resolved to a public address when the
   endpoint was saved and now resolves to ``127.0.0.1`` (DNS rebinding) is refused.

Refused addresses (:func:`refused_reason`): unspecified, loopback, private
(RFC 1918, IPv6 unique-local ``fc00::/7``), link-local (``169.254.0.0/16``,
where cloud metadata services answer, and ``fe80::/10``), multicast,
shared/reserved/documentation ranges (anything Python's ``ipaddress`` does not
call global), and the IPv6 forms that embed such an IPv4 address
(IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo).

``WEBHOOK_ALLOW_PRIVATE_URLS=true`` (development and tests; refused in
production by ``config.settings``) skips the address rules, not the syntax rules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolver(host, port)`` → the IP addresses (as text) a connection to ``host`` could reach.
Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrlError(ValueError):
    """A webhook URL that must not be used; the message says why (safe to show to the admin)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for ``host`` (``getaddrinfo``, TCP), without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refused_reason(address: IPAddress) -> str | None:
    """Why a webhook must not connect to ``address``, or ``None`` when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: IPAddress | None = address.ipv4_mapped
        label = "IPv4-mapped"
        if embedded is None and address in _NAT64:
            embedded, label = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
        if embedded is None and address.sixtofour is not None:
            embedded, label = address.sixtofour, "6to4"
        if embedded is None and address.teredo is not None:
            embedded, label = address.teredo[1], "Teredo"
        if embedded is not None:
            inner = refused_reason(embedded)
            return f"{label} form of a {inner}" if inner else None
    checks = (
        ("is_unspecified", "unspecified address"),
        ("is_loopback", "loopback address"),
        ("is_link_local", "link-local address"),
        ("is_multicast", "multicast address"),
        ("is_private", "private address"),
        ("is_reserved", "reserved address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local address"
    if not address.is_global:
        return "non-public address"
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a webhook URL points: its parsed form and the port to connect to."""

    url: httpx.URL
    host: str
    port: int


def parse(url: str, *, https_only: bool) -> Target:
    """Check a webhook URL's syntax (not its addresses).

    Rules: ``http`` or ``https`` (only ``https`` when ``https_only``, i.e.
    ``APP_ENV=production``), a host, no user name or password (they would end
    up in logs and audit entries), at most 2,048 characters.

    Raises:
        UnsafeUrlError: the reason.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise UnsafeUrlError("not a valid URL") from None
    allowed = ("https",) if https_only else ("http", "https")
    if parsed.scheme not in allowed:
        raise UnsafeUrlError("only https URLs are allowed" if https_only else "only http and https URLs are allowed")
    if not parsed.host:
        raise UnsafeUrlError("the URL has no host")
    if parsed.userinfo:
        raise UnsafeUrlError("the URL must not carry a user name or password")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(url=parsed, host=parsed.host, port=port)


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one written in standard notation, else ``None``."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def check_destination(target: Target, *, resolver: Resolver, allow_private: bool) -> list[IPAddress]:
    """The addresses ``target`` may be connected to: every address its host is or resolves to, each checked.

    A name is refused when ANY of its addresses is refused (a mixed answer is
    how rebinding attacks begin); the caller connects to one of the returned
    addresses, never to the name.

    Raises:
        UnsafeUrlError: the host does not resolve, or an address is refused.
    """
    literal = literal_address(target.host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            answers = await resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise UnsafeUrlError(f"the host {target.host!r} does not resolve") from exc
        addresses = []
        for answer in answers:
            try:
                addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
            except ValueError:
                continue
        if not addresses:
            raise UnsafeUrlError(f"the host {target.host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            reason = refused_reason(address)
            if reason is not None:
                raise UnsafeUrlError(f"the host {target.host!r} is or resolves to a {reason} ({address})")
    return addresses
