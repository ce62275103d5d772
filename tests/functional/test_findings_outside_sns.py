"""The opt-in features end to end: Security Hub and EventBridge against moto, the second opinion against a Stubber.

moto implements BatchImportFindings (without checking that Security Hub is enabled: "not enabled" is injected at the
API boundary with the error real Security Hub returns) and routes PutEvents to SQS targets of a rule. moto does not
implement IAM Access Analyzer's CheckNoNewAccess ("not yet implemented"): botocore's Stubber answers instead, with
responses it validates against the service model, and refuses any call it was not told to expect.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from kms_guard.aws.clients import ClientFactory
from kms_guard.core.second_opinion import reference_policy
from kms_guard.core.vendor import ROCKSET
from kms_guard.wiring import wire

from tests.functional.conftest import GOOD_POLICY, HOME, REPLICA, Account
from tests.functional.test_scenarios import NO_DECRYPT, break_policy

OPT_IN_SERVICES = ("securityhub.", "eventbridge.PutEvents", "accessanalyzer.")


def fix_policy(account: Account, region: str = REPLICA) -> None:
    break_policy(account, region, GOOD_POLICY)


def opt_in_calls(account: Account) -> dict[str, int]:
    return {k: v for k, v in account.calls.items() if k.startswith(OPT_IN_SERVICES)}


def test_off_by_default_nothing_outside_sns_is_called(account: Account) -> None:
    guard = account.guard()
    break_policy(account)
    guard.scheduled_check({"id": "a"})
    fix_policy(account)
    guard.scheduled_check({"id": "b"})
    # the guard did find and resolve a problem (SNS alone heard of it): the opt-in services had something to say
    assert [a["subject"][:10] for a in account.delivered_alerts()] == ["[CRITICAL]", "[RESOLVED]"]
    assert opt_in_calls(account) == {}


# --- Security Hub ---------------------------------------------------------------------------------------------


def test_a_security_hub_finding_is_created_kept_quiet_and_resolved(account: Account) -> None:
    account.enable_security_hub()
    guard = account.guard(security_hub=True)
    guard.scheduled_check({"id": "a"})
    assert account.calls["securityhub.BatchImportFindings"] == 0  # compliant, nothing to say

    break_policy(account)
    guard.scheduled_check({"id": "b"})
    [finding] = account.securityhub_findings().values()
    assert finding["Id"] == f"kms-guard/{account.key_id}/{REPLICA}/ACTION_NOT_GRANTED"
    assert finding["ProductArn"] == f"arn:aws:securityhub:{HOME}:{account.account}:product/{account.account}/default"
    assert finding["Resources"][0]["Id"] == account.arn_in(REPLICA)
    assert (finding["RecordState"], finding["Compliance"]["Status"]) == ("ACTIVE", "FAILED")
    created = finding["CreatedAt"]

    guard.scheduled_check({"id": "c"})  # nothing changed: nothing imported
    assert account.calls["securityhub.BatchImportFindings"] == 1

    fix_policy(account)
    guard.scheduled_check({"id": "d"})
    [resolved] = account.securityhub_findings().values()
    assert resolved["Id"] == finding["Id"]
    assert (resolved["RecordState"], resolved["Compliance"]["Status"]) == ("ARCHIVED", "PASSED")
    assert resolved["CreatedAt"] == created
    assert resolved["UpdatedAt"] > created
    assert account.calls["securityhub.BatchImportFindings"] == 2


def test_security_hub_not_enabled_is_one_warning_and_the_evaluation_goes_on(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    guard = account.guard(security_hub=True)
    break_policy(account)
    account.fail_call("securityhub.BatchImportFindings", "InvalidAccessException", status=400)
    with caplog.at_level(logging.WARNING, logger="kms_guard"):
        result = guard.scheduled_check({"id": "a"})
    assert result.report is not None
    assert result.report.verdict == "non-compliant"
    assert [a["codes"] for a in account.delivered_alerts()] == [["ACTION_NOT_GRANTED"]]
    warnings = [r.getMessage() for r in caplog.records if r.name == "kms_guard"]
    assert len(warnings) == 1
    assert f"Security Hub is not enabled in {HOME} for account {account.account}" in warnings[0]


# --- EventBridge ----------------------------------------------------------------------------------------------


def test_one_eventbridge_event_per_change_arrives_on_a_routed_queue(account: Account) -> None:
    account.route_finding_events()
    guard = account.guard(finding_events=True)
    guard.scheduled_check({"id": "a"})
    break_policy(account)
    guard.scheduled_check({"id": "b"})
    guard.scheduled_check({"id": "c"})  # no change: no event
    fix_policy(account)
    guard.scheduled_check({"id": "d"})
    events = account.delivered_finding_events()
    assert [(e["source"], e["detail-type"]) for e in events] == [("kms-guard", "KMS Guard Finding")] * 2
    assert [e["detail"]["change"] for e in events] == ["problem", "resolved"]
    problem = events[0]["detail"]
    assert problem == {
        "key_arn": account.key_arn,
        "vendor": "Rockset",
        "regions": [REPLICA],
        "verdict": "non-compliant",
        "previous_verdict": "compliant",
        "codes": ["ACTION_NOT_GRANTED"],
        "change": "problem",
    }
    assert events[0]["resources"] == [account.key_arn]
    assert events[0]["region"] == HOME
    assert account.calls["eventbridge.PutEvents"] == 2


# --- second opinion -------------------------------------------------------------------------------------------


def pass_(message: str = "The new policy grants no new access.") -> dict[str, Any]:
    return {"result": "PASS", "message": message, "reasons": []}


def fail(statement_id: str = "KmsGuardRocksetAccess") -> dict[str, Any]:
    return {
        "result": "FAIL",
        "message": "The new policy document grants new access compared to the existing policy document.",
        "reasons": [
            {
                "description": "New access in the statement with index: 0.",
                "statementIndex": 0,
                "statementId": statement_id,
            }
        ],
    }


def expect(stubber: Stubber, existing: str, response: dict[str, Any]) -> None:
    stubber.add_response(
        "check_no_new_access",
        response,
        {
            "existingPolicyDocument": existing,
            "newPolicyDocument": reference_policy(ROCKSET),
            "policyType": "RESOURCE_POLICY",
        },
    )


@pytest.fixture
def analyzer(account: Account) -> Iterator[tuple[ClientFactory, dict[str, Stubber]]]:
    """The guard's clients, with CheckNoNewAccess stubbed in each Region (moto does not implement it)."""
    clients = ClientFactory(account.session, 3)
    stubbers: dict[str, Stubber] = {}
    for region in (HOME, REPLICA):
        client = clients.client("accessanalyzer", region)

        def count(**kwargs: Any) -> None:  # every call builds its parameters; the Stubber answers later, at before-call
            account.calls["accessanalyzer.CheckNoNewAccess"] += 1

        client.meta.events.register("before-parameter-build.accessanalyzer.CheckNoNewAccess", count)
        stubbers[region] = Stubber(client)
        stubbers[region].activate()
    yield clients, stubbers
    for stubber in stubbers.values():
        stubber.deactivate()


def test_an_agreeing_second_opinion_lets_the_repair_through_after_the_planned_policy_passes(
    account: Account, analyzer: tuple[ClientFactory, dict[str, Stubber]]
) -> None:
    clients, stubbers = analyzer
    guard = wire(
        account.settings(second_opinion=True, remediation="restore-statement"), clients, sleep=lambda s: None
    ).guard
    break_policy(account)
    expect(stubbers[HOME], GOOD_POLICY, pass_())
    expect(stubbers[REPLICA], NO_DECRYPT, fail("RocksetAccess"))
    stubbers[REPLICA].add_response("check_no_new_access", pass_())  # the planned policy

    result = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert result.remediation[0].status == "applied"
    assert result.remediation[0].verified is True
    assert result.report is not None
    assert result.report.verdict == "compliant"
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()
    # One call per Region for the key as found, one for the policy to write: no more.
    assert account.calls["accessanalyzer.CheckNoNewAccess"] == 3
    assert [o["agrees"] for o in result.to_dict()["second_opinion"]] == [True, True]


def test_a_disputed_verdict_holds_the_repair_and_the_alert_carries_both_answers(
    account: Account, analyzer: tuple[ClientFactory, dict[str, Stubber]]
) -> None:
    clients, stubbers = analyzer
    guard = wire(account.settings(second_opinion=True, remediation="restore-statement"), clients).guard
    break_policy(account)
    expect(stubbers[HOME], GOOD_POLICY, pass_())
    expect(stubbers[REPLICA], NO_DECRYPT, pass_("AWS finds the grant whole."))

    result = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert result.remediation[0].status == "skipped"
    assert account.policy(REPLICA) == NO_DECRYPT  # nothing written
    assert account.calls["accessanalyzer.CheckNoNewAccess"] == 2
    assert account.calls["kms.PutKeyPolicy"] == 0
    [alert] = account.delivered_alerts()
    assert set(alert["codes"]) == {"ACTION_NOT_GRANTED", "VERDICT_DISPUTED"}
    assert "The guard says Rockset is not granted (ACTION_NOT_GRANTED)" in alert["message"]
    assert (
        "CheckNoNewAccess says the vendor's statement grants nothing new: PASS: AWS finds the grant whole."
        in (alert["message"])
    )


def test_a_planned_policy_that_fails_the_second_opinion_is_not_written(
    account: Account, analyzer: tuple[ClientFactory, dict[str, Stubber]]
) -> None:
    clients, stubbers = analyzer
    guard = wire(account.settings(second_opinion=True, remediation="restore-statement"), clients).guard
    break_policy(account)
    expect(stubbers[HOME], GOOD_POLICY, pass_())
    expect(stubbers[REPLICA], NO_DECRYPT, fail("RocksetAccess"))
    stubbers[REPLICA].add_response("check_no_new_access", fail())

    result = guard.handle(account.event("put-key-policy-removes-decrypt"))
    assert result.remediation[0].status == "refused"
    assert "New access in the statement with index: 0. (statement KmsGuardRocksetAccess)" in (
        result.remediation[0].description
    )
    assert account.calls["kms.PutKeyPolicy"] == 0


# --- the command ----------------------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    import io

    from kms_guard_cli.main import run

    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def stubbed_analyzer(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The command's CheckNoNewAccess client, stubbed (the command builds its own clients from the credentials)."""
    import botocore.session

    client = botocore.session.get_session().create_client("accessanalyzer", region_name=HOME)
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr(ClientFactory, "client", lambda self, service, region: client)
    yield stubber
    stubber.assert_no_pending_responses()


KEY_ARN = f"arn:aws:kms:{HOME}:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"


def test_check_policy_second_opinion_agreeing_keeps_the_verdict_and_exit(
    tmp_path: Path, stubbed_analyzer: Stubber
) -> None:
    path = tmp_path / "policy.json"
    path.write_text(NO_DECRYPT)
    expect(stubbed_analyzer, NO_DECRYPT, fail())
    code, out, _ = run_cli("check-policy", str(path), "--second-opinion", "--key-arn", KEY_ARN, "--output", "json")
    payload = json.loads(out)
    assert code == 1
    assert payload["second_opinion"]["result"] == "FAIL"
    assert payload["second_opinion"]["agrees"] is True
    assert [f["code"] for f in payload["findings"]] == ["ACTION_NOT_GRANTED"]


def test_check_policy_second_opinion_shows_a_disagreement(tmp_path: Path, stubbed_analyzer: Stubber) -> None:
    path = tmp_path / "policy.json"
    path.write_text(GOOD_POLICY)
    expect(stubbed_analyzer, GOOD_POLICY, fail())
    code, out, _ = run_cli("check-policy", str(path), "--second-opinion", "--key-arn", KEY_ARN)
    assert code == 0  # exit codes unchanged: the dispute is a warning, shown
    assert "VERDICT_DISPUTED" in out
    assert "second opinion (IAM Access Analyzer CheckNoNewAccess): DISAGREES: FAIL" in out


def test_check_policy_second_opinion_without_an_answer_is_not_a_pass(tmp_path: Path, stubbed_analyzer: Stubber) -> None:
    path = tmp_path / "policy.json"
    path.write_text(GOOD_POLICY)
    stubbed_analyzer.add_client_error("check_no_new_access", "AccessDeniedException", "not authorized")
    code, _, err = run_cli("check-policy", str(path), "--second-opinion", "--key-arn", KEY_ARN)
    assert code == 2
    assert "no answer from IAM Access Analyzer" in err
    assert "AccessDeniedException" in err


def test_check_with_security_hub_and_finding_events_flags(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    account.enable_security_hub()  # moto imports findings even when it is off; real Security Hub refuses them
    account.route_finding_events()
    break_policy(account)
    code, out, _ = run_cli(
        "check",
        "--key-arn",
        account.key_arn,
        "--regions",
        f"{HOME},{REPLICA}",
        "--security-hub",
        "--finding-events",
        "--output",
        "json",
    )
    assert code == 1
    assert "second_opinion" not in json.loads(out)
    assert list(account.securityhub_findings()) == [f"kms-guard/{account.key_id}/{REPLICA}/ACTION_NOT_GRANTED"]
    assert [e["detail"]["change"] for e in account.delivered_finding_events()] == ["problem"]
