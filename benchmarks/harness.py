"""What machine a measurement ran on: every benchmark and speed report names its hardware."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s "model name"), or the platform's best guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware() -> dict:
    """CPU, logical cores, torch threads, GPU (if any), versions and the 1-minute load average.

    The load average is there because timings on a shared machine are only comparable with it.
    """
    import torch

    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info
