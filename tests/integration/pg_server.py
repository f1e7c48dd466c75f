"""A real PostgreSQL server for tests: Debian's postgresql-15 binaries, a scratch cluster in a
temporary directory, password (SCRAM) authentication, on 127.0.0.1 and a free port. Run as the
`postgres` system user when the tests run as root (PostgreSQL refuses to run as root), else as
the current user. `stop()` may be called to simulate an outage and `start()` again.

`durable=False` (the tests) runs with fsync off; the bench passes True so that every commit
reaches the disk as it would in production. `tls=True` makes a scratch certificate authority and a
server certificate for 127.0.0.1 (`ca_cert` is the root a client verifies against) and turns
`ssl` on."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PASSWORD = "fleet-test-password"
USER = "bm"
DATABASE = "bedrock_meter"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found: scripts/install-deps installs postgresql")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, durable: bool = False, tls: bool = False):
        self.tmp = Path(tempfile.mkdtemp(prefix="bm-pg-"))
        self.data = self.tmp / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self.durable = durable
        self.ca_cert: Path | None = None
        self.tls = tls
        if self.as_root:
            shutil.chown(self.tmp, "postgres", "postgres")
        pwfile = self.tmp / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_root:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run([_bin("initdb"), "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
                   "-A", "scram-sha-256", "-E", "UTF8", "--no-instructions"])
        if tls:
            self._make_certificates()
        self.start()
        self.psql("CREATE DATABASE " + DATABASE, database="postgres")

    def _make_certificates(self):
        """A root CA and a server certificate for 127.0.0.1 / localhost, signed by it."""
        d = self.tmp / "tls"
        d.mkdir()

        def openssl(*args: str):
            subprocess.run(["openssl", *args], cwd=d, capture_output=True, check=True, timeout=60)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=bedrock-meter test root", "-keyout", "ca.key", "-out", "ca.crt")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
                "server.key", "-out", "server.csr")
        (d / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "server.crt")
        for name in ("server.crt", "server.key"):
            shutil.copy(d / name, self.data / name)
            os.chmod(self.data / name, 0o600)
            if self.as_root:
                shutil.chown(self.data / name, "postgres", "postgres")
        self.ca_cert = d / "ca.crt"

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)

    def start(self):
        self._run([_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.tmp / "log"), "-w",
                   "-o", f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 "
                         "-c max_connections=60" + ("" if self.durable else " -c fsync=off") +
                         (" -c ssl=on" if self.tls else ""), "start"])

    def stop(self, mode: str = "fast"):
        self._run([_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def psql(self, sql: str, database: str = DATABASE) -> str:
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d",
                            database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PGPASSWORD": PASSWORD})
        if r.returncode != 0:
            raise RuntimeError(f"psql: {r.stderr}")
        return r.stdout.strip()

    def ledger_config(self, path: Path, replica: str, **extra) -> dict:
        """The `ledger` section of a proxy writing to this server."""
        return {"path": str(path), "flush_interval": "20ms", "store": "postgres",
                "postgres": {"host": "127.0.0.1", "port": self.port, "database": DATABASE,
                             "user": USER, "password_env": "BM_PG_PASSWORD", "sslmode": "disable",
                             "replica": replica, "connect_timeout": "2s", **extra}}

    @staticmethod
    def env(password: str = PASSWORD) -> dict:
        return {"BM_PG_PASSWORD": password}

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)
