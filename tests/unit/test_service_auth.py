"""The service's credentials (ogref.service.auth): per-computer request signatures and their
replay counter, signed answers bound to their request, repository capability tokens, console
passwords, roles, sessions and CSRF tokens.  Fast: no HTTP, no database."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat
import time
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ogref.service import keys
from ogref.service.auth import (
    H_ANSWER,
    H_BODY,
    H_COMPUTER,
    H_SEQ,
    H_SIGNATURE,
    MAX_SEQ,
    Action,
    AuthError,
    BadSignatureError,
    ExpiredError,
    MalformedError,
    ReplayedError,
    RequestId,
    SeqCounter,
    UnknownCredentialError,
    authenticate_request,
    can,
    check_csrf,
    check_request_headers,
    check_token,
    hash_password,
    issue_token,
    load_or_create_server_key,
    load_private_key,
    needs_rehash,
    new_api_token,
    new_computer_key,
    new_csrf,
    new_session,
    parse_public_key,
    private_key_from_pem,
    public_key_text,
    public_raw,
    request_computer,
    save_private_key,
    session_hash,
    sign_answer,
    sign_request,
    verify_answer,
    verify_password,
)

PEM1, PUB1 = new_computer_key()
PEM2, PUB2 = new_computer_key()
KEY1 = private_key_from_pem(PEM1)  # pc01's
KEY2 = private_key_from_pem(PEM2)  # pc02's
SERVER = Ed25519PrivateKey.generate()
SERVER_PUB = public_raw(SERVER)
ROGUE = Ed25519PrivateKey.generate()

PATH = "/api/v1/agent/poll?wait=5"
BODY = b'{"status": "idle"}'
SEQ = 1_700_000_000_000_000_000


class BodyReadError(Exception):
    """Raised by a body that must not be read."""


def unreadable() -> bytes:
    raise BodyReadError("the body was read")


def signed(
    key: Ed25519PrivateKey = KEY1,
    computer: str = "pc01",
    method: str = "POST",
    path: str = PATH,
    seq: int = SEQ,
    body: bytes = BODY,
) -> dict[str, str]:
    return sign_request(key, computer, method, path, seq, body)


def accept(
    headers: dict[str, str],
    public_key: bytes | None = PUB1,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    last_seq: int = SEQ - 1,
) -> int:
    """The server's two steps; the new last seq."""
    return check_request_headers(method, path, headers, public_key, last_seq).verify(body)


# --- requests --------------------------------------------------------------------------------


def test_a_request_verifies_with_its_computers_key_only() -> None:
    headers = signed()
    assert accept(headers) == SEQ
    assert check_request_headers("POST", PATH, headers, PUB1, 0).computer == "pc01"
    with pytest.raises(BadSignatureError):
        accept(headers, public_key=PUB2)


def test_the_headers_name_the_computer_and_the_seq() -> None:
    headers = signed()
    assert headers[H_COMPUTER] == "pc01"
    assert headers[H_SEQ] == str(SEQ)
    assert headers[H_BODY] == hashlib.sha256(BODY).hexdigest()
    assert request_computer(headers) == "pc01"
    # any case of the header names (ASGI servers lower-case them)
    assert accept({k.lower(): v for k, v in headers.items()}) == SEQ


def test_a_client_cannot_speak_for_another_computer() -> None:
    headers = {**signed(), H_COMPUTER: "pc02"}  # pc01's key, pc02's name
    with pytest.raises(BadSignatureError):
        accept(headers, public_key=PUB2)
    with pytest.raises(BadSignatureError):
        accept(headers, public_key=PUB1)


def test_a_changed_method_path_or_seq_fails() -> None:
    headers = signed()
    with pytest.raises(BadSignatureError):
        accept(headers, method="PUT")
    with pytest.raises(BadSignatureError):
        accept(headers, path="/api/v1/agent/poll?wait=6")
    with pytest.raises(BadSignatureError):
        accept(headers, path="/api/v1/agent/poll")
    with pytest.raises(BadSignatureError):
        accept({**headers, H_SEQ: str(SEQ + 1)})


def test_a_changed_body_fails() -> None:
    headers = signed()
    pending = check_request_headers("POST", PATH, headers, PUB1, SEQ - 1)
    with pytest.raises(BadSignatureError):
        pending.verify(BODY + b" ")
    # and a digest header made to match the other body breaks the signature
    other = {**headers, H_BODY: hashlib.sha256(BODY + b" ").hexdigest()}
    with pytest.raises(BadSignatureError):
        accept(other, body=BODY + b" ")


@pytest.mark.parametrize("last_seq", [SEQ, SEQ + 1, MAX_SEQ])
def test_a_replayed_seq_is_refused_before_the_body_is_read(last_seq: int) -> None:
    headers = signed()
    with pytest.raises(ReplayedError) as refused:
        authenticate_request("POST", PATH, headers, PUB1, last_seq, unreadable)
    assert refused.value.last_seq == last_seq
    assert refused.value.request.seq == SEQ and refused.value.request.computer == "pc01"
    assert refused.value.status == 409


def test_a_fresh_request_reads_its_body_once_authenticated() -> None:
    with pytest.raises(BodyReadError):  # the control for the test above
        authenticate_request("POST", PATH, signed(), PUB1, SEQ - 1, unreadable)
    pending, body = authenticate_request("POST", PATH, signed(), PUB1, SEQ - 1, lambda: BODY)
    assert (pending.request.seq, pending.previous_seq, body) == (SEQ, SEQ - 1, BODY)


def test_forged_and_unknown_requests_are_refused_before_the_body_is_read() -> None:
    with pytest.raises(BadSignatureError):
        authenticate_request("POST", PATH, signed(KEY2), PUB1, 0, unreadable)
    with pytest.raises(UnknownCredentialError):
        authenticate_request("POST", PATH, signed(), None, 0, unreadable)


def test_a_replayed_forgery_is_a_bad_signature_not_a_replay() -> None:
    # the signed 409 (with last_seq) goes only to the computer itself
    with pytest.raises(BadSignatureError):
        check_request_headers("POST", PATH, signed(KEY2), PUB1, SEQ)


def _b64(sig: bytes) -> str:
    return base64.b64encode(sig).decode()


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def non_canonical(text: str) -> str:
    """The same 64 bytes in base64 with the 4 unused bits of the last digit set."""
    return text[:85] + B64[B64.index(text[85]) | 0b1111] + "=="


GOOD = signed()
BAD_HEADERS = [
    {k: v for k, v in GOOD.items() if k != H_COMPUTER},
    {k: v for k, v in GOOD.items() if k != H_SEQ},
    {k: v for k, v in GOOD.items() if k != H_BODY},
    {k: v for k, v in GOOD.items() if k != H_SIGNATURE},
    {},
    {**GOOD, H_COMPUTER: ""},
    {**GOOD, H_COMPUTER: "pc01\nPOST"},
    {**GOOD, H_COMPUTER: "-pc01"},
    {**GOOD, H_COMPUTER: "p" * 64},
    {**GOOD, H_SEQ: ""},
    {**GOOD, H_SEQ: "0" + str(SEQ)},  # one number, one spelling
    {**GOOD, H_SEQ: "-1"},
    {**GOOD, H_SEQ: "1_000"},
    {**GOOD, H_SEQ: "١٢٣"},  # int() would take Arabic-Indic digits
    {**GOOD, H_SEQ: f" {SEQ}"},
    {**GOOD, H_SEQ: "1e3"},
    {**GOOD, H_SEQ: str(MAX_SEQ + 1)},
    {**GOOD, H_BODY: GOOD[H_BODY].upper()},
    {**GOOD, H_BODY: GOOD[H_BODY][:-1]},
    {**GOOD, H_SIGNATURE: GOOD[H_SIGNATURE][:-4]},
    {**GOOD, H_SIGNATURE: _b64(b"\0" * 65)},
    {**GOOD, H_SIGNATURE: "!" * 86 + "=="},
    {**GOOD, H_SIGNATURE: non_canonical(GOOD[H_SIGNATURE])},
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_malformed_or_missing_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(MalformedError) as refused:
        authenticate_request("POST", PATH, headers, PUB1, 0, unreadable)
    assert refused.value.status == 400


def test_a_non_canonical_signature_is_the_same_bytes_in_other_text() -> None:
    # keeps the last BAD_HEADERS case honest: refused for its spelling, not for its bytes
    text = non_canonical(GOOD[H_SIGNATURE])
    assert text != GOOD[H_SIGNATURE]
    assert base64.b64decode(text) == base64.b64decode(GOOD[H_SIGNATURE])


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", PATH), ("POST", "api/v1"), ("POST", "/a b"), ("POST", "/a\nb"), ("POST", "/é")],
)
def test_an_agent_cannot_sign_an_ambiguous_request(method: str, path: str) -> None:
    with pytest.raises(MalformedError):
        sign_request(KEY1, "pc01", method, path, 1, b"")


# --- answers ---------------------------------------------------------------------------------


def serve(
    headers: dict[str, str],
    status: int,
    body: bytes,
    key: Ed25519PrivateKey = SERVER,
    path: str = PATH,
) -> dict[str, str]:
    """The server's side: authenticate pc01's request, sign the answer."""
    pending = check_request_headers("POST", path, headers, PUB1, 0)
    return sign_answer(key, pending.request, status, body)


def test_an_answer_verifies_with_the_server_key_for_its_request() -> None:
    request = signed()
    answer = serve(request, 200, b'{"command": "restore"}')
    assert set(answer) == {H_ANSWER}
    verify_answer(SERVER_PUB, request, 200, b'{"command": "restore"}', answer)
    verify_answer(
        SERVER_PUB, request, 200, b'{"command": "restore"}', {H_ANSWER.lower(): answer[H_ANSWER]}
    )


def test_an_answer_from_another_key_is_refused() -> None:
    request = signed()
    forged = serve(request, 200, b'{"command": "restore"}', key=ROGUE)
    with pytest.raises(BadSignatureError):
        verify_answer(SERVER_PUB, request, 200, b'{"command": "restore"}', forged)


def test_an_old_answer_does_not_answer_a_later_request() -> None:
    first, later = signed(seq=SEQ), signed(seq=SEQ + 1)  # same path and body
    answer = serve(first, 200, b'{"command": "restore"}')
    with pytest.raises(BadSignatureError):
        verify_answer(SERVER_PUB, later, 200, b'{"command": "restore"}', answer)


def test_an_answer_is_bound_to_its_request_status_and_body() -> None:
    request = signed(path="/api/v1/agent/log")
    answer = serve(request, 200, b"{}", path="/api/v1/agent/log")
    other_request = signed(path="/api/v1/agent/poll")  # same seq, another request
    with pytest.raises(BadSignatureError):
        verify_answer(SERVER_PUB, other_request, 200, b"{}", answer)
    with pytest.raises(BadSignatureError):
        verify_answer(SERVER_PUB, request, 500, b"{}", answer)
    with pytest.raises(BadSignatureError):
        verify_answer(SERVER_PUB, request, 200, b"{ }", answer)
    with pytest.raises(BadSignatureError):
        verify_answer(
            SERVER_PUB, signed(KEY2, "pc02", path="/api/v1/agent/log"), 200, b"{}", answer
        )


@pytest.mark.parametrize("answer", [{}, {H_ANSWER: ""}, {H_ANSWER: "not base64"}])
def test_an_unsigned_answer_is_refused(answer: dict[str, str]) -> None:
    with pytest.raises(BadSignatureError):
        verify_answer(SERVER_PUB, signed(), 200, b"{}", answer)


def test_a_lost_counter_with_a_clock_behind_resynchronises_on_a_signed_409(tmp_path: Path) -> None:
    server_last = SEQ  # what the server saw before the agent lost its counter file
    counter = SeqCounter(tmp_path / "seq", clock=lambda: SEQ - 10**12)  # the clock went back
    request = signed(seq=counter.next())
    with pytest.raises(ReplayedError) as refused:
        check_request_headers("POST", PATH, request, PUB1, server_last)
    body = json.dumps({"error": "replayed", "last_seq": refused.value.last_seq}).encode()
    answer = sign_answer(SERVER, refused.value.request, 409, body)
    verify_answer(SERVER_PUB, request, 409, body, answer)  # the agent trusts it …
    counter.advance_past(json.loads(body)["last_seq"])  # … and jumps past the server's
    assert accept(signed(seq=counter.next()), last_seq=server_last) == server_last + 1


# --- keys and the counter --------------------------------------------------------------------


def test_a_private_key_file_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "pc01.pem"
    save_private_key(path, PEM1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_raw(load_private_key(path)) == PUB1
    assert [p.name for p in tmp_path.iterdir()] == ["pc01.pem"]


def test_a_readable_private_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pc01.pem"
    save_private_key(path, PEM1)
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        load_private_key(path)


def test_a_key_that_is_not_ed25519_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(MalformedError):
        private_key_from_pem(other)
    with pytest.raises(MalformedError):
        private_key_from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_the_server_key_is_made_once(tmp_path: Path) -> None:
    path = tmp_path / "server.pem"
    first = load_or_create_server_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_raw(load_or_create_server_key(path)) == public_raw(first)
    assert [p.name for p in tmp_path.iterdir()] == ["server.pem"]


def test_a_public_key_travels_as_hex() -> None:
    text = public_key_text(PUB1)
    assert len(text) == 64
    assert parse_public_key(f"{text}\n") == PUB1
    for bad in ("", text[:-1], text.upper(), text + "00", "g" * 64):
        with pytest.raises(MalformedError):
            parse_public_key(bad)
    with pytest.raises(MalformedError):
        public_key_text(b"\0" * 31)


def test_the_counter_increases_and_survives_a_restart(tmp_path: Path) -> None:
    ticks = iter(range(100, 200))
    counter = SeqCounter(tmp_path / "seq", clock=lambda: 5)
    seqs = [counter.next() for _ in range(3)]
    assert seqs == [5, 6, 7]
    again = SeqCounter(tmp_path / "seq", clock=lambda: 0)  # a stale clock: the file wins
    assert again.last == 7 and again.next() == 8
    ahead = SeqCounter(tmp_path / "seq", clock=lambda: next(ticks))  # the clock wins
    assert [ahead.next(), ahead.next()] == [100, 101]


@pytest.mark.parametrize("content", [None, "", "garbage\n", "-5\n", "9" * 19])
def test_a_lost_or_damaged_counter_starts_from_the_clock(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "seq"
    if content is not None:
        path.write_text(content)
    assert SeqCounter(path, clock=lambda: 42).next() == 42
    assert path.read_text() == "42\n"


def test_advance_past_only_moves_forward(tmp_path: Path) -> None:
    counter = SeqCounter(tmp_path / "seq", clock=lambda: 0)
    counter.advance_past(1000)
    counter.advance_past(10)
    assert counter.next() == 1001


def test_a_counter_that_cannot_be_written_still_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = SeqCounter(tmp_path / "missing-dir" / "seq", clock=lambda: 7)
    with caplog.at_level(logging.WARNING, logger=keys.__name__):
        assert [counter.next(), counter.next()] == [7, 8]
    assert "cannot persist" in caplog.text


def test_the_counter_ends_at_max_seq(tmp_path: Path) -> None:
    counter = SeqCounter(tmp_path / "seq", clock=lambda: 0)
    counter.advance_past(MAX_SEQ - 1)
    assert counter.next() == MAX_SEQ
    with pytest.raises(OverflowError):
        counter.next()


# --- capability tokens -----------------------------------------------------------------------

CLAIMS = {
    "computer": "pc01",
    "image": "win10",
    "session": "9000:full-duplex:239.194.1.1:90M:20:60",
    "op": "mcast-send",
}
NOW = 1_800_000_000.0


def test_a_token_carries_its_claims_until_it_expires() -> None:
    token = issue_token(SERVER, CLAIMS, ttl=300, now=NOW)
    claims = check_token(SERVER_PUB, token, now=NOW + 299)
    assert {k: claims[k] for k in CLAIMS} == CLAIMS
    assert claims["exp"] == NOW + 300
    with pytest.raises(ExpiredError):
        check_token(SERVER_PUB, token, now=NOW + 300)


def test_without_an_explicit_clock_a_token_is_checked_against_now() -> None:
    assert check_token(SERVER_PUB, issue_token(SERVER, CLAIMS, ttl=60))["computer"] == "pc01"
    stale = issue_token(SERVER, CLAIMS, ttl=60, now=time.time() - 61)
    with pytest.raises(ExpiredError):
        check_token(SERVER_PUB, stale)


def test_a_tampered_token_is_refused() -> None:
    header, payload, sig = issue_token(SERVER, CLAIMS, ttl=300, now=NOW).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["image"] = "someone-elses-image"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        check_token(SERVER_PUB, f"{header}.{forged}.{sig}", now=NOW)


def test_a_token_from_another_key_is_refused() -> None:
    with pytest.raises(BadSignatureError):
        check_token(SERVER_PUB, issue_token(ROGUE, CLAIMS, ttl=300, now=NOW), now=NOW)


def test_tokens_without_eddsa_are_refused() -> None:
    exp = int(NOW) + 300
    payload = {**CLAIMS, "aud": keys.TOKEN_AUDIENCE, "exp": exp}
    unsigned = jwt.encode(payload, "", algorithm="none")
    confused = jwt.encode(payload, "secret" * 6, algorithm="HS256")
    for token in (unsigned, confused, "", "a.b.c", "not a token"):
        with pytest.raises(MalformedError):
            check_token(SERVER_PUB, token, now=NOW)


def test_a_token_for_another_audience_or_without_claims_is_refused() -> None:
    other = jwt.encode(
        {**CLAIMS, "aud": "elsewhere", "exp": int(NOW) + 300}, SERVER, algorithm="EdDSA"
    )
    no_exp = jwt.encode({**CLAIMS, "aud": keys.TOKEN_AUDIENCE}, SERVER, algorithm="EdDSA")
    for token in (other, no_exp):
        with pytest.raises(MalformedError):
            check_token(SERVER_PUB, token, now=NOW)


def test_a_fractional_ttl_is_never_shortened() -> None:
    token = issue_token(SERVER, CLAIMS, ttl=0.5, now=NOW + 0.7)
    assert check_token(SERVER_PUB, token, now=NOW + 1.19)["exp"] == NOW + 2


def test_issue_token_checks_its_input() -> None:
    with pytest.raises(ValueError):
        issue_token(SERVER, CLAIMS, ttl=0)
    with pytest.raises(ValueError):
        issue_token(SERVER, {**CLAIMS, "exp": 1}, ttl=60)
    with pytest.raises(ValueError):
        issue_token(SERVER, {"image": "win10"}, ttl=60)


# --- passwords, roles, sessions --------------------------------------------------------------


def test_a_password_verifies_and_a_wrong_one_does_not() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horse ")
    assert not verify_password(None, "correct horse")  # no such user
    assert not verify_password("$argon2id$garbage", "correct horse")
    assert not needs_rehash(stored)
    assert hash_password("correct horse") != stored  # salted
    with pytest.raises(ValueError):
        hash_password("")


def test_a_password_is_the_same_however_it_was_typed() -> None:
    stored = hash_password("caf\u00e9")  # é precomposed
    assert verify_password(stored, "cafe\u0301")  # e + combining acute


def test_an_old_hash_still_verifies_and_asks_for_a_rehash() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("correct horse")
    assert verify_password(old, "correct horse")
    assert needs_rehash(old)
    assert needs_rehash("not a hash")
    assert not needs_rehash(hash_password("correct horse"))


@pytest.mark.parametrize(
    ("role", "action", "classroom", "allowed"),
    [
        ("admin", "manage", None, True),
        ("admin", "operate", "aula9", True),
        ("admin", "create_image", "aula9", True),
        ("teacher", "view", "aula1", True),
        ("teacher", "operate", "aula1", True),
        ("teacher", "operate", "aula9", False),
        ("teacher", "view", "aula9", False),
        ("teacher", "create_image", "aula1", False),
        ("teacher", "manage", "aula1", False),
        ("teacher", "view", None, False),
        ("student", "view", "aula1", False),
        ("", "view", "aula1", False),
    ],
)
def test_who_can_do_what(role: str, action: str, classroom: str | None, allowed: bool) -> None:
    assert can(role, {"aula1", "aula2"}, action, classroom) is allowed


def test_an_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        can("admin", set(), "restroe", "aula1")
    assert {a.value for a in Action} == {"view", "operate", "create_image", "manage"}


def test_sessions_are_random_and_stored_hashed() -> None:
    token, stored = new_session()
    assert len(token) >= 43 and stored == hashlib.sha256(token.encode()).hexdigest()
    assert session_hash(token) == stored and token not in stored
    assert new_session()[0] != token


def test_api_tokens_have_a_prefix_and_are_stored_hashed() -> None:
    token, stored = new_api_token()
    assert token.startswith("ogt_") and len(token) >= 47
    assert session_hash(token) == stored
    assert new_api_token()[0] != token


@pytest.mark.parametrize(
    ("given", "ok"), [("same", True), ("other", False), ("", False), (None, False), ("ñ", False)]
)
def test_csrf_tokens_compare_in_constant_time(given: str | None, ok: bool) -> None:
    expected = new_csrf()
    assert check_csrf(expected, expected if given == "same" else given) is ok
    assert not check_csrf("", "")


# --- properties ------------------------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])
paths = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=200).map(
    lambda s: "/" + s
)
seqs = st.integers(min_value=1, max_value=MAX_SEQ)
computers = st.from_regex(keys._COMPUTER, fullmatch=True)
bodies = st.binary(max_size=2048)


@given(methods, paths, seqs, computers, bodies)
def test_any_request_round_trips(
    method: str, path: str, seq: int, computer: str, body: bytes
) -> None:
    headers = sign_request(KEY1, computer, method, path, seq, body)
    pending, read = authenticate_request(method, path, headers, PUB1, seq - 1, lambda: body)
    assert (pending.computer, pending.request.seq, read) == (computer, seq, body)
    answer = sign_answer(SERVER, pending.request, 200, body)
    verify_answer(SERVER_PUB, headers, 200, body, answer)


@given(methods, paths, seqs, computers, bodies, st.data())
def test_any_single_byte_change_of_the_signed_material_fails(
    method: str, path: str, seq: int, computer: str, body: bytes, data: st.DataObject
) -> None:
    digest = hashlib.sha256(body).hexdigest()
    message = keys.request_bytes(method, path, seq, computer, digest)
    sig = KEY1.sign(message)
    i = data.draw(st.integers(0, len(message) - 1), label="index")
    b = data.draw(st.integers(0, 255).filter(lambda v: v != message[i]), label="byte")
    mutated = message[:i] + bytes([b]) + message[i + 1 :]
    public = private_key_from_pem(PEM1).public_key()
    public.verify(sig, message)  # the control
    with pytest.raises(InvalidSignature):
        public.verify(sig, mutated)


@given(methods, paths, seqs, computers, bodies, st.data())
def test_any_single_byte_change_of_a_request_is_refused(
    method: str, path: str, seq: int, computer: str, body: bytes, data: st.DataObject
) -> None:
    headers = sign_request(KEY1, computer, method, path, seq, body)
    fields = {"method": method, "path": path, "seq": str(seq), "computer": computer}
    which = data.draw(st.sampled_from([*fields, "body"] if body else list(fields)), label="field")
    old = body if which == "body" else fields[which].encode()
    i = data.draw(st.integers(0, len(old) - 1), label="index")
    b = data.draw(st.integers(0, 255).filter(lambda v: v != old[i]), label="byte")
    new = old[:i] + bytes([b]) + old[i + 1 :]
    if which == "body":
        body = new
    else:
        fields[which] = new.decode("latin-1")
    method, path = fields["method"], fields["path"]
    headers = {**headers, H_SEQ: fields["seq"], H_COMPUTER: fields["computer"]}
    with pytest.raises((BadSignatureError, MalformedError)):
        authenticate_request(method, path, headers, PUB1, 0, lambda: body)


def test_request_ids_parse_from_headers() -> None:
    rid = RequestId.from_headers(GOOD)
    assert (rid.computer, rid.seq, _b64(rid.signature)) == ("pc01", SEQ, GOOD[H_SIGNATURE])


def test_every_refusal_is_an_auth_error_with_a_status() -> None:
    refusals = {
        MalformedError: 400,
        UnknownCredentialError: 401,
        BadSignatureError: 401,
        ExpiredError: 401,
        ReplayedError: 409,
    }
    for cls, status in refusals.items():
        assert issubclass(cls, AuthError) and cls.status == status
