"""The network guard: ``connect()`` itself refuses outside addresses, here and in every subprocess.

Addresses are from the documentation ranges (192.0.2.0/24, 2001:db8::/32): a real connection to
them would go nowhere, and the guard must refuse them before any packet is sent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from lowres_adapters.testing.netguard import OutsideConnectionError

OUTSIDE_V4 = ("192.0.2.1", 443)
OUTSIDE_V6 = ("2001:db8::1", 443, 0, 0)


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that accepts connections (never served)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server.getsockname()
    server.close()


@pytest.mark.parametrize("method", ["connect", "connect_ex"])
def test_connect_to_an_outside_ipv4_address_is_refused_by_connect_itself(method):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        with pytest.raises(OutsideConnectionError, match=r"blocked connection to \('192\.0\.2\.1', 443\)"):
            getattr(sock, method)(OUTSIDE_V4)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 sockets on this machine")
def test_connect_to_an_outside_ipv6_address_is_refused():
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        pytest.skip("IPv6 sockets cannot be created here")
    with sock:
        with pytest.raises(OutsideConnectionError, match="2001:db8::1"):
            sock.connect(OUTSIDE_V6)


def test_name_lookups_of_outside_hosts_are_refused_and_loopback_ones_allowed():
    with pytest.raises(OutsideConnectionError, match="name lookup of 'huggingface.co'"):
        socket.getaddrinfo("huggingface.co", 443)
    with pytest.raises(OutsideConnectionError):
        socket.getaddrinfo(b"huggingface.co", 443)
    assert {info[4][0] for info in socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET)} == {"127.0.0.1"}


def test_loopback_connections_still_work(listener):
    host, port = listener
    for address in ((host, port), ("localhost", port)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(address)
            assert sock.getpeername() == (host, port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        assert sock.connect_ex((host, port)) == 0


PROBE = textwrap.dedent("""
    import socket, sys
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(("192.0.2.1", 443))
        except OSError as error:
            print(type(error).__name__, error)
            sys.exit(0)
    print("connected")
""")


def test_every_python_subprocess_of_the_tests_is_guarded():
    done = subprocess.run([sys.executable, "-c", PROBE], env=dict(os.environ), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OutsideConnectionError blocked connection to ('192.0.2.1', 443)"), done.stdout


def test_the_subprocess_guard_comes_from_the_test_environment():
    """Without the test environment's switch, a subprocess has the plain socket (the guard is what blocks)."""
    check = "import socket; print(socket.socket.connect.__qualname__)"
    env = dict(os.environ)
    guarded = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60)
    env.pop("LOWRES_NETGUARD")
    plain = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60)
    assert guarded.stdout.strip() == "install.<locals>.guarded_connect", guarded.stderr
    assert plain.stdout.strip() == "socket.connect", plain.stderr
