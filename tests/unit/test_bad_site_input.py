"""Bad site and scenario input (issue 11 §1–2): each item is refused with the file, the YAML path
and the reason — never a traceback, never a silently wrong effect.  One test per item."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ogref.console import plan_restore
from ogref.errors import ConfigError, FormatError, OgErr, OutOfLimitError
from ogref.model import EngineConfig
from ogref.site import build_site, load_site
from ogref.units import parse_duration, parse_rate, parse_ratio, parse_size

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"
SITE = ROOT / "labs" / "seed-aula-35.yaml"  # the same classroom as a site file
SITE_KEYS = ("repositories", "engine", "engine_preset", "classrooms", "operations")


def seed() -> dict[str, Any]:
    data = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k in SITE_KEYS}


def refused(data: Any, path: str, reason: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        build_site(data, source="site.yaml")
    assert exc.value.source == "site.yaml", str(exc.value)
    assert exc.value.path == path, str(exc.value)
    assert reason in exc.value.reason, str(exc.value)
    return exc.value


def write(tmp_path: Path, text: str | bytes) -> Path:
    f = tmp_path / "site.yaml"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text, encoding="utf-8")
    return f


# --------------------------------------------------------------------------- the file itself


def test_a_non_utf8_byte_names_the_line(tmp_path: Path) -> None:
    raw = SITE.read_bytes().replace(b"name: aula1", b"name: aula\xff1")
    with pytest.raises(ConfigError) as exc:
        load_site(write(tmp_path, raw))
    line = raw[: raw.index(b"\xff")].count(b"\n") + 1
    assert exc.value.path == f"line {line}" and "not UTF-8" in exc.value.reason


def test_deeply_nested_yaml_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_site(write(tmp_path, "classrooms: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nested deeper than" in exc.value.reason and exc.value.path == "line 1"


def test_duplicate_mapping_keys_are_refused_naming_both_lines(tmp_path: Path) -> None:
    text = "engine:\n  ACTIONCACHEFULL: NONE\n  ACTIONCACHEFULL: FORMAT\nclassrooms: []\n"
    with pytest.raises(ConfigError) as exc:
        load_site(write(tmp_path, text))
    assert exc.value.path == "line 3"
    assert "duplicate key 'ACTIONCACHEFULL' (first given on line 2)" in exc.value.reason


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    text = SITE.read_text(encoding="utf-8").replace(
        "    defaults:\n      repository: repo\n",
        "    defaults:\n      <<: {repository: other}\n      repository: repo\n",
    )
    assert load_site(write(tmp_path, text)).computer("pc01").repository == "repo"


# --------------------------------------------------------------------------- values


def test_at_null_is_a_format_error_with_its_path() -> None:
    data = seed()
    data["operations"][0]["at"] = None
    refused(data, "operations.0.at", "not a duration")


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], None])
def test_a_size_given_as_a_mapping_or_list_is_a_format_error(value: Any) -> None:
    data = seed()
    data["classrooms"][0]["defaults"]["cache"]["size"] = value
    refused(data, "classrooms.0.defaults.cache.size", "not a size")


@pytest.mark.parametrize("parse", [parse_size, parse_rate, parse_ratio, parse_duration])
@pytest.mark.parametrize(
    "value", [None, {"x": 1}, [1], 10**400], ids=["None", "mapping", "list", "huge-int"]
)
def test_unit_parsers_raise_format_errors_only(parse: Any, value: Any) -> None:
    with pytest.raises(FormatError):
        parse(value)


def test_sizes_beyond_any_disk_are_refused_not_an_overflow() -> None:
    with pytest.raises(FormatError, match="out of range"):
        parse_size("1e308GiB")


def test_durations_keep_their_exponent() -> None:
    assert parse_duration("2e1s") == 20.0
    assert parse_duration("1.5e2ms") == 0.15
    assert parse_duration("1e1min30s") == 630.0
    data = seed()
    data["operations"][0]["at"] = "2e1s"
    assert build_site(data).operations[0].at == 20.0


def test_a_reversed_range_is_refused_where_it_is_written() -> None:
    data = seed()
    data["classrooms"][0]["groups"][0]["members"] = "pc10-pc01"
    refused(data, "classrooms.0.groups.0.members", "empty range 'pc10-pc01'")
    data = seed()
    data["operations"][0]["restore"]["to"] = "pc10-pc01"
    refused(data, "operations.0.restore.to", "empty range 'pc10-pc01'")


def test_a_scope_naming_no_computer_is_refused_at_load() -> None:
    data = seed()
    data["operations"][0]["restore"]["to"] = {"computers": ["pc01", "pc99"]}
    refused(data, "operations.0.restore.to", "pc99")


def test_a_huge_range_is_refused_not_expanded() -> None:
    data = seed()
    data["classrooms"][0]["groups"][0]["members"] = "pc1-pc999999999"
    refused(data, "classrooms.0.groups.0.members", "more than")


def test_a_repository_address_must_be_an_ipv4_address() -> None:
    data = seed()
    data["repositories"][0]["address"] = "not-an-ip"
    refused(data, "repositories.0.address", "not an IPv4 address")


def test_a_huge_subnet_does_not_enumerate_its_hosts() -> None:
    data = seed()
    data["classrooms"][0]["subnet"] = "0.0.0.0/0"
    site = build_site(data)
    assert site.computer("pc01").ip == "0.0.0.11/0"


# --------------------------------------------------------------------------- engine: keys


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("actioncachefull", "keys are upper case (ACTIONCACHEFULL)"),
        ("RESTOREPROTOCOLNOCACHE", "did you mean RESTOREPROTOCOLNOTCACHE?"),
        ("WHATEVER", "unknown engine.cfg key 'WHATEVER'"),
    ],
)
def test_engine_keys_are_validated_like_engine_cfg(key: str, reason: str) -> None:
    data = seed()
    data["engine"] = {key: "FORMAT"}
    refused(data, f"engine.{key}", reason)


def test_engine_values_name_their_key() -> None:
    data = seed()
    data["engine"] = {"ACTIONCACHEFULL": "WIPE"}
    refused(data, "engine.ACTIONCACHEFULL", "must be one of")


def test_stock_engine_keys_are_kept_and_values_need_no_quoting() -> None:
    data = seed()
    data["engine"] = {"OGLOGSESSION": "/tmp/session.log", "IMGEXT": 'im"g', "OGSLEEP": 5}
    policy = build_site(data).policy
    assert dict(policy.extra)["OGLOGSESSION"] == "/tmp/session.log"
    assert policy.img_ext == 'im"g' and policy.sleep_before_reboot == 5


# --------------------------------------------------------------------------- names


def test_duplicate_repository_names_are_refused() -> None:
    data = seed()
    data["repositories"].append(copy.deepcopy(data["repositories"][0]))
    refused(data, "repositories.1.name", "repository 'repo' is defined twice")


def test_duplicate_group_names_are_refused() -> None:
    data = seed()
    data["classrooms"][0]["groups"].append({"name": "fila1", "members": ["pc01"]})
    refused(data, "classrooms.0.groups.3.name", "group 'fila1' is defined twice")


def test_duplicate_classroom_names_are_refused() -> None:
    data = seed()
    room = copy.deepcopy(data["classrooms"][0])
    room["computers"]["prefix"] = "b"
    data["classrooms"].append(room)
    refused(data, "classrooms.1.name", "classroom 'aula1' is defined twice")


@pytest.mark.parametrize(
    "name", ["pc_01", "-pc01", "pc01-", "pc.01", "pc 01", "a" * 64, "pc'/><x a='", ""]
)
def test_computer_names_are_rfc1123_host_labels(name: str) -> None:
    data = seed()
    data["classrooms"][0]["computers"] = [{"name": name}]
    data["classrooms"][0]["groups"] = []
    data["operations"] = []
    refused(data, "classrooms.0.computers.0.name", "computer name")


def test_a_generated_name_prefix_is_checked_with_its_numbers() -> None:
    data = seed()
    data["classrooms"][0]["computers"]["prefix"] = "pc/"
    refused(data, "classrooms.0.computers.prefix", "not a host name")
    data["classrooms"][0]["computers"]["prefix"] = "p" * 62  # + "35" = 64 characters
    refused(data, "classrooms.0.computers.prefix", "at most 63")


def test_netbios_rules_for_the_windows_name() -> None:
    from ogref.runtime.postconf import windows_name

    assert windows_name("aula1-pc07") == "aula1-pc07" and windows_name("") == "pc"
    for bad in ("a/b", 'pc"1', "pc:1", "pc*", "pc\n1", "a-name-far-too-long"):
        with pytest.raises(OutOfLimitError) as exc:
            windows_name(bad)
        assert exc.value.code == OgErr.OUTOFLIMIT


def test_linux_host_names_are_checked_before_post_configuration() -> None:
    from ogref.model.names import check_host_name

    assert check_host_name("pc01.aula.local") == "pc01.aula.local"
    for bad in ("pc01\n", "../etc", "", "pc01..x"):
        with pytest.raises(FormatError):
            check_host_name(bad)


# --------------------------------------------------------------------------- effects


def test_disks_empty_means_no_disk_and_a_restore_fails_with_og_err_partition() -> None:
    data = seed()
    data["classrooms"][0]["defaults"]["disks"] = []
    site = build_site(data)
    assert site.computer("pc01").disks.disks == ()
    plan = plan_restore(site, site.operations[0].restore)
    assert {p.code for p in plan.computers} == {OgErr.PARTITION}


def test_no_disks_key_still_gets_the_default_disk() -> None:
    data = seed()
    del data["classrooms"][0]["defaults"]["disks"]
    assert build_site(data).computer("pc01").disks.partition(1, 1) is not None


def test_a_duplicate_partition_in_defaults_names_defaults() -> None:
    data = seed()
    parts = data["classrooms"][0]["defaults"]["disks"][0]["partitions"]
    parts.append(dict(parts[0]))
    refused(data, "classrooms.0.defaults.disks", "duplicate partition numbers")


def test_a_missing_repository_names_the_layer_that_set_it() -> None:
    data = seed()
    data["classrooms"][0]["defaults"]["repository"] = "nope"
    refused(data, "classrooms.0.defaults.repository", "repository 'nope' is not defined")
    data = seed()
    data["classrooms"][0]["groups"][1]["repository"] = "nope"
    refused(data, "classrooms.0.groups.1.repository", "not defined")
    data = seed()
    data["classrooms"][0]["computers"]["overrides"]["pc34"]["repository"] = "nope"
    refused(data, "classrooms.0.computers.overrides.pc34.repository", "not defined")


# --------------------------------------------------------------------------- engine.cfg files


@pytest.mark.parametrize(
    "text",
    [
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
        SEED.read_text(encoding="utf-8"),
        "",
        "# only a comment\n",
    ],
)
def test_engine_cfg_must_be_key_value_lines(text: str, tmp_path: Path) -> None:
    f = tmp_path / "engine.cfg"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        EngineConfig.from_file(f)
    assert exc.value.source == str(f) and "engine.cfg" in exc.value.reason


def test_engine_cfg_refuses_a_known_key_in_lower_case(tmp_path: Path) -> None:
    f = tmp_path / "engine.cfg"
    f.write_text("OGSLEEP=20\nrestoreprotocolnotcache=NONE\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        EngineConfig.from_file(f)
    assert exc.value.path == "line 2" and "upper case" in exc.value.reason


def test_engine_cfg_keeps_other_upper_case_keys() -> None:
    cfg = EngineConfig.from_text('OGSLEEP=20\nSITE_SPECIFIC="x y"\n')
    assert dict(cfg.extra)["SITE_SPECIFIC"] == "x y"


def test_durations_beyond_31_years_are_refused() -> None:
    with pytest.raises(FormatError, match="out of range"):
        parse_duration("1e300s")
    data = seed()
    data["operations"][0]["at"] = 1e300
    refused(data, "operations.0.at", "out of range")
