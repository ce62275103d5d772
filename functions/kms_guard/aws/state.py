"""The guard's memory, in one DynamoDB table (partition key `pk` = the key ID, sort key `sk`).

| sk | holds |
| --- | --- |
| `k#report` | the findings last reported (fingerprint, findings, when alerted) |
| `k#region#<region>` | the last policy seen compliant there (the `revert` baseline), and a remediation hold |
| `k#coverage` | the sight last reported (fingerprint, codes), when it was read, when canaries were first expected |
| `k#outbox#<time>#<id>` | an alert decided, not yet sent (deleted once published; a retry sends what is left) |
| `k#canary#<region>` | when the Region's last canary event arrived (opt-in canary) |
| `w#<region>` | the guard's write times in the last hour, for the rate limit (optimistic locking on `version`) |
| `e#<eventID>` | a CloudTrail event's claim: a lease taken with a conditional put, the dedupe of deliveries |
| `log#<time>#<region>#<n>` | the remediation log: what, when, why, result |

Every write that must not race is conditional: two invocations for one CloudTrail event cannot both claim it, and two
writers cannot both take the last write slot of the hour. `expires_at` is the table's TTL attribute.

An event claim is a lease, not a status: a delivery of an event whose lease is still running is a duplicate and is
ignored; an invocation that fails releases its lease, so Lambda's retry proceeds; one that dies without releasing it
leaves the lease to run out (the scheduled check covers the gap). A delivery after the lease re-evaluates the key,
which is harmless: the findings' fingerprint keeps it from alerting twice. No second write marks an event "done".
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from kms_guard.aws.clients import ClientFactory
from kms_guard.aws.errors import CONDITIONAL_CHECK_FAILED, error_code
from kms_guard.guard import EVENT_LEASE_SECONDS, WRITE_WINDOW_SECONDS, KeyRecord

STATE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
)

PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE = "pk", "sk", "expires_at"
"""The table's schema, declared once: the CDK StateTable, the demo and the tests all build the table from it."""


def create_table_request(name: str) -> dict[str, Any]:
    """CreateTable parameters for a state table (the demo, the benchmark and the tests create theirs with this)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
    }


EVENT_MEMORY_SECONDS = 7 * 24 * 3600
LOG_RETENTION_SECONDS = 90 * 24 * 3600
MAX_PAGES = 100
"""A key's `k#` items are a report and one item per Region: far fewer than one page holds."""


class DynamoState:
    def __init__(self, clients: ClientFactory, table: str, region: str, key_id: str) -> None:
        self._clients = clients
        self._table = table
        self._region = region
        self._pk = key_id

    @property
    def _ddb(self) -> Any:
        return self._clients.client("dynamodb", self._region)

    def _key(self, sk: str) -> dict[str, Any]:
        return {"pk": {"S": self._pk}, "sk": {"S": sk}}

    def _conditional_failed(self, exc: Exception) -> bool:
        return error_code(exc) == CONDITIONAL_CHECK_FAILED

    def _pages(self, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Query pages by hand: botocore's paginator lists every service model on disk first (a cold-start cost)."""
        for _ in range(MAX_PAGES):
            page: dict[str, Any] = self._ddb.query(**query)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            query = {**query, "ExclusiveStartKey": page["LastEvaluatedKey"]}
        raise RuntimeError(f"state table {self._table}: more than {MAX_PAGES} pages for key {self._pk}")

    # --- event dedupe --------------------------------------------------------------------------------------------

    def claim_event(self, event_id: str, now: float) -> bool:
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    **self._key(f"e#{event_id}"),
                    "lease_until": {"N": str(int(now + EVENT_LEASE_SECONDS))},
                    "expires_at": {"N": str(int(now + EVENT_MEMORY_SECONDS))},
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
            )
            return True
        except Exception as exc:
            if self._conditional_failed(exc):
                return False
            raise

    def release_event(self, event_id: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=self._key(f"e#{event_id}"))

    # --- report, baselines, holds --------------------------------------------------------------------------------

    def load(self) -> KeyRecord:
        record = KeyRecord()
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": self._pk}, ":prefix": {"S": "k#"}},
            "ConsistentRead": True,
        }
        for page in self._pages(query):
            for item in page.get("Items", []):
                sk = item["sk"]["S"]
                if sk == "k#report":
                    record.fingerprint = item.get("fingerprint", {}).get("S")
                    record.findings = json.loads(item.get("findings", {}).get("S", "[]"))
                    if "alerted_at" in item:
                        record.alerted_at = float(item["alerted_at"]["N"])
                elif sk.startswith("k#region#"):
                    region = sk[len("k#region#") :]
                    if "baseline_policy" in item:
                        record.baselines[region] = item["baseline_policy"]["S"]
                    if "hold" in item:
                        record.holds[region] = item["hold"]["S"]
                elif sk == "k#coverage":
                    record.coverage = item.get("fingerprint", {}).get("S")
                    record.coverage_codes = tuple(json.loads(item.get("codes", {}).get("S", "[]")))
                    if "canary_since" in item:
                        record.canary_since = float(item["canary_since"]["N"])
                    if "checked_at" in item:
                        record.coverage_checked_at = float(item["checked_at"]["N"])
                elif sk.startswith("k#outbox#"):
                    record.outbox.append((sk, json.loads(item["alert"]["S"])))
                elif sk.startswith("k#canary#"):
                    record.canary_arrivals[sk[len("k#canary#") :]] = float(item["arrived_at"]["N"])
        return record

    def save_report(self, fingerprint: str, findings: list[dict[str, Any]], alerted_at: float | None) -> None:
        names = {"#f": "fingerprint", "#d": "findings"}
        values: dict[str, Any] = {":f": {"S": fingerprint}, ":d": {"S": json.dumps(findings)}}
        expression = "SET #f = :f, #d = :d"
        if alerted_at is not None:
            expression += ", alerted_at = :a"
            values[":a"] = {"N": repr(alerted_at)}
        self._ddb.update_item(
            TableName=self._table,
            Key=self._key("k#report"),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def save_baseline(self, region: str, policy: str, now: float) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key=self._key(f"k#region#{region}"),
            UpdateExpression="SET baseline_policy = :p, baseline_at = :t",
            ExpressionAttributeValues={":p": {"S": policy}, ":t": {"N": repr(now)}},
        )

    def set_hold(self, region: str, fingerprint: str | None) -> None:
        if fingerprint is None:
            self._ddb.update_item(
                TableName=self._table, Key=self._key(f"k#region#{region}"), UpdateExpression="REMOVE hold"
            )
        else:
            self._ddb.update_item(
                TableName=self._table,
                Key=self._key(f"k#region#{region}"),
                UpdateExpression="SET #h = :h",
                ExpressionAttributeNames={"#h": "hold"},
                ExpressionAttributeValues={":h": {"S": fingerprint}},
            )

    # --- coverage and canary -------------------------------------------------------------------------------------

    def save_coverage(
        self, fingerprint: str, codes: tuple[str, ...], canary_since: float | None, checked_at: float
    ) -> None:
        values: dict[str, Any] = {
            ":f": {"S": fingerprint},
            ":c": {"S": json.dumps(list(codes))},
            ":t": {"N": repr(checked_at)},
        }
        expression = "SET #f = :f, #c = :c, checked_at = :t"
        if canary_since is not None:
            expression += ", canary_since = :s"
            values[":s"] = {"N": repr(canary_since)}
        self._ddb.update_item(
            TableName=self._table,
            Key=self._key("k#coverage"),
            UpdateExpression=expression,
            ExpressionAttributeNames={"#f": "fingerprint", "#c": "codes"},  # safe from DynamoDB's reserved words
            ExpressionAttributeValues=values,
        )

    def queue_alerts(self, alerts: list[dict[str, Any]], now: float) -> list[str]:
        """Each alert its own item (an alert body is up to 200 KB; an item up to 400 KB), kept a week at most."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        references = []
        for alert in alerts:
            reference = f"k#outbox#{stamp}#{uuid.uuid4().hex[:12]}"
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    **self._key(reference),
                    "alert": {"S": json.dumps(alert)},
                    "expires_at": {"N": str(int(now + EVENT_MEMORY_SECONDS))},
                },
            )
            references.append(reference)
        return references

    def alert_sent(self, reference: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=self._key(reference))

    def record_canary(self, region: str, now: float) -> None:
        """Keep the latest arrival: a late redelivery of an older canary cannot move it back."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=self._key(f"k#canary#{region}"),
                UpdateExpression="SET arrived_at = :t",
                ConditionExpression="attribute_not_exists(arrived_at) OR arrived_at < :t",
                ExpressionAttributeValues={":t": {"N": repr(now)}},
            )
        except Exception as exc:
            if not self._conditional_failed(exc):
                raise

    # --- rate limit and log --------------------------------------------------------------------------------------

    def take_write_slot(self, region: str, now: float, limit: int, count: int = 1) -> bool:
        for _ in range(5):
            item = self._ddb.get_item(TableName=self._table, Key=self._key(f"w#{region}"), ConsistentRead=True).get(
                "Item"
            )
            version = int(item["version"]["N"]) if item else 0
            recent = [t for t in json.loads(item["writes"]["S"]) if t > now - WRITE_WINDOW_SECONDS] if item else []
            if len(recent) + count > limit:
                return False
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item={
                        **self._key(f"w#{region}"),
                        "writes": {"S": json.dumps([*recent, *[now] * count])},
                        "version": {"N": str(version + 1)},
                        "expires_at": {"N": str(int(now + 2 * WRITE_WINDOW_SECONDS))},
                    },
                    ConditionExpression="attribute_not_exists(pk) OR version = :v",
                    ExpressionAttributeValues={":v": {"N": str(version)}},
                )
                return True
            except Exception as exc:
                if not self._conditional_failed(exc):
                    raise
        return False  # lost the race five times: treat as no slot rather than risk exceeding the limit

    def log_remediation(self, region: str, now: float, entry: dict[str, Any]) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        self._ddb.put_item(
            TableName=self._table,
            Item={
                **self._key(f"log#{stamp}#{region}#{uuid.uuid4().hex[:8]}"),
                "entry": {"S": json.dumps(entry)[:350_000]},
                "expires_at": {"N": str(int(now + LOG_RETENTION_SECONDS))},
            },
        )
