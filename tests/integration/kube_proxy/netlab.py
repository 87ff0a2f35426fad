"""A small network of namespaces for testing kube-proxy against real iptables.

::

    client ns                node ns (kube-proxy's iptables)          pod ns i
    192.168.77.2 --veth-- 192.168.77.1     (default route: an uplink veth)
                             10.244.i.1 ------------------------veth-- 10.244.i.2
                                                                        (HTTP on 8080,
                                                                         8081, 9090)

The node forwards; pods and the client route everything through it. The
client is outside the cluster CIDR (10.244.0.0/16), so its traffic to a
ClusterIP must be masqueraded for the replies to come back through the
node. Each pod runs a tiny HTTP server that answers with its own address
and port and the peer address it saw, so tests can tell which backend
answered and whether the source was rewritten.

Everything is created with unique names and removed by :meth:`Lab.close`,
which undoes whatever part of the set-up succeeded.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys

CLIENT_IP = "192.168.77.2"
NODE_IP = "192.168.77.1"  # the node's address the client reaches (NodePorts)
POD_PORTS = (8080, 8081, 9090)

SERVER = r"""
import asyncio, json, sys

async def handle(reader, writer):
    try:
        while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
            pass
        own = writer.get_extra_info("sockname")
        peer = writer.get_extra_info("peername")
        body = json.dumps({"ip": own[0], "port": own[1], "peer": peer[0]}).encode()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()

async def main():
    servers = [await asyncio.start_server(handle, "0.0.0.0", int(p)) for p in sys.argv[1:]]
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

CLIENT = r"""
import json, socket, sys, time
host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
results = []
for _ in range(count):
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        body = data.split(b"\r\n\r\n", 1)[1]
        results.append(json.loads(body))
    except ConnectionRefusedError:
        results.append({"error": "refused"})
    except (socket.timeout, TimeoutError):
        results.append({"error": "timeout"})
    except OSError as err:
        results.append({"error": type(err).__name__ + ":" + str(err.errno)})
    results[-1]["seconds"] = time.monotonic() - started
print(json.dumps(results))
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


class Lab:
    """The namespaces, links and pod servers (see the module docstring)."""

    def __init__(self, pods: int = 3):
        tag = secrets.token_hex(3)
        self.tag = tag
        self.node = f"kpn-{tag}"
        self.client = f"kpc-{tag}"
        self.pods = [f"kpp{i}-{tag}" for i in range(1, pods + 1)]
        self.pod_ips = [f"10.244.{i}.2" for i in range(1, pods + 1)]
        self.gateways = [f"10.244.{i}.1" for i in range(1, pods + 1)]
        self._namespaces: list[str] = []
        self._servers: list[subprocess.Popen] = []

    def _add_ns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _link(self, ns_a: str, name_a: str, addr_a: str, ns_b: str, name_b: str,
              addr_b: str) -> None:
        tmp_a, tmp_b = f"kv{self.tag}a", f"kv{self.tag}b"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", ns_a, "name", name_a)
        sh("ip", "link", "set", tmp_b, "netns", ns_b, "name", name_b)
        sh("ip", "-n", ns_a, "addr", "add", addr_a, "dev", name_a)
        sh("ip", "-n", ns_b, "addr", "add", addr_b, "dev", name_b)
        sh("ip", "-n", ns_a, "link", "set", name_a, "up")
        sh("ip", "-n", ns_b, "link", "set", name_b, "up")

    def setup(self) -> Lab:
        try:
            self._add_ns(self.node)
            sh("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            # A node has a default route (its uplink), so packets for a
            # ClusterIP with no rules are forwarded (and then REJECTed by
            # kube-proxy's filter rules) rather than unroutable.
            # (A veth whose peer stays in the node: no dummy module here.)
            sh("ip", "-n", self.node, "link", "add", "uplink", "type", "veth", "peer", "name",
               "uplinkpeer")
            sh("ip", "-n", self.node, "addr", "add", "172.31.255.1/30", "dev", "uplink")
            sh("ip", "-n", self.node, "link", "set", "uplink", "up")
            sh("ip", "-n", self.node, "link", "set", "uplinkpeer", "up")
            sh("ip", "-n", self.node, "route", "add", "default", "via", "172.31.255.2")
            self._add_ns(self.client)
            self._link(self.node, "toclient", f"{NODE_IP}/24", self.client, "eth0",
                       f"{CLIENT_IP}/24")
            sh("ip", "-n", self.client, "route", "add", "default", "via", NODE_IP)
            for i, pod in enumerate(self.pods, start=1):
                self._add_ns(pod)
                self._link(self.node, f"topod{i}", f"10.244.{i}.1/24", pod, "eth0",
                           f"10.244.{i}.2/24")
                sh("ip", "-n", pod, "route", "add", "default", "via", f"10.244.{i}.1")
                server = subprocess.Popen(
                    ["ip", "netns", "exec", pod, sys.executable, "-c", SERVER,
                     *map(str, POD_PORTS)],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                    start_new_session=True)
                self._servers.append(server)
            for server in self._servers:
                if server.stdout.readline().strip() != "ready":
                    raise RuntimeError("a pod's HTTP server did not start")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for server in self._servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(5)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        self._servers.clear()
        for name in reversed(self._namespaces):
            sh("ip", "netns", "del", name, check=False)
        self._namespaces.clear()

    # -- traffic ----------------------------------------------------------------------

    async def requests(self, host: str, port: int, count: int = 1, *, timeout: float = 3.0,
                       ns: str | None = None) -> list[dict]:
        """``count`` HTTP requests, each on a new connection, from ``ns``
        (the client namespace by default); one dict per request: the
        server's answer (``ip``, ``port``, ``peer``) or ``error``."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns or self.client, sys.executable, "-c", CLIENT, host,
            str(port), str(count), str(timeout),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"client failed: {err.decode()[-500:]}")
        return json.loads(out)

    async def iptables_save(self, table: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.node, "iptables-save", "-t", table,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return out.decode()

    async def iptables(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.node, "iptables", "-w", "5", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"iptables {' '.join(args)}: {err.decode().strip()}")
