#!/usr/bin/python3
"""Renders Kustomize overlays and checks the objects against docs/operations.md and each other.

  check_manifests.py deploy/k8s/overlays/cpu [more kustomization dirs...]

Checks, per rendered overlay: every $(VAR) in container args resolves (env or an envFrom ConfigMap
present in the render); every flag is in the contract; --listen / --metrics_listen ports equal the
named container ports and the contract's; startup, readiness and liveness probes are gRPC probes on
the gRPC port (readiness on the service's health name); terminationGracePeriodSeconds covers the
preStop sleep plus --drain_seconds; every container has cpu and memory requests and limits
(nvidia.com/gpu when --device=cuda); images carry a tag that is not `latest`; labels select: every
Deployment's selector matches its pods, every Service, PodDisruptionBudget, ServiceMonitor and
PodMonitor selects exactly one workload (Deployment or StatefulSet), named ports exist, and no
Deployment is scraped twice; StatefulSets (the slot store's Redis) select their pods, run as non-root,
have a headless governing Service, readiness probes, requests, limits and pinned images; a
--slot_store URL is redis://, and a host without dots names a Service in the render with that port;
autoscalers target existing Deployments, HPA metrics are served by the prometheus-adapter rules, and
each Deployment has exactly one autoscaler; the PrometheusRule equals deploy/prometheus/rules.
Prints one line per problem; exit status 1 when there is any.
"""

import json
import math
import re
import subprocess
import sys
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

REPO = Path(__file__).resolve().parents[2]
_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20,
          "Gi": 2**30, "Ti": 2**40}


def quantity(value):
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"bad quantity {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def render(directory):
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{out.stderr}")
    return [doc for doc in load_yaml_all(out.stdout) if doc]


def selects(selector, labels):
    """matchLabels-style selector (a dict, or {matchLabels: ...}) against a label dict."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        if selector.get("matchExpressions"):
            raise ValueError("matchExpressions not supported by this check")
        selector = selector.get("matchLabels", {})
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class Checker:
    def __init__(self, objects, contract, adapter_metrics, rule_groups):
        self.objs, self.contract = objects, contract
        self.adapter_metrics, self.rule_groups = adapter_metrics, rule_groups
        self.problems = []

    def fail(self, obj, message):
        self.problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {message}")

    def of_kind(self, kind):
        return [o for o in self.objs if o["kind"] == kind]

    def find(self, kind, name):
        return next((o for o in self.of_kind(kind) if o["metadata"]["name"] == name), None)

    def run(self):
        namespaces = [o["metadata"]["name"] for o in self.of_kind("Namespace")]
        for obj in self.objs:
            if obj["kind"] != "Namespace" and obj["metadata"].get("namespace") not in namespaces:
                self.fail(obj, f"namespace {obj['metadata'].get('namespace')!r} is not one the "
                          f"overlay creates ({namespaces})")
        for dep in self.of_kind("Deployment"):
            self.check_deployment(dep)
        for sts in self.of_kind("StatefulSet"):
            self.check_statefulset(sts)
        self.check_services()
        self.check_selecting("PodDisruptionBudget", lambda o: o["spec"]["selector"])
        self.check_autoscalers()
        self.check_monitors()
        self.check_rules()
        return self.problems

    # --- workloads ---------------------------------------------------------------------------

    def resolve_env(self, dep, container):
        env = {}
        for source in container.get("envFrom", []):
            name = source.get("configMapRef", {}).get("name")
            cm = self.find("ConfigMap", name)
            if cm is None:
                self.fail(dep, f"envFrom ConfigMap {name} is not in the render")
            else:
                env.update(cm.get("data", {}))
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            field = var.get("valueFrom", {}).get("resourceFieldRef")
            if field:
                if field.get("containerName") not in (None, container["name"]):
                    self.fail(dep, f"env {var['name']} reads another container's resources")
                kind, res = field["resource"].split(".")
                value = container.get("resources", {}).get(kind, {}).get(res)
                if value is None:
                    self.fail(dep, f"env {var['name']} reads unset {field['resource']}")
                    continue
                env[var["name"]] = str(math.ceil(quantity(value) / quantity(field.get("divisor",
                                                                                       "1"))))
                continue
            ref = var.get("valueFrom", {}).get("configMapKeyRef")
            cm = self.find("ConfigMap", ref["name"]) if ref else None
            if cm is None or ref["key"] not in cm.get("data", {}):
                self.fail(dep, f"env {var['name']} does not resolve")
            else:
                env[var["name"]] = cm["data"][ref["key"]]
        return env

    def check_deployment(self, dep):
        spec, pod = dep["spec"], dep["spec"]["template"]
        labels = pod["metadata"].get("labels", {})
        if not selects(spec["selector"], labels):
            self.fail(dep, "selector does not match the pod template labels")
        svc = labels.get("app.kubernetes.io/component")
        if svc not in contract_lib.SERVICES:
            self.fail(dep, f"pod label app.kubernetes.io/component={svc!r} names no service")
            return
        podspec = pod["spec"]
        if not podspec.get("securityContext", {}).get("runAsNonRoot"):
            self.fail(dep, "pod securityContext.runAsNonRoot is not true")
        account = podspec.get("serviceAccountName")
        if account and self.find("ServiceAccount", account) is None:
            self.fail(dep, f"ServiceAccount {account} is not in the render")
        for volume in podspec.get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and self.find("PersistentVolumeClaim", claim) is None:
                self.fail(dep, f"PersistentVolumeClaim {claim} is not in the render")
        for container in podspec.get("initContainers", []) + podspec["containers"]:
            self.check_resources(dep, container)
            self.check_image(dep, container)
        main = next((c for c in podspec["containers"] if c["name"] == svc), None)
        if main is None:
            self.fail(dep, f"no container named {svc}")
            return
        self.check_server_container(dep, podspec, main, svc, pod["metadata"])

    def check_statefulset(self, sts):
        """A supporting workload (the slot store's Redis): not a server of the contract."""
        spec, pod = sts["spec"], sts["spec"]["template"]
        labels = pod["metadata"].get("labels", {})
        if not selects(spec["selector"], labels):
            self.fail(sts, "selector does not match the pod template labels")
        podspec = pod["spec"]
        if not podspec.get("securityContext", {}).get("runAsNonRoot"):
            self.fail(sts, "pod securityContext.runAsNonRoot is not true")
        governing = self.find("Service", spec.get("serviceName"))
        if governing is None:
            self.fail(sts, f"serviceName {spec.get('serviceName')} is not a Service in the render")
        elif (governing["spec"].get("clusterIP") != "None"
              or not selects(governing["spec"].get("selector", {}), labels)):
            self.fail(sts, f"serviceName {spec.get('serviceName')} is not a headless Service "
                      f"selecting its pods")
        for container in podspec.get("initContainers", []) + podspec["containers"]:
            self.check_resources(sts, container)
            self.check_image(sts, container)
        for container in podspec["containers"]:
            if not container.get("readinessProbe"):
                self.fail(sts, f"container {container['name']} has no readinessProbe")

    def check_slot_store(self, dep, url):
        """--slot_store: a redis:// URL (rediss:// is refused at start); an in-namespace host must
        be a Service of the render with that port."""
        match = re.fullmatch(r"redis://(?:.*@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::(\d+))?(?:/\d*)?",
                             url)
        if not match:
            shown = re.sub(r"//.*@", "//***@", url)  # no password in the report
            self.fail(dep, f"--slot_store={shown} is not redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]")
            return
        host, port = match.group(1), int(match.group(2) or 6379)
        if "." in host or host.startswith("[") or host == "localhost":
            return  # another namespace, outside the cluster, or a local proxy
        service = self.find("Service", host)
        if service is None:
            self.fail(dep, f"--slot_store host {host} is not a Service in the render")
        elif port not in [p["port"] for p in service["spec"]["ports"]]:
            self.fail(dep, f"--slot_store port {port} is not a port of Service {host}")

    def check_resources(self, dep, container):
        res = container.get("resources", {})
        for kind in ("requests", "limits"):
            for name in ("cpu", "memory"):
                if name not in res.get(kind, {}):
                    self.fail(dep, f"container {container['name']} has no {kind}.{name}")
        for name, limit in res.get("limits", {}).items():
            request = res.get("requests", {}).get(name)
            if request is not None and quantity(request) > quantity(limit):
                self.fail(dep, f"container {container['name']}: {name} request > limit")

    def check_image(self, dep, container):
        image = container.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if not tag or tag == "latest":
            self.fail(dep, f"container {container['name']}: image {image!r} needs a pinned tag")

    def check_server_container(self, dep, podspec, container, svc, pod_meta):
        env = self.resolve_env(dep, container)
        flags = {}
        for arg in container.get("args", []) + container.get("command", [])[1:]:
            unresolved = [v for v in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg)
                          if v not in env]
            if unresolved:
                self.fail(dep, f"arg {arg!r}: {unresolved} not set by env or envFrom")
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), ""),
                           arg)
            match = re.fullmatch(r"--([a-z_]+)=(.*)", value)
            if not match:
                self.fail(dep, f"arg {arg!r} is not --flag=value")
                continue
            flags[match.group(1)] = match.group(2)
        unknown = sorted(set(flags) - self.contract.flags(svc))
        if unknown:
            self.fail(dep, f"flags {unknown} are not in docs/operations.md for the {svc}")
        if flags.get("slot_store"):
            self.check_slot_store(dep, flags["slot_store"])
        for required in ("model", "adapter", "listen", "metrics_listen", "drain_seconds"):
            if required not in flags:
                self.fail(dep, f"no --{required}")
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        want = self.contract.ports[svc]
        for flag, port_name in (("listen", "grpc"), ("metrics_listen", "metrics")):
            port = int(flags.get(flag, ":0").rsplit(":", 1)[1] or 0)
            if ports.get(port_name) != port:
                self.fail(dep, f"--{flag} port {port} != containerPort {port_name} "
                          f"{ports.get(port_name)}")
            if port != want[port_name]:
                self.fail(dep, f"--{flag} port {port} is not the contract's {want[port_name]}")
        annotation = pod_meta.get("annotations", {}).get("prometheus.io/port")
        if annotation is not None and int(annotation) != ports.get("metrics"):
            self.fail(dep, f"prometheus.io/port {annotation} != metrics port")
        health = self.contract.health_services[svc]
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(probe_name)
            if not probe or "grpc" not in probe:
                self.fail(dep, f"{probe_name} is not a gRPC probe")
                continue
            if probe["grpc"].get("port") != ports.get("grpc"):
                self.fail(dep, f"{probe_name} probes port {probe['grpc'].get('port')}, not the "
                          f"gRPC port {ports.get('grpc')}")
            service = probe["grpc"].get("service", "")
            if probe_name == "readinessProbe" and service != health:
                self.fail(dep, f"readinessProbe asks for {service!r}, not {health!r}")
            if service not in ("", health):
                self.fail(dep, f"{probe_name} asks for unknown health name {service!r}")
        sleep = 0
        command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        if command and Path(command[0]).name == "sleep":
            sleep = float(command[1])
        elif "sleep" in container.get("lifecycle", {}).get("preStop", {}):
            sleep = float(container["lifecycle"]["preStop"]["sleep"]["seconds"])
        else:
            self.fail(dep, "no preStop sleep (endpoints must drop the pod before the drain)")
        drain = float(flags.get("drain_seconds", 30))
        grace = podspec.get("terminationGracePeriodSeconds", 30)
        if grace < sleep + drain:
            self.fail(dep, f"terminationGracePeriodSeconds {grace} < preStop {sleep:g} s + "
                      f"--drain_seconds {drain:g}")
        gpu = container["resources"].get("limits", {}).get("nvidia.com/gpu")
        device = flags.get("device", "cpu")
        if device.startswith("cuda") and not gpu:
            self.fail(dep, "--device=cuda without an nvidia.com/gpu limit")
        if not device.startswith("cuda") and gpu:
            self.fail(dep, "nvidia.com/gpu limit with --device=cpu")
        tag = container["image"].rpartition(":")[2]
        if not tag.endswith("-cuda" if device.startswith("cuda") else "-cpu"):
            self.fail(dep, f"image tag {tag} does not match --device={device}")
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        model_mount = next((p for p in mounts if flags.get("model", "").startswith(p + "/")),
                           None)
        if model_mount is None:
            self.fail(dep, f"--model={flags.get('model')} is not under a volume mount")
        elif not mounts[model_mount].get("readOnly"):
            self.fail(dep, f"model volume {model_mount} is not mounted read-only")

    # --- selection ---------------------------------------------------------------------------

    def pods_selected(self, selector):
        """The workloads (Deployments, StatefulSets) whose pods `selector` selects."""
        return [d for d in self.of_kind("Deployment") + self.of_kind("StatefulSet")
                if selects(selector, d["spec"]["template"]["metadata"].get("labels", {}))]

    def check_selecting(self, kind, get_selector):
        for obj in self.of_kind(kind):
            deps = self.pods_selected(get_selector(obj))
            if len(deps) != 1:
                self.fail(obj, f"selects {len(deps)} Deployments/StatefulSets, not 1")

    def check_services(self):
        by_dep = {}
        for svc in self.of_kind("Service"):
            deps = self.pods_selected(svc["spec"].get("selector", {}))
            if len(deps) != 1:
                self.fail(svc, f"selects {len(deps)} Deployments/StatefulSets, not 1")
                continue
            dep = deps[0]
            ports = {p.get("name"): p["containerPort"] for c in
                     dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                number = ports.get(target) if isinstance(target, str) else target
                if number not in ports.values():
                    self.fail(svc, f"port {port.get('name')} targets {target!r}, no such "
                              f"container port")
                elif port.get("name") in ports and ports[port["name"]] != number:
                    self.fail(svc, f"port {port['name']} targets another container port")
            headless = svc["spec"].get("clusterIP") == "None"
            by_dep.setdefault(dep["metadata"]["name"], set()).add("headless" if headless
                                                                  else "clusterip")
        for dep in self.of_kind("Deployment"):
            kinds = by_dep.get(dep["metadata"]["name"], set())
            if kinds != {"headless", "clusterip"}:
                self.fail(dep, f"needs a ClusterIP and a headless Service, has {sorted(kinds)}")

    def check_autoscalers(self):
        targets = {}
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            ref = hpa["spec"]["scaleTargetRef"]
            targets.setdefault(ref["name"], []).append(hpa)
            if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
                self.fail(hpa, "minReplicas > maxReplicas")
            for metric in hpa["spec"].get("metrics", []):
                if metric["type"] == "Pods":
                    name = metric["pods"]["metric"]["name"]
                    if name not in self.adapter_metrics:
                        self.fail(hpa, f"metric {name} is not served by the prometheus-adapter "
                                  f"rules {sorted(self.adapter_metrics)}")
                    if not name.startswith(ref["name"].replace("-", "_") + "_"):
                        self.fail(hpa, f"metric {name} is not one of {ref['name']}'s")
        for obj in self.of_kind("ScaledObject"):
            ref = obj["spec"]["scaleTargetRef"]
            targets.setdefault(ref["name"], []).append(obj)
            namespace = obj["metadata"]["namespace"]
            for trigger in obj["spec"]["triggers"]:
                query = trigger["metadata"].get("query", "")
                if f'namespace="{namespace}"' not in query:
                    self.fail(obj, f"trigger {trigger.get('name')} does not select "
                              f'namespace="{namespace}"')
                if ref["name"].replace("-", "_") + "_" not in query:
                    self.fail(obj, f"trigger {trigger.get('name')} reads no {ref['name']} metric")
        for name, scalers in targets.items():
            dep = self.find("Deployment", name)
            if dep is None:
                self.fail(scalers[0], f"scales Deployment {name}, which is not in the render")
            elif len(scalers) > 1:
                self.fail(dep, "has more than one autoscaler (HPA and KEDA together?)")
            elif "replicas" in dep["spec"]:
                self.fail(dep, "sets spec.replicas although an autoscaler owns it")
        for dep in self.of_kind("Deployment"):
            if dep["metadata"]["name"] not in targets:
                self.fail(dep, "has no autoscaler")

    def check_monitors(self):
        scraped = {}
        for mon in self.of_kind("ServiceMonitor"):
            services = [s for s in self.of_kind("Service")
                        if selects(mon["spec"]["selector"], s["metadata"].get("labels", {}))]
            if len(services) != 1:
                self.fail(mon, f"selects {len(services)} Services, not 1")
                continue
            service = services[0]
            names = {p.get("name") for p in service["spec"]["ports"]}
            for endpoint in mon["spec"]["endpoints"]:
                if endpoint.get("port") not in names:
                    self.fail(mon, f"endpoint port {endpoint.get('port')} not on "
                              f"{service['metadata']['name']}")
            job = service["metadata"].get("labels", {}).get(mon["spec"].get("jobLabel"))
            for dep in self.pods_selected(service["spec"]["selector"]):
                scraped.setdefault(dep["metadata"]["name"], []).append(mon)
                self.check_job(mon, dep, job)
        for mon in self.of_kind("PodMonitor"):
            deps = self.pods_selected(mon["spec"]["selector"])
            if len(deps) != 1:
                self.fail(mon, f"selects {len(deps)} Deployments/StatefulSets, not 1")
                continue
            dep = deps[0]
            names = {p.get("name") for c in dep["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])}
            for endpoint in mon["spec"]["podMetricsEndpoints"]:
                if endpoint.get("port") not in names:
                    self.fail(mon, f"endpoint port {endpoint.get('port')} not on the pods")
            labels = dep["spec"]["template"]["metadata"].get("labels", {})
            scraped.setdefault(dep["metadata"]["name"], []).append(mon)
            self.check_job(mon, dep, labels.get(mon["spec"].get("jobLabel")))
        for dep in self.of_kind("Deployment"):
            monitors = scraped.get(dep["metadata"]["name"], [])
            if len(monitors) != 1:
                self.fail(dep, f"scraped by {len(monitors)} monitors, not 1")

    def check_job(self, mon, dep, job):
        svc = dep["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        if job != f"icae-{svc}":
            self.fail(mon, f"job label would be {job!r}; rules and dashboards expect icae-{svc}")

    def check_rules(self):
        rendered = {}
        for rule in self.of_kind("PrometheusRule"):
            rendered[rule["metadata"]["name"]] = rule["spec"]["groups"]
        if rendered != self.rule_groups:
            self.problems.append("PrometheusRule objects differ from deploy/prometheus/rules "
                                 "(run deploy/tools/gen_prometheusrule.py)")


def load_expectations(repo):
    contract = contract_lib.Contract(repo / "docs/operations.md")
    adapter = load_yaml((repo / "deploy/k8s/prometheus-adapter/config.yaml").read_text())
    adapter_metrics = {r["name"]["as"] for r in adapter["rules"]}
    rule_groups = {}
    for path in sorted((repo / "deploy/prometheus/rules").glob("*.rules.yml")):
        rule_groups[path.name[: -len(".rules.yml")]] = load_yaml(path.read_text())["groups"]
    return contract, adapter_metrics, rule_groups


def check_overlay(directory, repo=REPO, objects=None):
    """Problems of a kustomization directory (rendered here unless `objects` are given)."""
    contract, adapter_metrics, rule_groups = load_expectations(repo)
    objects = render(directory) if objects is None else objects
    problems = Checker(objects, contract, adapter_metrics, rule_groups).run()
    dashboards = {p.name: json.loads(p.read_text())
                  for p in (repo / "deploy/grafana/dashboards").glob("*.json")}
    shipped = {}
    for cm in objects:
        if cm["kind"] == "ConfigMap" and cm["metadata"].get("labels", {}).get("grafana_dashboard"):
            shipped.update({k: json.loads(v) for k, v in cm["data"].items()})
    if shipped != dashboards:
        problems.append(f"dashboard ConfigMaps {sorted(shipped)} differ from "
                        f"deploy/grafana/dashboards {sorted(dashboards)}")
    return problems


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for directory in sys.argv[1:]:
        problems = check_overlay(Path(directory))
        for problem in problems:
            print(f"FAIL {directory}: {problem}")
        print(f"{directory}: {'ok' if not problems else f'{len(problems)} problems'}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
