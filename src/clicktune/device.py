"""Where models run and at which precision: one policy for training, evaluation and serving.

bfloat16 is used where the hardware runs it natively: about twice the speed of float32 on a CPU
with AMX / AVX-512 BF16, for embeddings within a cosine of 0.9999 of float32. torch is imported
inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping

VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def pin_device(configured: str | None, environ: MutableMapping[str, str]) -> str:
    """Make one device (`cpu`, `cuda`, `cuda:N`; None: the first CUDA device) the only one this
    process can see, before torch starts CUDA, so training never spreads over every GPU of the
    host. `N` counts among the devices visible now. Returns the `CUDA_VISIBLE_DEVICES` it set."""
    if configured == "cpu":
        environ[VISIBLE_DEVICES] = ""
        return ""
    index = int(configured.partition(":")[2] or 0) if configured else 0
    given = environ.get(VISIBLE_DEVICES)
    visible = [part.strip() for part in given.split(",") if part.strip()] if given else None
    if visible is None:
        chosen = str(index)
    elif index < len(visible):
        chosen = visible[index]
    else:
        raise ValueError(
            f"CLICKTUNE_DEVICE={configured} names device {index}, but only {len(visible)} "
            f"are visible ({VISIBLE_DEVICES}={given})"
        )
    environ[VISIBLE_DEVICES] = chosen
    return chosen


def default_device_type() -> str:
    """`cuda` when a CUDA device is visible, else `cpu`: where a model lands when loaded."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bf16(device_type: str | None = None) -> bool:
    """Whether `device_type` (default: `default_device_type()`) has native bfloat16."""
    import torch

    device_type = device_type or default_device_type()
    try:
        if device_type == "cuda":
            return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        if device_type == "cpu":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
    return False


def use_bf16(configured: bool | None, device_type: str | None = None) -> bool:
    """A configured choice wins; None means: where `device_type` has bfloat16 natively."""
    return native_bf16(device_type) if configured is None else configured


@contextlib.contextmanager
def bf16_autocast(device_type: str, enabled: bool) -> Iterator[None]:
    """Run the block under bfloat16 autocast on `device_type` when `enabled`."""
    import torch

    if not enabled:
        yield
        return
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
        yield
