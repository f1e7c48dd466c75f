"""Validates the docker-compose stack without a Docker engine (these machines have none):

- docker-compose config accepts docker-compose.yml, with and without the demo profile;
- every host path the services mount exists in the repository, and the Grafana provisioning,
  Prometheus scrape job and ports agree with what the configs say;
- promtool check config accepts deploy/prometheus/prometheus.yml with the shipped rules laid out
  as the compose file mounts them; amtool check-config accepts deploy/alertmanager/alertmanager.yml;
- bedrock-meter check-config accepts both proxy configs (deploy/bedrock-meter/) in the container's
  /srv/bedrock-meter layout (BEDROCK_METER is the binary, from ctest);
- the demo config's client credentials are the ones scripts/demo_traffic.py uses.

Standard library only.
"""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = shutil.which("docker-compose")
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
BEDROCK_METER = os.environ.get("BEDROCK_METER")

# Under ctest a missing tool is a failure, not a skip: scripts/install-deps installs them all.
if os.environ.get("BM_REQUIRE_TOOLS"):
    _missing = [n for n, v in (("docker-compose", COMPOSE), ("promtool", PROMTOOL), ("amtool", AMTOOL),
                               ("BEDROCK_METER", BEDROCK_METER)) if not v]
    if _missing:
        raise SystemExit(f"test_compose: missing {', '.join(_missing)} (run scripts/install-deps)")


def compose_config(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BEDROCK_METER_CONFIG"))}
    e.update(env or {})
    profile = list(args[:2]) if args[:1] == ("--profile",) else []
    rest = list(args[len(profile):])
    r = subprocess.run([COMPOSE, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"),
                        *profile, "config", *rest], capture_output=True, text=True, env=e, cwd=REPO)
    return r


@unittest.skipUnless(COMPOSE, "docker-compose not installed (scripts/install-deps)")
class ComposeFile(unittest.TestCase):
    def test_config_is_valid(self):
        r = compose_config("-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = compose_config("--profile", "demo", "-q", env={"BEDROCK_METER_CONFIG": "demo.yaml"})
        self.assertEqual(r.returncode, 0, r.stderr)
        # Compose 1.29 lists every service in `config`; profiles decide what `up` starts.
        out = compose_config().stdout
        blocks = dict(re.findall(r"^  ([\w-]+):\n((?:    .*\n|  - .*\n)*)", out, re.M))
        self.assertEqual(sorted(blocks), ["alertmanager", "bedrock-meter", "grafana", "prometheus",
                                          "simulator", "traffic"])
        for name, block in blocks.items():
            in_demo = bool(re.search(r"^    profiles:\n    - demo$", block, re.M))
            self.assertEqual(in_demo, name in ("simulator", "traffic"), name)

    def test_config_selects_the_proxy_config(self):
        # The serve command's --config argument (mount lines carry a host path before it).
        arg = r"^    - /srv/bedrock-meter/%s$"
        default = compose_config().stdout
        self.assertRegex(default, re.compile(arg % r"bedrock\.yaml", re.M))
        self.assertNotRegex(default, re.compile(arg % r"demo\.yaml", re.M))
        demo = compose_config("--profile", "demo", env={"BEDROCK_METER_CONFIG": "demo.yaml"}).stdout
        self.assertRegex(demo, re.compile(arg % r"demo\.yaml", re.M))

    def test_mounted_host_paths_exist(self):
        out = compose_config("--profile", "demo").stdout
        mounts = re.findall(r"^\s*- (/[^:\s]+):(/[^:\s]+)(?::ro)?$", out, re.M)
        self.assertGreaterEqual(len(mounts), 7, out)
        for host, _ in mounts:
            self.assertTrue(Path(host).exists(), f"{host} is mounted but does not exist")
        targets = {container: Path(host) for host, container in mounts}
        # Grafana: provisioning and the dashboards where the provider looks for them.
        provider = (DEPLOY / "grafana/provisioning/dashboards/bedrock-meter.yml").read_text()
        dash_dir = re.search(r"path: (\S+)", provider).group(1)
        self.assertEqual(targets[dash_dir], REPO / "dashboards")
        home = re.search(r"GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH[=:] ?(\S+)", out).group(1)
        self.assertTrue((REPO / "dashboards" / Path(home).relative_to(dash_dir)).is_file(), home)
        self.assertEqual(targets["/etc/grafana/provisioning"], DEPLOY / "grafana/provisioning")
        # Prometheus: its config and the rules beside it, as rule_files names them.
        self.assertEqual(targets["/etc/prometheus/prometheus.yml"], DEPLOY / "prometheus/prometheus.yml")
        self.assertEqual(targets["/etc/prometheus/rules"], REPO / "dashboards/rules")
        self.assertIn("- rules/*.yml", (DEPLOY / "prometheus/prometheus.yml").read_text())
        self.assertEqual(targets["/etc/alertmanager/alertmanager.yml"],
                         DEPLOY / "alertmanager/alertmanager.yml")
        for name in ("bedrock.yaml", "demo.yaml"):
            self.assertEqual(targets[f"/srv/bedrock-meter/{name}"], DEPLOY / "bedrock-meter" / name)

    def test_ports_and_scrape_target_agree(self):
        prom = (DEPLOY / "prometheus/prometheus.yml").read_text()
        self.assertIn("job_name: bedrock-meter", prom)
        self.assertIn('targets: ["bedrock-meter:9464"]', prom)
        self.assertIn('targets: ["alertmanager:9093"]', prom)
        for name in ("bedrock.yaml", "demo.yaml"):
            cfg = (DEPLOY / "bedrock-meter" / name).read_text()
            admin = cfg[cfg.index("\nadmin:"):]
            self.assertRegex(admin, r"address: 0\.0\.0\.0", name)
            self.assertRegex(admin, r"port: 9464\b", name)
            self.assertRegex(cfg, r"- address: 0\.0\.0\.0[^\n]*\n\s+port: 8080\b", name)
        ds = (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
        self.assertIn("url: http://prometheus:9090", ds)

    def test_dockerfile_layout_matches_the_configs(self):
        docker = (REPO / "Dockerfile").read_text()
        self.assertIn("RUN scripts/install-deps", docker)
        self.assertIn("scripts/build release bedrock-meter bedrock-sim", docker)
        self.assertIn("COPY config/rates/bedrock.yaml /srv/bedrock-meter/rates/bedrock.yaml", docker)
        self.assertTrue((REPO / "config/rates/bedrock.yaml").is_file())
        self.assertIn("COPY scripts/demo_traffic.py", docker)
        for name in ("bedrock.yaml", "demo.yaml"):
            cfg = (DEPLOY / "bedrock-meter" / name).read_text()
            self.assertRegex(cfg, r"rate_table: rates/bedrock\.yaml", name)
            self.assertRegex(cfg, r"path: data/ledger\.db", name)
        self.assertIn("bedrock-meter-data:/srv/bedrock-meter/data", (REPO / "docker-compose.yml").read_text())


class DemoCredentials(unittest.TestCase):
    def test_demo_config_accepts_the_demo_traffic_clients(self):
        traffic = (REPO / "scripts/demo_traffic.py").read_text()
        demo = (DEPLOY / "bedrock-meter/demo.yaml").read_text()
        key = re.search(r'aws_access_key_id="(\w+)"', traffic).group(1)
        secret = re.search(r'aws_secret_access_key="([\w-]+)"', traffic).group(1)
        token = re.search(r'AWS_BEARER_TOKEN_BEDROCK"\] = "([\w-]+)"', traffic).group(1)
        self.assertRegex(demo, rf"access_key_id: {key}\s+secret_access_key: {secret}\b")
        self.assertIn(f"sha256: {hashlib.sha256(token.encode()).hexdigest()}", demo)
        compose = (REPO / "docker-compose.yml").read_text()
        # The proxy signs to the simulator with the token the simulator accepts.
        upstream = re.search(r"BM_DEMO_UPSTREAM_TOKEN=([\w-]+)", compose).group(1)
        self.assertIn(f'"--bearer-token", "{upstream}"', compose)
        self.assertIn("bearer_token_env: BM_DEMO_UPSTREAM_TOKEN", demo)
        self.assertIn("endpoint: http://simulator:9000", demo)
        self.assertIn('"--listen", "0.0.0.0:9000"', compose)


@unittest.skipUnless(PROMTOOL, "promtool not installed (scripts/install-deps)")
class PrometheusConfig(unittest.TestCase):
    def test_promtool_check_config(self):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(DEPLOY / "prometheus/prometheus.yml", tmp)
            shutil.copytree(REPO / "dashboards/rules", Path(tmp) / "rules")
            r = subprocess.run([PROMTOOL, "check", "config", str(Path(tmp) / "prometheus.yml")],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # The rules really were found and checked (an empty glob also passes).
            self.assertIn("SUCCESS: 2 rule files found", r.stdout + r.stderr)


@unittest.skipUnless(AMTOOL, "amtool not installed (scripts/install-deps)")
class AlertmanagerConfig(unittest.TestCase):
    def test_amtool_check_config(self):
        r = subprocess.run([AMTOOL, "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_routes_pick_receivers_by_severity(self):
        # amtool config routes test: which receiver an alert with these labels reaches.
        def receiver(*labels):
            r = subprocess.run([AMTOOL, "config", "routes", "test", "--config.file",
                                str(DEPLOY / "alertmanager/alertmanager.yml"), *labels],
                               capture_output=True, text=True)
            return r.stdout.strip()
        self.assertEqual(receiver("alertname=BudgetExceeded", "severity=critical", "budget=x"), "oncall")
        self.assertEqual(receiver("alertname=UnpricedTraffic", "severity=warning"), "finops")


@unittest.skipUnless(BEDROCK_METER, "BEDROCK_METER (the bedrock-meter binary) not set; ctest sets it")
class ProxyConfigs(unittest.TestCase):
    def check(self, name, env):
        # The container layout: /srv/bedrock-meter/{<config>, rates/bedrock.yaml, data/}.
        with tempfile.TemporaryDirectory() as srv:
            shutil.copy(DEPLOY / "bedrock-meter" / name, srv)
            (Path(srv) / "rates").mkdir()
            shutil.copy(REPO / "config/rates/bedrock.yaml", Path(srv) / "rates")
            (Path(srv) / "data").mkdir()
            e = {k: v for k, v in os.environ.items()
                 if k not in ("BM_CLIENT_SECRET", "BM_DEMO_UPSTREAM_TOKEN")}
            e.update(env)
            return subprocess.run([BEDROCK_METER, "check-config", "--config", str(Path(srv) / name)],
                                  capture_output=True, text=True, env=e)

    def test_demo_config(self):
        r = self.check("demo.yaml", {"BM_DEMO_UPSTREAM_TOKEN": "demo-upstream-token"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stdout)

    def test_bedrock_config(self):
        r = self.check("bedrock.yaml", {"BM_CLIENT_SECRET": "s3cret-from-the-environment"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Without the client secret the proxy refuses to start, naming the variable.
        r = self.check("bedrock.yaml", {})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("BM_CLIENT_SECRET", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
