"""EventBridge events in: recognise the ones about the guarded key, drop everything else with a reason.

Shapes (aws-facts.md, and https://docs.aws.amazon.com/kms/latest/developerguide/kms-events.html):
- CloudTrail API calls: `detail-type` "AWS API Call via CloudTrail", `source` "aws.kms", the API in
  `detail.eventName`, the CloudTrail event ID in `detail.eventID` (the dedupe key; the envelope `id` differs per
  delivery). The key ARN is in `detail.resources[].ARN` (may be missing or null), in `detail.responseElements.keyId` for
  newer records, and `detail.requestParameters.keyId` is whatever the caller typed (key ID, ARN, alias, alias ARN).
  Failed calls carry `detail.errorCode`: nothing changed, so they are dropped.
- CreateKey in a replica's Region (a ReplicateKey seen from there): the new key's ARN in
  `detail.responseElements.keyMetadata` or `detail.resources`.
- Service events ("AWS Service Event via CloudTrail"): DeleteKey.
- KMS's own events: "KMS CMK Deletion", "KMS Imported Key Material Expiration", with `detail.key-id` and the key ARN in
  the top-level `resources`.
- The scheduled check: `source` "aws.events", `detail-type` "Scheduled Event".

Every decision here is made without an AWS call. Strings that came from the event are kept bounded (they reach logs and
alerts); alerts sanitise them again.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kms_guard.core.arns import ArnError, KeyArn

API_CALL = "AWS API Call via CloudTrail"
SERVICE_EVENT = "AWS Service Event via CloudTrail"
SCHEDULED = "Scheduled Event"

API_EVENTS = frozenset(
    {
        "DisableKey",
        "EnableKey",
        "PutKeyPolicy",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "ReplicateKey",
        "UpdatePrimaryRegion",
        "DeleteImportedKeyMaterial",
        "CreateKey",
    }
)
"""CreateKey: a ReplicateKey request is logged as ReplicateKey in the primary's Region and as CreateKey in the
replica's Region (https://docs.aws.amazon.com/kms/latest/developerguide/ct-replicate-key.html). A CreateKey of any
other key names that key's ID and is dropped as "another key"."""
SERVICE_EVENTS = frozenset({"DeleteKey"})
KMS_EVENTS = frozenset({"KMS CMK Deletion", "KMS Imported Key Material Expiration"})
"""KMS's own events: the detail-type is the event name."""

Kind = Literal["api-call", "service-event", "kms-event", "scheduled"]
ANOTHER_KEY = "event is about another key"
"""Why an event naming some other key is dropped (a deployment of many keys says which keys it guards instead)."""
MAX_FIELD = 512
MAX_CANDIDATES = 64
"""At most this many key identifiers are read from one event (an event controls how many it carries)."""


@dataclass(frozen=True)
class Actor:
    """Who made the change, from `detail.userIdentity` and the request metadata."""

    type: str | None
    arn: str | None
    principal_arn: str | None
    """The IAM role behind an assumed-role session (`sessionContext.sessionIssuer.arn`), else the user's ARN."""
    account: str | None
    invoked_by: str | None
    source_ip: str | None
    user_agent: str | None

    @property
    def display(self) -> str:
        who = self.principal_arn or self.arn or self.invoked_by or self.type or "unknown"
        if self.arn and self.principal_arn and self.arn != self.principal_arn:
            who = f"{self.arn} (role {self.principal_arn})"
        return who

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class KeyEvent:
    """An event about the guarded key (or the scheduled check): the trigger, never the truth."""

    kind: Kind
    name: str
    """The API name (`PutKeyPolicy`), the KMS event's detail-type, or `ScheduledCheck`."""
    event_id: str
    """The dedupe ID: CloudTrail's eventID for CloudTrail events, the envelope id otherwise."""
    region: str
    time: str | None
    actor: Actor | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    """Selected request parameters (bounded): policy, replicaRegion, primaryRegion, pendingWindowInDays."""

    @property
    def is_scheduled(self) -> bool:
        return self.kind == "scheduled"


@dataclass(frozen=True)
class Ignored:
    reason: str


def scheduled_event(event_id: str = "scheduled", region: str = "", time: str | None = None) -> KeyEvent:
    return KeyEvent("scheduled", "ScheduledCheck", event_id, region, time)


def parse_event(event: Any, key: KeyArn) -> KeyEvent | Ignored:
    """Classify one EventBridge event for the guarded key (any Region of it)."""
    if not isinstance(event, Mapping):
        return Ignored("malformed event: not a JSON object")
    detail_type, source = event.get("detail-type"), event.get("source")
    if not isinstance(detail_type, str) or not isinstance(source, str):
        return Ignored("malformed event: missing detail-type or source")
    detail = event.get("detail")
    envelope_id = _text(event.get("id")) or "unknown"
    region = _text(event.get("region")) or ""
    time = _text(event.get("time"))

    if source == "aws.events" and detail_type == SCHEDULED:
        return scheduled_event(envelope_id, region, time)
    if source != "aws.kms":
        return Ignored(f"not a KMS event (source {_text(source)})")
    if not isinstance(detail, Mapping):
        return Ignored("malformed event: detail is not an object")

    if detail_type in KMS_EVENTS:
        return _parse_kms_event(event, detail, detail_type, key, envelope_id, region, time)
    if detail_type not in (API_CALL, SERVICE_EVENT):
        return Ignored(f"not a key-changing event (detail-type {_text(detail_type)})")

    name = detail.get("eventName")
    if not isinstance(name, str):
        return Ignored("malformed event: detail.eventName missing")
    wanted = API_EVENTS if detail_type == API_CALL else SERVICE_EVENTS
    if name not in wanted:
        return Ignored(f"not a key-changing event ({_text(name)})")
    if detail.get("errorCode"):
        return Ignored(f"failed call, nothing changed ({_text(name)}: {_text(detail.get('errorCode'))})")
    event_id = _text(detail.get("eventID"))
    if not event_id:
        return Ignored("malformed event: detail.eventID missing")

    verdict = _identifies_key(_candidate_ids(detail), key)
    if verdict is not None:
        return Ignored(verdict)
    request = detail.get("requestParameters")
    return KeyEvent(
        kind="api-call" if detail_type == API_CALL else "service-event",
        name=name,
        event_id=event_id,
        region=_text(detail.get("awsRegion")) or region,
        time=_text(detail.get("eventTime")) or time,
        actor=_actor(detail),
        request=_request(request if isinstance(request, Mapping) else {}),
    )


def _parse_kms_event(
    event: Mapping[str, Any],
    detail: Mapping[str, Any],
    name: str,
    key: KeyArn,
    envelope_id: str,
    region: str,
    time: str | None,
) -> KeyEvent | Ignored:
    candidates: list[Any] = []
    resources = event.get("resources")
    if isinstance(resources, list):
        candidates.extend(resources)
    candidates.append(detail.get("key-id"))
    verdict = _identifies_key(iter(candidates), key)
    if verdict is not None:
        return Ignored(verdict)
    return KeyEvent("kms-event", name, envelope_id, region, time)


def candidate_identifiers(event: Any) -> Iterator[str]:
    """Every key identifier an event carries (ARNs and bare IDs, as text), at most MAX_CANDIDATES: what routes an
    event among many keys. Which of them really identifies a key is `parse_event`'s call, per key."""
    if not isinstance(event, Mapping):
        return
    detail = event.get("detail")
    candidates: list[Iterator[Any]] = []
    if isinstance(detail, Mapping):
        candidates.append(_candidate_ids(detail))
        candidates.append(iter([detail.get("key-id")]))
    resources = event.get("resources")
    if isinstance(resources, list):
        candidates.append(iter(resources))
    for candidate in itertools.islice(itertools.chain(*candidates), MAX_CANDIDATES):
        if isinstance(candidate, str) and candidate:
            yield candidate[:MAX_FIELD]


def _candidate_ids(detail: Mapping[str, Any]) -> Iterator[Any]:
    resources = detail.get("resources")
    if isinstance(resources, list):
        for resource in resources:
            if isinstance(resource, Mapping):
                yield resource.get("ARN")
    response = detail.get("responseElements")
    if isinstance(response, Mapping):
        yield response.get("keyId")
        for nested in ("keyMetadata", "replicaKeyMetadata"):
            meta = response.get(nested)
            if isinstance(meta, Mapping):
                yield meta.get("arn")
                yield meta.get("keyId")
    request = detail.get("requestParameters")
    if isinstance(request, Mapping):
        yield request.get("keyId")


def _identifies_key(candidates: Iterator[Any], key: KeyArn) -> str | None:
    """None when the event names the guarded key; otherwise why the event is dropped.

    Only a full key ARN (same account) or a bare multi-Region key ID counts: an alias or alias ARN could point at any
    key, so it never identifies the guarded one on its own. A full ARN outranks a bare ID: an event whose ARNs all
    name another account's key with the same ID is about that key, whatever bare ID it also carries.
    """
    arn_ours = arn_other = id_ours = False
    for candidate in itertools.islice(candidates, MAX_CANDIDATES):
        if not isinstance(candidate, str) or not candidate:
            continue
        if candidate.startswith("arn:"):
            try:
                arn = KeyArn.parse(candidate)
            except ArnError:
                continue  # alias ARNs and other resources
            if arn.key_id == key.key_id and arn.account == key.account:
                arn_ours = True
            else:
                arn_other = True
        elif candidate == key.key_id:
            id_ours = True
        elif not candidate.startswith("alias/"):
            arn_other = True
    if arn_ours or (id_ours and not arn_other):
        return None
    return ANOTHER_KEY if arn_other else "event does not identify a key by ARN or key ID"


def _actor(detail: Mapping[str, Any]) -> Actor:
    identity = detail.get("userIdentity")
    identity = identity if isinstance(identity, Mapping) else {}
    issuer: Any = None
    context = identity.get("sessionContext")
    if isinstance(context, Mapping) and isinstance(context.get("sessionIssuer"), Mapping):
        issuer = context["sessionIssuer"].get("arn")
    arn = _text(identity.get("arn"))
    return Actor(
        type=_text(identity.get("type")),
        arn=arn,
        principal_arn=_text(issuer) or arn,
        account=_text(identity.get("accountId")),
        invoked_by=_text(identity.get("invokedBy")),
        source_ip=_text(detail.get("sourceIPAddress")),
        user_agent=_text(detail.get("userAgent")),
    )


def _request(request: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("replicaRegion", "primaryRegion", "pendingWindowInDays", "policyName"):
        value = request.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            out[name] = _text(value)
    policy = request.get("policy")
    if isinstance(policy, str):
        out["policy"] = policy[:40_000]  # a key policy is at most 32 KB
    bypass = request.get("bypassPolicyLockoutSafetyCheck")
    if isinstance(bypass, bool):
        out["bypassPolicyLockoutSafetyCheck"] = bypass
    return out


def _text(value: Any) -> str | None:
    """A scalar event field as bounded text, or None."""
    if value is None or isinstance(value, Mapping | list):
        return None
    text = str(value)
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 3] + "..."
