"""Data parallelism with the Keras distribution API: devices, hosts and each host's rows.

Under the JAX backend with more than one device, training runs data-parallel:
``keras.distribution.DataParallel`` replicates the weights on every device and shards each
global batch along its first axis, so every device computes on ``global_batch / devices``
samples and the gradients are averaged (XLA inserts the all-reduce). Under GSPMD the result
is the single-device computation on the same global batch, up to the order of float sums.

Several hosts: ``keras.distribution.initialize`` connects the processes (one per host) when
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` / ``_NUM_PROCESSES`` / ``_PROCESS_ID`` are set or the
matching flags are given; every process then loads only its own rows of each global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

ENV_VARS = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


@dataclass(frozen=True)
class Distribution:
    """How a run is spread: ``devices`` in all, over ``hosts`` processes, this one ``process``."""

    backend: str
    devices: int
    hosts: int
    process: int
    global_batch: int
    device_kind: str = "unknown"

    @property
    def rows(self) -> slice:
        """This process's rows of each global batch."""
        local = self.global_batch // self.hosts
        return slice(self.process * local, (self.process + 1) * local)

    @property
    def accelerated(self) -> bool:
        """Whether the devices are accelerators (GPU, TPU) rather than the CPU."""
        return self.device_kind not in ("cpu", "unknown")

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the outputs (process 0)."""
        return self.process == 0

    def from_chief(self, value: float) -> float:
        """Process 0's ``value`` on every process (a collective call when there are several
        hosts), so decisions taken from clocks (the time budget) agree across hosts."""
        if self.hosts == 1:
            return value
        from jax.experimental import multihost_utils

        return float(multihost_utils.broadcast_one_to_all(np.float64(value)))

    def record(self) -> dict:
        """The manifest's ``"distribution"`` entry."""
        return {
            "backend": self.backend,
            "devices": self.devices,
            "hosts": self.hosts,
            "global_batch": self.global_batch,
            "device_kind": self.device_kind,
        }


def initialize_hosts(
    job_addresses: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Connect the processes of a multi-host run; returns whether there was anything to do.

    Runs ``keras.distribution.initialize`` when any argument is given or any
    ``KERAS_DISTRIBUTION_*`` variable is set (arguments win over variables). Must run before
    anything else touches the backend.
    """
    if (
        job_addresses is None
        and num_processes is None
        and process_id is None
        and not any(os.environ.get(v) for v in ENV_VARS)
    ):
        return False
    import keras

    keras.distribution.initialize(job_addresses, num_processes, process_id)
    return True


def setup_distribution(devices: int | None, global_batch: int) -> Distribution:
    """Choose the devices and set the global Keras distribution for this run.

    devices: how many to train on; None means all visible (all hosts' under JAX). With the
    JAX backend and more than one device, sets ``DataParallel`` over the first ``devices``.
    Other backends train on one device. Raises ValueError when more devices are asked for
    than visible, when a non-JAX backend is asked for several, or when ``global_batch`` does
    not split evenly across the devices.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        if devices not in (None, 1):
            raise ValueError(
                f"--devices {devices}: data-parallel training needs the JAX backend "
                f"(this is {backend}); run with KERAS_BACKEND=jax"
            )
        return Distribution(backend, 1, 1, 0, global_batch, _device_kind(backend))
    import jax

    visible = keras.distribution.list_devices()
    n = len(visible) if devices is None else devices
    if n > len(visible):
        raise ValueError(f"--devices {n}: only {len(visible)} visible ({', '.join(visible)})")
    if global_batch % n:
        raise ValueError(
            f"--batch-size {global_batch} does not split across {n} devices: use a multiple of {n} "
            f"(or --devices 1)"
        )
    hosts = jax.process_count()
    if n > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=visible[:n]))
    return Distribution(backend, n, hosts, jax.process_index(), global_batch, _device_kind(backend))


def clear_distribution() -> None:
    """Remove the global distribution (later models are built on one device again)."""
    import keras

    keras.distribution.set_distribution(None)


def _device_kind(backend: str) -> str:
    """A short name of the accelerator, e.g. "NVIDIA H200" or "cpu"."""
    try:
        if backend == "jax":
            import jax

            return str(jax.devices()[0].device_kind)
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                return str(
                    tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
                )
        return "cpu"
    except Exception:  # noqa: BLE001 - a name for the manifest only
        return "unknown"
