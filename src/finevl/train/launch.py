"""Command lines that run `finevl` in several CPU processes (gloo) through accelerate."""

from __future__ import annotations

import os
import sys


def finevl_command(args: list[str], processes: int = 1) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) running `finevl ARGS` in `processes` CPU processes.

    accelerate needs `--multi_gpu` and ACCELERATE_USE_CPU to start several CPU processes
    (without them it starts one); each process gets an equal share of the cores.
    """
    env = {**os.environ, "ACCELERATE_USE_CPU": "true"}
    if processes == 1:
        return [sys.executable, "-m", "finevl.cli", *args], env
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or processes) // processes))
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    return [*launcher, "-m", "finevl.cli", *args], env
