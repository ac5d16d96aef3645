"""The one middleware that enforces each route's declared access.

Order of checks for a route (see access.py for the declarations):
OPEN → anyone; ADDRESS → the client's address must be in MEDIA_METRICS_ALLOW; a
signed-URL route in public mode → anyone. Otherwise a credential: the Authorization
header (``Bearer``), or ``?token=`` on upload routes. An upload token only works on
routes that accept tokens; a key must hold the scope. Without a credential a signed-URL
route checks ``exp``/``sig``. No credential → 401; one that does not allow this → 403.

``?token=`` takes upload tokens only: an API key there is refused (401 key_in_query),
since a URL ends up in proxy, CDN and browser logs.

A request refused while presenting some credential (a key, a token, a signature) is
audited as ``access_denied``; bare anonymous requests are not, so noise cannot fill the
log. A refusal of a credential that is valid (a key without the scope, a token on a
route that takes none) gets a row of its own; one of a credential that is not
(made up, tampered, expired, revoked, a key in the URL) is counted into one row per
minute, address, actor and outcome (audit.record_refusal).
"""
from __future__ import annotations

import logging

from aiohttp import web

from server.errors import (
    AddressNotAllowed,
    Forbidden,
    InvalidCredentials,
    InvalidSignature,
    KeyInQuery,
    LinkExpired,
    MediaError,
    TokenExpired,
    TokenNotAllowed,
    Unauthorized,
)
from server.http.params import parse_id
from server.http.thumbnails import signed_variant
from server.observability.requestid import KEY_NAME
from server.security import audit
from server.security.access import (
    ADDRESS,
    OPEN,
    PRINCIPAL,
    SIGNER,
    Access,
    Principal,
    covers,
    route_access,
)
from server.security.forwarded import in_networks, parse_address
from server.security.keys import MALFORMED, bearer, find_key, query_credential
from server.security.signing import Check, UploadGrant, is_upload_token, token_identity
from server.settings import SETTINGS
from server.store.media import STORE

log = logging.getLogger(__name__)

OPEN_PRINCIPAL = Principal("anonymous", "open")
PUBLIC_PRINCIPAL = Principal("public", "public")
_CHALLENGE = 'Bearer realm="media-store"'
_BAD_CREDENTIAL = 'Bearer realm="media-store", error="invalid_token"'


class Denied(Exception):
    """A refusal worth an audit row: the error to answer with and who was refused.
    ``valid``: the credential itself was good (it just does not allow this)."""

    def __init__(self, error: MediaError, actor: str, *, valid: bool = False):
        self.error = error
        self.actor = actor
        self.valid = valid


@web.middleware
async def access_middleware(request: web.Request, handler):
    access = route_access(request)
    if access is None:           # no route: the 404/405 follows, nothing to guard
        return await handler(request)
    try:
        request[PRINCIPAL] = principal = await authenticate(request, access)
    except Denied as d:
        entry = audit.entry_for(request, "access_denied", actor=d.actor,
                                media_id=_media_id(request),
                                outcome=f"{d.error.status} {d.error.code}")
        if d.valid:
            await audit.record(request, entry)
        else:   # free to send at any rate: counted, not listed
            await audit.record_refusal(request, entry)
        raise _closing(request, d.error) from None
    except MediaError as e:
        raise _closing(request, e) from None
    if principal.kind == "key":   # for the access log
        request[KEY_NAME] = principal.name
    response = await handler(request)
    if access.signed_url and request.method == "GET" \
            and request.app[SETTINGS].security.audit_reads:
        await audit.record(request, audit.entry_for(
            request, "read", media_id=_media_id(request), outcome=str(response.status)))
    return response


def _closing(request: web.Request, error: MediaError) -> MediaError:
    # A refused upload's body is never read: close the connection after answering
    # instead of letting aiohttp read gigabytes nobody wants.
    if request.body_exists:
        error.close_connection = True
    return error


def _media_id(request: web.Request) -> int | None:
    raw = request.match_info.get("mediaId")
    return parse_id(raw) if raw is not None else None


async def authenticate(request: web.Request, access: Access) -> Principal:
    """The principal for this request, or an error (Denied for audited refusals)."""
    settings = request.app[SETTINGS]
    if access.scope == OPEN:
        return OPEN_PRINCIPAL
    if access.scope == ADDRESS:
        addr = parse_address(audit.client_addr(request))
        if not in_networks(addr, settings.security.metrics_allow):
            raise AddressNotAllowed()
        return Principal(str(addr), "address")
    if access.signed_url and settings.security.public_read:
        return PUBLIC_PRINCIPAL

    in_query = request.query.get("token") if access.upload_token else None
    if in_query is not None and not is_upload_token(in_query):
        raise Denied(KeyInQuery(headers={"WWW-Authenticate": _BAD_CREDENTIAL}),
                     "key-in-query")
    credential = bearer(request.headers.get("Authorization"))
    if credential is None and in_query is not None:
        credential = query_credential(in_query)
    if credential is MALFORMED:
        raise Denied(InvalidCredentials(headers={"WWW-Authenticate": _BAD_CREDENTIAL}),
                     "malformed-credential")
    if credential is None:
        if access.signed_url and ("sig" in request.query or "exp" in request.query):
            return _signed_url(request)
        raise Unauthorized(headers={"WWW-Authenticate": _CHALLENGE})
    assert isinstance(credential, str)
    if is_upload_token(credential):
        return _token(request, access, credential)
    return await _key(request, access, credential)


def _signed_url(request: web.Request) -> Principal:
    media_id = _media_id(request)
    q = request.query
    variant = signed_variant(q)
    check = (Check.INVALID if media_id is None or variant is None else
             request.app[SIGNER].verify(media_id, variant, q.get("exp"), q.get("sig")))
    if check is Check.INVALID:
        raise Denied(InvalidSignature(), "signed-url")
    if check is Check.EXPIRED:
        raise Denied(LinkExpired(), "signed-url")
    return Principal("signed-url", "signed-url", expires=int(q["exp"]))


def _token(request: web.Request, access: Access, token: str) -> Principal:
    grant = request.app[SIGNER].check_upload_token(token)
    if grant is Check.EXPIRED:
        raise Denied(TokenExpired(headers={"WWW-Authenticate": _BAD_CREDENTIAL}), "token")
    if not isinstance(grant, UploadGrant):
        raise Denied(InvalidCredentials(headers={"WWW-Authenticate": _BAD_CREDENTIAL}),
                     "token")
    actor = f"token:{grant.message_id}"
    if not access.upload_token:
        raise Denied(TokenNotAllowed(), actor, valid=True)
    return Principal(actor, "token", message_id=grant.message_id,
                     max_bytes=grant.max_bytes, expires=grant.exp,
                     identity=token_identity(token), key_id=grant.key_id)


async def _key(request: web.Request, access: Access, credential: str) -> Principal:
    async with request.app[STORE].connection() as conn:
        key = await find_key(conn, credential)
    if key is None or key.revoked:
        raise Denied(InvalidCredentials(headers={"WWW-Authenticate": _BAD_CREDENTIAL}),
                     key.name if key is not None else "unknown-key")
    if not covers(key.scope, access.scope):
        raise Denied(Forbidden(), key.name, valid=True)
    return Principal(key.name, "key", scope=key.scope, identity=f"key:{key.id}", key_id=key.id)
