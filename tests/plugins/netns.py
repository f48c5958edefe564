"""Hosts of the test's own: one network namespace each, joined to this one by a veth pair.

`host_network(names)` makes, per name, a namespace with its own address (10.S.N.2, S taken
from the pid so two runs do not clash) that reaches this namespace at 10.S.N.1, and routes
everything else there too. The servers the
hosts share (PostgreSQL, Redis, moto) listen on 127.0.0.1 only, which no other namespace can
reach, so `forward` opens a TCP relay on the first host's gateway address to a loopback
server: what crosses it crosses a real network interface. Where namespaces cannot be made
(not root, no iproute2, a sandbox without CAP_NET_ADMIN) it yields None with the reason in
`unavailable`, and the caller falls back to loopback addresses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


class NamespacesUnavailable(RuntimeError):
    """This machine or sandbox cannot make network namespaces for the test."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise NamespacesUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


class _Relay:
    """Accept on one address, pass each connection's bytes both ways to a target."""

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((listen_host, 0))
        self.address = self.server.getsockname()[:2]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(1 << 16):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.close()


@dataclass
class HostNetwork:
    """The namespaces made for one test, by host name."""

    tag: str
    names: list[str]
    #: The second octet of every address: 10.<subnet>.<host number>.<1 outside, 2 inside>.
    subnet: int
    relays: list[_Relay] = field(default_factory=list)

    def namespace(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def address(self, name: str) -> str:
        return f"10.{self.subnet}.{self.names.index(name) + 1}.2"

    @property
    def gateway(self) -> str:
        """Where every host reaches this namespace (and the relays)."""
        return f"10.{self.subnet}.1.1"

    def run_in(self, name: str, argv: list[str]) -> list[str]:
        """argv as run on host `name`: `ip netns exec` execs it, so the pid stays the same."""
        return ["ip", "netns", "exec", self.namespace(name), *argv]

    def forward(self, url: str) -> str:
        """The same URL with its loopback host:port replaced by a relay the hosts can reach."""
        parts = urlsplit(url)
        assert parts.hostname in ("127.0.0.1", "localhost"), url
        default = {"postgresql": 5432, "redis": 6379, "http": 80}.get(parts.scheme.split("+")[0])
        port = parts.port or default
        assert port is not None, url
        relay = _Relay(self.gateway, ("127.0.0.1", port))
        self.relays.append(relay)
        host, relay_port = relay.address
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{host}:{relay_port}" if credentials else f"{host}:{relay_port}"
        return urlunsplit(parts._replace(netloc=netloc))


def _make(names: list[str]) -> HostNetwork:
    if os.geteuid() != 0:
        raise NamespacesUnavailable("making network namespaces needs root")
    if shutil.which("ip") is None:
        raise NamespacesUnavailable("iproute2's `ip` is not installed")
    network = HostNetwork(tag=f"gl{os.getpid()}", names=names, subnet=200 + os.getpid() % 50)
    for number, name in enumerate(names, start=1):
        namespace = network.namespace(name)
        outside, inside = f"gl{os.getpid() % 100000}o{number}", f"gl{os.getpid() % 100000}i{number}"
        _ip("netns", "add", namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        gateway = f"10.{network.subnet}.{number}.1"
        _ip("addr", "add", f"{gateway}/24", "dev", outside)
        _ip("link", "set", outside, "up")
        for args in (
            ("addr", "add", f"{network.address(name)}/24", "dev", inside),
            ("link", "set", inside, "up"),
            ("link", "set", "lo", "up"),
            ("route", "add", "default", "via", gateway),
        ):
            _ip("netns", "exec", namespace, "ip", *args)
    return network


def _remove(tag: str) -> None:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        namespace = line.split()[0] if line.split() else ""
        if namespace.startswith(f"{tag}-"):
            # Deleting the namespace deletes its end of the veth pair, and so the pair.
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


@contextlib.contextmanager
def host_network(names: list[str]) -> Iterator[HostNetwork]:
    """Namespaces for `names`, removed on exit; raises NamespacesUnavailable with the reason."""
    tag = f"gl{os.getpid()}"
    _remove(tag)  # a run killed before its cleanup
    try:
        network = _make(names)
    except NamespacesUnavailable:
        _remove(tag)
        raise
    try:
        yield network
    finally:
        for relay in network.relays:
            relay.close()
        _remove(tag)
