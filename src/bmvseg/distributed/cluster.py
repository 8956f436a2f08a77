"""Ray for a job: importing it, joining or starting a cluster, placing the workers on it.

Ray is an optional extra and is imported only here, only when a job asks for workers or a
cluster.  Errors Ray reports (an unreachable address, a cluster too small, a worker that fails
to build its model) become one line each.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import uuid
from typing import Any

from bmvseg.distributed.worker import ChunkSegmenter
from bmvseg.errors import BmvsegError
from bmvseg.run.options import RunOptions

WORKER_PREFIX = "bmvseg-worker-"  # Ray actor names: bmvseg-worker-<job token>-<n>


def import_ray() -> Any:
    """Ray, or a one-line error saying how to install it (it is an optional extra)."""
    try:
        import ray
    except ImportError as exc:
        raise BmvsegError(
            'distributed runs need Ray: pip install -e ".[ray]" (or pip install "ray>=2.9")'
        ) from exc
    return ray


def connect(ray: Any, address: str | None, workers: int | None, threads: int) -> bool:
    """Join or start a Ray cluster; True when this call started (and must stop) it."""
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "include_dashboard": False}
    if address:
        try:
            ray.init(address=address, **quiet)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
            raise BmvsegError(
                f"cannot connect to the Ray cluster at {address}: "
                f"{first_line(exc) or type(exc).__name__}"
            ) from exc
        return True
    cpus = (workers or max(1, (os.cpu_count() or 1) // threads)) * threads
    ray.init(num_cpus=cpus, **quiet)
    return True


def stop_ray(ray: Any) -> bool:
    """Stop the Ray session started here with Ctrl-C held back; True when one was pressed.

    A Ctrl-C that lands while Ray stops is recorded and reported by the caller (whether the
    job had finished decides the exit status), instead of ending the driver half-way through
    Ray's own shutdown with no word said.
    """
    pressed: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        previous = None
    try:
        ray.shutdown()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return bool(pressed)


def _check_reachable(address: str) -> None:
    """A quick TCP check: Ray itself retries an unreachable address for a minute, noisily."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise BmvsegError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise BmvsegError(
            f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}"
        ) from exc


def start_workers(
    ray: Any, options: RunOptions, workers: int | None, threads: int, chunks: int
) -> list:
    """One actor per worker, each with its engine built; a build error is one line."""
    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 0))
    device = str(options.device)
    gpus = 1 if device.startswith("cuda") else 0
    if gpus and not resources.get("GPU"):
        raise BmvsegError(f"--device {device}: the Ray cluster has no GPUs")
    most = int(resources["GPU"]) if gpus else max(1, cpus // threads)
    n = workers or most
    if n > most:
        need = f"{n} GPUs" if gpus else f"{n * threads} CPUs ({n} workers x {threads} threads)"
        raise BmvsegError(f"the Ray cluster cannot hold the workers: they need {need}, "
                          f"it has {int(resources.get('GPU', 0)) if gpus else cpus}")  # fmt: skip
    n = max(1, min(n, chunks))
    placement = {
        "num_cpus": threads,
        "num_gpus": gpus,
        "max_restarts": -1,
        "max_task_retries": 0,  # the driver retries lost chunks on any worker (see pool)
        "scheduling_strategy": "SPREAD",
    }
    # Named (unique per job) so that tools and tests can find a worker through Ray's API.
    token = uuid.uuid4().hex[:8]
    actor = ray.remote(ChunkSegmenter)
    actors = [
        actor.options(name=f"{WORKER_PREFIX}{token}-{i}", **placement).remote(options, threads)
        for i in range(n)
    ]
    try:
        ray.get([a.info.remote() for a in actors])
    except Exception as exc:
        raise BmvsegError(task_error(exc, "starting a worker")) from exc
    return actors


def task_error(exc: Exception, doing: str) -> str:
    """One line for a failed Ray call: the user error itself, or what was lost."""
    from ray import exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause
        if isinstance(cause, BmvsegError):
            return str(cause)
        if cause is not None:
            return f"{type(cause).__name__} while {doing}: {first_line(cause)}"
    if isinstance(exc, rex.RayActorError):
        return f"worker lost while {doing}: {first_line(exc)}"
    return f"{type(exc).__name__} while {doing}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
