"""Which runs' agents a worker may touch after a crash (DESIGN §6, §14): pure rules.

A pid means something only on the host that started it, and only until that host
reboots. So a run records the host id and boot id of its agent beside its pid; recovery
adopts (or stops) a live orphan only on that same host in that same boot. Another host's
run is never ours to kill or adopt: we wait for its lease. A run of this host from an
earlier boot is dead whatever its lease says, since nothing of that boot still runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from phase_golem.domain.runs import Run


@dataclass(frozen=True, slots=True)
class Host:
    host_id: str
    boot_id: str | None = None


def same_host(run: Run, host: Host) -> bool:
    """The run's agent was started here (a run that never recorded a host counts as ours:
    it started no agent, or before hosts were recorded, when every store was local)."""
    return run.host_id is None or run.host_id == host.host_id


def may_adopt(run: Run, host: Host) -> bool:
    """Its agent's pid may be looked for, waited on and signalled here."""
    if not same_host(run, host):
        return False
    return run.boot_id is None or host.boot_id is None or run.boot_id == host.boot_id


def died_with_its_boot(run: Run, host: Host) -> bool:
    """A run of this host from an earlier boot: its worker and agent are gone for sure."""
    return (
        run.host_id == host.host_id
        and run.boot_id is not None
        and host.boot_id is not None
        and run.boot_id != host.boot_id
    )
