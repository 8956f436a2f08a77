"""Test-wide settings and fixtures.

The test clips are tiny (about 128x96): one torch thread is as fast as two there and cannot
stall on a busy machine, where two OpenMP threads on two shared cores wait on each other.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from bmvseg.models.checkpoint import save_checkpoint
from bmvseg.models.enet import build_enet_lite

torch.set_num_threads(1)

# A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so
# would every bmvseg process a test starts and interrupts (Python keeps an ignored SIGINT).
# A handler here makes the children start with the default disposition, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def hang_guard(seconds: int, what: str) -> Iterator[None]:
    """Fail (rather than hang the suite) when the code under test gives no outcome in time."""

    def fail(*_: object) -> None:
        raise TimeoutError(f"no outcome within {seconds} s: the input hangs {what}")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Fixed random weights saved as a checkpoint: separate processes (CLI runs, Ray workers,
    references) must segment identically."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "enet_lite.pt"
    save_checkpoint(path, build_enet_lite(), {})
    return path
