#!/usr/bin/python3
"""Checks of the deploy files that need no server: the contract parser, the PromQL reference
extraction, every metric used being in docs/operations.md, every contract metric being charted,
the fixture expositions covering the contract, generated files being in sync, dashboard layout,
and rule conventions."""

import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy/tools"))
import contract as contract_lib  # noqa: E402
import promql_refs  # noqa: E402

CONTRACT = contract_lib.Contract(REPO / "docs/operations.md")
RULE_FILES = sorted((REPO / "deploy/prometheus/rules").glob("*.rules.yml"))
DASHBOARDS = sorted((REPO / "deploy/grafana/dashboards").glob("*.json"))
PYTHON = sys.executable


def rules():
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield path, group, rule


def dashboard_exprs(path):
    """(panel title, expr, legend) for every target, and variable queries with title None."""
    dash = json.loads(path.read_text())
    for var in dash["templating"]["list"]:
        if var["type"] == "query":  # label_values(SELECTOR, LABEL): SELECTOR is PromQL
            match = re.fullmatch(r"label_values\((.*), *[a-z_]+\)", var["query"]["query"])
            yield f"variable {var['name']}", match.group(1), None
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], target.get("legendFormat")


def all_exprs():
    for path, _, rule in rules():
        yield f"{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"]
    for path in DASHBOARDS:
        for title, expr, _ in dashboard_exprs(path):
            yield f"{path.name}: {title}", expr
    adapter = yaml.safe_load((REPO / "deploy/k8s/prometheus-adapter/config.yaml").read_text())
    for rule in adapter["rules"]:
        yield "adapter seriesQuery", rule["seriesQuery"]
        yield "adapter metricsQuery", rule["metricsQuery"].replace("<<.Series>>", rule[
            "seriesQuery"].split("{")[0]).replace("<<.LabelMatchers>>", "").replace(
            "<<.GroupBy>>", "pod")
    for path in (REPO / "deploy/k8s/components/keda").glob("*scaledobject.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for trigger in doc["spec"]["triggers"]:
                yield f"{path.name}", trigger["metadata"]["query"]


class ContractTest(unittest.TestCase):
    def test_contract_is_read(self):
        self.assertEqual(CONTRACT.ports["encoder"], {"grpc": 50051, "metrics": 9091})
        self.assertEqual(CONTRACT.ports["decoder"], {"grpc": 50052, "metrics": 9092})
        self.assertEqual(CONTRACT.health_services["decoder"], "icae.v1.Decoder")
        self.assertIn("drain_seconds", CONTRACT.common_flags)
        self.assertIn("max_queue_segments", CONTRACT.service_flags["encoder"])
        self.assertNotIn("max_queue_segments", CONTRACT.service_flags["decoder"])
        m = CONTRACT.metrics
        self.assertEqual(m["icae_decoder_requests_total"]["labels"], {"method", "code"})
        self.assertEqual(m["icae_encoder_cache_misses_total"]["type"], "counter")
        self.assertEqual(m["icae_decoder_num_requests_waiting"]["type"], "gauge")
        self.assertEqual(m["icae_decoder_kv_cache_tokens_capacity"]["type"], "gauge")
        self.assertEqual(m["icae_encoder_dropped_segments_total"]["labels"], {"reason"})
        self.assertGreaterEqual(len(m), 35)


class PromqlRefsTest(unittest.TestCase):
    def test_selectors(self):
        cases = {
            'sum by (job, le) (rate(a_bucket{x="}{", y=~"a|b"}[5m]))':
                [("a_bucket", 'x="}{", y=~"a|b"')],
            "a / on (instance) group_left (pod) b unless c offset 5m":
                [("a", ""), ("b", ""), ("c", "")],
            "histogram_quantile(0.9, sum(rate(h_bucket[1m])) by (le)) > 2 or vector(0)":
                [("h_bucket", "")],
            "count without (code) (up{job='x'}) and bool 1e3": [("up", "job='x'")],
            'job:x:rate5m / ignoring(code) sum(y{a!="b"})': [("job:x:rate5m", ""), ("y", 'a!="b"')],
        }
        for expr, want in cases.items():
            self.assertEqual(promql_refs.selectors(expr), want, expr)


class CoverageTest(unittest.TestCase):
    def test_every_metric_used_is_in_the_contract(self):
        known = CONTRACT.series_names() | {"up"}
        known |= {rule["record"] for _, _, rule in rules() if "record" in rule}
        for source, expr in all_exprs():
            expr = re.sub(r"\$\{?[a-zA-Z_]+\}?", "1m", expr)  # Grafana variables
            unknown = promql_refs.metric_names(expr) - known
            self.assertFalse(unknown, f"{source}: {sorted(unknown)} not in docs/operations.md")

    def test_every_contract_metric_is_charted_and_in_a_rule(self):
        for svc in contract_lib.SERVICES:
            dash = REPO / f"deploy/grafana/dashboards/icae-{svc}.json"
            charted = set()
            for _, expr, _ in dashboard_exprs(dash):
                for name in promql_refs.metric_names(expr):
                    charted.add(contract_lib.metric_of_series(name, CONTRACT) or name)
            in_rules = set()
            for _, _, rule in rules():
                for name in promql_refs.metric_names(rule["expr"]):
                    in_rules.add(contract_lib.metric_of_series(name, CONTRACT) or name)
            for name, info in CONTRACT.metrics.items():
                if info["service"] != svc:
                    continue
                self.assertIn(name, charted, f"{dash.name} charts no {name}")
                if not name.endswith("_info") and name not in (
                        f"icae_{svc}_inflight_requests", "icae_encoder_cache_bytes",
                        "icae_encoder_cache_capacity_bytes"):
                    self.assertIn(name, in_rules, f"no recording/alerting rule reads {name}")

    def test_fixtures_cover_the_contract(self):
        for svc in contract_lib.SERVICES:
            text = (REPO / f"tests/deploy/testdata/{svc}.prom").read_text()
            types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
            labels = {}
            for name, body in re.findall(r"^([a-z_:]+)(?:\{([^}]*)\})? \S+$", text, re.M):
                labels.setdefault(name, set()).update(
                    k for k in re.findall(r'([a-z_]+)="', body or "") if k != "le")
            for name, info in CONTRACT.metrics.items():
                if info["service"] != svc:
                    continue
                self.assertEqual(types.get(name), info["type"], f"{svc}.prom: TYPE of {name}")
                sample = name + "_count" if info["type"] == "histogram" else name
                self.assertEqual(labels.get(sample, set()), info["labels"],
                                 f"{svc}.prom: labels of {sample}")
            extra = set(types) - set(CONTRACT.metrics)
            self.assertFalse(extra, f"{svc}.prom: metrics not in the contract: {extra}")


class GeneratedFilesTest(unittest.TestCase):
    def test_dashboards_and_prometheusrule_are_in_sync(self):
        for script in ("gen_dashboards.py", "gen_prometheusrule.py"):
            out = subprocess.run([PYTHON, str(REPO / "deploy/tools" / script), "--check"],
                                 capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, f"{script}: {out.stderr}")


class DashboardTest(unittest.TestCase):
    def test_layout_and_conventions(self):
        for path in DASHBOARDS:
            dash = json.loads(path.read_text())
            self.assertEqual(dash["uid"], path.stem)
            ids = [p["id"] for p in dash["panels"]]
            self.assertEqual(len(ids), len(set(ids)), f"{path.name}: duplicate panel ids")
            cells = set()
            for panel in dash["panels"]:
                pos = panel["gridPos"]
                self.assertLessEqual(pos["x"] + pos["w"], 24, f"{path.name}: {panel['title']}")
                for x in range(pos["x"], pos["x"] + pos["w"]):
                    for y in range(pos["y"], pos["y"] + pos["h"]):
                        self.assertNotIn((x, y), cells, f"{path.name}: {panel['title']} overlaps")
                        cells.add((x, y))
                if panel["type"] == "row":
                    continue
                self.assertEqual(panel["datasource"]["uid"], "${datasource}")
                self.assertTrue(panel.get("description"), f"{panel['title']}: no description")
                if panel["type"] != "table":
                    self.assertTrue(panel["fieldConfig"]["defaults"].get("unit"), panel["title"])
                for target in panel["targets"]:
                    expr = target["expr"]
                    self.assertNotRegex(expr, r"\[\d+[smh]\]", f"{panel['title']}: use "
                                        "$__rate_interval, not a fixed range")
                    for name, matchers in promql_refs.selectors(expr):
                        if name != "up":
                            self.assertIn('instance=~"$instance"', matchers, panel["title"])
                        self.assertIn('job=~"$job"', matchers, panel["title"])

    def test_panels_the_issue_asks_for(self):
        titles = {p.stem: {panel["title"] for panel in json.loads(p.read_text())["panels"]}
                  for p in DASHBOARDS}
        for want in ("Tokens/s compressed and slots/s produced", "Spans/s and segments/s",
                     "Compress latency", "Segments per batch", "Queue depth",
                     "Queue wait per segment", "Cache hit ratio", "Compression ratio"):
            self.assertIn(want, titles["icae-encoder"])
        for want in ("Tokens/s", "Time to first token", "Inter-token latency",
                     "Sequences per decode step", "Running and waiting requests",
                     "Context compression", "Queue time"):
            self.assertIn(want, titles["icae-decoder"])


class RuleConventionsTest(unittest.TestCase):
    def test_names_labels_and_annotations(self):
        for path, group, rule in rules():
            if "record" in rule:
                self.assertRegex(rule["record"], r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
                self.assertTrue(group["name"].endswith(".rules"), group["name"])
            else:
                self.assertRegex(rule["alert"], r"^Icae[A-Z][A-Za-z]+$")
                self.assertIn(rule["labels"]["severity"], ("critical", "warning", "info"))
                self.assertTrue(rule["annotations"]["summary"])
                self.assertTrue(rule["annotations"]["description"])
                self.assertTrue(group["name"].endswith(".alerts"), group["name"])

    def test_every_alert_has_a_promtool_unit_test(self):
        tested = set()
        for path in (REPO / "deploy/prometheus/tests").glob("*.test.yml"):
            doc = yaml.safe_load(path.read_text())
            for test in doc["tests"]:
                for case in test.get("alert_rule_test", []):
                    if case.get("exp_alerts"):
                        tested.add(case["alertname"])
        alerts = {rule["alert"] for _, _, rule in rules() if "alert" in rule}
        self.assertEqual(alerts - tested, set(), "alerts never shown to fire in a unit test")


class StaticPrometheusConfigTest(unittest.TestCase):
    def test_loads_every_rule_file_and_labels_like_kubernetes(self):
        config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
        self.assertEqual(sorted(config["rule_files"]),
                         sorted(f"rules/{p.name}" for p in RULE_FILES))
        for job in config["scrape_configs"]:
            svc = job["job_name"].replace("icae-", "")
            for group in job["static_configs"]:
                self.assertEqual(set(group["labels"]), {"namespace", "pod"})
                self.assertTrue(group["targets"][0].endswith(f":{CONTRACT.ports[svc]['metrics']}"))


class ScriptsTest(unittest.TestCase):
    def test_shell_scripts_parse(self):
        for script in (REPO / "deploy").rglob("*.sh"):
            out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, f"{script}: {out.stderr}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
