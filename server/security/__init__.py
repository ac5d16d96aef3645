"""Access control: who may call which route, signed media URLs, upload tokens, the
audit log, CORS and safe serving.

The rest of the service meets it in a few places only:
- routes are declared with :func:`access.add` and a scope, next to each route in
  api/routes.py; one middleware (middleware.py) enforces them, and an undeclared
  route needs ``admin`` (deny by default);
- a handler learns who is calling from ``request[PRINCIPAL]``;
- media JSON gets its URL from ``request.app[SIGNER].media_url(id, variant)``;
- changes are recorded with :func:`audit.audited`, whose entry the store writes in the
  transaction of the change.
"""
from server.security.access import (
    ADDRESS,
    ADMIN,
    OPEN,
    PRINCIPAL,
    READ,
    SIGNER,
    WRITE,
    Access,
    Principal,
    add,
)

__all__ = ["ADDRESS", "ADMIN", "OPEN", "PRINCIPAL", "READ", "SIGNER", "WRITE", "Access",
           "Principal", "add"]
