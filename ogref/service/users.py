"""Console users: password hashes, roles, login sessions with CSRF tokens, and API tokens.

**Passwords** are hashed with argon2id through argon2-cffi's :class:`~argon2.PasswordHasher`
with its defaults (RFC 9106's low-memory profile: t=3, m=64 MiB, p=4, 16-byte salt); a hash
made with older parameters verifies and is reported by :func:`needs_rehash`, and the caller
stores :func:`hash_password` of the password it just verified.  Passwords are NFKC-normalised
first (NIST SP 800-63B), so the same password typed on two keyboards is the same password.
Each verification costs about 64 MiB for some tens of milliseconds: the service should bound
how many run at once.  For an unknown user, call :func:`verify_password` with ``None``: it
spends the same time on a dummy hash, so timing does not tell which user names exist.

**Roles**: ``admin`` may do everything; ``teacher`` may view and operate the computers of the
classrooms it is given, nothing site-wide (:func:`can`).

**Sessions** are random 256-bit tokens (``secrets.token_urlsafe(32)``) that the browser keeps
in a cookie; the server stores only their SHA-256 (a stolen database holds no usable session,
and a fast hash suffices because the token is random, not chosen by a person).  Each session
has its own CSRF token (synchronizer pattern): the page sends it back in a header or form
field and :func:`check_csrf` compares it in constant time.  **API tokens** for scripts and the
labs have the same shape with an ``ogt_`` prefix (so secret scanners and logs can recognise
them) and are stored the same way.

Not here: storing users, sessions or tokens, their expiry, cookies and their flags, rate
limiting, and which route needs which action (the service's).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Collection
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_TOKEN_PREFIX = "ogt_"

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password of anyone")


class Role(StrEnum):
    """What a console user is."""

    ADMIN = "admin"
    TEACHER = "teacher"


class Action(StrEnum):
    """What a console user may want to do; the classroom-scoped ones name a classroom."""

    VIEW = "view"  # see a classroom's computers, operations and logs
    OPERATE = "operate"  # boot, power, restore, run commands on a classroom's computers
    CREATE_IMAGE = "create_image"  # write an image to a repository (shared by every classroom)
    MANAGE = "manage"  # users, classrooms, computers, repositories, images, credentials


TEACHER_ACTIONS = frozenset({Action.VIEW, Action.OPERATE})


def _normalise(password: str) -> bytes:
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string, salt and parameters included) of a non-empty password."""
    if not password:
        raise ValueError("an empty password")
    return _hasher.hash(_normalise(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (constant time; ``None``: no such user).

    False, never an exception, for a wrong password, a ``None`` or a damaged hash.
    """
    try:
        ok = _hasher.verify(stored_hash or _dummy_hash(), _normalise(password))
    except (VerificationError, InvalidHashError):
        return False
    return ok and bool(stored_hash)


def needs_rehash(stored_hash: str) -> bool:
    """Whether a hash was made with other parameters than today's (rehash after a login)."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def can(
    role: str, assigned_classrooms: Collection[str], action: str, classroom: str | None
) -> bool:
    """Whether a user of ``role`` given ``assigned_classrooms`` may do ``action`` in
    ``classroom`` (``None`` for a site-wide action).  Unknown roles may do nothing; an unknown
    action is a programming error (ValueError), not a silent refusal or permission."""
    act = Action(action)
    if role == Role.ADMIN:
        return True
    if role == Role.TEACHER:
        return act in TEACHER_ACTIONS and classroom is not None and classroom in assigned_classrooms
    return False


def token_hash(token: str) -> str:
    """What the server stores for a session or API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


session_hash = token_hash


def new_session() -> tuple[str, str]:
    """A login session: (token for the cookie, hash to store)."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def new_api_token() -> tuple[str, str]:
    """An API token for scripts and the labs: (``ogt_…`` token shown once, hash to store)."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def new_csrf() -> str:
    """A session's CSRF token (kept with the session, rendered into its pages)."""
    return secrets.token_urlsafe(32)


def check_csrf(expected: str, given: str | None) -> bool:
    """Whether the CSRF token sent back is the session's (constant time; any text accepted)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
