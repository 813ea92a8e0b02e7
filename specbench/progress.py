"""What a run tells the person watching it: a line when training starts, one per epoch (loss,
seconds, ETA), one per evaluation (metrics, effective rank), and inside a long epoch a heartbeat.

Lines go to stderr, which the workflow sends to the job's log (results/<study>/logs/...). On a
terminal the steps of an epoch show as a tqdm bar instead of heartbeat lines. Nothing here touches
the device: the step counter is a Python integer, so progress costs no host synchronisation.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

HEARTBEAT_SECONDS = 30.0  # off a terminal: a line inside an epoch at most this often


def _eta(seconds: float) -> str:
    return str(timedelta(seconds=int(round(max(seconds, 0.0)))))


class Progress:
    """Progress of one run; ``enabled=False`` prints nothing (``specbench run --quiet``)."""

    def __init__(self, job: str, epochs: int, steps: int, enabled: bool = True, stream=None):
        self.job, self.epochs, self.steps, self.enabled = job, epochs, steps, enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.terminal = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._seconds: list[float] = []

    def say(self, text: str) -> None:
        if self.enabled:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def start(self, first_epoch: int, device) -> None:
        if self.epochs == 0:
            self.say(f"{self.job}: training-free, evaluated once")
            return
        resumed = f", resumed after epoch {first_epoch - 1}" if first_epoch > 1 else ""
        self.say(f"{self.job}: epochs {first_epoch}..{self.epochs} of {self.steps} steps on {device}{resumed}")

    def epoch_started(self, epoch: int):
        """A per-step callback for this epoch (a tqdm bar on a terminal, else timed heartbeat lines)."""
        if not self.enabled:
            return None
        if self.terminal:
            from tqdm import tqdm
            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch}/{self.epochs}", unit="step", leave=False,
                            file=self.stream)
            return lambda step: self.bar.update(1)
        t0, last = time.perf_counter(), [time.perf_counter()]

        def heartbeat(step: int) -> None:
            now = time.perf_counter()
            if now - last[0] >= HEARTBEAT_SECONDS:
                last[0] = now
                rate = step / (now - t0)
                self.say(f"epoch {epoch}/{self.epochs}: step {step}/{self.steps} "
                         f"({rate:.1f} steps/s, epoch ETA {_eta((self.steps - step) / rate)})")
        return heartbeat

    def epoch_done(self, epoch: int, loss: float, seconds: float) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._seconds.append(seconds)
        mean = sum(self._seconds) / len(self._seconds)
        self.say(f"epoch {epoch}/{self.epochs}: loss {loss:.6f}, {seconds:.2f} s, "
                 f"ETA {_eta(mean * (self.epochs - epoch))}")

    def evaluated(self, entry: dict) -> None:
        metrics = entry["metrics"]
        shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("recall@20", "ndcg@20") if k in metrics)
        erank = entry["spectrum"].get("erank")
        rank = f", erank {erank:.2f}" if isinstance(erank, (int, float)) else ""
        self.say(f"evaluation at epoch {entry['epoch']}: {shown}{rank} ({entry['eval_seconds']:.2f} s)")
