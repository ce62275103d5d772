"""A read-through cache in front of a moto server, in a process of its own (`python -m bench.read_cache UPSTREAM`).

Why: moto answers each request in 2-3 ms of its own CPU, one request at a time (one process, one GIL), where real
AWS answers many at once inside the call's latency. A scheduled check of 50 keys makes about 350 calls: served by moto
alone that is about a second of simulator time, which would be measured as the guard's. The cache answers a repeated
read from memory with the bytes moto gave for it; the client (the guard) still does all of a real call's work:
serialise, sign, HTTP over a socket, parse.

What is cached: a read of a JSON-protocol service (X-Amz-Target operation Describe*, Get*, List*, Query, Scan,
BatchGet*), keyed by Region, service, operation, path and body. Anything else (a write, or a service the cache cannot
name the operation of) empties the cache before and after it goes to moto, and an answer that overlapped such a
request is not kept: a read served from the cache is exactly what moto answers to it at that moment.

The cache keeps connections alive as AWS does (so the client's connection pool is exercised as in AWS) and counts the
connections that carry AWS requests. `GET /__stats` returns its counters as JSON; `GET /__latency/SECONDS` makes every
AWS request wait that long before it is answered, holding its connection, as a network and AWS do.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

READS = ("Describe", "Get", "List", "Query", "Scan", "BatchGet")
SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/]+)/([^/]+)/")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    passed: int = 0
    """Requests that were not cacheable (went to moto, emptied the cache)."""
    connections: int = 0


@dataclass
class Cache:
    upstream: str
    stats: Stats = field(default_factory=Stats)
    entries: dict[tuple[str, ...], bytes] = field(default_factory=dict)
    generation: int = 0
    latency: float = 0.0
    """Seconds every AWS request waits before it is answered, holding its connection (`GET /__latency/SECONDS`)."""

    def key(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[str, ...] | None:
        operation = headers.get("x-amz-target", "").rpartition(".")[2]
        scope = SCOPE.search(headers.get("authorization", ""))
        if not operation.startswith(READS) or scope is None:
            return None
        return (*scope.groups(), operation, method, target, body.decode("latin-1"))

    def forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        """The request sent to moto (blocking; run in a worker thread); its response as HTTP/1.1 bytes."""
        url = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k not in HOP_BY_HOP}
            connection.request(method, target, body=body, headers=forwarded)
            response = connection.getresponse()
            payload = response.read()
            lines = [f"HTTP/1.1 {response.status} {response.reason}"]
            lines += [f"{k}: {v}" for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            lines += [f"Content-Length: {len(payload)}", "Connection: keep-alive"]
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
        finally:
            connection.close()

    async def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        key = self.key(method, target, headers, body)
        if key is None:
            self.stats.passed += 1
            self.generation += 1
            self.entries.clear()
            try:
                return await loop.run_in_executor(None, self.forward, method, target, headers, body)
            finally:
                self.generation += 1
                self.entries.clear()
        cached = self.entries.get(key)
        if cached is not None:
            self.stats.hits += 1
            return cached
        self.stats.misses += 1
        generation = self.generation
        response = await loop.run_in_executor(None, self.forward, method, target, headers, body)
        if generation == self.generation:
            self.entries[key] = response
        return response

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counted = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method, target, _ = request_line.split(" ", 2)
                if target.startswith("/__latency/"):
                    self.latency = float(target.rpartition("/")[2])
                if target == "/__stats" or target.startswith("/__latency/"):
                    payload = json.dumps({**asdict(self.stats), "latency": self.latency}).encode()
                    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
                else:
                    if not counted:  # a connection that carries AWS requests (not the bench's own control ones)
                        counted = True
                        self.stats.connections += 1
                    if self.latency:
                        await asyncio.sleep(self.latency)
                    response = await self.answer(method, target, headers, body)
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()


async def _main(upstream: str, port: int) -> None:
    cache = Cache(upstream)
    server = await asyncio.start_server(cache.serve, "127.0.0.1", port, backlog=1024)
    sys.stdout.write(f"listening {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("upstream", help="the moto server, http://HOST:PORT")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free one, printed)")
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.upstream, arguments.port))


if __name__ == "__main__":
    main()
