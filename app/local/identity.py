"""The signed-in user, through MSAL as a public client: broker, then system browser, then device code.

The token cache is persisted encrypted by `msal-extensions` (DPAPI, Keychain, libsecret); a 0600 plain file only
with STDIO__ALLOW_PLAIN_CACHE in development. The principal tools see is built from the account's ID token claims
plus the access token's scopes and roles; downstream tokens come from `acquire_token_silent` (no on-behalf-of).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import jwt
import msal
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from msal_extensions import FilePersistence, PersistedTokenCache, build_encrypted_persistence

from app.auth.downstream import DownstreamAuthError
from app.auth.principal import Principal
from app.core.startup import StartupError

log = logging.getLogger("app.local")
CACHE_FILE = "msal-token-cache.bin"


class SignInError(StartupError):
    """Local sign-in cannot go ahead; the message says what to change (never a token)."""

    label = "sign-in error"


@dataclass(frozen=True)
class SignIn:
    """How the user signs in: the public client at its authority, for this server's App ID URI (built from STDIO__*
    and the Entra settings by app/local/settings.py)."""

    authority: str
    client_id: str
    app_id_uri: str
    mode: Literal["auto", "broker", "browser", "device_code"] = "auto"
    timeout_seconds: int = 300
    allow_plain_cache: bool = False


def broker_available() -> bool:
    """Windows (WAM) and macOS (Company Portal) have a broker, reached through `msal[broker]`; Linux desktops have
    none MSAL uses here."""
    return sys.platform in ("win32", "darwin") and importlib.util.find_spec("pymsalruntime") is not None


def browser_available() -> bool:
    """A browser `webbrowser` can start (BROWSER, or a desktop session): MSAL would otherwise wait out its timeout."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("BROWSER") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def token_cache(path: Path, allow_plain: bool = False) -> PersistedTokenCache:
    """MSAL's cache, persisted encrypted; the plain 0600 file only when STDIO__ALLOW_PLAIN_CACHE allows it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return PersistedTokenCache(build_encrypted_persistence(str(path)))
    except Exception as exc:  # no keyring: libsecret or PyGObject missing, a locked keyring, no D-Bus session
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        if not allow_plain:
            raise SignInError(
                f"the token cache cannot be encrypted on this machine ({why}); install and unlock an OS keyring "
                "(libsecret and PyGObject on Linux), or for development only set STDIO__ALLOW_PLAIN_CACHE=true"
            ) from None
    log.warning("token cache kept as a plain file readable by this user only (STDIO__ALLOW_PLAIN_CACHE): %s", why)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # created 0600 before MSAL writes to it
    os.close(fd)
    os.chmod(path, 0o600)
    return PersistedTokenCache(FilePersistence(str(path)))


def _claims(token: str | None) -> dict[str, Any]:
    """A JWT's claims. Not verified: MSAL has it straight from the token endpoint over TLS, for this process only
    (the user owns both ends); what matters is which scopes and roles the API would be granted."""
    if not token:
        return {}
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}  # an opaque token: the granted scopes come from the token response instead
    return claims if isinstance(claims, dict) else {}


class LocalIdentity:
    """One public client, one signed-in account for the process; also the `TokenSource` for downstream tokens."""

    def __init__(self, sign_in: SignIn, scopes: Sequence[str], cache: PersistedTokenCache) -> None:
        """`scopes`: as clients request them (`{app_id_uri}/{scope}`); `cache`: `token_cache(...)`."""
        self.options = sign_in
        self.scopes = list(scopes)
        self.client_id = sign_in.client_id
        self.authority = sign_in.authority
        self.cache = cache
        self.account: dict[str, Any] | None = None
        self._app: msal.PublicClientApplication | None = None

    @property
    def app(self) -> msal.PublicClientApplication:
        if self._app is None:  # MSAL fetches the authority's OpenID configuration here
            host = urlsplit(self.authority).hostname or ""
            try:
                self._app = self._build(host)
            # requests' errors are OSErrors; MSAL refuses an authority it cannot use with ValueError
            except (OSError, ValueError) as exc:
                raise SignInError(
                    f"cannot use the authority {self.authority[:200]} ({type(exc).__name__}): check STDIO__AUTHORITY "
                    "or AZUREAD__INSTANCE; a local authority needs https (DEV_ISSUER__TLS=true) and a trusted CA "
                    "(REQUESTS_CA_BUNDLE)"
                ) from None
        return self._app

    def _build(self, host: str) -> msal.PublicClientApplication:
        return msal.PublicClientApplication(
            self.client_id,
            authority=self.authority,
            token_cache=self.cache,
            # Instance discovery asks Microsoft's cloud about the authority: only Entra's own hosts are there.
            instance_discovery=host in WELL_KNOWN_AUTHORITY_HOSTS,
            enable_broker_on_windows=broker_available(),
            enable_broker_on_mac=broker_available(),
        )

    def sign_in(self) -> Principal:
        """The cached account's token if there is one (no prompt), else an interactive sign-in."""
        if not self.scopes:
            raise SignInError("no scope to sign in for: the tools declare none; set STDIO__SCOPES")
        result = self._silent()
        if result is None:
            result = self._interactive()
        if "access_token" not in result:
            code = str(result.get("error", "unknown_error"))[:80]
            description = str(result.get("error_description", ""))[:300]
            raise SignInError(f"sign-in failed ({code}): {description}")
        return self.principal(result)

    def _silent(self) -> dict[str, Any] | None:
        for account in self.app.get_accounts():
            result = self.app.acquire_token_silent(self.scopes, account=account)
            if result and "access_token" in result:
                self.account = account
                log.info("signed in from the token cache")
                return dict(result)
        return None

    def _interactive(self) -> dict[str, Any]:
        mode, timeout = self.options.mode, self.options.timeout_seconds
        result: dict[str, Any] | None = None
        if mode == "broker" or (mode == "auto" and broker_available()):
            result = self.app.acquire_token_interactive(
                self.scopes, parent_window_handle=self.app.CONSOLE_WINDOW_HANDLE, timeout=timeout
            )
        elif mode == "browser" or (mode == "auto" and browser_available()):
            log.info("signing in with the system browser")
            result = self.app.acquire_token_interactive(self.scopes, timeout=timeout, prompt="select_account")
        if result is None or ("access_token" not in result and mode == "auto"):
            fallback = self._device_code(timeout)
            # A refusal from the first way says more than "no device code here" from the fallback.
            result = fallback if result is None or "access_token" in fallback else result
        self._remember(result)
        return result

    def _device_code(self, timeout: int) -> dict[str, Any]:
        try:
            flow = self.app.initiate_device_flow(self.scopes)
        except ValueError:  # MSAL's answer when the authority publishes no device authorization endpoint
            return {"error": "device_code_unsupported", "error_description": "the authority has no device code flow"}
        if "user_code" not in flow:
            return dict(flow)
        print(flow["message"], file=sys.stderr, flush=True)  # stderr: stdout carries protocol messages only
        flow["expires_at"] = min(float(flow.get("expires_at") or time.time() + timeout), time.time() + timeout)
        return dict(self.app.acquire_token_by_device_flow(flow))

    def _remember(self, result: dict[str, Any]) -> None:
        home = (result.get("id_token_claims") or {}).get("oid")
        accounts = self.app.get_accounts()
        self.account = next(
            (a for a in accounts if a.get("local_account_id") == home), accounts[0] if accounts else None
        )

    def principal(self, result: dict[str, Any]) -> Principal:
        """ID token claims (who) plus the access token's scopes and roles (what the API would grant)."""
        identity = self._id_claims() or result.get("id_token_claims") or {}
        access = _claims(result.get("access_token"))
        prefix = self.options.app_id_uri + "/"
        if isinstance(access.get("scp"), str):
            scopes = access["scp"].split()
        else:
            scopes = [s.removeprefix(prefix) for s in str(result.get("scope", "")).split() if s.startswith(prefix)]
        found_roles, found_acrs = access.get("roles"), access.get("acrs")
        roles: list[Any] = found_roles if isinstance(found_roles, list) else []
        acrs: list[Any] = found_acrs if isinstance(found_acrs, list) else []  # authentication contexts satisfied
        if not identity.get("tid") or not (identity.get("oid") or identity.get("sub")):
            raise SignInError("the sign-in returned no ID token: the authority must issue one for `openid profile`")
        return Principal(
            tid=str(identity["tid"]),
            sub=str(identity.get("sub") or identity["oid"]),
            oid=str(identity["oid"]) if identity.get("oid") else None,
            client_id=self.client_id,
            scopes=frozenset(scopes),
            roles=frozenset(str(r) for r in roles),
            acrs=frozenset(a for a in acrs if isinstance(a, str)),
            issuer=str(identity.get("iss", "")),
            token_version=str(access.get("ver", identity.get("ver", "2.0"))),
            token_id=str(access.get("uti", "")),
            name=str(identity["name"]) if identity.get("name") else None,
            expires_at=int(access["exp"]) if isinstance(access.get("exp"), int) else None,
        )

    def _id_claims(self) -> dict[str, Any]:
        """The signed-in account's ID token, from MSAL's cache (a cache hit returns no claims of its own)."""
        if self.account is None:
            return {}
        found = self.cache.search(
            msal.TokenCache.CredentialType.ID_TOKEN,
            query={"home_account_id": self.account.get("home_account_id"), "client_id": self.client_id},
        )
        for entry in found or ():
            return _claims(entry.get("secret"))
        return {}

    async def token(self, scopes: Sequence[str]) -> str:
        """A downstream token for the signed-in user, from MSAL's cache (refreshed silently when needed)."""
        account = self.account
        if account is None:
            raise DownstreamAuthError("no signed-in account")
        result = await anyio.to_thread.run_sync(lambda: self.app.acquire_token_silent(list(scopes), account=account))
        token = result.get("access_token") if result else None
        if not isinstance(token, str):
            code = str((result or {}).get("error", "interaction_required"))[:80]
            log.warning("silent downstream token failed", extra={"reason": code})
            raise DownstreamAuthError(
                f"no token for the downstream API without a prompt ({code}): consent to it, e.g. add its scopes to "
                "STDIO__SCOPES and start again"
            )
        return token
