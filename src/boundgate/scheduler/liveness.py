"""Whether the process that holds a job's lease is gone: read from the lease owner's name.

A runner's name (``JobRunner.owner``) says where its process runs: the host, the PID
namespace and the process id, ``runner_<host>_pidns<inode>_<pid>_<tag>``. A process that
dies without handing its job back (``kill -9``, the OOM killer, a power cut of a container)
leaves the job leased until the lease runs out (``scheduler.job_lease_s``, 300 s). A runner on
the same host and in the same PID namespace can tell at once that the holder is gone: no
process has that id any more, or only a zombie does (killed, not yet reaped by its parent).
Its job is then given back (``JobRunner`` upkeep, at start and every ``replan_s``), so a
restarted gateway goes on with a batch it was running at once instead of five minutes later.

Only certainty counts: a lease owner on another host, in another PID namespace (another
container, whose process ids are not ours), written in an older format, or whose process id
is in use (by the holder, or by another process that got the id since) is left to its lease,
as before. On a system without ``/proc`` (not Linux) no owner is ever read as gone.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

# /proc/<pid>/stat's third field: Z a zombie (dead, not reaped), X dead (proc(5))
_DEAD_STATES = frozenset("ZX")
_OWNER = re.compile(r"runner_(?P<host>.+)_pidns(?P<ns>\d+)_(?P<pid>\d+)_[0-9a-f]+")
_PROC = Path("/proc")


def pid_namespace() -> str | None:
    """The inode of this process's PID namespace (``/proc/self/ns/pid``, Linux), as digits;
    None where there is no such link (another system, a restricted ``/proc``)."""
    try:
        link = os.readlink(_PROC / "self" / "ns" / "pid")  # "pid:[4026531836]"
    except OSError:
        return None
    m = re.fullmatch(r"pid:\[(\d+)\]", link)
    return m.group(1) if m else None


def runner_name(tag: str) -> str:
    """A job runner's name: ``runner_<host>_pidns<inode>_<pid>_<tag>`` (``tag``: lower-case hex,
    unique to the runner), or without the ``pidns`` part where the namespace cannot be read
    (such a runner's lease is never read as its process being gone)."""
    host, pid, ns = socket.gethostname(), os.getpid(), pid_namespace()
    if ns is None:
        return f"runner_{host}_{pid}_{tag}"
    return f"runner_{host}_pidns{ns}_{pid}_{tag}"


def process_gone(pid: int) -> bool:
    """Whether no live process has id ``pid`` here: ``/proc/<pid>`` is missing, or its state
    is zombie or dead. False when it cannot be told (``/proc`` unreadable)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return _PROC.joinpath("self").exists()  # no such process, if /proc is there at all
    except OSError:
        return False
    # "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ")"
    state = stat.rpartition(")")[2].split()[:1]
    return bool(state) and state[0] in _DEAD_STATES


def owner_gone(owner: str) -> bool:
    """Whether the runner named ``owner`` (``runner_name``) ran on this host, in this PID
    namespace, in a process that is gone (``process_gone``). False for any other name: a
    holder elsewhere may be alive."""
    m = _OWNER.fullmatch(owner)
    if m is None or m.group("host") != socket.gethostname():
        return False
    ns = pid_namespace()
    if ns is None or m.group("ns") != ns:
        return False
    pid = int(m.group("pid"))
    return pid != os.getpid() and process_gone(pid)
