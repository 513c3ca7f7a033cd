"""Ray GPU placement check: where do evaluation/prediction tasks run? Prints one JSON object.

Starts a local Ray (all visible GPUs, or `--logical-gpus N` logical ones on a CPU machine), submits `--tasks` probe
tasks with the options the evaluation and prediction tasks use (`cluster.tasks.task_resources`) for `--device`
auto and cpu, and records per task: pid, CUDA_VISIBLE_DEVICES, Ray's GPU ids and the torch device it picked
(`cluster.tasks.task_device`). Checks: GPU tasks never share a worker process (max_calls=1), each sees exactly its
assigned GPU, and `--device cpu` tasks get no GPU and run on the CPU.

Ray runs only inside a loopback-only network namespace (re-executed under `unshare -n` when possible, as the tests
do) unless `--allow-network`.

    python bench/gpu_placement.py [--logical-gpus 2] [--tasks 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def probe(requested: str) -> dict:
    """The body of a probe task (runs in a Ray worker)."""
    import torch

    from pathpt_engine.cluster.tasks import placement, task_device

    dev = task_device(requested)
    out = {"requested": requested, "device": dev, **placement()}
    if dev == "cuda":
        out["cuda_device_count"] = torch.cuda.device_count()
        out["cuda_name"] = torch.cuda.get_device_name(0)
        out["pci_bus_id"] = torch.cuda.get_device_properties(0).pci_bus_id
    return out


def run(args: argparse.Namespace) -> dict:
    import ray

    from pathpt_engine.cluster.base import ClusterOptions
    from pathpt_engine.cluster.tasks import ray_session, remote_task, task_resources

    copts = ClusterOptions(num_cpus=args.cpus, num_gpus=args.logical_gpus, cpus_per_worker=1,
                           allow_network=args.allow_network)
    with ray_session(copts):
        gpus = int(ray.cluster_resources().get("GPU", 0))
        rows = {}
        for requested in ("auto", "cpu"):
            opts, task = task_resources(copts, requested), remote_task(probe, copts, requested)
            rows[requested] = {"options": opts, "tasks": ray.get([task.remote(requested) for _ in range(args.tasks)])}
    gpu_tasks = rows["auto"]["tasks"]
    checks = {
        "gpu_tasks_in_distinct_processes": (len({t["pid"] for t in gpu_tasks}) == len(gpu_tasks)) if gpus else None,
        "gpu_tasks_see_one_gpu": all(len(t["cuda_visible_devices"].split(",")) == 1 and t["gpu_ids"]
                                     for t in gpu_tasks) if gpus else None,
        "cpu_tasks_on_cpu_without_gpu": all(t["device"] == "cpu" and not t["gpu_ids"] for t in rows["cpu"]["tasks"]),
    }
    return {"ray_gpus": gpus, "logical": args.logical_gpus is not None, "results": rows, "checks": checks,
            "ok": all(v is not False for v in checks.values())}


def main() -> int:
    from pathpt_engine.cluster.netns import can_unshare, loopback_only, namespace_command

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logical-gpus", type=int, default=None, help="logical GPUs of the local Ray (CPU machines)")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--allow-network", action="store_true")
    args = ap.parse_args()
    if not args.allow_network and not loopback_only():
        if not can_unshare():
            print(json.dumps({"skipped": "no loopback-only network namespace (needs root + unshare); "
                                         "pass --allow-network on a machine where Ray may listen"}))
            return 0
        inner = " ".join([f"cd {os.getcwd()} &&", sys.executable, *map(_quote, sys.argv)])
        return subprocess.run(namespace_command(inner), check=False).returncode
    print(json.dumps(run(args)))
    return 0


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


if __name__ == "__main__":
    sys.exit(main())
