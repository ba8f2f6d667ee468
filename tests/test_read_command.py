"""`mesh read` as a shell uses it: CSV streams into a redirected file, a bad limit is refused, and an access log
that cannot be written refuses the read with a clear error (fail closed, no sqlite3 traceback)."""

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from platform_resources import access_log, ports
from platform_resources.cli import main
from platform_resources.home import prepare_home
from unwritable import unwritable

PORT = "geography.nations.nations"  # public: anyone may read it
MESH = str(Path(sys.executable).parent / "mesh")


@pytest.fixture
def published(fresh_home) -> Path:
    prepare_home()
    names = ["ALGERIA", 'SAY "HI", PERU']  # a value CSV must quote
    ports.publish(PORT, pa.table({"n_nationkey": pa.array(range(2), pa.int32()), "n_name": names,
                                  "n_regionkey": pa.array([0, 1], pa.int32()), "n_comment": ["a", "b"]}))
    return fresh_home


def test_csv_streams_after_what_the_shell_already_wrote_to_the_file(published, tmp_path):
    out = tmp_path / "served.csv"
    shell = f'(echo "# nations, exported"; {MESH} read {PORT} --format csv) > {out}'
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "# nations, exported"  # not overwritten
    assert lines[1].startswith("n_nationkey,n_name,")
    assert lines[2].startswith("0,ALGERIA,") and lines[3].startswith('1,"SAY ""HI"", PERU",')
    assert len(lines) == 4


def test_csv_appends_to_a_file_opened_for_appending(published, tmp_path):
    out = tmp_path / "served.csv"
    out.write_text("before\n")
    result = subprocess.run(["sh", "-c", f"{MESH} read {PORT} --format csv --limit 1 >> {out}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "before" and lines[1].startswith("n_nationkey,") and len(lines) == 3  # header and one row


@pytest.mark.parametrize("limit", ["-1", "-100", "ten"])
def test_a_limit_that_is_not_a_row_count_is_refused(published, capsys, limit):
    with pytest.raises(SystemExit) as exit_:
        main(["read", PORT, "--limit", limit])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--limit" in err and limit in err


def test_a_read_only_access_log_refuses_the_read_naming_the_file(published, capsys):
    access_log.record(None, PORT, True, None, "the log exists")
    with unwritable(access_log.log_file()):
        code = main(["read", PORT, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # fail closed: no row served
    assert str(access_log.log_file()) in captured.err and "readonly" in captured.err
    assert "the read is refused" in captured.err and "Traceback" not in captured.err


def test_a_damaged_access_log_refuses_reads_and_says_so(published, capsys):
    access_log.log_file().write_bytes(b"this is not a database" * 100)
    assert main(["read", PORT, "--format", "csv"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(access_log.log_file()) in captured.err and "not a database" in captured.err
    assert main(["access-log"]) == 2  # reading the log names the file too
    assert str(access_log.log_file()) in capsys.readouterr().err


def test_an_access_log_that_cannot_be_created_refuses_the_read(published, capsys):
    access_log.log_file().unlink(missing_ok=True)
    with unwritable(published):  # the home folder: no new file can be made in it
        code = main(["read", PORT])
    captured = capsys.readouterr()
    assert code == 2 and "ALGERIA" not in captured.out
    assert str(access_log.log_file()) in captured.err and "unable to open" in captured.err
