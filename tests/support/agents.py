"""Entra Agent ID access tokens, minted by the Entra stand-in with the claim sets Microsoft documents.

Source: "Token claims reference for agent IDs", learn.microsoft.com/entra/agent-id/identity-platform/agent-token-claims
(MicrosoftDocs/entra-docs, docs/agent-id/identity-platform/agent-token-claims.md): its sample autonomous-agent token
and its three scenario tables (an agent acting for a human user; acting autonomously; acting autonomously through its
agent user). The stand-in's v2 tokens name the agent identity's app id in `azp` (v1: `appid`), as the page says.
"""

from __future__ import annotations

from typing import Any

from tests.support.entra import EntraStandIn
from tests.support.values import CLIENT_ID, TENANT

AGENT_APP = "aaaaaaaa-1111-4222-8333-444444444444"  # the agent identity's application id (azp)
AGENT_SP = "bbbbbbbb-1111-4222-8333-444444444444"  # its service principal's object id
AGENT_USER = "cccccccc-1111-4222-8333-444444444444"  # its agent user's object id
PARENT_APP = "30cf4c22-9985-4ef7-8756-91cc888176bd"  # the blueprint (xms_par_app_azp), as in Microsoft's sample
HUMAN = "dddddddd-1111-4222-8333-444444444444"  # the person a delegated agent acts for
PLAIN_APP = "eeeeeeee-1111-4222-8333-444444444444"  # an ordinary app registration (client credentials)


def autonomous_agent(entra: EntraStandIn, roles: list[str], **overrides: Any) -> str:
    """Microsoft's sample: an agent identity acting on its own (app-only: `idtyp` app, roles, facets "3 9 11")."""
    claims: dict[str, Any] = {
        "idtyp": "app",
        "sub": AGENT_SP,
        "xms_act_fct": "3 9 11",
        "xms_sub_fct": "9 3 11",
        "xms_tnt_fct": "3 9",
        "xms_idrel": "7 10",
        "xms_par_app_azp": PARENT_APP,
        "xms_ftd": "Z5DrW4HFOkR_Lz0M5qETa260d2-fO6seMZJ_tOwRNuc",
        **overrides,
    }
    return entra.token(
        tenant=TENANT, audience=CLIENT_ID, scopes=None, roles=roles, oid=AGENT_SP, app_id=AGENT_APP, **claims
    )


def agent_as_agent_user(entra: EntraStandIn, scopes: str, **overrides: Any) -> str:
    """An agent acting on its own through its agent user: delegated scopes, `oid` the agent user, facets 11 / 13."""
    claims: dict[str, Any] = {
        "idtyp": "user",
        "xms_idrel": "1",
        "xms_act_fct": "11",
        "xms_sub_fct": "13",
        "xms_par_app_azp": PARENT_APP,
        **overrides,
    }
    return entra.token(tenant=TENANT, audience=CLIENT_ID, scopes=scopes, oid=AGENT_USER, app_id=AGENT_APP, **claims)


def delegated_agent(entra: EntraStandIn, scopes: str, user: str = HUMAN, **overrides: Any) -> str:
    """An agent acting for a human user: `idtyp` user, `oid` the user, `azp` the agent identity, actor facet 11."""
    claims: dict[str, Any] = {
        "idtyp": "user",
        "xms_idrel": "1",
        "xms_act_fct": "11",
        "xms_par_app_azp": PARENT_APP,
        **overrides,
    }
    return entra.token(tenant=TENANT, audience=CLIENT_ID, scopes=scopes, oid=user, app_id=AGENT_APP, **claims)


def plain_user(entra: EntraStandIn, scopes: str, **overrides: Any) -> str:
    """A person signed in to an ordinary client: no agent claims."""
    claims: dict[str, Any] = {"idtyp": "user", **overrides}
    return entra.token(tenant=TENANT, audience=CLIENT_ID, scopes=scopes, oid=HUMAN, **claims)


def plain_app(entra: EntraStandIn, roles: list[str], **overrides: Any) -> str:
    """An ordinary app (client credentials), as `EntraStandIn.app_token` mints it: roles, `idtyp` app, no agent claims
    (`overrides` may replace any claim, `idtyp` included)."""
    claims: dict[str, Any] = {"sub": PLAIN_APP, "idtyp": "app", **overrides}
    return entra.token(
        tenant=TENANT, audience=CLIENT_ID, scopes=None, roles=roles, oid=PLAIN_APP, app_id=PLAIN_APP, **claims
    )
