"""Turning a user's ``--device`` / ``device=`` into a torch device that exists here.

torch accepts ``torch.device("cuda:1")`` on a machine without CUDA and fails only at the first
tensor moved there, deep inside model building, with a traceback (``AssertionError: Torch not
compiled with CUDA enabled``, ``RuntimeError: ... invalid device ordinal``).  Every place that
takes a device from the user calls :func:`resolve_device` first, so a device that is not here
is one line naming it and what is available instead.
"""

from __future__ import annotations

import torch

from bmvseg.errors import BmvsegError

# Device types a model can run on; "meta" and the like hold no data.
_NOT_FOR_COMPUTE = {"meta"}


def available_devices() -> list[str]:
    """The device names usable here, for messages: ``cpu``, then ``cuda:N``/``mps`` if any."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device) -> torch.device:
    """``name`` as a :class:`torch.device` that exists on this machine, else a one-line error.

    Accepts what ``torch.device`` accepts as a string (``cpu``, ``cuda``, ``cuda:1``, ``mps``,
    ...) or a ``torch.device``; anything else, an unknown name, or a device this machine does
    not have raises :class:`~bmvseg.errors.BmvsegError`.
    """
    if isinstance(name, torch.device):
        device = name
    elif isinstance(name, str):
        try:
            device = torch.device(name.strip())
        except (RuntimeError, ValueError) as exc:
            raise BmvsegError(
                f"unknown device {name!r} (use one of: {', '.join(available_devices())}); "
                f"torch says: {_first_line(exc)}"
            ) from None
    else:
        raise BmvsegError(
            f"device must be a string such as 'cpu' or 'cuda:0', got {type(name).__name__} "
            f"{name!r}"
        )
    here = ", ".join(available_devices())
    if device.type in _NOT_FOR_COMPUTE:
        raise BmvsegError(f"device {str(device)!r} holds no data; use one of: {here}")
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BmvsegError(f"device {str(device)!r}: CUDA is not available here (use {here})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise BmvsegError(
                f"device {str(device)!r}: this machine has {count} CUDA device(s) (use {here})"
            )
        return device
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise BmvsegError(f"device {str(device)!r}: MPS is not available here (use {here})")
        return device
    try:  # other accelerators (xpu, ...): the only reliable test is to use it
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise BmvsegError(
            f"device {str(device)!r} is not usable here (use {here}): {_first_line(exc)}"
        ) from None
    return device


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
