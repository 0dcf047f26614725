"""The run's log (training/run_log.py): train.log lines, metrics.jsonl records, the tracker,
and the truncation a resume relies on."""

from __future__ import annotations

import json

from asrtune.training.run_log import Meter, RunLog


class Recording:
    """A tracker that keeps what it is sent (the interface of ``tracking.Tracker``)."""

    def __init__(self):
        self.points: list[tuple[int, dict]] = []

    def log_scalars(self, step, values):
        self.points.append((step, values))


def test_lines_and_records_go_to_the_run_dir_and_points_to_the_tracker(tmp_path, capsys):
    log = RunLog(tmp_path, main=True)
    log.say("before the log file is open")  # printed, not written: the run dir may not exist yet
    log.open()
    log.tracker = Recording()
    log.say("step 1: dev WER 10.0 %")
    log.metric({"event": "start", "step": 0})
    log.metric({"step": 1, "loss": 2.5, "guard_ok": True})
    log.close()
    assert "before the log file is open" in capsys.readouterr().err
    lines = (tmp_path / "train.log").read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("step 1: dev WER 10.0 %")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"event": "start", "step": 0}, {"step": 1, "loss": 2.5, "guard_ok": True}]
    assert log.tracker.points == [(1, {"loss": 2.5})]  # events and booleans are not curves


def test_other_ranks_write_nothing(tmp_path, capsys):
    log = RunLog(tmp_path, main=False)
    log.say("hello")
    log.metric({"step": 1, "loss": 1.0})
    assert capsys.readouterr().err == "" and not (tmp_path / "metrics.jsonl").exists()


def test_truncation_drops_later_steps_and_a_torn_last_line(tmp_path):
    log = RunLog(tmp_path, main=True)
    for step in (1, 2, 3):
        log.metric({"event": "x", "step": step})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "lo')  # a kill mid-write
    log.truncate_metrics(2)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    RunLog(tmp_path / "missing", main=True).truncate_metrics(5)  # nothing to truncate


def test_meter_rate():
    m = Meter()
    m.add(4, 2.0, 1.0)
    m.add(2, 1.0, 3.0)
    assert (m.utts, m.steps, m.loss) == (6, 2, 4.0) and m.rate() == 2.0
    assert Meter().rate() == 0.0
