"""common/timeline.py: phase marks only when PYCNI_TIMELINE names a file, never an error for the plugin."""
from __future__ import annotations

import os

from common import timeline


def test_marks_append_time_pid_and_phase(tmp_path, monkeypatch) -> None:
    path = tmp_path / "marks"
    monkeypatch.setattr(timeline, "_FILE", str(path))
    timeline.mark("first phase")
    timeline.mark("second")
    lines = [line.split(" ", 2) for line in path.read_text().splitlines()]
    assert [(int(pid), phase) for _at, pid, phase in lines] == [(os.getpid(), "first phase"), (os.getpid(), "second")]
    assert float(lines[0][0]) <= float(lines[1][0])


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(timeline, "_FILE", None)
    monkeypatch.chdir(tmp_path)
    timeline.mark("unseen")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_file_does_not_fail_the_operation(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(timeline, "_FILE", str(tmp_path / "missing-dir" / "marks"))
    timeline.mark("still fine")
    assert not (tmp_path / "missing-dir").exists()
