"""Recording pieces that need no tmux: policy keys, the pipe command, notices, the sanitiser."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import gktest
import gkunit
import pytest

from gatekeeper.host import control as hostlib
from gatekeeper.host import recorder, recording, replay, visits
from gatekeeper.login import messages, plan
from gatekeeper.login import request as rq
from gatekeeper.login.decide import AttachSession, decide
from gatekeeper.policy import cache as policycache
from gatekeeper.policy import model

SESSION = model.Session("shared", "/run/gk/shared.sock", "alice", "shared", record="required")
POLICY = model.Policy(sessions={"shared": SESSION}, path="/etc/gatekeeper.toml")


def test_a_bad_record_value_is_refused() -> None:
    from gatekeeper.policy.loader import SessionModel  # noqa: PLC0415 - pydantic

    with pytest.raises(ValueError, match="record"):
        SessionModel.model_validate(
            {"socket": "/s", "owner": "alice", "target": "s", "record": "yes"}
        )
    with pytest.raises(ValueError, match="recordings"):
        SessionModel.model_validate(
            {"socket": "/s", "owner": "alice", "target": "s", "recordings": "/a b/$(id)"}
        )
    ok = SessionModel.model_validate({"socket": "/s", "owner": "alice", "target": "s"})
    assert (ok.record, ok.recordings, ok.announce) == ("off", "", True)


def test_cache_round_trip_keeps_the_recording_keys() -> None:
    policy = model.Policy(
        sessions={
            "shared": model.Session(
                "shared", "/s", "alice", "shared", record="on", recordings="/r",
                record_limit=70000, announce=False,
            )
        },
        path="/etc/gatekeeper.toml",
        sha256="0" * 64,
    )  # fmt: skip
    data = policycache.encode(policy, "f")
    back = policycache.decode(data, "/etc/gatekeeper.toml", "0" * 64, "f")
    assert back.sessions == policy.sessions


@pytest.mark.parametrize(("record", "notice"), [("required", True), ("on", True), ("off", False)])
def test_only_recorded_sessions_get_the_notice_before_exec(record: str, *, notice: bool) -> None:
    session = model.Session("shared", "/s", "alice", "shared", record=record)
    policy = model.Policy(
        sessions={"shared": session},
        grants=(model.Grant(0, users=frozenset({"pair"}), session="shared"),),
    )
    decision = decide(gkunit.connection(), rq.Attach("shared"), policy, gkunit.NOW)
    assert isinstance(decision, AttachSession)
    exe = plan.plan(decision, policy, gkunit.connection())
    assert exe.notice == (messages.recorded("shared") if notice else "")
    assert "-r" in exe.argv  # the notice changes nothing else


def test_the_pipe_command_holds_only_validated_words_and_numeric_formats() -> None:
    command = recording.recorder_command(POLICY, "/etc/gatekeeper.toml", SESSION, "", "")
    formats = {part for part in command.split() if "#" in part}
    assert formats == {"#{pane_width}x#{pane_height}", "#{pane_id}"}
    assert "'" not in command
    assert "$" not in command
    assert ";" not in command
    bad = model.Session("shared", "/run/gk/a b.sock", "alice", "shared", record="on")
    with pytest.raises(hostlib.HostError):
        recording.recorder_command(POLICY, "/etc/gatekeeper.toml", bad, "", "")
    with pytest.raises(hostlib.HostError):
        recording.recorder_command(POLICY, "/etc/gatekeeper.toml", SESSION, "", "x #(id)")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("pair", "bob", "joined read-only", "192.0.2.7"),
         "gatekeeper: bob (pair) joined read-only from 192.0.2.7"),
        (("pair", None, "left", None), "gatekeeper: pair left"),
        (("pair", "b#(id)", "left", "1.2.3.4; id"), "gatekeeper: pair left"),
        (("Mallory#{pane_id}", None, "left", "::1"), "gatekeeper: unknown-account left from ::1"),
    ],
)  # fmt: skip
def test_the_host_notice_uses_only_checked_words(args: tuple, expected: str) -> None:
    assert visits.notice(*args) == expected


def test_file_names_sort_by_time() -> None:
    early, late = recorder.stamp(1_800_000_000.25), recorder.stamp(1_800_000_001.0)
    names = [
        recorder.file_name(late, "s", "%3", 0),
        recorder.file_name(early, "s", "%10", 1),
        recorder.file_name(early, "s", "%10", 0),
    ]
    assert sorted(names) == [names[2], names[1], names[0]]
    assert names[2] == "20270115T080000.250000Z_s_p10_000.cast"


ATTACKS = {
    "osc52 clipboard": "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "osc52 st": "\x1b]52;c;ZWNobw==\x1b\\",
    "title": "\x1b]0;evil title\x07",
    "hyperlink": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "palette": "\x1b]4;1;rgb:ff/00/00\x07",
    "tmux passthrough": "\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\",
    "decrqss": "\x1bP$qm\x1b\\",
    "report title": "\x1b[21t",
    "resize window": "\x1b[8;100;300t",
    "dsr": "\x1b[6n",
    "device attributes": "\x1b[>c",
    "c1 csi": "\x9b6n",
    "apc kitty": "\x1b_Gf=100;AAAA\x1b\\",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_replay_filter_removes_sequences_that_reach_beyond_the_screen(name: str) -> None:
    attack = ATTACKS[name]
    text = f"before{attack}after"
    cleaned = replay.Sanitiser().feed(text)
    assert cleaned.replace("click", "") == "beforeafter"
    # Split anywhere across two events: the same result.
    for cut in range(1, len(text)):
        sanitiser = replay.Sanitiser()
        assert sanitiser.feed(text[:cut]) + sanitiser.feed(text[cut:]) == cleaned


def test_drawing_sequences_pass_and_titles_pass_only_when_asked() -> None:
    drawing = "\x1b[1;31mred\x1b[0m\x1b[2J\x1b[H\x1b[?1049h\x1b[10;5Hx\x1b7\x1b8\r\n"
    assert replay.Sanitiser().feed(drawing) == drawing
    title = "\x1b]2;build log\x07"
    assert replay.Sanitiser(allow_title=True).feed(title) == title
    assert replay.Sanitiser(allow_title=True).feed("\x1b]52;c;eA==\x07") == ""


def _cast(tmp_path: Path, events: list[list]) -> Path:
    path = tmp_path / "x.cast"
    header = {"version": 2, "width": 80, "height": 24, "timestamp": 1_800_000_000}
    path.write_text("\n".join(json.dumps(e) for e in [header, *events]) + "\n")
    return path


def test_play_keeps_timing_speed_idle_limit_and_at(tmp_path: Path) -> None:
    path = _cast(tmp_path, [[0.5, "o", "a"], [1.5, "o", "b"], [11.5, "m", "x"], [11.5, "o", "c"]])
    cast = replay.load([str(path)])
    slept: list[float] = []
    out = io.BytesIO()
    replay.play(cast, out, speed=2.0, idle_limit=4.0, sleep=slept.append)
    assert out.getvalue() == b"abc"
    assert slept == [0.25, 0.5, 2.0]
    slept.clear()
    replay.play(cast, io.BytesIO(), at=1.0, sleep=slept.append)
    assert slept == [0.5, 10.0]


def test_the_recorder_writes_asciicast_v2_with_continuation_files(tmp_path: Path) -> None:
    directory = tmp_path / "rec"
    directory.mkdir(mode=0o700)
    payload = b"".join(b"line %05d \xc3\xa9\n" % i for i in range(20000))
    argv = [
        str(gktest.PYTHON), "-I", "-m", "gatekeeper.host.recorder", "--policy", "/nonexistent",
        "--session", "s", "--dir", str(directory), "--limit", "65536", "--tmux", "/bin/false",
        "--socket", "/nonexistent", "--size", "100x30", "--mark", "share", "%7",
    ]  # fmt: skip
    result = subprocess.run(argv, input=payload, capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    files = sorted(directory.iterdir())
    assert len(files) > 3
    assert all(f.stat().st_size < 2 * 65536 for f in files)  # the limit, plus one event
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    cast = replay.load([str(f) for f in files])
    assert cast.header["width"] == 100
    assert cast.events[0][1:] == ("m", "share")
    text = "".join(d for _, k, d in cast.events if k == "o")
    assert text.encode() == payload


def test_eight_bit_introducers_are_filtered_like_seven_bit_ones() -> None:
    assert replay.Sanitiser().feed("a\x9d52;c;eA==\x9cb\x9b1mc\x85") == "ab\x1b[1mc"


def test_recordings_lists_a_recording_with_its_marker(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir(mode=0o700)
    argv = [
        str(gktest.PYTHON), "-I", "-m", "gatekeeper.host.recorder", "--policy", "/nonexistent",
        "--session", "s", "--dir", str(rec), "--limit", "65536", "--tmux", "/bin/false",
        "--socket", "/nonexistent", "--mark", "join bob read-only", "%4",
    ]  # fmt: skip
    subprocess.run(argv, input=b"hello\n", check=True, timeout=60)
    audit = tmp_path / "audit.jsonl"
    audit.write_text("")
    policy = tmp_path / "p.toml"
    policy.write_text(
        f'version = 1\n[audit]\nsink = "file"\nfile = "{audit}"\n'
        f'[sessions.s]\nsocket = "{tmp_path}/sock"\nowner = "root"\ntarget = "s"\n'
        f'record = "on"\nrecordings = "{rec}"\n'
    )
    policy.chmod(0o644)
    ctl = [str(gktest.GATEKEEPERCTL), "recordings", "--policy", str(policy)]
    out = subprocess.run(ctl, capture_output=True, text=True, check=True, timeout=60).stdout
    (name,) = (p.name for p in rec.iterdir())
    lines = out.splitlines()
    assert lines[1].split()[2:4] == ["s", "%4"]
    assert lines[1].endswith("marker: join bob read-only")
    assert lines[2].strip() == name.removesuffix("_000.cast")
    rows = subprocess.run([*ctl, "--json"], capture_output=True, text=True, check=True).stdout
    (row,) = map(json.loads, rows.splitlines())
    assert row["files"] == [str(rec / name)]
    assert row["visits"] == []
