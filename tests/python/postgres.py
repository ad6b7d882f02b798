"""A PostgreSQL server of the test's own: initdb into a temp dir, started and stopped at will
on a free port, so a test can take the database away from running nodes. PostgreSQL refuses
to run as root, so when the suite runs as root (as CI does) it runs as the `postgres` user."""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from syncscript import free_port


def postgres_bin_dir():
    """The newest installed /usr/lib/postgresql/<version>/bin, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class TempPostgres:
    def __init__(self):
        self.bin = postgres_bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin)")
        self.dir = Path(tempfile.mkdtemp(prefix="syncscript-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def _run(self, tool, *args):
        cmd = [*self.as_user, str(self.bin / tool), *map(str, args)]
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")

    def start(self):
        # Unix sockets in the temp dir: the system's socket dir may belong to another server.
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "start", "-w", "-t", "30", "-D", self.data, "-l", self.dir / "postgres.log", "-o", options)
        return self

    def stop(self, mode="fast"):
        """`fast` ends every session (the nodes' pools and LISTEN connections) and stops."""
        self._run("pg_ctl", "stop", "-w", "-t", "30", "-D", self.data, "-m", mode)

    def cleanup(self):
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)
