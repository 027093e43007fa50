"""Ed25519 credentials of the control plane: per-computer keys, signed agent requests with a replay
counter, signed server answers, and capability tokens for the repository.

**Keys.**  Every computer has its own Ed25519 key pair; the agent keeps the private key (a PKCS#8
PEM file, mode 0600) and the server stores only the 32-byte public key.  A stolen database
therefore cannot forge a single request.  That is what "credentials stored hashed" buys for
passwords; a slow hash of a random agent secret would buy nothing here: a 256-bit random secret
cannot be guessed however fast the hash is, and the server would still hold something that
authenticates (the secret itself, at verification time).  The server has its own key pair (made
once, kept in its state directory); agents and the repository pin its public key (a file, or
the PXE command line as 64 hex digits: :func:`public_key_text`).

**Requests.**  The agent sends ``X-OG-Computer``, ``X-OG-Seq`` (a per-computer counter,
strictly increasing), ``X-OG-Body-SHA256`` and ``X-OG-Signature`` (base64 Ed25519) over::

    b"OG1\\n" + METHOD + b"\\n" + path?query + b"\\n" + seq + b"\\n" + computer + b"\\n"
    + sha256(body).hexdigest()

Each field is validated so none can contain the separator (the encoding is injective).  The
digest travels in its own header so that the server verifies the signature *before* it reads
the body (:func:`check_request_headers`); :meth:`PendingRequest.verify` then checks the body
against the signed digest.  A forged or replayed request costs the server no body read.

**Replay.**  The server stores the last accepted seq per computer and refuses anything not
above it.  The agent's :class:`SeqCounter` issues ``max(last + 1, time.time_ns())`` and
persists it, so a lost or stale counter file (tmpfs work dir, a VM snapshot, a live image with a
baked-in file) still moves forward while the clock is sane.  When the clock is not (a dead CMOS
battery), the server answers a genuinely signed but stale request with a *signed* 409
carrying its ``last_seq`` (:class:`ReplayedError` has it and the request to sign for) and the
agent jumps past it (:meth:`SeqCounter.advance_past`) — an unsigned hint is never trusted.
Strict ordering means **one request in flight per computer**: the agent's client holds a lock
for the whole round trip (two threads racing would see the later seq arrive first and the
earlier one refused).

**Answers.**  Every answer to an authenticated agent request carries
``X-OG-Answer-Signature`` (base64 Ed25519 by the server key) over::

    b"OG1-answer\\n" + status + b"\\n" + computer + b"\\n" + seq + b"\\n"
    + sha256(request signature).hexdigest() + b"\\n" + sha256(body).hexdigest()

Bound to the request's seq *and its signature* (so to its method, path and body): an old answer
cannot be replayed to a later request, nor one answer swapped for another's, and a spoofed
server cannot order a restore.  Answers to requests that failed authentication are not signed;
the agent treats an unsigned answer as no answer.

**Tokens.**  The repository host has no database: the server hands each command that needs it a
capability token, a JWT (RFC 7519) signed with EdDSA/Ed25519 (RFC 8037) by the server key,
through PyJWT — a maintained standard format rather than a home-made one, small and pure Python
on top of ``cryptography``.  The audience is fixed (``og-repository``); expiry is checked
against an explicit clock.  A token is a bearer capability: it travels in clear over plain HTTP,
so keep the TTL short and the claims narrow.

Signing domains never collide: requests start ``OG1\\n``, answers ``OG1-answer\\n``, and a JWS
signing input is base64url text with no newline.

Not here: HTTP (headers are plain mappings, bodies plain bytes), the database (the caller looks
up the public key and ``last_seq`` and stores the new value — atomically, see
:class:`PendingRequest`), which routes a computer may call, body size limits and timeouts (the
service's), and TLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

log = logging.getLogger(__name__)

H_COMPUTER = "X-OG-Computer"
H_SEQ = "X-OG-Seq"
H_BODY = "X-OG-Body-SHA256"
H_SIGNATURE = "X-OG-Signature"
H_ANSWER = "X-OG-Answer-Signature"

MAX_SEQ = 2**63 - 1  # fits a signed 64-bit column; time.time_ns() stays below it until 2262
TOKEN_AUDIENCE = "og-repository"
TOKEN_REQUIRED = ("computer", "op")

_COMPUTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_METHOD = re.compile(r"[A-Z]{1,16}")
_PATH = re.compile(r"/[\x21-\x7e]{0,4095}")  # a raw request target: printable ASCII, no space
_SEQ = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_B64_SIG = re.compile(r"[A-Za-z0-9+/]{86}==")


class AuthError(Exception):
    """A credential check failed; ``status`` is the HTTP status the service should answer."""

    status = 401


class MalformedError(AuthError):
    """Missing or ill-formed credential material (headers, token, key text)."""

    status = 400


class UnknownCredentialError(AuthError):
    """No public key for the computer the request claims to be."""


class BadSignatureError(AuthError):
    """A signature (request, answer or token) does not verify, or a body does not match."""


class ExpiredError(AuthError):
    """A capability token past its expiry."""


class ReplayedError(AuthError):
    """A genuinely signed request whose seq is not above the last accepted one.

    ``request`` identifies it (to sign the 409 answer for) and ``last_seq`` is what the agent
    must jump past (:meth:`SeqCounter.advance_past`).
    """

    status = 409

    def __init__(self, request: RequestId, last_seq: int) -> None:
        super().__init__(f"{request.computer}: seq {request.seq} is not above {last_seq}")
        self.request = request
        self.last_seq = last_seq


class HeaderSource(Protocol):
    """Anything with a ``get(name)`` for headers: a dict, Starlette's or http.client's headers."""

    def get(self, key: str, /) -> Any: ...


# --- keys -----------------------------------------------------------------------------------


def new_computer_key() -> tuple[bytes, bytes]:
    """A fresh key pair: (private key as unencrypted PKCS#8 PEM, raw 32-byte public key)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, public_raw(key)


def public_raw(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of a private key (what the server stores or pins)."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_key_from_pem(pem: bytes) -> Ed25519PrivateKey:
    """Parse a PEM private key; MalformedError if it is not an unencrypted Ed25519 key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise MalformedError(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise MalformedError(f"not an Ed25519 key: {type(key).__name__}")
    return key


def save_private_key(path: Path, pem: bytes) -> None:
    """Write a private key atomically, readable by its owner only (never briefly wider)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a private key written by :func:`save_private_key`.

    Refuses (PermissionError) a file that its group or others may read, like ssh does: such a
    key must be taken as leaked, and silently using it would hide the mistake.
    """
    mode = path.stat().st_mode
    if mode & 0o077:
        raise PermissionError(f"{path}: mode {mode & 0o777:o}, a private key must be 0600")
    return private_key_from_pem(path.read_bytes())


def load_or_create_server_key(path: Path) -> Ed25519PrivateKey:
    """The server's key pair: made on first use in its state directory, then always the same."""
    if not path.exists():
        pem, _ = new_computer_key()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
        save_private_key(tmp, pem)
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return load_private_key(path)


def public_key_text(raw: bytes) -> str:
    """A public key as 64 lowercase hex digits (a pin file, or ``og_server_key=`` on PXE)."""
    _public(raw)
    return raw.hex()


def parse_public_key(text: str) -> bytes:
    """The raw public key from :func:`public_key_text` (surrounding whitespace allowed)."""
    text = text.strip()
    if not _HEX64.fullmatch(text):
        raise MalformedError("a public key is 64 lowercase hex digits")
    return bytes.fromhex(text)


def _public(key: bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(key)
    except ValueError as exc:
        raise MalformedError(f"not a raw Ed25519 public key: {exc}") from None


# --- the agent's counter ---------------------------------------------------------------------


class SeqCounter:
    """The agent's request counter, persisted in a file of its work directory.

    :meth:`next` returns ``max(last + 1, clock())`` and writes it before returning, so a restart
    never reuses a number even when the file is lost or stale, as long as the clock is not
    behind; :meth:`advance_past` repairs the case when it is.  Thread-safe, but seqs must still
    be *sent* one at a time (see the module docstring).  A failing write is logged, not raised:
    the time-based values keep the counter moving, and an agent must not stop imaging because
    its work directory is full.
    """

    def __init__(self, path: Path, clock: Callable[[], int] = time.time_ns) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        try:
            text = path.read_text().strip()
            self._last = int(text) if _SEQ.fullmatch(text) else 0
            if self._last > MAX_SEQ:  # damaged: start over from the clock
                self._last = 0
        except OSError:
            self._last = 0

    @property
    def last(self) -> int:
        """The last number handed out (or read from the file)."""
        return self._last

    def next(self) -> int:
        """The next seq, persisted."""
        with self._lock:
            n = max(self._last + 1, self._clock())
            if n > MAX_SEQ:
                raise OverflowError("request counter exhausted: a new key pair is needed")
            self._last = n
            self._store(n)
            return n

    def advance_past(self, last_seq: int) -> None:
        """After a *server-signed* "replayed" answer: continue above the server's ``last_seq``."""
        with self._lock:
            if last_seq > self._last:
                self._last = min(last_seq, MAX_SEQ)
                self._store(self._last)

    def _store(self, n: int) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(f"{n}\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot persist the request counter in %s: %s", self.path, exc)


# --- requests --------------------------------------------------------------------------------


def _b64_signature(sig: bytes) -> str:
    return base64.b64encode(sig).decode("ascii")


def _parse_signature(text: Any) -> bytes:
    if not isinstance(text, str) or not _B64_SIG.fullmatch(text):
        raise MalformedError("a signature is 64 bytes in padded base64")
    sig = base64.b64decode(text)
    if _b64_signature(sig) != text:  # non-canonical trailing bits
        raise MalformedError("a signature is 64 bytes in canonical base64")
    return sig


def request_bytes(method: str, path: str, seq: int, computer: str, body_sha256: str) -> bytes:
    """The canonical bytes an agent signs (every field validated: MalformedError otherwise)."""
    if not _METHOD.fullmatch(method):
        raise MalformedError(f"bad method {method!r}")
    if not _PATH.fullmatch(path):
        raise MalformedError("a path is a raw request target: '/' then printable ASCII")
    if not 0 <= seq <= MAX_SEQ:
        raise MalformedError(f"seq out of range: {seq}")
    if not _COMPUTER.fullmatch(computer):
        raise MalformedError(f"bad computer name {computer!r}")
    if not _HEX64.fullmatch(body_sha256):
        raise MalformedError("a body digest is 64 lowercase hex digits")
    return f"OG1\n{method}\n{path}\n{seq}\n{computer}\n{body_sha256}".encode("ascii")


def sign_request(
    key: Ed25519PrivateKey, computer: str, method: str, path: str, seq: int, body: bytes
) -> dict[str, str]:
    """The headers of one agent request.

    ``path`` is the raw request target exactly as sent on the wire (percent-encoded, with the
    query); the server must verify against the raw target too, not a decoded path.
    """
    digest = hashlib.sha256(body).hexdigest()
    sig = key.sign(request_bytes(method, path, seq, computer, digest))
    return {
        H_COMPUTER: computer,
        H_SEQ: str(seq),
        H_BODY: digest,
        H_SIGNATURE: _b64_signature(sig),
    }


@dataclass(frozen=True)
class RequestId:
    """What an answer is bound to: the computer, the seq and the request's signature."""

    computer: str
    seq: int
    signature: bytes

    @classmethod
    def from_headers(cls, headers: HeaderSource) -> RequestId:
        """Parse (and validate) the identity of a request from its headers."""
        return cls(
            request_computer(headers),
            _header_seq(headers),
            _parse_signature(_get(headers, H_SIGNATURE)),
        )


def _get(headers: HeaderSource, name: str) -> Any:
    value = headers.get(name)
    return headers.get(name.lower()) if value is None else value


def request_computer(headers: HeaderSource) -> str:
    """The computer a request claims to come from, to look its key up (not yet authenticated)."""
    name = _get(headers, H_COMPUTER)
    if not isinstance(name, str) or not _COMPUTER.fullmatch(name):
        raise MalformedError(f"missing or bad {H_COMPUTER} header")
    return name


def _header_seq(headers: HeaderSource) -> int:
    text = _get(headers, H_SEQ)
    if not isinstance(text, str) or not _SEQ.fullmatch(text) or int(text) > MAX_SEQ:
        raise MalformedError(
            f"missing or bad {H_SEQ} header (a decimal number without leading zeros)"
        )
    return int(text)


@dataclass(frozen=True)
class PendingRequest:
    """A request whose headers are authenticated and fresh; its body is still to be checked.

    After :meth:`verify` the caller stores ``request.seq`` as the computer's last seq **with a
    compare-and-set** — ``UPDATE … SET last_seq = :seq WHERE name = :computer AND last_seq <
    :seq`` — and treats zero rows updated as :class:`ReplayedError`: two copies of one request
    checked concurrently both pass :func:`check_request_headers`, only one may win.
    """

    request: RequestId
    previous_seq: int
    body_sha256: str

    @property
    def computer(self) -> str:
        """The authenticated computer; the service checks it against the route's."""
        return self.request.computer

    def verify(self, body: bytes) -> int:
        """Check the body against the signed digest; the new last seq to store."""
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), self.body_sha256):
            raise BadSignatureError(f"{self.computer}: the body does not match its signed digest")
        return self.request.seq


def check_request_headers(
    method: str,
    path: str,
    headers: HeaderSource,
    public_key: bytes | Ed25519PublicKey | None,
    last_seq: int,
) -> PendingRequest:
    """Authenticate a request from its headers alone, before its body is read.

    The caller finds ``public_key`` and ``last_seq`` from :func:`request_computer` (``None``
    when the computer is unknown or has no key).  Raises :class:`MalformedError`,
    :class:`UnknownCredentialError`, :class:`BadSignatureError` or :class:`ReplayedError`, in
    that order: the seq is judged only on a good signature, so a forger never gets the signed
    409.
    """
    computer = request_computer(headers)
    seq = _header_seq(headers)
    digest = _get(headers, H_BODY)
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise MalformedError(f"missing or bad {H_BODY} header")
    sig = _parse_signature(_get(headers, H_SIGNATURE))
    message = request_bytes(method, path, seq, computer, digest)
    if public_key is None:
        raise UnknownCredentialError(f"no credential for computer {computer!r}")
    try:
        _public(public_key).verify(sig, message)
    except InvalidSignature:
        raise BadSignatureError(f"{computer}: bad request signature") from None
    request = RequestId(computer, seq, sig)
    if seq <= last_seq:
        raise ReplayedError(request, last_seq)
    return PendingRequest(request, last_seq, digest)


def authenticate_request(
    method: str,
    path: str,
    headers: HeaderSource,
    public_key: bytes | Ed25519PublicKey | None,
    last_seq: int,
    read_body: Callable[[], bytes],
) -> tuple[PendingRequest, bytes]:
    """Both steps for a synchronous caller: headers, then ``read_body()``, then the body.

    ``read_body`` is called only once the headers are authenticated and fresh.  Returns the
    pending request (its ``request.seq`` is the new last seq) and the body.
    """
    pending = check_request_headers(method, path, headers, public_key, last_seq)
    body = read_body()
    pending.verify(body)
    return pending, body


# --- answers ---------------------------------------------------------------------------------


def answer_bytes(status: int, request: RequestId, body: bytes) -> bytes:
    """The canonical bytes the server signs for one answer."""
    if not 100 <= status <= 599:
        raise MalformedError(f"bad HTTP status {status}")
    return (
        f"OG1-answer\n{status}\n{request.computer}\n{request.seq}\n"
        f"{hashlib.sha256(request.signature).hexdigest()}\n{hashlib.sha256(body).hexdigest()}"
    ).encode("ascii")


def sign_answer(
    server_key: Ed25519PrivateKey, request: RequestId, status: int, body: bytes
) -> dict[str, str]:
    """The header to add to the answer (``body`` exactly as sent, after any compression)."""
    return {H_ANSWER: _b64_signature(server_key.sign(answer_bytes(status, request, body)))}


def verify_answer(
    server_public: bytes | Ed25519PublicKey,
    request_headers: HeaderSource,
    status: int,
    body: bytes,
    answer_headers: HeaderSource,
) -> None:
    """Check an answer against the pinned server key and the request it answers.

    ``request_headers`` are those :func:`sign_request` made for this request.  Raises
    :class:`BadSignatureError` for a missing, malformed, forged or misbound signature.
    """
    request = RequestId.from_headers(request_headers)
    try:
        sig = _parse_signature(_get(answer_headers, H_ANSWER))
        _public(server_public).verify(sig, answer_bytes(status, request, body))
    except (InvalidSignature, MalformedError):
        raise BadSignatureError(
            f"answer to {request.computer} seq {request.seq} not signed by the server"
        ) from None


# --- capability tokens -----------------------------------------------------------------------

_RESERVED = frozenset({"exp", "iat", "nbf", "aud", "iss"})


def issue_token(
    server_key: Ed25519PrivateKey, claims: Mapping[str, Any], ttl: float, now: float | None = None
) -> str:
    """A capability token for the repository: ``claims`` (which must name ``computer`` and
    ``op``; ``exp``/``iat``/``aud`` are set here) signed by the server key, valid at least
    ``ttl`` seconds (``exp`` is rounded up to a whole second)."""
    if ttl <= 0:
        raise ValueError("a token's ttl must be positive")
    if _RESERVED & claims.keys():
        raise ValueError(
            f"reserved claims are set by issue_token: {sorted(_RESERVED & claims.keys())}"
        )
    missing = [c for c in TOKEN_REQUIRED if c not in claims]
    if missing:
        raise ValueError(f"a token must name {missing}")
    t = time.time() if now is None else now
    payload = {**claims, "aud": TOKEN_AUDIENCE, "iat": int(t), "exp": math.ceil(t + ttl)}
    return jwt.encode(payload, server_key, algorithm="EdDSA")


def check_token(
    server_public: bytes | Ed25519PublicKey, token: str, now: float | None = None
) -> dict[str, Any]:
    """The claims of a token signed by the server key and not expired at ``now``.

    Raises :class:`BadSignatureError` (wrong key or tampered), :class:`ExpiredError` or
    :class:`MalformedError`.  Only EdDSA is accepted (no algorithm confusion, no ``none``).  The
    issued-at time is not checked: the repository's clock may be a little behind the server's.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            _public(server_public),
            algorithms=["EdDSA"],
            audience=TOKEN_AUDIENCE,
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,  # never issued; and the clock is ``now``, not PyJWT's
                "require": ["exp", "aud", *TOKEN_REQUIRED],
            },
        )
    except jwt.InvalidSignatureError:
        raise BadSignatureError("token not signed by the server") from None
    except jwt.InvalidTokenError as exc:
        raise MalformedError(f"bad token: {exc}") from None
    exp = claims["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise MalformedError("bad token: exp is not a number")
    if (time.time() if now is None else now) >= exp:
        raise ExpiredError(f"token expired at {exp}")
    return claims
