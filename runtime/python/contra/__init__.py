"""contra from Python: validate and run pipelines, embed arrays with a trained
encoder, list the plugins, read run folders. See docs/python.md.

    import contra
    problems = contra.validate("pipelines/quickstart.toml")
    summary = contra.run("pipelines/quickstart.toml", on_step=lambda s: print(s["step"], s["loss"]))
    encoder = contra.Encoder.load(summary["run_dir"])
    z = encoder.embed(images)            # uint8 [N, H, W(, C)] -> float32 [N, D]
    run = contra.read_run(summary["run_dir"])
    run["steps"]["loss"]                 # numpy array, one entry per step
"""

import json
import math
import os

import numpy

from ._contra import (  # noqa: F401  (re-exported)
    ConfigError,
    DataError,
    DeviceError,
    Encoder,
    Error,
    PluginError,
    UsageError,
    __version__,
    plugins,
    run,
    sdk_abi_version,
)
from ._contra import _validate


class Diagnostic:
    """One problem of a pipeline: where (``file``, ``line`` and ``column``,
    1-based, 0 when unknown), the dotted ``key`` (may be empty) and the
    ``message``; str() is the line `contra validate` prints."""

    __slots__ = ("file", "line", "column", "key", "message", "_text")

    def __init__(self, file, line, column, key, message, text):
        self.file, self.line, self.column, self.key, self.message, self._text = file, line, column, key, message, text

    def __str__(self):
        return self._text

    def __repr__(self):
        return f"<contra.Diagnostic {self._text}>"

    def __eq__(self, other):
        return isinstance(other, Diagnostic) and str(self) == str(other)

    def __hash__(self):
        return hash(self._text)


def validate(path, set=()):
    """What `contra validate PATH --set ...` checks, without running it: the
    pipeline read and its plugins bound, every plugin created, the data
    opened, the trainer built. Returns the diagnostics, in file order; an
    empty list when the pipeline is valid."""
    return [Diagnostic(*d) for d in _validate(os.fspath(path), list(set))]

__all__ = [
    "ConfigError", "DataError", "DeviceError", "Diagnostic", "Encoder", "Error", "PluginError", "UsageError",
    "plugins", "read_run", "run", "validate",
]


def _read_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None


def _columns(records, fixed):
    """One numpy array per key over `records` (dicts of numbers): the `fixed`
    keys first, then every other key in first-seen order; NaN where a record
    lacks a key."""
    keys = list(fixed)
    for r in records:
        for k in r:
            if k not in keys:
                keys.append(k)
    out = {}
    for k in keys:
        values = [r.get(k, math.nan) for r in records]
        integral = k in ("step", "epoch") and all(isinstance(v, int) for v in values)
        out[k] = numpy.array(values, dtype=numpy.int64 if integral else numpy.float64)
    return out


def read_run(run_dir):
    """A run folder's records (docs/run-records.md) as Python values:

    - ``steps``: numpy arrays, one entry per step in metrics.jsonl order:
      ``step`` (from 1, as the console counts), ``epoch``, ``loss``, ``lr``,
      ``images_per_s``, ``time_s`` and each of the step's ``metrics`` (the
      loss's figures and the mining diagnostics; NaN on steps without it);
    - ``evals``: numpy arrays, one entry per evaluation: ``step``, ``epoch``
      and each figure;
    - ``eval_errors``: the evaluations that failed, as dicts;
    - ``run`` (run.json), ``summary`` (summary.json, None while the run goes
      on) as dicts, ``pipeline`` (pipeline.toml's text), ``dir``.

    A last line of metrics.jsonl cut short (a run still writing, or killed
    mid-line) is left out; any other line that is not a JSON object raises
    contra.DataError naming the file and the line.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise ConfigError(f"{run_dir}: not a run folder (no such folder)")
    run_json = _read_json(os.path.join(run_dir, "run.json"))
    if run_json is None:
        raise ConfigError(f"{run_dir}: not a run folder (no run.json)")
    steps, evals, eval_errors = [], [], []
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                if i == last:
                    break  # cut short
                raise DataError(f"{metrics_path}:{i + 1}: not a JSON object: {e}") from None
            kind = record.get("type")
            if kind == "step":
                row = {k: v for k, v in record.items() if k not in ("type", "metrics")}
                row.update(record.get("metrics", {}))
                steps.append(row)
            elif kind == "eval":
                row = {"step": record.get("step"), "epoch": record.get("epoch")}
                row.update(record.get("figures", {}))
                evals.append(row)
            elif kind == "eval_error":
                eval_errors.append({k: v for k, v in record.items() if k != "type"})
    pipeline_path = os.path.join(run_dir, "pipeline.toml")
    pipeline = None
    if os.path.exists(pipeline_path):
        with open(pipeline_path, encoding="utf-8") as f:
            pipeline = f.read()
    return {
        "dir": run_dir,
        "run": run_json,
        "summary": _read_json(os.path.join(run_dir, "summary.json")),
        "pipeline": pipeline,
        "steps": _columns(steps, ["step", "epoch", "loss", "lr", "images_per_s", "time_s"]),
        "evals": _columns(evals, ["step", "epoch"]),
        "eval_errors": eval_errors,
    }
