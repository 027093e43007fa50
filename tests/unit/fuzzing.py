"""Hypothesis strategies that mutate the seed scenario and the command lines (for the fuzz test).

A scenario mutation is a list of edits of the seed's YAML document — a value replaced by another
type, ``None``, a huge or negative number, a string with an odd unit; a key dropped, misspelt or
duplicated; a value nested in a list or a mapping — or of its text (a non-UTF-8 byte, a line
duplicated, the file cut short).  Command lines mix valid and invalid option values.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"
SEED_TEXT = SEED.read_text(encoding="utf-8")
SEED_DOC: dict[str, Any] = yaml.safe_load(SEED_TEXT)
# images at 5 % on the simulator: a valid mutant runs in a fraction of a second (the fuzz checks
# how input is handled, not the model's numbers)
SEED_DOC["backends"]["sim"] = {"scale": 0.05}

Path_ = tuple[Any, ...]


def _paths(node: Any, here: Path_ = ()) -> list[Path_]:
    out: list[Path_] = [here] if here else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


PATHS = _paths(SEED_DOC)

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    -5.5,
    10**30,
    1e308,
    float("nan"),
    "",
    " ",
    "0",
    "-1",
    "12 parsecs",
    "0Gbit",
    "0B",
    "0s",
    "-5GiB",
    "1e999s",
    "1e300s",
    1e300,
    "1e400GiB",
    "150%",
    "100%",
    "2e1s",
    "1Gbit/s",
    "NaN",
    "inf",
    "pc10-pc01",
    "pc1-pc999999999",
    "../escape",
    "a/b",
    "[/x]",
    "[bold]x",
    "ñandú",
    "x" * 300,
    "10.0.1.0/0",
    "0.0.0.0/0",
    "not-an-ip",
    "9000:full-duplex:239.194.1.1:0M:35:60",
    "leecher:0",
    "UNICAST",
    "TORRENT-DIRECT",
    {},
    [],
    {"a": 1},
    [1, [2]],
    {"rate": "0Gbit"},
]


def _get(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _parent(doc: Any, path: Path_) -> tuple[Any, Any] | None:
    try:
        return _get(doc, path[:-1]), path[-1]
    except (KeyError, IndexError, TypeError):
        return None


def _misspell(key: str) -> str:
    if len(key) < 2:
        return key + "x"
    return key[1] + key[0] + key[2:] if key[0] != key[1] else key.upper()


def _nest(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


Edit = tuple[str, Path_, Any]

edits = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), st.sampled_from(ODD_VALUES)),
    st.tuples(st.just("drop"), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("misspell"), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("wrap"), st.sampled_from(PATHS), st.sampled_from(["list", "map"])),
    st.tuples(st.just("nest"), st.sampled_from(PATHS), st.sampled_from([5, 40, 70, 500])),
    st.tuples(st.just("int"), st.sampled_from(PATHS), st.integers(-(10**6), 10**6)),
    st.tuples(st.just("text"), st.just(()), st.text(max_size=12)),
)

text_edits = st.sampled_from(["none", "non-utf8", "dup-line", "truncate", "tab"])


def mutate(edits_: list[Edit]) -> dict[str, Any]:
    """The seed document with ``edits_`` applied (edits whose path is gone are skipped)."""
    doc = copy.deepcopy(SEED_DOC)
    for kind, path, arg in edits_:
        where = _parent(doc, path)
        if where is None:
            continue
        parent, key = where
        if not isinstance(parent, dict | list):  # an earlier edit replaced the container
            continue
        try:
            parent[key]
        except (KeyError, IndexError, TypeError):
            continue
        if kind == "set":
            parent[key] = copy.deepcopy(arg)
        elif kind == "drop":
            del parent[key]
        elif kind == "misspell" and isinstance(parent, dict) and isinstance(key, str):
            parent[_misspell(key)] = parent.pop(key)
        elif kind == "wrap":
            parent[key] = [parent[key]] if arg == "list" else {"value": parent[key]}
        elif kind == "nest":
            parent[key] = _nest(arg)
        elif kind in ("int", "text"):
            parent[key] = arg
    return doc


def render(doc: dict[str, Any], text_edit: str, line: int) -> bytes:
    """The mutated document as a file, with one text-level edit."""
    try:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        text = SEED_TEXT
    lines = text.splitlines(keepends=True) or ["\n"]
    at = line % len(lines)
    if text_edit == "dup-line":
        lines.insert(at, lines[at])
    elif text_edit == "truncate":
        lines = lines[:at]
    elif text_edit == "tab":
        lines[at] = "\t" + lines[at]
    raw = "".join(lines).encode("utf-8")
    if text_edit == "non-utf8":
        raw = raw[: len(raw) // 2] + b"\xff\xfe" + raw[len(raw) // 2 :]
    return raw


scenarios = st.tuples(st.lists(edits, min_size=1, max_size=4), text_edits, st.integers(0, 200)).map(
    lambda t: render(mutate(t[0]), t[1], t[2])
)

# ------------------------------------------------------------------------- command lines

_METHODS = ["UNICAST", "MULTICAST-DIRECT", "TORRENT-CACHE", "FOO", "TORRENT-DIRECT", "", "unicast"]
_INTS = ["1", "2", "0", "-1", "abc", "1e3", "99999999999999999999", ""]
_SIZES = ["64MiB", "0B", "12 parsecs", "-1GiB", "1e400GiB", "", "1e3MB"]
_RATES = ["1Gbit", "0Gbit", "12.5MB/s", "-1M", "x", "1e999Gbit"]
_RATIOS = ["0%", "1%", "150%", "-1%", "x", "100%"]


def _opt(name: str, values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.one_of(st.just([]), st.sampled_from(values).map(lambda v: [name, v]))


def _flatten(parts: tuple[list[str], ...]) -> list[str]:
    return [x for part in parts for x in part]


plan_args = st.tuples(
    _opt("--image", ["win7-base", "nope", "", "../x"]),
    _opt("--method", _METHODS),
    _opt("--disk", _INTS),
    _opt("--partition", _INTS),
    _opt("--to", ["all", "pc01-pc03", "pc10-pc01", "aula1", "pc99", "", "[/x]", ",,"]),
    _opt("--mode", ["restore", "deploy", "update_cache", "foo", "clone", ""]),
    st.sampled_from([[], ["--json"], ["--log"], ["--bogus"]]),
).map(_flatten)

# tiny grids: one or two small points at most, so each run stays well under a second
sweep_args = st.tuples(
    st.sampled_from([["--n", "2"], ["--n", "1,2"], ["--n", "0"], ["--n", "abc"], ["--n", "-5"]]),
    st.sampled_from(
        [["--methods", "UNICAST-DIRECT"], ["--methods", "TORRENT-CACHE"], ["--methods", "FOO"]]
    ),
    _opt("--loss", _RATIOS),
    st.sampled_from([["--image", "16MiB"], ["--image", "0B"], ["--image", "12 parsecs"]]),
    _opt("--link", _RATES),
    st.sampled_from([["--jobs", "1"], ["--jobs", "0"], ["--jobs", "x"]]),
).map(_flatten)

run_args = st.tuples(
    _opt("--seed", _INTS),
    st.sampled_from([[], ["-q"], ["--quiet"]]),
    st.sampled_from([[], ["--backend", "sim"], ["--backend", "nope"]]),
).map(_flatten)


def one_line_error(output: str) -> bool:
    """No Python traceback in the output."""
    return "Traceback (most recent call last)" not in output and not re.search(
        r'^\s+File ".*", line \d+', output, re.M
    )
