"""A real single-node SLURM cluster for tests (tests/test_cluster.py), on this machine.

Debian's slurmctld/slurmd/munge (installed with apt when missing; root only), with every
file of the cluster in one scratch directory: a fresh munge key and socket, slurm.conf
(no cgroups, no accounting, one node = this host with all its CPUs and ~80 % of its
memory, one default partition), state, spool, pid and log files. The daemons listen on
free ports and talk through their own munge socket, so a SLURM already on the machine is
not touched. `SLURM_CONF` in `env` points clients (sbatch, squeue) at this cluster; Snakemake's
job step drops SLURM_* variables before its inner `srun`, so the default path
/etc/slurm/slurm.conf is also made a symbolic link to this slurm.conf while the cluster runs
(refused when that path holds another cluster's configuration). The daemons are stopped by the
pids they wrote, never by name.

Run by hand: ``python tests/slurm_cluster.py start DIR`` / ``... stop DIR``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "scancel", "munged", "munge"]
PARTITION = "debug"
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


class SlurmError(RuntimeError):
    """The cluster could not be installed or started (the test fails with this message)."""


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b, path=_path()) is None]


def _path() -> str:
    return os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"


def install_if_missing() -> None:
    """apt-get install the SLURM and munge packages unless their binaries are all there."""
    if not missing_binaries():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SlurmError(f"missing {missing_binaries()} and cannot apt-get install them "
                         "(needs root on Debian/Ubuntu)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SlurmError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr}")
    if missing_binaries():
        raise SlurmError(f"still missing after apt-get install: {missing_binaries()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return kb // 1024


class LocalSlurm:
    """One slurmctld + one slurmd (this host) + a private munged, all under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_dir = self.root / "munge"
        self.socket = self.munge_dir / "munge.socket"
        self.pids = {
            "slurmd": self.root / "slurmd.pid",
            "slurmctld": self.root / "slurmctld.pid",
            "munged": self.munge_dir / "munged.pid",
        }

    @property
    def env(self) -> dict:
        """The environment for clients of this cluster (sbatch, squeue, snakemake)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": _path()}

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                              timeout=60)
        if check and proc.returncode != 0:
            raise SlurmError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
        return proc

    # -- start ------------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> "LocalSlurm":
        if os.geteuid() != 0:
            raise SlurmError("the local SLURM cluster needs root (slurmd runs jobs as root)")
        install_if_missing()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # munged runs as the munge user and must reach its dir
        for d in ("state", "spool"):
            (self.root / d).mkdir(exist_ok=True)
        self._start_munge()
        self.conf.write_text(self.slurm_conf())
        self._link_system_conf()
        self._daemon("slurmctld", ["slurmctld", "-f", str(self.conf)])
        self._daemon("slurmd", ["slurmd", "-f", str(self.conf), "-N", self.host])
        self._wait_idle(timeout)
        return self

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        self.munge_dir.mkdir(exist_ok=True)
        os.chmod(self.munge_dir, 0o755)  # clients must reach the socket
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        for path in (self.munge_dir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        cmd = ["munged", f"--key-file={key}", f"--socket={self.socket}",
               f"--pid-file={self.pids['munged']}", f"--seed-file={self.munge_dir / 'seed'}",
               f"--log-file={self.munge_dir / 'munged.log'}"]
        proc = subprocess.run(cmd, user=munge.pw_uid, group=munge.pw_gid, env=self.env,
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise SlurmError(f"munged did not start: {proc.stderr}{self._tail('munge/munged.log')}")
        cred = subprocess.run(["munge", "-n", "-S", str(self.socket)], capture_output=True,
                              timeout=10)
        check = subprocess.run(["unmunge", "-S", str(self.socket)], input=cred.stdout,
                               capture_output=True, timeout=10)
        if b"Success" not in check.stdout:
            raise SlurmError(f"munge -n | unmunge failed: {check.stdout!r} {check.stderr!r}")

    def slurm_conf(self) -> str:
        cpus = os.cpu_count() or 1
        memory = int(0.8 * _memory_mb())
        r = self.root
        return "\n".join([
            "# written by tests/slurm_cluster.py: a one-node test cluster, no cgroups/accounting",
            "ClusterName=pnptest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket}",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={self.pids['slurmctld']}",
            f"SlurmdPidFile={self.pids['slurmd']}",
            f"SlurmctldLogFile={r / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} "
            "State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _link_system_conf(self) -> None:
        """/etc/slurm/slurm.conf → our slurm.conf (jobs' inner srun reads the default path)."""
        if SYSTEM_CONF.is_symlink():
            target = Path(os.readlink(SYSTEM_CONF))
            if target.name == "slurm.conf" and target.parent.name.startswith("pnp-slurm-") \
                    and not target.exists():
                SYSTEM_CONF.unlink()  # left behind by a test run that was killed
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            raise SlurmError(f"{SYSTEM_CONF} exists: this machine has a SLURM configuration "
                             "of its own, which the test cluster will not overwrite")
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)

    def _daemon(self, name: str, cmd: list[str]) -> None:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise SlurmError(f"{name} did not start ({proc.returncode}): {proc.stderr}"
                             f"{self._tail(name + '.log')}")

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            proc = self.run("sinfo", "-h", "-N", "-o", "%t", check=False)
            state = (proc.stdout + proc.stderr).strip()
            if state == "idle":
                return
            time.sleep(1)
        raise SlurmError(f"the node never became idle (sinfo: {state!r})"
                         f"{self._tail('slurmctld.log')}{self._tail('slurmd.log')}")

    def _tail(self, name: str, n: int = 20) -> str:
        path = self.root / name
        if not path.exists():
            return ""
        lines = path.read_text(errors="replace").splitlines()[-n:]
        return f"\n--- {path} (last {n} lines) ---\n" + "\n".join(lines)

    # -- stop -------------------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM each daemon by the pid in its pid file, wait for it to exit."""
        for name, pidfile in self.pids.items():
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.time() + timeout
            while time.time() < deadline and _alive(pid):
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if SYSTEM_CONF.is_symlink() and Path(os.readlink(SYSTEM_CONF)) == self.conf:
            SYSTEM_CONF.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    action, where = sys.argv[1], Path(sys.argv[2])
    cluster = LocalSlurm(where)
    if action == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
