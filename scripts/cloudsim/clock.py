"""Simulated time.

Three clocks are kept apart on purpose:

* ``wall()`` is the host's real time. Signature freshness windows use it,
  because a client signs with its own wall clock and nothing the emulator
  does can move that.
* ``sim()`` drives lifecycles: it runs ``speed`` times faster than wall time
  and jumps forward on ``advance()``, so a 10-minute training finishes in
  10 seconds at ``--speed 60`` or at once after ``advance(600)``.
* ``real()`` is wall time plus explicit advances, without the speed factor.
  Token lifetimes and rate-limit windows use it: a client that trusts
  ``expires_in`` never meets a token that died early because of ``--speed``,
  yet a test can still expire one by advancing the clock.
"""

import threading
import time


class Clock:
    def __init__(self, speed=1.0, start=None):
        self._lock = threading.Lock()
        self.speed = float(speed)
        self._mono0 = time.monotonic()
        self._sim0 = time.time() if start is None else float(start)
        self.advanced = 0.0

    def wall(self):
        return time.time()

    def sim(self):
        return self._sim0 + (time.monotonic() - self._mono0) * self.speed + self.advanced

    def real(self):
        return time.time() + self.advanced

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self.advanced += seconds

    def set_speed(self, speed):
        if speed < 0:
            raise ValueError("speed must be >= 0")
        with self._lock:
            # Rebase so simulated time stays continuous across the change.
            now = time.monotonic()
            self._sim0 += (now - self._mono0) * self.speed
            self._mono0 = now
            self.speed = float(speed)

    def resume_from(self, sim, advanced):
        """Continue a saved clock: never go back, and let the time the
        emulator was down pass as it would have in the cloud."""
        with self._lock:
            self.advanced = float(advanced)
            self._mono0 = time.monotonic()
            self._sim0 = max(float(sim), time.time()) - self.advanced

    def snapshot(self):
        return {"sim": self.sim(), "wall": self.wall(), "real": self.real(),
                "speed": self.speed, "advanced": self.advanced}
