"""The service's authentication and authorisation primitives, in one import.

Two halves, each in its own module with the reasoning in its docstring:

- :mod:`ogref.service.keys` — Ed25519: per-computer key pairs (the server stores only public
  keys), signed agent requests with a replay counter, server answers signed and bound to the
  request they answer, capability tokens (EdDSA JWTs) for the repository host.
- :mod:`ogref.service.users` — console users: argon2id password hashes, the admin/teacher
  policy, login sessions with CSRF tokens, API tokens (both stored as SHA-256).

The agent and the repository need only :mod:`~ogref.service.keys` (no argon2 there); the
service may import everything from here.  The mapping of :class:`AuthError` subclasses to HTTP
answers is ``exc.status``: 400 malformed, 401 unknown credential / bad signature / expired,
409 replayed (answer it signed, with ``last_seq``, so the agent can resynchronise).

Not here: HTTP, the database, sessions' lifetimes and cookies, route-to-action mapping.
"""

from __future__ import annotations

from ogref.service.keys import (
    H_ANSWER,
    H_BODY,
    H_COMPUTER,
    H_SEQ,
    H_SIGNATURE,
    MAX_SEQ,
    AuthError,
    BadSignatureError,
    ExpiredError,
    MalformedError,
    PendingRequest,
    ReplayedError,
    RequestId,
    SeqCounter,
    UnknownCredentialError,
    authenticate_request,
    check_request_headers,
    check_token,
    issue_token,
    load_or_create_server_key,
    load_private_key,
    new_computer_key,
    parse_public_key,
    private_key_from_pem,
    public_key_text,
    public_raw,
    request_computer,
    save_private_key,
    sign_answer,
    sign_request,
    verify_answer,
)
from ogref.service.users import (
    API_TOKEN_PREFIX,
    Action,
    Role,
    can,
    check_csrf,
    hash_password,
    needs_rehash,
    new_api_token,
    new_csrf,
    new_session,
    session_hash,
    token_hash,
    verify_password,
)

__all__ = [
    "API_TOKEN_PREFIX",
    "H_ANSWER",
    "H_BODY",
    "H_COMPUTER",
    "H_SEQ",
    "H_SIGNATURE",
    "MAX_SEQ",
    "Action",
    "AuthError",
    "BadSignatureError",
    "ExpiredError",
    "MalformedError",
    "PendingRequest",
    "ReplayedError",
    "RequestId",
    "Role",
    "SeqCounter",
    "UnknownCredentialError",
    "authenticate_request",
    "can",
    "check_csrf",
    "check_request_headers",
    "check_token",
    "hash_password",
    "issue_token",
    "load_or_create_server_key",
    "load_private_key",
    "needs_rehash",
    "new_api_token",
    "new_computer_key",
    "new_csrf",
    "new_session",
    "parse_public_key",
    "private_key_from_pem",
    "public_key_text",
    "public_raw",
    "request_computer",
    "save_private_key",
    "session_hash",
    "sign_answer",
    "sign_request",
    "token_hash",
    "verify_answer",
    "verify_password",
]
