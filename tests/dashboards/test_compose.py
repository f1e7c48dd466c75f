"""Validates the docker-compose stack without a Docker engine (these machines have none):

- docker-compose config accepts docker-compose.yml, without a profile and with the demo and the
  fleet profiles;
- every host path the services mount exists in the repository, and the Grafana provisioning,
  Prometheus scrape jobs and ports agree with what the configs say;
- promtool check config accepts deploy/prometheus/prometheus.yml and prometheus-fleet.yml with
  the shipped rules laid out as the compose file mounts them; amtool check-config accepts
  deploy/alertmanager/alertmanager.yml;
- the fleet (profile "fleet"): three replicas whose configs differ only in their replica name,
  each with its own ledger volume, the PostgreSQL ledger and Redis budgets; nginx in front of
  them (`nginx -t`, with the replicas' host names made resolvable); PostgreSQL's roles and
  Grafana's PostgreSQL datasource agree on names and passwords;
- bedrock-meter check-config accepts every proxy config the compose file mounts
  (deploy/bedrock-meter/) in the container's /srv/bedrock-meter layout, with the environment its
  service sets (BEDROCK_METER is the binary, from ctest);
- the demo and fleet configs' client credentials are the ones scripts/demo_traffic.py uses.

Standard library only.
"""
import hashlib
import json
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
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
BEDROCK_METER = os.environ.get("BEDROCK_METER")

# Under ctest a missing tool is a failure, not a skip: scripts/install-deps installs them all.
if os.environ.get("BM_REQUIRE_TOOLS"):
    _missing = [n for n, v in (("docker-compose", COMPOSE), ("promtool", PROMTOOL), ("amtool", AMTOOL),
                               ("nginx", NGINX), ("BEDROCK_METER", BEDROCK_METER)) if not v]
    if _missing:
        raise SystemExit(f"test_compose: missing {', '.join(_missing)} (run scripts/install-deps)")


# The stack's own variables: a value in the caller's environment must not change what is checked.
STACK_VARS = ("BEDROCK_METER_CONFIG", "PROMETHEUS_CONFIG", "GRAFANA_ADMIN_PASSWORD", "POSTGRES_PASSWORD",
              "BEDROCK_METER_PG_PASSWORD", "GRAFANA_PG_PASSWORD", "BM_REDIS_PASSWORD")
FLEET_ENV = {"BEDROCK_METER_CONFIG": "demo.yaml", "PROMETHEUS_CONFIG": "prometheus-fleet.yml"}
REPLICAS = ("meter-1", "meter-2", "meter-3")
FLEET_SERVICES = REPLICAS + ("meter-lb", "postgres", "redis", "fleet-traffic")


def compose_config(*args, env=None):
    """docker-compose config; leading `--profile NAME` pairs select profiles."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in STACK_VARS}
    e.update(env or {})
    args = list(args)
    profiles = []
    while args[:1] == ["--profile"]:
        profiles += args[:2]
        args = args[2:]
    r = subprocess.run([COMPOSE, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"),
                        *profiles, "config", *args], capture_output=True, text=True, env=e, cwd=REPO)
    return r


def service_blocks(out):
    """Service name -> its block of `docker-compose config` output."""
    return dict(re.findall(r"^  ([\w-]+):\n((?:    .*\n|  - .*\n)*)", out, re.M))


def service_env(block):
    """The environment map of a service block (`docker-compose config` prints it resolved)."""
    m = re.search(r"^    environment:\n((?:      .*\n)*)", block, re.M)
    if not m:
        return {}
    env = {}
    for key, value in re.findall(r"^      ([\w]+): ?(.*)$", m.group(1), re.M):
        value = value.strip()
        env[key] = None if value == "null" else value.strip("'\"")
    return env


def mounts(block):
    """[(host path, container path)] of a service block's bind mounts."""
    return re.findall(r"^    - (/[^:\s]+):(/[^:\s]+)(?::ro)?$", block, re.M)


def strip_comments(text):
    lines = (re.sub(r"(^|\s+)#.*$", "", line).rstrip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


@unittest.skipUnless(COMPOSE, "docker-compose not installed (scripts/install-deps)")
class ComposeFile(unittest.TestCase):
    def test_config_is_valid(self):
        r = compose_config("-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = compose_config("--profile", "demo", "-q", env={"BEDROCK_METER_CONFIG": "demo.yaml"})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = compose_config("--profile", "fleet", "-q", env=FLEET_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = compose_config("--profile", "demo", "--profile", "fleet", "-q", env=FLEET_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Compose 1.29 lists every service in `config`; profiles decide what `up` starts.
        out = compose_config().stdout
        blocks = service_blocks(out)
        self.assertEqual(sorted(blocks), sorted(["alertmanager", "bedrock-meter", "grafana", "prometheus",
                                                 "simulator", "traffic", *FLEET_SERVICES]))
        expected = {"simulator": ["demo", "fleet"], "traffic": ["demo"],
                    **{name: ["fleet"] for name in FLEET_SERVICES}}
        for name, block in blocks.items():
            m = re.search(r"^    profiles:\n((?:    - .*\n)+)", block, re.M)
            profiles = re.findall(r"- (\S+)", m.group(1)) if m else []
            self.assertEqual(profiles, expected.get(name, []), name)
        # A service every profile starts must not wait for one that only a profile starts.
        for name, block in blocks.items():
            if name in expected:
                continue
            m = re.search(r"^    depends_on:\n((?:      .*\n)*)", block, re.M)
            for dep in re.findall(r"^      ([\w-]+):$", m.group(1), re.M) if m else []:
                self.assertNotIn(dep, expected, f"{name} depends on {dep}, which is in a profile")

    def test_config_selects_the_proxy_config(self):
        # The serve command's --config argument (mount lines carry a host path before it).
        arg = r"^    - /srv/bedrock-meter/%s$"
        default = compose_config().stdout
        self.assertRegex(default, re.compile(arg % r"bedrock\.yaml", re.M))
        self.assertNotRegex(default, re.compile(arg % r"demo\.yaml", re.M))
        demo = compose_config("--profile", "demo", env={"BEDROCK_METER_CONFIG": "demo.yaml"}).stdout
        self.assertRegex(demo, re.compile(arg % r"demo\.yaml", re.M))
        # Prometheus loads prometheus.yml unless PROMETHEUS_CONFIG names the fleet's.
        prom = r"^    - --config\.file=/etc/prometheus/%s$"
        self.assertRegex(default, re.compile(prom % r"prometheus\.yml", re.M))
        fleet = compose_config("--profile", "fleet", env=FLEET_ENV).stdout
        self.assertRegex(fleet, re.compile(prom % r"prometheus-fleet\.yml", re.M))
        self.assertRegex(fleet, re.compile(arg % r"demo\.yaml", re.M))
        for n, name in enumerate(REPLICAS, 1):
            self.assertRegex(service_blocks(fleet)[name], re.compile(arg % rf"fleet-{n}\.yaml", re.M))

    def test_mounted_host_paths_exist(self):
        out = compose_config("--profile", "demo", "--profile", "fleet").stdout
        mounts = re.findall(r"^\s*- (/[^:\s]+):(/[^:\s]+)(?::ro)?$", out, re.M)
        self.assertGreaterEqual(len(mounts), 14, out)
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
        self.assertEqual(targets["/etc/prometheus/prometheus-fleet.yml"],
                         DEPLOY / "prometheus/prometheus-fleet.yml")
        self.assertIn("- rules/*.yml", (DEPLOY / "prometheus/prometheus-fleet.yml").read_text())
        for name in ("bedrock.yaml", "demo.yaml", "fleet-1.yaml", "fleet-2.yaml", "fleet-3.yaml"):
            self.assertEqual(targets[f"/srv/bedrock-meter/{name}"], DEPLOY / "bedrock-meter" / name)
        # Every proxy config in deploy/bedrock-meter/ is mounted (and so checked below).
        self.assertEqual({p.name for p in (DEPLOY / "bedrock-meter").glob("*.yaml")},
                         {Path(c).name for c in targets if c.startswith("/srv/bedrock-meter/")})
        self.assertEqual(targets["/etc/nginx/conf.d/default.conf"], DEPLOY / "nginx/fleet.conf")
        self.assertEqual(targets["/opt/bedrock-meter/postgres-init.sql"], DEPLOY / "postgres/init.sql")
        self.assertEqual(targets["/docker-entrypoint-initdb.d/10-bedrock-meter.sh"],
                         DEPLOY / "postgres/init.sh")

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
        # The fleet's Prometheus keeps the job name and scrapes every replica's admin port.
        fleet = (DEPLOY / "prometheus/prometheus-fleet.yml").read_text()
        self.assertEqual(re.findall(r"job_name: (\S+)", fleet), ["bedrock-meter", "prometheus"])
        targets = re.search(r"job_name: bedrock-meter\n(?:\s+[^-\s].*\n|\s+- .*\n|\s*#.*\n)*", fleet).group(0)
        for name in REPLICAS + ("bedrock-meter",):
            self.assertIn(f'"{name}:9464"', targets, name)
        self.assertIn('targets: ["alertmanager:9093"]', fleet)

    def test_dockerfile_layout_matches_the_configs(self):
        docker = (REPO / "Dockerfile").read_text()
        self.assertIn("RUN scripts/install-deps", docker)
        self.assertIn("scripts/build release bedrock-meter bedrock-sim", docker)
        self.assertIn("COPY config/rates/bedrock.yaml /srv/bedrock-meter/rates/bedrock.yaml", docker)
        self.assertTrue((REPO / "config/rates/bedrock.yaml").is_file())
        self.assertIn("COPY scripts/demo_traffic.py", docker)
        for name in ("bedrock.yaml", "demo.yaml", "fleet-1.yaml", "fleet-2.yaml", "fleet-3.yaml"):
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
        # The fleet's replicas take the same clients and the same upstream (fleet-traffic runs
        # demo_traffic.py through the load balancer).
        def clients_and_upstream(text):
            text = strip_comments(text)
            return text[text.index("\nupstream:"):text.index("\npricing:")]
        for n in (1, 2, 3):
            fleet = (DEPLOY / f"bedrock-meter/fleet-{n}.yaml").read_text()
            self.assertEqual(clients_and_upstream(fleet), clients_and_upstream(demo), f"fleet-{n}.yaml")
        self.assertIn("demo_traffic.py http://meter-lb:8080", compose)


@unittest.skipUnless(COMPOSE, "docker-compose not installed (scripts/install-deps)")
class Fleet(unittest.TestCase):
    """Profile "fleet": meter-1..3 behind meter-lb (nginx), PostgreSQL ledger, Redis budgets."""

    @classmethod
    def setUpClass(cls):
        r = compose_config("--profile", "fleet", env=FLEET_ENV)
        assert r.returncode == 0, r.stderr
        cls.blocks = service_blocks(r.stdout)
        cls.configs = {name: (DEPLOY / f"bedrock-meter/fleet-{n}.yaml").read_text()
                       for n, name in enumerate(REPLICAS, 1)}

    def test_replicas_differ_only_in_their_name(self):
        first = strip_comments(self.configs["meter-1"])
        for name, cfg in self.configs.items():
            self.assertEqual(re.findall(r"^    replica: (\S+)", cfg, re.M), [name])
            self.assertEqual(strip_comments(cfg).replace(f"replica: {name}", "replica: meter-1"), first, name)

    def test_replica_config(self):
        cfg = strip_comments(self.configs["meter-1"])
        ledger = cfg[cfg.index("\nledger:"):cfg.index("\nbudgets:")]
        for line in ("path: data/ledger.db", "store: postgres", "host: postgres", "port: 5432",
                     "database: bedrock_meter", "user: bedrock_meter",
                     "password_env: BEDROCK_METER_PG_PASSWORD", "sslmode: disable",
                     "spool_max_rows: 1000000"):
            self.assertIn(f" {line}\n", ledger + "\n", line)
        budgets = cfg[cfg.index("\nbudgets:"):cfg.index("\nlogging:")]
        for line in ("store: redis", "host: redis", "port: 6379", "password_env: BM_REDIS_PASSWORD"):
            self.assertIn(f" {line}\n", budgets, line)
        self.assertRegex(budgets, r"definitions:\n    - name: ")
        admin = cfg[cfg.index("\nadmin:"):]
        self.assertRegex(admin, r"address: 0\.0\.0\.0")
        self.assertRegex(admin, r"port: 9464\b")
        self.assertRegex(cfg, r"- address: 0\.0\.0\.0\n\s+port: 8080\b")

    def test_replica_services(self):
        for n, name in enumerate(REPLICAS, 1):
            block = self.blocks[name]
            self.assertIn(f"    - /srv/bedrock-meter/fleet-{n}.yaml\n", block, name)
            self.assertIn(f"    - {name}-data:/srv/bedrock-meter/data:rw\n", block, name)
            self.assertIn("    image: bedrock-meter:dev\n", block, name)
            env = service_env(block)
            for var in ("BEDROCK_METER_PG_PASSWORD", "BM_REDIS_PASSWORD", "BM_DEMO_UPSTREAM_TOKEN"):
                self.assertTrue(env.get(var), f"{name}: {var}")
            for dep in ("postgres", "redis", "simulator"):
                self.assertRegex(block, re.compile(rf"^    depends_on:\n(?:      .*\n)*      {dep}:$", re.M),
                                 f"{name} on {dep}")
        # One ledger volume per replica: their SQLite journals never share a file.
        volumes = [re.search(r"- ([\w-]+):/srv/bedrock-meter/data", self.blocks[n]).group(1) for n in REPLICAS]
        self.assertEqual(len(set(volumes)), len(REPLICAS))

    def test_passwords_agree(self):
        env = {name: service_env(self.blocks[name]) for name in self.blocks}
        for name in REPLICAS:
            self.assertEqual(env[name]["BEDROCK_METER_PG_PASSWORD"], env["postgres"]["BEDROCK_METER_PG_PASSWORD"])
            self.assertEqual(env[name]["BM_REDIS_PASSWORD"], env["redis"]["BM_REDIS_PASSWORD"])
        self.assertEqual(env["grafana"]["GRAFANA_PG_PASSWORD"], env["postgres"]["GRAFANA_PG_PASSWORD"])
        self.assertIn("--requirepass \"$$BM_REDIS_PASSWORD\"", self.blocks["redis"])
        self.assertIn("--appendonly yes", self.blocks["redis"])
        # Set from the environment when given.
        given = compose_config("--profile", "fleet", env={**FLEET_ENV, "BEDROCK_METER_PG_PASSWORD": "from-env",
                                                          "GRAFANA_PG_PASSWORD": "from-env-2"}).stdout
        blocks = service_blocks(given)
        self.assertEqual(service_env(blocks["meter-2"])["BEDROCK_METER_PG_PASSWORD"], "from-env")
        self.assertEqual(service_env(blocks["postgres"])["BEDROCK_METER_PG_PASSWORD"], "from-env")
        self.assertEqual(service_env(blocks["grafana"])["GRAFANA_PG_PASSWORD"], "from-env-2")

    def test_postgres(self):
        block = self.blocks["postgres"]
        self.assertIn("    image: postgres:15\n", block)
        env = service_env(block)
        self.assertEqual(env["POSTGRES_DB"], "bedrock_meter")
        self.assertTrue(env["POSTGRES_PASSWORD"])
        init_sh = (DEPLOY / "postgres/init.sh").read_text()
        init_sql = (DEPLOY / "postgres/init.sql").read_text()
        self.assertTrue(os.access(DEPLOY / "postgres/init.sh", os.X_OK), "init.sh must be executable")
        self.assertIn(dict((c, h) for h, c in mounts(block))["/opt/bedrock-meter/postgres-init.sql"]
                      and "-f /opt/bedrock-meter/postgres-init.sql", init_sh)
        for var, psql_var in (("BEDROCK_METER_PG_PASSWORD", "bm_password"), ("GRAFANA_PG_PASSWORD", "grafana_password")):
            self.assertIn(f'-v {psql_var}="${{{var}:?', init_sh)
            self.assertIn(f":'{psql_var}'", init_sql)
        self.assertRegex(init_sql, r"CREATE ROLE bedrock_meter LOGIN PASSWORD :'bm_password'")
        self.assertIn("ALTER DATABASE bedrock_meter OWNER TO bedrock_meter;", init_sql)
        self.assertRegex(init_sql, r"CREATE ROLE grafana_reader LOGIN PASSWORD :'grafana_password'")
        self.assertIn("GRANT pg_read_all_data TO grafana_reader;", init_sql)
        self.assertIn("ALTER ROLE grafana_reader SET default_transaction_read_only = on;", init_sql)
        # The replicas' ledger settings name this database and role.
        cfg = self.configs["meter-1"]
        self.assertIn(f"database: {env['POSTGRES_DB']}", cfg)

    def test_grafana_postgres_datasource(self):
        ds = (DEPLOY / "grafana/provisioning/datasources/postgres.yml").read_text()
        for line in ("uid: bedrock-meter-postgres", "type: grafana-postgresql-datasource",
                     "url: postgres:5432", "user: grafana_reader", "database: bedrock_meter",
                     "sslmode: disable", "password: $__env{GRAFANA_PG_PASSWORD}"):
            self.assertRegex(ds, rf"\n\s+{re.escape(line)}(\s|$)", line)
        self.assertNotIn("isDefault: true", ds)   # Prometheus stays the default
        self.assertIn("isDefault: true", (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
        board = json.loads((REPO / "dashboards/ledger.json").read_text())
        pg = next(v for v in board["templating"]["list"] if v["name"] == "pg")
        self.assertEqual(pg["query"], "grafana-postgresql-datasource")

    def test_load_balancer(self):
        block = self.blocks["meter-lb"]
        self.assertRegex(block, r"    image: nginx:[\w.-]+\n")
        self.assertRegex(block, r"- published: 8081\n      target: 8080\n")
        conf = strip_comments((DEPLOY / "nginx/fleet.conf").read_text())
        servers = re.findall(r"^\s+server ([\w.-]+):(\d+)\b", conf, re.M)
        self.assertEqual(servers, [(name, "8080") for name in REPLICAS])
        for directive in ("listen 8080;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";',
                          "proxy_set_header Host $http_host;", "proxy_buffering off;",
                          "proxy_pass http://bedrock_meter_fleet;"):
            self.assertIn(directive, conf)
        self.assertRegex(conf, r"\bkeepalive \d+;")
        self.assertNotRegex(conf, r"\b(ip_hash|hash|least_conn|random);")   # round robin
        self.assertNotIn("non_idempotent", conf)                               # no POST sent twice
        size = re.search(r"client_max_body_size (\d+)m;", conf)
        self.assertTrue(size and int(size.group(1)) > 32, "client_max_body_size above the proxy's 32 MiB")
        traffic = self.blocks["fleet-traffic"]
        self.assertIn("http://meter-lb:8080", traffic)

    @unittest.skipUnless(NGINX, "nginx not installed (scripts/install-deps)")
    def test_nginx_accepts_the_config(self):
        # nginx resolves upstream host names when it loads; the compose names exist only inside
        # the compose network, so they become 127.0.0.1 here.
        conf = (DEPLOY / "nginx/fleet.conf").read_text()
        for name in REPLICAS:
            conf = conf.replace(f"server {name}:", "server 127.0.0.1:")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "conf.d").mkdir()
            (Path(tmp) / "conf.d/default.conf").write_text(conf)
            (Path(tmp) / "nginx.conf").write_text(
                f"pid {tmp}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
                f"http {{\n  access_log off;\n  client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n"
                f"  fastcgi_temp_path {tmp};\n  uwsgi_temp_path {tmp};\n  scgi_temp_path {tmp};\n"
                f"  include {tmp}/conf.d/*.conf;\n}}\n")
            r = subprocess.run([NGINX, "-t", "-p", tmp, "-c", f"{tmp}/nginx.conf"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("test is successful", r.stderr)


@unittest.skipUnless(PROMTOOL, "promtool not installed (scripts/install-deps)")
class PrometheusConfig(unittest.TestCase):
    def test_promtool_check_config(self):
        for name in ("prometheus.yml", "prometheus-fleet.yml"):
            with self.subTest(config=name), tempfile.TemporaryDirectory() as tmp:
                shutil.copy(DEPLOY / "prometheus" / name, tmp)
                shutil.copytree(REPO / "dashboards/rules", Path(tmp) / "rules")
                r = subprocess.run([PROMTOOL, "check", "config", str(Path(tmp) / name)],
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
    # Variables the configs read that are not in the compose file's own environment (passed
    # through from the shell there), with stand-in values.
    SHELL = {"BM_CLIENT_SECRET": "s3cret-from-the-environment"}

    def check(self, name, env):
        # The container layout: /srv/bedrock-meter/{<config>, rates/bedrock.yaml, data/}.
        with tempfile.TemporaryDirectory() as srv:
            shutil.copy(DEPLOY / "bedrock-meter" / name, srv)
            (Path(srv) / "rates").mkdir()
            shutil.copy(REPO / "config/rates/bedrock.yaml", Path(srv) / "rates")
            (Path(srv) / "data").mkdir()
            e = {k: v for k, v in os.environ.items()
                 if k not in ("BM_CLIENT_SECRET", "BM_DEMO_UPSTREAM_TOKEN", "BEDROCK_METER_PG_PASSWORD",
                              "BM_REDIS_PASSWORD")}
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

    @unittest.skipUnless(COMPOSE, "docker-compose not installed (scripts/install-deps)")
    def test_every_mounted_config_with_its_services_environment(self):
        out = compose_config("--profile", "demo", "--profile", "fleet", env=FLEET_ENV).stdout
        checked = set()
        for service, block in service_blocks(out).items():
            env = {k: (v if v is not None else self.SHELL.get(k)) for k, v in service_env(block).items()}
            env = {k: v for k, v in env.items() if v is not None}
            for host, container in mounts(block):
                if not container.startswith("/srv/bedrock-meter/") or not host.endswith(".yaml"):
                    continue
                name = Path(host).name
                with self.subTest(service=service, config=name):
                    r = self.check(name, env)
                    self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                    self.assertIn("OK", r.stdout)
                checked.add(name)
        self.assertEqual(checked, {p.name for p in (DEPLOY / "bedrock-meter").glob("*.yaml")})

    def test_fleet_configs_need_their_passwords(self):
        env = {"BM_DEMO_UPSTREAM_TOKEN": "demo-upstream-token", "BEDROCK_METER_PG_PASSWORD": "pg",
               "BM_REDIS_PASSWORD": "redis"}
        for n in (1, 2, 3):
            r = self.check(f"fleet-{n}.yaml", env)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for var in ("BEDROCK_METER_PG_PASSWORD", "BM_REDIS_PASSWORD"):
            r = self.check("fleet-1.yaml", {k: v for k, v in env.items() if k != var})
            self.assertNotEqual(r.returncode, 0, var)
            self.assertIn(var, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
