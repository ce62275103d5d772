"""AWS clients with the guard's retry and timeout policy, from one botocore session, created lazily and cached per
(service, Region).

One session for every client: the session owns the loader that reads the service models and endpoint data, so a
session per client made each Region load the KMS model again (measured: the larger part of the cold start).
botocore, not boto3: the guard uses low-level clients only, and importing boto3 also imports its resource layer and
s3transfer (about a third of a cold start, `make bench`). Both come with the Lambda runtime.
Standard retry mode retries throttling and transient errors with backoff
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html); the user agent carries `kms-guard/`
so the guard's own writes are recognisable in CloudTrail. Clients honour `AWS_ENDPOINT_URL` (boto3 reads it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from kms_guard import __version__

if TYPE_CHECKING:
    from botocore.session import Session

R = TypeVar("R")

USER_AGENT = f"kms-guard/{__version__}"
MAX_ATTEMPTS = 5
MAX_POOL_CONNECTIONS = 32
"""Connections each client keeps (botocore's default is 10); at least `fleet.MAX_KEY_WORKERS` + 1. A scheduled check
of many keys has up to MAX_KEY_WORKERS (24) keys reading one Region at once, each call holding a connection for its
round trip, and their state loads plus the deployment's sight on the home Region's DynamoDB client: with 10, every
check opened (TLS handshakes, in AWS) and threw away connections beyond the tenth, logging urllib3's "Connection pool
is full" for each. A connection is opened only when needed, so a single key's deployment opens no more than before."""


class ClientFactory:
    def __init__(self, session: Session | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
        self._session = session
        self._max_attempts = max_attempts
        self._config: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:  # creating clients is not thread-safe; using them is
            if key not in self._clients:
                if self._session is None:
                    from botocore.session import get_session

                    self._session = get_session()
                if self._config is None:
                    from botocore.config import Config

                    self._config = Config(
                        retries={"mode": "standard", "max_attempts": self._max_attempts},
                        connect_timeout=5,
                        read_timeout=15,
                        max_pool_connections=MAX_POOL_CONNECTIONS,
                        user_agent_extra=USER_AGENT,
                    )
                self._clients[key] = self._session.create_client(service, region_name=region, config=self._config)
            return self._clients[key]


def in_every_region(
    clients: ClientFactory,
    services: Sequence[str],
    regions: Sequence[str],
    call: Callable[[str], R],
    background: Executor | None = None,
) -> list[R]:
    """`call(region)` for every Region concurrently; results in the order given.

    The Regions' clients are created first, in this thread (creating clients is serialised: made in the worker threads
    they would queue on the lock). Then the first Region runs in this thread and the others on `background` (shared,
    kept threads: `call` must not wait for another task of it) or, without it, on threads of this call's own."""
    for region in regions:
        for service in services:
            clients.client(service, region)
    if not regions:
        return []
    first, *others = regions
    if not others:
        return [call(first)]
    if background is not None:
        futures = [background.submit(call, region) for region in others]
        return [call(first), *(f.result() for f in futures)]
    with ThreadPoolExecutor(max_workers=len(others), thread_name_prefix="region") as pool:
        futures = [pool.submit(call, region) for region in others]
        return [call(first), *(f.result() for f in futures)]
