"""Network-safety guard: refuse to start Ray unless the process sits in a loopback-only network namespace.

A local Ray listens on all interfaces and registers the host's own address (it even probes a public DNS server to
find it) when told to use loopback. On machines without a real cluster every Ray run therefore goes into a
private namespace with only `lo`::

    unshare -n sh -c 'ip link set lo up; pathpt extract ... --cluster local'

Interfaces are read from `/proc/self/net/dev`, which shows the calling process's namespace (`/sys/class/net`
shows the namespace sysfs was mounted in, i.e. the host's, even inside `unshare -n`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .base import ClusterError

NET_DEV = Path("/proc/self/net/dev")
NAMESPACE_HINT = "unshare -n sh -c 'ip link set lo up; <your command>'"


def interfaces(net_dev: Path = NET_DEV) -> list[str]:
    """Names of the network interfaces in this process's namespace.

    Raises:
        ClusterError: the interface table cannot be read (not Linux, or /proc missing).
    """
    try:
        lines = net_dev.read_text().splitlines()
    except OSError as exc:
        raise ClusterError(f"{net_dev}: cannot read the network interfaces ({exc})") from exc
    return [line.split(":", 1)[0].strip() for line in lines[2:] if ":" in line]


def loopback_only(net_dev: Path = NET_DEV) -> bool:
    """True when this process's network namespace has no interface but `lo`."""
    try:
        names = interfaces(net_dev)
    except ClusterError:
        return False
    return all(name == "lo" for name in names)


def can_unshare() -> bool:
    """Whether this process can make a private network namespace (`unshare -n`: Linux, root, tools present)."""
    return (sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0
            and shutil.which("unshare") is not None and shutil.which("ip") is not None)


def namespace_command(command: str) -> list[str]:
    """argv running `command` (a shell line) in a fresh network namespace with only loopback up."""
    return ["unshare", "-n", "sh", "-c", f"ip link set lo up && {command}"]


def require_private_network(allow_network: bool = False, net_dev: Path = NET_DEV) -> None:
    """Raise unless Ray may start here: a loopback-only namespace, or an explicit override for real clusters.

    Raises:
        ClusterError: other interfaces are visible and `allow_network` is False.
    """
    if allow_network:
        return
    try:
        names = interfaces(net_dev)
    except ClusterError as exc:
        raise ClusterError(f"{exc}; cannot prove the network is private. Run inside {NAMESPACE_HINT}, or pass "
                           "--allow-network on a real cluster") from exc
    others = [n for n in names if n != "lo"]
    if others:
        raise ClusterError(f"refusing to start Ray: this network namespace has interfaces {', '.join(others)} "
                           f"besides lo. Run inside a private namespace ({NAMESPACE_HINT}), or pass "
                           "--allow-network (ClusterOptions.allow_network) when you mean to use a real cluster")
