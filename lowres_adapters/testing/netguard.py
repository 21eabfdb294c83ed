"""Refuse every network connection that leaves the loopback interface.

Tests install this in the test process (``conftest.py``) and, through ``sitecustomize``, in every
Python subprocess they start, so no test can reach an outside host, whatever a library falls back to.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_installed = False


class OutsideConnectionError(OSError):
    """Raised when code tries to connect beyond 127.0.0.1 under the guard."""


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else address
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already leave the machine


def install() -> None:
    """Patch ``socket`` so that non-loopback connections raise :class:`OutsideConnectionError`."""
    global _installed
    if _installed:
        return
    _installed = True
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OutsideConnectionError(f"blocked connection to {address!r}: tests stay on 127.0.0.1")
        return original_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OutsideConnectionError(f"blocked connection to {address!r}: tests stay on 127.0.0.1")
        return original_connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback((host,)) and not _is_loopback((host.decode() if isinstance(host, bytes) else host,)):
            raise OutsideConnectionError(f"blocked name lookup of {host!r}: tests stay on 127.0.0.1")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo  # type: ignore[assignment]
