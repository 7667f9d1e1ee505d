#!/usr/bin/python3
"""Evaluates every PromQL expression the deployment ships against a running Prometheus.

Sources: the Grafana dashboards (panel targets and variable queries, with Grafana's variables
substituted as Grafana would), the recording and alerting rules, the prometheus-adapter rules (with
their <<.Series>>/<<.LabelMatchers>>/<<.GroupBy>> templates filled in) and the KEDA triggers.

Every expression must evaluate without error through /api/v1/query. Where data exists (every vector
selector in the expression matches a series) a dashboard, recording-rule, adapter or KEDA expression
must return a non-empty result, and a panel's legend may only name labels its result carries. Alert
expressions only need to evaluate: whether they fire is what the promtool unit tests check. Every
metric name must be in docs/operations.md or recorded by a rule. With --strict (targets known to
expose every metric and label value, such as the test fixtures) every selector must match a series.
The rules must be loaded by Prometheus and evaluate with health "ok"; every target must be up.

The checker polls until everything passes or --timeout runs out, then prints what failed.
Exit status 0 when all passed, 1 otherwise.

  check_queries.py --prometheus http://127.0.0.1:9090 [--repo DIR] [--require_metrics]
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

# libyaml's parser when present: the pure-Python one takes seconds per rendered overlay.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text):
    return yaml.load(text, Loader=_LOADER)


def load_yaml_all(text):
    return yaml.load_all(text, Loader=_LOADER)


sys.path.insert(0, str(Path(__file__).resolve().parent))
import contract as contract_lib  # noqa: E402
import promql_refs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        query = urllib.parse.urlencode(params)
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:  # 400/422 carry the PromQL error as JSON
            body = err.read()
            try:
                return json.loads(body)
            except ValueError:
                return {"status": "error", "error": f"HTTP {err.code}: {body[:200]!r}"}

    def query(self, expr):
        """Returns (result list, None) or (None, error message)."""
        answer = self.get("/api/v1/query", query=expr)
        if answer.get("status") != "success":
            return None, answer.get("error", "unknown error")
        data = answer["data"]
        if data["resultType"] in ("vector", "matrix"):
            return data["result"], None
        return [{"metric": {}, "value": data["result"]}], None  # scalar or string


class Check:
    """One expression to evaluate. need_data: must be non-empty when its selectors have data."""

    def __init__(self, source, expr, need_data=True, legend=None):
        self.source, self.expr, self.need_data, self.legend = source, expr, need_data, legend


# --- Collecting expressions -------------------------------------------------------------------

def grafana_substitute(expr, values, rate_interval):
    builtins = {"__rate_interval": rate_interval, "__interval": "15s", "__range": "1h",
                "__range_s": "3600", "__interval_ms": "15000"}
    merged = {**builtins, **values}

    def repl(match):
        name = match.group(1) or match.group(2)
        if name not in merged:
            raise KeyError(f"unknown Grafana variable ${name}")
        return merged[name]

    # ${name}, ${name:format} (format ignored) and $name; longest names first via the regex.
    return re.sub(r"\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, expr)


def label_values_query(query):
    """'label_values(expr, label)' -> (expr, label); 'label_values(label)' -> (None, label)."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query,
                         re.S)
    if match:
        return match.group(1), match.group(2)
    match = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query)
    if match:
        return None, match.group(1)
    raise ValueError(f"unsupported variable query {query!r}")


def dashboard_checks(prom, path, rate_interval, problems):
    """Resolves the dashboard's variables as Grafana would, then yields a Check per target."""
    dash = json.loads(Path(path).read_text())
    values, checks = {}, []
    for var in dash.get("templating", {}).get("list", []):
        if var["type"] == "datasource":
            continue
        if var["type"] != "query":
            raise ValueError(f"{path}: unsupported variable type {var['type']}")
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        selector, label = label_values_query(grafana_substitute(query, values, rate_interval))
        source = f"{Path(path).name}: variable ${var['name']}"
        checks.append(Check(source, selector))
        result, error = prom.query(selector) if selector else (None, "no selector")
        options = sorted({r["metric"][label] for r in (result or []) if label in r["metric"]})
        if var.get("includeAll") and var.get("allValue"):
            values[var["name"]] = var["allValue"]
        elif options:
            values[var["name"]] = options[0] if not var.get("multi") else "|".join(options)
        else:
            problems.append(f"{source}: no values for label {label!r} ({error or 'empty'})")
            values[var["name"]] = "no-value"

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dash.get("panels", [])):
        for target in panel.get("targets", []):
            expr = grafana_substitute(target["expr"], values, rate_interval)
            checks.append(Check(f"{Path(path).name}: {panel['title']} [{target['refId']}]",
                                expr, legend=target.get("legendFormat")))
    return checks


def rule_checks(path):
    checks = []
    doc = load_yaml(Path(path).read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                source = f"{Path(path).name}: record {rule['record']}"
                checks.append(Check(source, rule["expr"]))
                checks.append(Check(source + " (recorded series)", rule["record"]))
            else:
                checks.append(Check(f"{Path(path).name}: alert {rule['alert']}", rule["expr"],
                                    need_data=False))
    return checks


def adapter_checks(path, label_matchers, group_by):
    checks = []
    doc = load_yaml(Path(path).read_text())
    for rule in doc["rules"]:
        series = rule["seriesQuery"].split("{")[0].strip("'\" ")
        expr = (rule["metricsQuery"].replace("<<.Series>>", series)
                .replace("<<.LabelMatchers>>", label_matchers).replace("<<.GroupBy>>", group_by))
        name = rule.get("name", {}).get("as", series)
        checks.append(Check(f"{Path(path).name}: {name} (seriesQuery)", rule["seriesQuery"]))
        checks.append(Check(f"{Path(path).name}: {name}", expr))
    return checks


def keda_checks(path):
    checks = []
    for doc in load_yaml_all(Path(path).read_text()):
        if not doc or doc.get("kind") != "ScaledObject":
            continue
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                checks.append(Check(f"{Path(path).name}: {doc['metadata']['name']} "
                                    f"{trigger.get('name', '')}", trigger["metadata"]["query"]))
    return checks


# --- Evaluating -------------------------------------------------------------------------------

def evaluate(prom, check, known_names, strict):
    """Returns a problem string, or None when the check passes."""
    unknown = sorted(promql_refs.metric_names(check.expr) - known_names)
    if unknown:
        return (f"{check.source}: metrics {unknown} are neither in docs/operations.md nor "
                f"recorded by a rule\n    {check.expr}")
    result, error = prom.query(check.expr)
    if error:
        return f"{check.source}: error: {error}\n    {check.expr}"
    empty_selectors = []
    for name, matchers in promql_refs.selectors(check.expr):
        selector = f"{name or ''}{{{matchers}}}" if matchers else name
        series, err = prom.query(selector)
        if err or not series:
            empty_selectors.append(selector)
    if strict and empty_selectors:
        return f"{check.source}: no series for {empty_selectors}\n    {check.expr}"
    if not result and check.need_data and not empty_selectors:
        return f"{check.source}: empty result although every selector has data\n    {check.expr}"
    if result and check.legend:
        wanted = set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", check.legend))
        for series in result:
            missing = wanted - set(series["metric"])
            if missing:
                return (f"{check.source}: legend names labels {sorted(missing)} the result "
                        f"lacks\n    {check.expr}")
    return None


def check_targets(prom, expect_targets):
    answer = prom.get("/api/v1/targets", state="active")
    targets = answer.get("data", {}).get("activeTargets", [])
    problems = [f"target {t['scrapeUrl']} ({t['labels'].get('job')}): {t['health']} "
                f"{t.get('lastError', '')}" for t in targets if t["health"] != "up"]
    if len(targets) < expect_targets:
        problems.append(f"{len(targets)} active targets, expected at least {expect_targets}")
    return problems


def check_rules(prom, rule_files):
    expected = set()
    for path in rule_files:
        for group in load_yaml(Path(path).read_text())["groups"]:
            for rule in group["rules"]:
                expected.add(rule.get("record") or rule.get("alert"))
    loaded, problems = set(), []
    for group in prom.get("/api/v1/rules").get("data", {}).get("groups", []):
        for rule in group["rules"]:
            loaded.add(rule["name"])
            if rule.get("health") != "ok":
                problems.append(f"rule {rule['name']}: health {rule.get('health')} "
                                f"{rule.get('lastError', '')}")
    problems += [f"rule {name}: not loaded by Prometheus" for name in sorted(expected - loaded)]
    return problems


def check_metrics(prom, contract):
    """Every series name of the contract is present in Prometheus."""
    answer = prom.get("/api/v1/label/__name__/values")
    present = set(answer.get("data", []))
    return [f"contract metric {name}: no series in Prometheus"
            for name in sorted(contract.series_names() - present)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL, http://HOST:PORT")
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to keep polling until everything passes")
    parser.add_argument("--rate_interval", default="1m", help="what $__rate_interval becomes")
    parser.add_argument("--label_matchers", default='namespace="icae",pod=~".+"',
                        help="what prometheus-adapter's <<.LabelMatchers>> becomes")
    parser.add_argument("--expect_targets", type=int, default=1)
    parser.add_argument("--require_metrics", action="store_true",
                        help="also require a series for every metric in docs/operations.md")
    parser.add_argument("--strict", action="store_true",
                        help="every selector of every expression must match a series (for "
                             "scrape targets known to expose all metrics and label values)")
    args = parser.parse_args()

    repo = args.repo
    prom = Prometheus(args.prometheus)
    rule_files = sorted((repo / "deploy/prometheus/rules").glob("*.yml"))
    dashboards = sorted((repo / "deploy/grafana/dashboards").glob("*.json"))
    adapter = repo / "deploy/k8s/prometheus-adapter/config.yaml"
    keda = sorted((repo / "deploy/k8s/components/keda").glob("*scaledobject.yaml"))
    contract = contract_lib.Contract(repo / "docs/operations.md")

    static_checks = [c for f in rule_files for c in rule_checks(f)]
    static_checks += adapter_checks(adapter, args.label_matchers, "pod")
    static_checks += [c for f in keda for c in keda_checks(f)]

    known_names = contract.series_names() | {"up"}
    for path in rule_files:
        for group in load_yaml(path.read_text())["groups"]:
            known_names.update(r["record"] for r in group["rules"] if "record" in r)

    deadline = time.monotonic() + args.timeout
    while True:
        problems = check_targets(prom, args.expect_targets) + check_rules(prom, rule_files)
        if args.require_metrics:
            problems += check_metrics(prom, contract)
        checks = list(static_checks)
        for path in dashboards:
            checks += dashboard_checks(prom, path, args.rate_interval, problems)
        failed = [p for p in (evaluate(prom, c, known_names, args.strict) for c in checks) if p]
        problems += failed
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1.0)

    for problem in problems:
        print(f"FAIL {problem}")
    print(f"check_queries: {len(checks)} expressions from {len(dashboards)} dashboards, "
          f"{len(rule_files)} rule files, the adapter config and {len(keda)} KEDA objects; "
          f"{len(failed)} failed, {len(problems) - len(failed)} other problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
