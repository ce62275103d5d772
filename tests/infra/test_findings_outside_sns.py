"""The opt-in features in the template: off by default with nothing granted or set; each one, when on, grants exactly
the actions its adapter declares, on the narrowest resource IAM offers."""

from __future__ import annotations

from typing import Any

import pytest
from kms_guard.aws.access_analyzer import CHECK_ACTIONS
from kms_guard.aws.finding_events import PUT_EVENTS_ACTIONS
from kms_guard.aws.securityhub import IMPORT_ACTIONS
from kms_guard.settings import ENV_NAMES

from infra.config import ConfigError, config_from_context
from tests.infra.conftest import ACCOUNT, BASE, Built, build
from tests.infra.test_stacks import policy_statements, resources

ROLES = ("KmsEventFunctionRole", "ScheduledCheckFunctionRole")
OPT_IN_ACTIONS = {*IMPORT_ACTIONS, *PUT_EVENTS_ACTIONS, *CHECK_ACTIONS}
OPT_IN_ENV = {ENV_NAMES["security_hub"], ENV_NAMES["finding_events"], ENV_NAMES["second_opinion"]}
PRODUCT = f"arn:aws:securityhub:us-west-2:{ACCOUNT}:product/{ACCOUNT}/default"
BUS = f"arn:aws:events:us-west-2:{ACCOUNT}:event-bus/default"


def role_grants(built: Built, role: str) -> list[tuple[list[str], Any]]:
    return [(actions, resource) for lid, actions, resource in policy_statements(built["home"]) if lid.startswith(role)]


def environments(built: Built) -> list[dict[str, Any]]:
    return [
        f["Properties"]["Environment"]["Variables"] for f in resources(built["home"], "AWS::Lambda::Function").values()
    ]


@pytest.mark.parametrize("fixture", ["off", "on"])
def test_nothing_outside_sns_is_granted_or_set_unless_enabled(fixture: str, request: pytest.FixtureRequest) -> None:
    built: Built = request.getfixturevalue(fixture)
    granted = {a for _, actions, _ in policy_statements(built["home"]) for a in actions}
    assert not granted & OPT_IN_ACTIONS
    assert not any(a.startswith(("securityhub:", "access-analyzer:")) for a in granted)
    for env in environments(built):
        assert not set(env) & OPT_IN_ENV


@pytest.mark.parametrize(
    ("context", "expected", "variable"),
    [
        ({"securityHub": True}, (["securityhub:BatchImportFindings"], PRODUCT), "KMS_GUARD_SECURITY_HUB"),
        ({"findingEvents": "true"}, (["events:PutEvents"], BUS), "KMS_GUARD_FINDING_EVENTS"),
        ({"secondOpinion": True}, (["access-analyzer:CheckNoNewAccess"], "*"), "KMS_GUARD_SECOND_OPINION"),
    ],
)
def test_each_feature_grants_exactly_its_action_on_its_resource(
    context: dict[str, Any], expected: tuple[list[str], Any], variable: str
) -> None:
    built = build(**context)
    for role in ROLES:
        opt_in = [g for g in role_grants(built, role) if set(g[0]) & OPT_IN_ACTIONS]
        assert opt_in == [expected]
    for env in environments(built):
        assert set(env) & OPT_IN_ENV == {variable}
        assert env[variable] == "true"


def test_opt_in_context_keys_are_booleans_with_one_message_each() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_context({**BASE, "securityHub": "yes", "findingEvents": 1, "secondOpinion": "false"})
    assert caught.value.problems == [
        "securityHub: must be true or false, not 'yes'",
        "findingEvents: must be true or false, not '1'",
    ]
    config = config_from_context(BASE)
    assert (config.security_hub, config.finding_events, config.second_opinion) == (False, False, False)
