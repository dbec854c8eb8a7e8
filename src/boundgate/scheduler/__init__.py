"""Deferrable work: persistent jobs with leases, and the runner that executes them."""

from .jobs import JobHandler, JobQueue, StartPolicy, run_now
from .runner import JobRunner

__all__ = ["JobHandler", "JobQueue", "JobRunner", "StartPolicy", "run_now"]
