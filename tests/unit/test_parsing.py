"""Units, methods, session strings, image names, engine.cfg, and bad input with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from ogref.errors import ConfigError, FormatError, MulticastSyntaxError, OgErr, error_for
from ogref.model import (
    ALL_METHODS,
    CacheFullAction,
    Compressor,
    EngineConfig,
    ImageInfo,
    Method,
    MulticastClientSession,
    MulticastSession,
    NotCacheProtocol,
    TorrentMode,
    TorrentSession,
    validate_image_name,
)
from ogref.model.policy import StartDelay
from ogref.site import build_site
from ogref.units import GIB, parse_duration, parse_rate, parse_ratio, parse_size

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEED = Path(__file__).resolve().parents[2] / "labs" / "seed-aula-35.yaml"


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("text", "value"),
    [("38GiB", 38 * GIB), ("642MB", 642_000_000), ("4096", 4096), ("1.5KiB", 1536), ("0", 0)],
)
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("1Gbit", 1e9), ("100Mbit", 1e8), ("70M", 7e7), ("12.5MB/s", 1e8), ("100Mbps", 1e8)],
)
def test_rates(text: str, value: float) -> None:
    assert parse_rate(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "value"), [("90s", 90), ("2min", 120), ("1h30min", 5400), ("0.2ms", 0.0002), ("5", 5)]
)
def test_durations(text: str, value: float) -> None:
    assert parse_duration(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["38Gb", "x", "-1GiB", "1e999GiB", "3 apples"])
def test_bad_sizes_name_the_input(bad: str) -> None:
    with pytest.raises(FormatError) as exc:
        parse_size(bad)
    assert repr(bad) in str(exc.value)


def test_ratios() -> None:
    assert parse_ratio("1%") == 0.01 and parse_ratio(0.5) == 0.5
    with pytest.raises(FormatError):
        parse_ratio("150%")


@given(st.integers(0, 2**50))
def test_size_round_trip(n: int) -> None:
    from ogref.units import format_size

    assert abs(parse_size(format_size(n)) - n) <= max(1, n * 0.001)


# --------------------------------------------------------------------------- methods


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("UNICAST", "UNICAST-CACHE"),
        ("unicast-cache", "UNICAST-CACHE"),
        ("UNICAST-DIRECT", "UNICAST-DIRECT"),
        ("MULTICAST", "MULTICAST-CACHE"),
        ("Multicast-Direct", "MULTICAST-DIRECT"),
        ("TORRENT", "TORRENT-CACHE"),
    ],
)
def test_method_spellings(text: str, canonical: str) -> None:
    assert str(Method.parse(text)) == canonical


@pytest.mark.parametrize("method", ALL_METHODS)
def test_method_round_trip(method: Method) -> None:
    assert Method.parse(str(method)) == method


@pytest.mark.parametrize("bad", ["TORRENT-DIRECT", "RSYNC", "UNICAST-FAST", ""])
def test_bad_methods_are_refused(bad: str) -> None:
    with pytest.raises(FormatError) as exc:
        Method.parse(bad)
    assert exc.value.code == OgErr.FORMAT


# --------------------------------------------------------------------------- session strings


def test_multicast_session_round_trip() -> None:
    text = "9000:full-duplex:239.194.17.36:70M:50:60"
    s = MulticastSession.parse(text)
    assert str(s) == text and s.nclients == 50 and s.max_wait == 60


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("9001:full-duplex:239.194.1.1:70M:50:60", "out of range"),
        ("9100:full-duplex:239.194.1.1:70M:50:60", "out of range"),
        ("8998:full-duplex:239.194.1.1:70M:50:60", "out of range"),
        ("9000:duplex:239.194.1.1:70M:50:60", "duplex"),
        ("9000:full-duplex:10.0.0.1:70M:50:60", "not an IPv4 multicast"),
        ("9000:full-duplex:239.194.1.1:1000M:50:60", "bitrate"),
        ("9000:full-duplex:239.194.1.1:70:50:60", "bitrate"),
        ("9000:full-duplex:239.194.1.1:70M:0:60", "nclients"),
        ("9000:full-duplex:239.194.1.1:70M:50", "port:duplex"),
    ],
)
def test_malformed_multicast_sessions(bad: str, why: str) -> None:
    with pytest.raises(MulticastSyntaxError) as exc:
        MulticastSession.parse(bad)
    assert why in str(exc.value) and exc.value.code == OgErr.MCASTSYNTAXT


def test_client_multicast_session() -> None:
    s = MulticastClientSession.parse("9000:172.17.88.161:40:120")
    assert (s.port, s.server, s.start_timeout, s.receive_timeout) == (
        9000,
        "172.17.88.161",
        40,
        120,
    )
    assert MulticastClientSession.parse("9002").start_timeout is None
    with pytest.raises(MulticastSyntaxError):
        MulticastClientSession.parse("9000:nothost")


def test_torrent_sessions() -> None:
    assert TorrentSession.parse("peer:60") == TorrentSession(TorrentMode.PEER, 60)
    assert str(TorrentSession.parse("SEEDER:0")) == "seeder:0"
    for bad in ("peer", "swarm:60", "peer:-1", "peer:abc"):
        with pytest.raises(FormatError):
            TorrentSession.parse(bad)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("name", ["win10", "/win10", "ou1/win10", "win10.img", "w_10-a.b"])
def test_good_image_names(name: str) -> None:
    assert ".." not in validate_image_name(name)


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "a/../../b", "//abs", "a\\b", "", "a/b/c", ".hidden"]
)
def test_image_names_cannot_escape_the_repository(name: str) -> None:
    with pytest.raises(FormatError):
        validate_image_name(name)


def test_image_info_string() -> None:
    info = ImageInfo.parse("PARTCLONE:LZOP:NTFS:5642158:pc11")
    assert info.compressor is Compressor.LZOP and info.size_kb == 5642158 and info.host == "pc11"
    assert str(info) == "PARTCLONE:LZOP:NTFS:5642158:pc11"
    with pytest.raises(FormatError):
        ImageInfo.parse("PARTCLONE:LZOP:NTFS")


# --------------------------------------------------------------------------- engine.cfg


def test_engine_cfg_1_1_1d_defaults() -> None:
    cfg = EngineConfig.from_file(FIXTURES / "engine-1.1.1d.cfg")
    assert cfg == EngineConfig.opengnsys_1_1_1d()
    assert cfg.restore_protocol_not_cache is NotCacheProtocol.NONE
    assert cfg.action_cache_full is CacheFullAction.NONE
    assert (cfg.mcast_error_session, cfg.mcast_wait) == (120, 30)
    assert cfg.img_comp is Compressor.LZOP and cfg.img_reduce and cfg.create_speed == 400000
    assert dict(cfg.extra)["OGLOGSESSION"] == "/tmp/session.log"


def test_engine_cfg_our_default_follows_the_seed() -> None:
    assert EngineConfig().restore_protocol_not_cache is NotCacheProtocol.UNICAST


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("RESTOREPROTOCOLNOTCACHE=TORRENT", "RESTOREPROTOCOLNOTCACHE"),
        ("RESTOREPROTOCOLNOTCACHE=unicast", "RESTOREPROTOCOLNOTCACHE"),
        ("ACTIONCACHEFULL=WIPE", "ACTIONCACHEFULL"),
        ("MCASTWAIT=soon", "MCASTWAIT"),
        ("IMGREDUCE=maybe", "IMGREDUCE"),
        ("IMGCOMP=rar", "IMGCOMP"),
    ],
)
def test_unknown_engine_cfg_values_are_refused_with_file_and_line(
    line: str, key: str, tmp_path: Path
) -> None:
    f = tmp_path / "engine.cfg"
    f.write_text(f"# comment\nOGSLEEP=20\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        EngineConfig.from_file(f)
    msg = str(exc.value)
    assert str(f) in msg and "line 3" in msg and key in msg


def test_engine_cfg_round_trip() -> None:
    cfg = EngineConfig().with_overrides(action_cache_full=CacheFullAction.FORMAT)
    assert EngineConfig.from_text(cfg.to_text()) == cfg


# --------------------------------------------------------------------------- site YAML


def _seed() -> dict:
    return yaml.safe_load(SEED.read_text())


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (
            lambda d: d["classrooms"][0]["defaults"].update(cahce={"size": "1GiB"}),
            "classrooms.0.defaults.cahce",
            "unknown key",
        ),
        (
            lambda d: d["classrooms"][0]["defaults"]["cache"].update(size="20 parsecs"),
            "classrooms.0.defaults.cache.size",
            "unknown size unit",
        ),
        (
            lambda d: d["classrooms"][0].update(multicast="9001:full-duplex:239.194.1.1:70M:35:60"),
            "classrooms.0.multicast",
            "out of range",
        ),
        (
            lambda d: d["operations"][0]["restore"].update(method="TORRENT-DIRECT"),
            "operations.0.restore.method",
            "TORRENT-DIRECT",
        ),
        (lambda d: d.update(engine={"ACTIONCACHEFULL": "WIPE"}), "engine", "ACTIONCACHEFULL"),
        (
            lambda d: d["classrooms"][0]["groups"][0].update(members=["pc01", "pc99"]),
            "classrooms.0.groups.0.members",
            "pc99",
        ),
        (
            lambda d: d["classrooms"][0]["computers"]["overrides"].update(pc77={}),
            "classrooms.0.computers.overrides",
            "pc77",
        ),
        (
            lambda d: d["repositories"][0]["images"][0].update(name="../escape"),
            "repositories.0",
            "invalid image name",
        ),
    ],
)
def test_bad_site_yaml_names_file_path_and_reason(mutate, path: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    data = _seed()
    mutate(data)
    with pytest.raises(ConfigError) as exc:
        build_site(data, source="site.yaml")
    msg = str(exc.value)
    assert msg.startswith("[1 OG_ERR_FORMAT] site.yaml:") and path in msg and reason in msg, msg


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    from ogref.site import load_site

    f = tmp_path / "bad.yaml"
    f.write_text("classrooms:\n  - name: a\n   computers: [\n")
    with pytest.raises(ConfigError) as exc:
        load_site(f)
    assert str(f) in str(exc.value) and "line" in str(exc.value)


def test_inheritance_defaults_group_computer() -> None:
    data = _seed()
    room = data["classrooms"][0]
    room["groups"][0]["cache"] = {"size": "30GiB", "free": "29GiB"}
    room["groups"][0]["hw"] = {"link": {"rate": "100Mbit"}}
    room["defaults"]["hw"] = {"link": {"rate": "1Gbit", "loss": "0%"}}
    room["computers"]["overrides"]["pc02"] = {"cache": {"size": "40GiB"}}
    site = build_site(data)
    assert site.computer("pc01").cache.size == 30 * GIB  # group
    assert site.computer("pc02").cache.size == 40 * GIB  # computer beats group
    assert site.computer("pc20").cache.size == 20 * GIB  # defaults
    assert site.hw["pc01"]["link"] == {"rate": "100Mbit", "loss": "0%"}  # deep merge
    assert site.computer("pc01").ip == "10.0.1.11/24" and site.computer("pc35").ip == "10.0.1.45/24"


def test_error_codes_match_opengnsys() -> None:
    assert error_for(15, "x").code == OgErr.NOTCACHE
    assert error_for(59, "x").code == 59 and error_for(999, "x").code == OgErr.GENERIC
    assert int(OgErr.IMGSIZEPARTITION) == 30 and int(OgErr.PROTOCOLJOINMASTER) == 60


# --------------------------------------------------------------------------- STARTDELAY


def test_start_delay_default_is_none_and_the_1_1_1d_file_has_no_such_key() -> None:
    assert EngineConfig().start_delay == StartDelay()
    assert str(EngineConfig().start_delay) == "NONE"
    cfg = EngineConfig.from_file(FIXTURES / "engine-1.1.1d.cfg")
    assert cfg.start_delay.draw("TORRENT", lambda lo, hi: 99) == 0.0


@pytest.mark.parametrize(
    ("raw", "torrent", "multicast"),
    [
        ("NONE", (0, 0), (0, 0)),
        ("OPENGNSYS", (1, 120), (1, 30)),
        ("opengnsys", (1, 120), (1, 30)),
        ("TORRENT:1-120", (1, 120), (0, 0)),
        ("TORRENT:5-10, MULTICAST:2-3", (5, 10), (2, 3)),
    ],
)
def test_start_delay_values(raw: str, torrent: tuple[int, int], multicast: tuple[int, int]) -> None:
    cfg = EngineConfig.from_text(f'STARTDELAY="{raw}"\n')
    assert (cfg.start_delay.torrent, cfg.start_delay.multicast) == (torrent, multicast)
    assert EngineConfig.from_text(cfg.to_text()) == cfg


@pytest.mark.parametrize(
    "raw", ["SOMETIMES", "TORRENT:10-1", "UNICAST:1-2", "TORRENT:1-2,TORRENT:3-4", "TORRENT:x"]
)
def test_bad_start_delay_is_refused_with_line(raw: str) -> None:
    with pytest.raises(ConfigError) as exc:
        EngineConfig.from_text(f"OGSLEEP=20\nSTARTDELAY={raw}\n", source="e.cfg")
    assert "STARTDELAY" in str(exc.value) and "line 2" in str(exc.value)


def test_start_delay_draw() -> None:
    d = StartDelay.opengnsys()
    assert d.draw("TORRENT", lambda lo, hi: hi) == 120.0
    assert d.draw("MULTICAST", lambda lo, hi: lo) == 1.0
    assert d.draw("UNICAST", lambda lo, hi: hi) == 0.0


def test_start_delay_from_site_yaml() -> None:
    data = _seed()
    data["engine"] = {"STARTDELAY": "OPENGNSYS"}
    site = build_site(data, source="seed")
    assert site.policy.start_delay == StartDelay.opengnsys()
