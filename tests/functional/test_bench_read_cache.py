"""The benchmark's read-through cache (bench/read_cache.py): it may only ever answer what moto answers at that moment.

`make bench` times the scheduled check of 50 keys through it (bench/multi_key.py); if it served a stale or another
Region's answer, the benchmark would time a check that is not the real one.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from bench.multi_key import LocalAws, local_aws


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    with local_aws(_free_port()) as local:
        yield local


def _kms(aws: LocalAws, region: str) -> Any:
    session = botocore.session.get_session()
    session.set_credentials("testing", "testing")
    return session.create_client("kms", region_name=region, endpoint_url=aws.url)


def _policy(sid: str) -> str:
    statement = {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_a_repeated_read_is_served_from_the_cache_and_a_write_empties_it(aws: LocalAws) -> None:
    kms = _kms(aws, "us-west-2")
    key_id = kms.create_key(Policy=_policy("first"))["KeyMetadata"]["KeyId"]
    before = aws.stats()
    first = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    again = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    after = aws.stats()
    assert first == again == _policy("first")
    assert (after["misses"] - before["misses"], after["hits"] - before["hits"]) == (1, 1)

    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=_policy("second"))
    assert aws.stats()["passed"] == after["passed"] + 1
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == _policy("second")


def test_the_region_is_part_of_a_cached_read(aws: LocalAws) -> None:
    key_id = _kms(aws, "us-west-2").create_key(Policy=_policy("home"))["KeyMetadata"]["KeyId"]
    assert _kms(aws, "us-west-2").describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    with pytest.raises(ClientError) as raised:  # the same request body, another Region: moto has no such key there
        _kms(aws, "eu-west-1").describe_key(KeyId=key_id)
    assert raised.value.response["Error"]["Code"] == "NotFoundException"


def test_latency_is_spent_per_request_on_a_kept_alive_connection(aws: LocalAws) -> None:
    kms = _kms(aws, "us-west-2")
    key_id = kms.create_key(Policy=_policy("latency"))["KeyMetadata"]["KeyId"]
    kms.describe_key(KeyId=key_id)
    connections = aws.stats()["connections"]
    aws.set_latency(0.05)
    try:
        start = time.perf_counter()
        for _ in range(3):
            kms.describe_key(KeyId=key_id)
        elapsed = time.perf_counter() - start
    finally:
        aws.set_latency(0)
    assert elapsed >= 0.15
    assert aws.stats()["connections"] == connections  # the client's pooled connection was reused for all three
