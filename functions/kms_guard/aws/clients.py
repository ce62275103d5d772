"""boto3 clients with the guard's retry and timeout policy, from one session, created lazily and cached per
(service, Region).

One session for every client: a boto3 Session owns the loader that reads the service models and endpoint data, so a
session per client made each Region load the KMS model again (measured: the larger part of the cold start).
Standard retry mode retries throttling and transient errors with backoff
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html); the user agent carries `kms-guard/`
so the guard's own writes are recognisable in CloudTrail. Clients honour `AWS_ENDPOINT_URL` (boto3 reads it).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from kms_guard import __version__

if TYPE_CHECKING:
    import boto3

USER_AGENT = f"kms-guard/{__version__}"
MAX_ATTEMPTS = 5


class ClientFactory:
    def __init__(self, session: boto3.Session | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
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
                    import boto3

                    self._session = boto3.Session()
                if self._config is None:
                    from botocore.config import Config

                    self._config = Config(
                        retries={"mode": "standard", "max_attempts": self._max_attempts},
                        connect_timeout=5,
                        read_timeout=15,
                        user_agent_extra=USER_AGENT,
                    )
                self._clients[key] = self._session.client(service, region_name=region, config=self._config)  # type: ignore[call-overload]
            return self._clients[key]
