#!/usr/bin/python3
"""Renders every Kustomize overlay with `kubectl kustomize` and checks the objects
(deploy/tools/check_manifests.py); then breaks an overlay in known ways to show each check fails.

Fails (exit 1, with what to install) when kubectl is missing or its Kustomize is older than v4
(components and `labels` need v4+; Debian's own kubernetes-client 1.20 ships v2, so a machine
without a newer kubectl cannot run this check: never a silent skip).
"""

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy/tools"))
import check_manifests  # noqa: E402

K8S = REPO / "deploy/k8s"


def kustomize_major():
    try:
        out = subprocess.run(["kubectl", "version", "--client", "-o", "json"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.match(r"v?(\d+)", json.loads(out).get("kustomizeVersion", ""))
    return int(match.group(1)) if match else None


@functools.lru_cache(maxsize=None)
def _render(directory):
    return json.dumps(check_manifests.render(directory))


def objects(directory):
    """Rendered objects (a fresh copy; each directory is rendered once)."""
    return json.loads(_render(Path(directory)))


class RenderTest(unittest.TestCase):
    def test_every_overlay_passes(self):
        overlays = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
        self.assertEqual([p.name for p in overlays], ["cpu", "gpu", "gpu-keda"])
        for overlay in overlays:
            with self.subTest(overlay=overlay.name):
                problems = check_manifests.check_overlay(overlay, objects=objects(overlay))
                self.assertEqual(problems, [])

    def test_gpu_overlays_request_gpus_and_cpu_does_not(self):
        for name, want_gpu in (("cpu", False), ("gpu", True), ("gpu-keda", True)):
            for dep in (o for o in objects(K8S / "overlays" / name) if o["kind"] == "Deployment"):
                container = dep["spec"]["template"]["spec"]["containers"][0]
                limits = container["resources"]["limits"]
                self.assertEqual("nvidia.com/gpu" in limits, want_gpu, (name, limits))

    def test_cpu_overlay_has_the_slot_store(self):
        objs = objects(K8S / "overlays" / "cpu")
        redis = [o for o in objs if o["kind"] == "StatefulSet"]
        self.assertEqual([o["metadata"]["name"] for o in redis], ["icae-redis"])
        args = redis[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertEqual(" ".join(a or "''" for a in args),
                         "--maxmemory 2gb --maxmemory-policy allkeys-lru --save '' "
                         "--appendonly no --protected-mode no")
        for svc in ("encoder", "decoder"):
            dep = next(o for o in objs if o["kind"] == "Deployment"
                       and o["metadata"]["name"] == f"icae-{svc}")
            container = dep["spec"]["template"]["spec"]["containers"][0]
            self.assertIn("--slot_store=$(ICAE_SLOT_STORE)", container["args"])
            flags = next(o for o in objs if o["kind"] == "ConfigMap"
                         and o["metadata"]["name"].startswith(f"icae-{svc}-flags"))
            self.assertEqual(flags["data"]["ICAE_SLOT_STORE"], "redis://icae-redis:6379")
        for name in ("gpu", "gpu-keda"):  # not enabled there
            self.assertNotIn("StatefulSet", {o["kind"] for o in objects(K8S / "overlays" / name)})

    def test_autoscaling_alternatives(self):
        kinds = {name: {o["kind"] for o in objects(K8S / "overlays" / name)}
                 for name in ("gpu", "gpu-keda")}
        self.assertIn("HorizontalPodAutoscaler", kinds["gpu"])
        self.assertIn("ServiceMonitor", kinds["gpu"])
        self.assertIn("ScaledObject", kinds["gpu-keda"])
        self.assertIn("PodMonitor", kinds["gpu-keda"])
        self.assertNotIn("HorizontalPodAutoscaler", kinds["gpu-keda"])

    def test_standalone_kustomizations_render(self):
        adapter = objects(K8S / "prometheus-adapter")
        self.assertEqual([o["kind"] for o in adapter], ["ConfigMap"])
        self.assertEqual(adapter[0]["metadata"]["namespace"], "monitoring")
        grafana = objects(REPO / "deploy/grafana")
        self.assertEqual(len(grafana), 2)
        base = objects(K8S / "base")
        self.assertEqual(sum(o["kind"] == "Deployment" for o in base), 2)


# (description, patches for a kustomization on top of overlays/cpu, text the checker must report)
ENCODER = {"kind": "Deployment", "name": "icae-encoder"}
CONTAINER = "/spec/template/spec/containers/0"
MUTATIONS = [
    ("readiness probe on the metrics port",
     [(ENCODER, [{"op": "replace", "path": CONTAINER + "/readinessProbe/grpc/port",
                  "value": 9091}])],
     "readinessProbe probes port 9091, not the gRPC port 50051"),
    ("readiness probe on the wrong health name",
     [(ENCODER, [{"op": "replace", "path": CONTAINER + "/readinessProbe/grpc/service",
                  "value": "icae.v1.Decoder"}])],
     "readinessProbe asks for 'icae.v1.Decoder'"),
    ("--listen disagrees with the container port",
     [(ENCODER, [{"op": "replace", "path": CONTAINER + "/args/2",
                  "value": "--listen=0.0.0.0:50099"}])],
     "--listen port 50099 != containerPort grpc 50051"),
    ("a flag the contract does not know",
     [(ENCODER, [{"op": "add", "path": CONTAINER + "/args/-", "value": "--max_batch=4"}])],
     "flags ['max_batch'] are not in docs/operations.md"),
    ("an unresolved $(VAR)",
     [(ENCODER, [{"op": "add", "path": CONTAINER + "/args/-",
                  "value": "--max_spans=$(ICAE_NOPE)"}])],
     "['ICAE_NOPE'] not set by env or envFrom"),
    ("no limits",
     [(ENCODER, [{"op": "remove", "path": CONTAINER + "/resources/limits"}])],
     "has no limits.cpu"),
    ("grace period shorter than preStop + drain",
     [(ENCODER, [{"op": "replace", "path": "/spec/template/spec/terminationGracePeriodSeconds",
                  "value": 20}])],
     "terminationGracePeriodSeconds 20 < preStop 5 s + --drain_seconds 30"),
    ("Service selecting nothing",
     [({"kind": "Service", "name": "icae-encoder"},
       [{"op": "replace", "path": "/spec/selector/app.kubernetes.io~1name",
         "value": "icae-encodr"}])],
     "Service/icae-encoder: selects 0 Deployments"),
    ("ServiceMonitor on a port the Service lacks",
     [({"kind": "ServiceMonitor", "name": "icae-encoder"},
       [{"op": "replace", "path": "/spec/endpoints/0/port", "value": "prom"}])],
     "endpoint port prom not on icae-encoder"),
    ("HPA on a metric no adapter rule serves",
     [({"kind": "HorizontalPodAutoscaler", "name": "icae-encoder"},
       [{"op": "replace", "path": "/spec/metrics/0/pods/metric/name",
         "value": "icae_encoder_queue_depth"}])],
     "metric icae_encoder_queue_depth is not served"),
    ("replicas fighting the autoscaler",
     [(ENCODER, [{"op": "add", "path": "/spec/replicas", "value": 3}])],
     "sets spec.replicas although an autoscaler owns it"),
    ("pod labels no longer selected",
     [(ENCODER, [{"op": "replace",
                  "path": "/spec/template/metadata/labels/app.kubernetes.io~1name",
                  "value": "other"}])],
     "Deployment/icae-encoder: selector does not match the pod template labels"),
    ("GPU device without a GPU",
     [({"kind": "ConfigMap", "name": "icae-encoder-flags"},
       [{"op": "replace", "path": "/data/ICAE_DEVICE", "value": "cuda"}])],
     "--device=cuda without an nvidia.com/gpu limit"),
    # The slot store (components/slot-store, in overlays/cpu).
    ("--slot_store naming no Service",
     [({"kind": "ConfigMap", "name": "icae-decoder-flags"},
       [{"op": "replace", "path": "/data/ICAE_SLOT_STORE", "value": "redis://icae-cache:6379"}])],
     "Deployment/icae-decoder: --slot_store host icae-cache is not a Service in the render"),
    ("--slot_store on a port the Service lacks",
     [({"kind": "ConfigMap", "name": "icae-encoder-flags"},
       [{"op": "replace", "path": "/data/ICAE_SLOT_STORE", "value": "redis://icae-redis:6380"}])],
     "--slot_store port 6380 is not a port of Service icae-redis"),
    ("rediss:// (refused at start)",
     [({"kind": "ConfigMap", "name": "icae-encoder-flags"},
       [{"op": "replace", "path": "/data/ICAE_SLOT_STORE", "value": "rediss://icae-redis:6379"}])],
     "--slot_store=rediss://icae-redis:6379 is not redis://"),
    ("--slot_store without its ConfigMap value",
     [({"kind": "ConfigMap", "name": "icae-encoder-flags"},
       [{"op": "remove", "path": "/data/ICAE_SLOT_STORE"}])],
     "['ICAE_SLOT_STORE'] not set by env or envFrom"),
    ("Redis Service selecting nothing",
     [({"kind": "Service", "name": "icae-redis"},
       [{"op": "replace", "path": "/spec/selector/app.kubernetes.io~1name",
         "value": "redis"}])],
     "Service/icae-redis: selects 0 Deployments"),
    ("Redis without limits",
     [({"kind": "StatefulSet", "name": "icae-redis"},
       [{"op": "remove", "path": CONTAINER + "/resources/limits"}])],
     "StatefulSet/icae-redis: container redis has no limits.cpu"),
    ("Redis without a readiness probe",
     [({"kind": "StatefulSet", "name": "icae-redis"},
       [{"op": "remove", "path": CONTAINER + "/readinessProbe"}])],
     "StatefulSet/icae-redis: container redis has no readinessProbe"),
    ("Redis on an unpinned image",
     [({"kind": "StatefulSet", "name": "icae-redis"},
       [{"op": "replace", "path": CONTAINER + "/image", "value": "redis:latest"}])],
     "container redis: image 'redis:latest' needs a pinned tag"),
    ("StatefulSet whose governing Service is not headless",
     [({"kind": "StatefulSet", "name": "icae-redis"},
       [{"op": "replace", "path": "/spec/serviceName", "value": "icae-redis"}])],
     "serviceName icae-redis is not a headless Service selecting its pods"),
]


class CheckerCatchesMistakesTest(unittest.TestCase):
    def test_mutations(self):
        for description, patches, expected in MUTATIONS:
            with self.subTest(description), tempfile.TemporaryDirectory() as tmp:
                base = os.path.relpath(K8S / "overlays" / "cpu", tmp)
                lines = ["resources:", f"- {base}", "patches:"]
                for target, ops in patches:
                    lines.append(f"- target: {json.dumps(target)}")
                    lines.append(f"  patch: {json.dumps(json.dumps(ops))}")
                Path(tmp, "kustomization.yaml").write_text("\n".join(lines) + "\n")
                problems = check_manifests.check_overlay(Path(tmp))
                self.assertTrue(any(expected in p for p in problems),
                                f"{description}: expected {expected!r} in {problems}")


if __name__ == "__main__":
    major = kustomize_major()
    if major is None or major < 4:
        print(f"FAIL: needs kubectl with Kustomize v4 or newer (found {major}); tools/setup.sh "
              "installs Debian's kubectl only when none is present, and its Kustomize v2 is too old",
              file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
