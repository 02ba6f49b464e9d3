"""This machine's identity, as runs record it (the rules are in domain/hosts.py).

The host id is the machine id joined with the host name: containers made from one image
may share a machine id, but not a host name (nor, then, a process table). The boot id
changes at every boot. `PHASE_GOLEM_HOST_ID` and `PHASE_GOLEM_BOOT_ID` override them, for
a machine whose files do not tell hosts apart (and for tests playing several hosts).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

from phase_golem.domain.hosts import Host

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def _first_line(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return text.splitlines()[0][:200] if text else None


@functools.cache
def _machine() -> Host:
    machine = next((m for m in map(_first_line, MACHINE_ID_FILES) if m), None)
    name = socket.gethostname()
    return Host(f"{machine}:{name}" if machine else name, _first_line(BOOT_ID_FILE))


def this_host() -> Host:
    machine = _machine()
    host_id = os.environ.get("PHASE_GOLEM_HOST_ID") or machine.host_id
    boot_id = os.environ.get("PHASE_GOLEM_BOOT_ID") or machine.boot_id
    return Host(host_id[:200], boot_id[:200] if boot_id else None)
