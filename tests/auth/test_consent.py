"""Which on-behalf-of refusals the user can fix (app/auth/consent.py), from the error shapes Entra answers with as MSAL
hands them through: consent and Conditional Access are the user's; a blocked or unassigned user, or a bad inbound
token, are not (the connect page could not help, so no link is offered)."""

from __future__ import annotations

import pytest

from app.auth.consent import MAX_CLAIMS, claims_challenge, user_action

CLAIMS = '{"access_token":{"polids":{"essential":true,"values":["9ab03e19-ed42-4168-b6b7-7001fb3e933a"]}}}'


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ({"error": "invalid_grant", "error_codes": [65001], "suberror": "consent_required"}, "consent_required"),
        ({"error": "invalid_grant", "error_codes": [65001]}, "consent_required"),
        ({"error": "invalid_grant", "error_codes": [65004]}, "consent_required"),  # declined before: ask again
        ({"error": "interaction_required", "error_codes": [50079], "claims": CLAIMS}, "interaction_required"),
        ({"error": "invalid_grant", "error_codes": [50076], "suberror": "basic_action"}, "interaction_required"),
        ({"error": "invalid_grant", "claims": CLAIMS}, "interaction_required"),
        ({"error": "interaction_required"}, "interaction_required"),
        ({"error": "interaction_required", "suberror": "additional_action"}, "interaction_required"),
        ({"error": "invalid_grant", "error_codes": [53003]}, None),  # blocked by Conditional Access
        ({"error": "invalid_grant", "error_codes": [50105]}, None),  # not assigned to the app
        ({"error": "interaction_required", "suberror": "bad_token"}, None),  # the client's token to renew
        ({"error": "invalid_client", "error_codes": [7000215]}, None),  # this server's own credential
        ({"error": "invalid_grant", "error_codes": ["65001"]}, None),  # codes are numbers
        ({}, None),
    ],
)
def test_user_action_reads_entras_refusals(result: dict[str, object], reason: str | None) -> None:
    assert user_action(result) == reason


@pytest.mark.parametrize("claims", ["", "not json", "[1, 2]", '"a string"', "{" + " " * MAX_CLAIMS + "}", 42, None])
def test_only_a_sane_json_object_is_a_claims_challenge(claims: object) -> None:
    assert claims_challenge({"claims": claims}) is None
    assert claims_challenge({"claims": CLAIMS}) == CLAIMS
