"""Shared pieces for the integration tests: start the Bedrock simulator and the proxy on
127.0.0.1 port 0, make a throwaway CA and server certificate, and build real boto3 clients.

Every process started here is stopped by the test that started it (context managers), and
every wait is bounded, so a broken build fails a test instead of hanging CI.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BM_BUILD_DIR", ROOT / "build" / "test"))
SIM_BIN = os.environ.get("BEDROCK_SIM", str(BUILD / "bin" / "bedrock-sim"))
PROXY_BIN = os.environ.get("BEDROCK_METER", str(BUILD / "bin" / "bedrock-meter"))

# Upstream credentials the simulator checks (stand-ins for the proxy's own AWS keys).
UPSTREAM_AKID = "AKIDUPSTREAMTEST01"
UPSTREAM_SECRET = "upstream-secret-for-tests-only"
UPSTREAM_BEARER = "upstream-bedrock-api-key-for-tests"

# Client credentials the proxy issues in tests.
CLIENT_AKID = "BMAKTESTSEARCH0001"
CLIENT_SECRET = "client-secret-search-0001"
CLIENT2_AKID = "BMAKTESTSUPPORT002"
CLIENT2_SECRET = "client-secret-support-0002"
BEARER_TOKEN = "bmk-test-bearer-token-for-billing-team"

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CLAUDE_PROFILE_ARN = ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                      "us.anthropic.claude-3-5-haiku-20241022-v1:0")
NOVA = "amazon.nova-lite-v1:0"
LLAMA = "meta.llama3-1-70b-instruct-v1:0"
TITAN = "amazon.titan-text-express-v1"
MISTRAL = "mistral.mistral-large-2402-v1:0"

WAIT = 15.0  # seconds: the longest any start-up wait may take


def _wait_for_file(path: Path, proc: subprocess.Popen, what: str) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return path.read_text()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready within {WAIT}s")


class Simulator:
    """bedrock-sim on 127.0.0.1:0, checking SigV4 with the upstream test key (or a bearer)."""

    def __init__(self, *extra: str, tls: tuple[Path, Path] | None = None, threads: int = 1):
        self.tmp = Path(tempfile.mkdtemp(prefix="bm-sim-"))
        port_file = self.tmp / "port"
        args = [SIM_BIN, "--listen", "127.0.0.1:0", "--port-file", str(port_file),
                "--threads", str(threads), "--access-key", UPSTREAM_AKID,
                "--secret-key", UPSTREAM_SECRET, "--bearer-token", UPSTREAM_BEARER, *extra]
        if tls:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.log = open(self.tmp / "sim.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(_wait_for_file(port_file, self.proc, "bedrock-sim").strip())
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /__sim/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        stats = json.loads(data.split(b"\r\n\r\n", 1)[1])
        stats.pop("connections", None)  # changes with every look, this one included
        return stats

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def base_config(upstream_url: str, **overrides) -> dict:
    """A proxy config (as a dict, written out as YAML-compatible JSON) for tests."""
    cfg = {
        "listeners": [{"address": "127.0.0.1", "port": 0}],
        "workers": 2,
        "upstream": {
            "region": "us-east-1",
            "endpoint": upstream_url,
            "credentials": {"source": "environment"},
            "connect_timeout": "2s",
            "first_byte_timeout": "10s",
            "idle_timeout": "10s",
        },
        "auth": {
            "access_keys": [
                {"access_key_id": CLIENT_AKID, "secret_access_key": CLIENT_SECRET,
                 "team": "search", "app": "web-search"},
                {"access_key_id": CLIENT2_AKID, "secret_access_key": CLIENT2_SECRET,
                 "team": "support", "app": "helpdesk"},
            ],
            "bearer_keys": [
                {"sha256": hashlib.sha256(BEARER_TOKEN.encode()).hexdigest(),
                 "team": "billing", "app": "invoices", "name": "billing-bot"},
            ],
        },
        "limits": {"shutdown_grace": "10s"},
        "pricing": {"rate_table": str(ROOT / "config" / "rates" / "bedrock.yaml"),
                    "reload": {"watch": True, "poll_interval": "200ms"}},
        "logging": {"level": "info", "access_log": "stdout"},
        "admin": {"enabled": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


class Proxy:
    """bedrock-meter serve with a generated config; its access log is read back as JSON lines."""

    def __init__(self, cfg: dict, env: dict | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="bm-proxy-"))
        self.config_path = self.tmp / "config.yaml"
        # Every test proxy keeps its own ledger next to its config unless the test chose one.
        cfg = {**cfg, "ledger": cfg.get("ledger") or {"path": str(self.tmp / "ledger.db"),
                                                       "flush_interval": "20ms"}}
        self.ledger_path = Path(cfg["ledger"]["path"])
        # JSON is YAML: no YAML library is needed to write the config.
        self.config_path.write_text(json.dumps(cfg, indent=2))
        ready = self.tmp / "ready.json"
        full_env = {**os.environ, "AWS_ACCESS_KEY_ID": UPSTREAM_AKID,
                    "AWS_SECRET_ACCESS_KEY": UPSTREAM_SECRET, "AWS_EC2_METADATA_DISABLED": "true"}
        full_env.pop("AWS_SESSION_TOKEN", None)
        full_env.update(env or {})
        self.out = open(self.tmp / "access.log", "w")
        self.err = open(self.tmp / "proxy.err", "w")
        self.proc = subprocess.Popen([PROXY_BIN, "serve", "--config", str(self.config_path),
                                      "--ready-file", str(ready)],
                                     stdout=self.out, stderr=self.err, env=full_env)
        self.ports = json.loads(_wait_for_file(ready, self.proc, "bedrock-meter"))["ports"]
        self.port = self.ports[0]
        tls = bool(cfg["listeners"][0].get("tls"))
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.returncode = None

    def access_log(self) -> list[dict]:
        if not self.out.closed:
            self.out.flush()
        lines = (self.tmp / "access.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for_log(self, count: int, timeout: float = 5.0) -> list[dict]:
        """The access log once it has `count` lines (a line is written when a request settles)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.access_log()
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def stderr(self) -> str:
        if not self.err.closed:
            self.err.flush()
        return (self.tmp / "proxy.err").read_text()

    def stop(self, timeout: float = 15.0) -> int:
        if self.returncode is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = -9
            self.out.close()
            self.err.close()
        return self.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class ProxyCase(unittest.TestCase):
    """One simulator and one proxy in front of it for a whole test class: base_config with the
    class's `config` overrides. Subclasses that need more call super().setUpClass() first."""

    config: dict = {}

    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator()
        try:
            cls.proxy = Proxy(base_config(cls.sim.url, **cls.config))
        except Exception:
            cls.sim.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        cls.sim.stop()


def client(url: str, akid: str = CLIENT_AKID, secret: str = CLIENT_SECRET, verify=None,
           retries: int = 1, read_timeout: float = 30, **kw):
    """A real boto3 bedrock-runtime client pointed at `url`. Retries off by default, so a
    throttle or 5xx surfaces once instead of being retried away."""
    return boto3.client(
        "bedrock-runtime", endpoint_url=url, region_name=kw.pop("region", "us-east-1"),
        aws_access_key_id=akid, aws_secret_access_key=secret, verify=verify,
        config=Config(retries={"total_max_attempts": retries, "mode": "standard"},
                      read_timeout=read_timeout, connect_timeout=5, **kw))


@contextlib.contextmanager
def bearer_env(token: str = BEARER_TOKEN):
    """AWS_BEARER_TOKEN_BEDROCK set for the duration, as an application using a Bedrock API key
    runs. botocore reads it when each request is signed, so calls go inside the block."""
    old = os.environ.get("AWS_BEARER_TOKEN_BEDROCK")
    os.environ["AWS_BEARER_TOKEN_BEDROCK"] = token
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("AWS_BEARER_TOKEN_BEDROCK", None)
        else:
            os.environ["AWS_BEARER_TOKEN_BEDROCK"] = old


def bearer_client(url: str, verify=None):
    """boto3 with no access keys: inside `bearer_env()` it authenticates with the bearer key."""
    session = boto3.session.Session()
    return session.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                          verify=verify,
                          config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def converse_messages(text: str) -> list:
    return [{"role": "user", "content": [{"text": text}]}]


def make_ca(directory: Path) -> dict:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost, via the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    d = str(directory)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bedrock-meter test CA")
    (directory / "ext.cnf").write_text(textwrap.dedent("""\
        subjectAltName = IP:127.0.0.1, DNS:localhost
        basicConstraints = CA:FALSE
        keyUsage = digitalSignature, keyEncipherment
        extendedKeyUsage = serverAuth
        """))
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": directory / "ca.pem", "cert": directory / "server.pem",
            "key": directory / "server.key"}


def free_port() -> int:
    """A port nothing listens on (bound then released) for 'upstream refused' tests."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_request(port: int, data: bytes, timeout: float = 5.0, read_all: bool = True) -> bytes:
    """Sends raw bytes and returns what comes back until the peer closes (or `timeout`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if not read_all and b"\r\n\r\n" in out:
                    break
        except socket.timeout:
            pass
        return out
