"""The folder of a training run: ``config.json``, ``metrics.jsonl``, orbax ``checkpoints/``, ``result.json``, curves.

Everything is written atomically: JSON through :func:`mfprune.report.atomic_write`, checkpoints by orbax (it saves
into a temporary folder and renames it when complete, so an interruption never leaves a half checkpoint a resume
would read). ``metrics.jsonl`` grows one line per record and is cut back to the restored step on resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mfprune import report


LEGACY_TRAIN_KEYS = {"schedule": "lr_schedule"}
"""Training-configuration keys renamed since a run may have been saved: old name -> current name."""


class RunFolder:
  """Reads and writes one run's folder.

  Args:
    path: the folder (created if missing).
    keep_checkpoints: how many checkpoints orbax keeps.
  """

  def __init__(self, path: str | Path, keep_checkpoints: int):
    import orbax.checkpoint as ocp

    self.path = Path(path)
    self.path.mkdir(parents=True, exist_ok=True)
    self._ocp = ocp
    options = ocp.CheckpointManagerOptions(max_to_keep=keep_checkpoints, enable_async_checkpointing=False,
                                           create=True)
    self._manager = ocp.CheckpointManager((self.path / "checkpoints").absolute(), options=options)

  @property
  def metrics_path(self) -> Path:
    return self.path / "metrics.jsonl"

  def start(self, state: Any, config_record: dict[str, Any], *, resume: bool) -> tuple[Any, int, list[dict]]:
    """Begins (or, with ``resume``, continues) the run whose fresh initial state is ``state``.

    Returns:
      ``(state, first step, metrics history so far)``: the latest checkpoint and the records up to its step when
      resuming (``state``, 0 and ``[]`` when nothing was saved yet).

    Raises:
      FileNotFoundError: ``resume`` without a ``config.json`` in the folder.
      ValueError: ``resume`` with a different training configuration (the message lists what differs), or a fresh
        run in a folder that already holds checkpoints.
    """
    start_step, history = 0, []
    if resume:
      self._check_same_config(config_record["train"])
      latest = self._manager.latest_step()
      if latest is not None:
        state, start_step = self._restore(latest, state), latest
      history = self._read_history(start_step)
    elif self._manager.latest_step() is not None:
      raise ValueError(f"{self.path} already holds checkpoints: pass resume=True (--resume) to continue that run, "
                       "or choose another out folder")
    report.write_json(self.path / "config.json", config_record)
    report.atomic_write(self.metrics_path,
                        lambda f: f.write("".join(json.dumps(r) + "\n" for r in history).encode()))
    return state, start_step, history

  def record(self, entry: dict[str, Any]) -> None:
    """Appends one metrics record (a JSON line)."""
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(entry) + "\n")

  def save(self, step: int, state: Any) -> None:
    """Saves the state as checkpoint ``step`` (once; synchronous)."""
    if self._manager.latest_step() != step:
      self._manager.save(step, args=self._ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()

  def save_on_interrupt(self, state: Any, start_step: int) -> None:
    """Saves the last completed step when Ctrl-C stops a run (a step in flight may have consumed its buffers)."""
    try:
      step = int(np.asarray(state.step).reshape(-1)[0])
      if step > start_step:
        self.save(step, state)
        print(f"\ninterrupted: saved a checkpoint at step {step} in {self.path / 'checkpoints'}; continue with "
              "resume=True (--resume)", flush=True)
    except Exception as error:  # a donated, half-updated state: the last periodic checkpoint stands
      print(f"\ninterrupted: could not save the current step ({error}); resume starts from the last checkpoint",
            flush=True)

  def finish(self, step: int, state: Any, result: dict[str, Any], history: list[dict], *, title: str = "",
             labels: Sequence[str] | None = None) -> None:
    """The final checkpoint, ``result.json`` and ``curves.png``."""
    self.save(step, state)
    self._manager.close()
    report.write_json(self.path / "result.json", result)
    report.save_figure(report.plot_training_curves(history, title=title, labels=labels), self.path / "curves.png")

  def _restore(self, step: int, like: Any) -> Any:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype), like)
    restored = self._manager.restore(step, args=self._ocp.args.StandardRestore(abstract))
    return jax.tree.map(jnp.asarray, restored)

  def _read_history(self, up_to_step: int) -> list[dict[str, Any]]:
    if not self.metrics_path.exists():
      return []
    records = [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["step"] <= up_to_step]

  def _check_same_config(self, config: dict[str, Any]) -> None:
    path = self.path / "config.json"
    if not path.exists():
      raise FileNotFoundError(f"cannot resume: {path} does not exist (no run was started in {self.path})")
    saved = json.loads(path.read_text()).get("train", {})
    saved = {LEGACY_TRAIN_KEYS.get(k, k): v for k, v in saved.items()}  # runs saved before mfprune 0.4
    changed = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
    if changed:
      detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
      raise ValueError(f"cannot resume {self.path}: the training configuration differs from the saved one "
                       f"({detail})")
