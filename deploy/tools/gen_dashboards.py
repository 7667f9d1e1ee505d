#!/usr/bin/python3
"""Writes the Grafana dashboards deploy/grafana/dashboards/icae-{encoder,decoder}.json.

The dashboards are generated so every panel has the same variables, units and layout; edit this
file, run it, and commit both. `--check` exits 1 when the committed JSON differs from what this
script writes (a test runs it). Metric names: docs/operations.md. Every expression is evaluated
against a real Prometheus by deploy/tools/check_queries.py.
"""

import argparse
import json
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SERVER_ERROR_CODES = ("UNKNOWN|INTERNAL|UNAVAILABLE|DATA_LOSS|UNIMPLEMENTED|DEADLINE_EXCEEDED|"
                      "RESOURCE_EXHAUSTED")
SEL = 'namespace=~"$namespace", job=~"$job", instance=~"$instance"'
RI = "$__rate_interval"


def rate(series, extra="", by=None):
    matchers = SEL + (", " + extra if extra else "")
    inner = f"rate({series}{{{matchers}}}[{RI}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantile(q, histogram, extra="", by="le"):
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', extra, by)})"


def mean(histogram, extra=""):
    return f"{rate(histogram + '_sum', extra)} / {rate(histogram + '_count', extra)}"


def quantiles(histogram, qs=(0.5, 0.9, 0.99), extra=""):
    return [(quantile(q, histogram, extra), f"p{round(q * 100)}") for q in qs]


class Dashboard:
    """Lays panels out left to right in rows of 24 grid units."""

    def __init__(self, uid, title, service, description):
        self.uid, self.title, self.service, self.description = uid, title, service, description
        self.panels, self.x, self.y, self.row_height, self.next_id = [], 0, 0, 0, 1

    def row(self, title):
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "id": self._id(),
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_height
            self.x, self.row_height = 0, 0

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def _place(self, w, h):
        if self.x + w > 24:
            self._newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos

    @staticmethod
    def _targets(targets, instant=False, fmt="time_series"):
        out = []
        for i, (expr, legend) in enumerate(targets):
            out.append({"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                        "legendFormat": legend, "range": not instant, "instant": instant,
                        "format": fmt})
        return out

    def timeseries(self, title, description, unit, targets, w=12, h=8, stack=False):
        self.panels.append({
            "type": "timeseries", "title": title, "description": description, "id": self._id(),
            "datasource": DS, "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": {
                "unit": unit, "min": 0,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                           "showPoints": "never", "spanNulls": True,
                           "stacking": {"mode": "normal" if stack else "none", "group": "A"}}},
                "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom",
                                   "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": self._targets(targets)})

    def stat(self, title, description, unit, targets, w=6, h=4):
        self.panels.append({
            "type": "stat", "title": title, "description": description, "id": self._id(),
            "datasource": DS, "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"},
            "targets": self._targets(targets)})

    def table(self, title, description, expr, w=24, h=6):
        self.panels.append({
            "type": "table", "title": title, "description": description, "id": self._id(),
            "datasource": DS, "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": {}, "overrides": []}, "options": {"showHeader": True},
            "transformations": [{"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value": True, "__name__": True}}}],
            "targets": self._targets([(expr, "")], instant=True, fmt="table")})

    def to_json(self):
        info = f"icae_{self.service}_info"

        def query_var(name, label, query, include_all, all_value, multi):
            return {"name": name, "label": label, "type": "query", "datasource": DS,
                    "definition": query, "query": {"query": query, "refId": name},
                    "refresh": 2, "sort": 1, "includeAll": include_all, "allValue": all_value,
                    "multi": multi, "current": {}, "options": [], "hide": 0}

        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["icae", self.service], "timezone": "browser", "editable": True,
            "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "templating": {"list": [
                {"name": "datasource", "label": "Data source", "type": "datasource",
                 "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "options": []},
                # The local runner and Kubernetes both label targets with namespace.
                query_var("namespace", "Namespace", f"label_values({info}, namespace)",
                          True, ".*", False),
                query_var("job", "Job", f'label_values({info}{{namespace=~"$namespace"}}, job)',
                          False, None, False),
                query_var("instance", "Replica",
                          f'label_values({info}{{namespace=~"$namespace", job=~"$job"}}, instance)',
                          True, ".+", True),
            ]},
            "panels": self.panels,
        }


def traffic_rows(d, svc):
    req = f"icae_{svc}_requests_total"
    server_errors = f'code=~"{SERVER_ERROR_CODES}"'
    d.row("Traffic")
    d.timeseries("Requests/s by method and code",
                 "RPCs handled per second, by method and gRPC status code.", "reqps",
                 [(rate(req, by="method, code"), "{{method}} {{code}}")], w=12)
    d.timeseries("Server error ratio",
                 "Share of calls that ended with a server-side code (" + SERVER_ERROR_CODES +
                 "). Caller errors such as INVALID_ARGUMENT are not counted.", "percentunit",
                 [(f"({rate(req, server_errors)} or vector(0)) / {rate(req)}", "server errors")],
                 w=6)
    d.timeseries("Requests/s by replica",
                 "How evenly clients spread calls over replicas (round_robin should be flat).",
                 "reqps", [(rate(req, by="instance"), "{{instance}}")], w=6)
    d.timeseries("In-flight requests", "RPCs in progress, per replica.", "short",
                 [(f"sum by (instance) (icae_{svc}_inflight_requests{{{SEL}}})", "{{instance}}")],
                 w=12)
    d.stat("Replicas up", "Targets Prometheus scrapes successfully / all targets.", "short",
           [('sum(up{namespace=~"$namespace", job=~"$job"})', "up"),
            ('count(up{namespace=~"$namespace", job=~"$job"})', "targets")], w=6)
    d.stat("Calls/s", "All RPCs per second.", "reqps", [(rate(req), "calls/s")], w=6)


def info_row(d, svc):
    d.row("Loaded model")
    d.table("Model and build per replica",
            "What each replica has loaded (icae_<svc>_info labels). encoder_id must agree "
            "between the encoder and decoder fleets.", f"icae_{svc}_info{{{SEL}}}")


def encoder_dashboard():
    d = Dashboard("icae-encoder", "ICAE encoder", "encoder",
                  "Compression service: throughput, latency, batching, queue, slot cache and "
                  "shared slot store.")
    traffic_rows(d, "encoder")

    d.row("Throughput")
    d.timeseries("Tokens/s compressed and slots/s produced",
                 "Cache hits included.", "short",
                 [(rate("icae_encoder_tokens_total"), "tokens/s"),
                  (rate("icae_encoder_slots_total"), "slots/s")], w=8)
    d.timeseries("Spans/s and segments/s",
                 "Spans compressed (cache hits included) and segments run through the model.",
                 "short",
                 [(rate("icae_encoder_spans_total"), "spans/s"),
                  (rate("icae_encoder_segments_total"), "segments/s")], w=8)
    d.timeseries("Compression ratio", "Tokens in per slot out (4 for ICAE's default geometry).",
                 "short",
                 [(f'{rate("icae_encoder_tokens_total")} / {rate("icae_encoder_slots_total")}',
                   "tokens per slot")], w=8)

    d.row("Latency")
    d.timeseries("Compress latency", "RPC wall time of Compress.", "s",
                 quantiles("icae_encoder_request_duration_seconds", extra='method="Compress"'),
                 w=12)
    d.timeseries("p99 latency by method", "RPC wall time, 99th percentile, per method.", "s",
                 [(quantile(0.99, "icae_encoder_request_duration_seconds", by="method, le"),
                   "{{method}}")], w=12)
    d.timeseries("Queue wait per segment", "Time a segment waited for a place in a batch.", "s",
                 quantiles("icae_encoder_queue_duration_seconds", (0.5, 0.99)), w=12)
    d.timeseries("Model time per batch", "Compute time of one batch.", "s",
                 quantiles("icae_encoder_compute_duration_seconds", (0.5, 0.99)), w=12)

    d.row("Batching and queue")
    d.timeseries("Segments per batch", "How full batches are (limit --max_batch_segments).",
                 "short",
                 [(mean("icae_encoder_batch_segments"), "mean")] +
                 quantiles("icae_encoder_batch_segments", (0.5, 0.99)), w=8)
    d.timeseries("Padded tokens per batch", "Tokens per batch with padding "
                 "(limit --max_batch_tokens).", "short",
                 [(mean("icae_encoder_batch_tokens"), "mean")] +
                 quantiles("icae_encoder_batch_tokens", (0.5, 0.99)), w=8)
    d.timeseries("Queue depth", "Segments waiting for a batch, per replica "
                 "(an autoscaling signal).", "short",
                 [(f"sum by (instance) (icae_encoder_queue_segments{{{SEL}}})", "{{instance}}")],
                 w=8)
    d.timeseries("Dropped segments/s", "Queued work dropped before computing (deadline "
                 "passed or call cancelled).", "short",
                 [(rate("icae_encoder_dropped_segments_total", by="reason"), "{{reason}}")], w=24,
                 h=6)

    d.row("Slot cache")
    hits, misses = rate("icae_encoder_cache_hits_total"), rate("icae_encoder_cache_misses_total")
    d.timeseries("Cache hit ratio", "Spans served from the slot cache / spans looked up.",
                 "percentunit", [(f"{hits} / ({hits} + {misses})", "hit ratio")], w=8)
    d.timeseries("Cache size", "Bytes held by the slot cache and its capacity "
                 "(--cache_bytes), per replica.", "bytes",
                 [(f"sum by (instance) (icae_encoder_cache_bytes{{{SEL}}})", "used {{instance}}"),
                  (f"sum by (instance) (icae_encoder_cache_capacity_bytes{{{SEL}}})",
                   "capacity {{instance}}")], w=8)
    d.timeseries("Cache lookups and evictions/s", "Hits, misses and evictions per second.",
                 "short",
                 [(hits, "hits/s"), (misses, "misses/s"),
                  (rate("icae_encoder_cache_evictions_total"), "evictions/s")], w=8)

    # Series exist only with --slot_store (docs/operations.md, "Shared slot store (Redis)").
    d.row("Shared slot store (Redis)")
    lookups = "icae_encoder_store_lookups_total"
    store_hits = rate(lookups, 'result="hit"')
    d.timeseries("Store lookups/s by result",
                 "Spans the local cache missed, looked up in Redis: hit (served from the store), "
                 "miss (computed), error (Redis down, slow or breaker open; computed).", "short",
                 [(rate(lookups, by="result"), "{{result}}")], w=8, stack=True)
    d.timeseries("Store hit ratio",
                 "hit / (hit + miss + error): of the spans the local caches missed, the share "
                 "another replica (or an earlier life of this one) had stored.", "percentunit",
                 [(f"{store_hits} / {rate(lookups)}", "hit ratio")], w=8)
    d.timeseries("Store writes/s by result",
                 "Entries written (ok), failed (error), or not attempted (dropped: larger than "
                 "--slot_store_max_value_bytes, or the write queue was full).", "short",
                 [(rate("icae_encoder_store_writes_total", by="result"), "{{result}}")], w=8,
                 stack=True)
    d.timeseries("Store bytes/s", "Bytes read from and written to Redis.", "Bps",
                 [(rate("icae_encoder_store_bytes_total", by="direction"), "{{direction}}")],
                 w=8)
    d.timeseries("Store round trip",
                 "One Redis round trip: a request's pipelined GETEX (get) or a batch of SETs "
                 "(set); bounded by --slot_store_timeout_ms.", "s",
                 [(quantile(q, "icae_encoder_store_duration_seconds", by="op, le"),
                   f"p{round(q * 100)} {{{{op}}}}") for q in (0.5, 0.99)], w=8)
    d.timeseries("Store write queue", "Bytes of background writes waiting, per replica (at most "
                 "--slot_store_queue_bytes; beyond, writes are dropped).", "bytes",
                 [(f"sum by (instance) (icae_encoder_store_write_queue_bytes{{{SEL}}})",
                   "{{instance}}")], w=8)
    info_row(d, "encoder")
    return d


def decoder_dashboard():
    d = Dashboard("icae-decoder", "ICAE decoder", "decoder",
                  "Generation service: tokens/s, time to first token, inter-token latency, "
                  "scheduler, KV cache and prefix cache.")
    traffic_rows(d, "decoder")

    d.row("Tokens")
    d.timeseries("Tokens/s", "Generated tokens, prompt tokens (text context + template + "
                 "prompt) and slot positions of admitted requests (those whose KV the prefix "
                 "cache reused included).", "short",
                 [(rate("icae_decoder_generation_tokens_total"), "generated/s"),
                  (rate("icae_decoder_prompt_tokens_total"), "prompt/s"),
                  (rate("icae_decoder_slot_tokens_total"), "slots/s")], w=8)
    d.timeseries("Context compression",
                 "What the context would have cost uncompressed, per slot position prefilled.",
                 "short",
                 [(f'{rate("icae_decoder_uncompressed_context_tokens_total")} / '
                   f'{rate("icae_decoder_slot_tokens_total")}', "uncompressed tokens per slot")],
                 w=8)
    d.timeseries("Finished requests/s by reason", "eos, length, stop, cancelled, error.",
                 "reqps",
                 [(rate("icae_decoder_requests_finished_total", by="finish_reason"),
                   "{{finish_reason}}")], w=8, stack=True)

    d.row("Latency")
    d.timeseries("Time to first token", "Admission to first generated token.", "s",
                 quantiles("icae_decoder_time_to_first_token_seconds"), w=12)
    d.timeseries("Inter-token latency", "Between consecutive tokens of a sequence.", "s",
                 quantiles("icae_decoder_inter_token_latency_seconds"), w=12)
    d.timeseries("End-to-end request latency", "Arrival to last token.", "s",
                 quantiles("icae_decoder_e2e_request_latency_seconds"), w=8)
    d.timeseries("Queue time", "Arrival to admission into the running batch.", "s",
                 quantiles("icae_decoder_request_queue_time_seconds", (0.5, 0.99)), w=8)
    d.timeseries("p99 RPC latency by method", "RPC wall time, 99th percentile, per method.", "s",
                 [(quantile(0.99, "icae_decoder_request_duration_seconds", by="method, le"),
                   "{{method}}")], w=8)

    d.row("Scheduler and KV cache")
    d.timeseries("Running and waiting requests", "Scheduler state per replica (waiting is an "
                 "autoscaling signal).", "short",
                 [(f"sum by (instance) (icae_decoder_num_requests_running{{{SEL}}})",
                   "running {{instance}}"),
                  (f"sum by (instance) (icae_decoder_num_requests_waiting{{{SEL}}})",
                   "waiting {{instance}}")], w=8)
    d.timeseries("KV cache usage", "Blocks of the KV pool in use / the pool (--max_kv_tokens "
                 "in --kv_block_tokens blocks), per replica. In use: running sequences' blocks "
                 "(what each needs now, grown block by block) and the blocks of every kept (or "
                 "still read) context prefix; idle kept prefixes give way when room is needed, "
                 "then the youngest running requests are preempted (next panel). Free blocks: "
                 "icae_decoder_kv_blocks{state=\"free\"}.",
                 "percentunit",
                 [(f"sum by (instance) (icae_decoder_kv_cache_tokens_used{{{SEL}}}) / "
                   f"sum by (instance) (icae_decoder_kv_cache_tokens_capacity{{{SEL}}})",
                   "{{instance}}")], w=8)
    d.timeseries("Preemptions/s", "Running requests preempted because the KV budget "
                 "(--max_kv_tokens) was spent: their KV is freed and they resume later by "
                 "prefilling their context and output again. Sustained preemptions mean the "
                 "budget is too small for the running batch.", "short",
                 [(rate("icae_decoder_num_preemptions_total"), "preemptions/s")], w=8)
    d.timeseries("Sequences per decode step", "Batch size of the decode steps.", "short",
                 [(mean("icae_decoder_batch_size"), "mean")] +
                 quantiles("icae_decoder_batch_size", (0.5, 0.99)), w=8)
    d.timeseries("Prefill positions/s by scheduling", "Context positions prefilled in steps of "
                 "their own (alone: nothing else was running, or --mixed_step_rows 0) or riding "
                 "along the running sequences' decode steps (carried, --mixed_step_rows): carried "
                 "positions cost the running streams only the extra rows' arithmetic, alone ones "
                 "stall them for the chunk (--prefill_chunk_tokens).", "short",
                 [(rate("icae_decoder_prefill_positions_total", by="scheduled"),
                   "{{scheduled}}")], w=8, stack=True)
    d.timeseries("Free KV blocks", "Blocks of each replica's KV pool (--kv_block_tokens positions "
                 "each) that no running sequence or context prefix holds: room for new requests "
                 "before idle kept prefixes are dropped and running ones preempted.", "short",
                 [(f"sum by (instance) (icae_decoder_kv_blocks{{{SEL},state=\"free\"}})",
                   "{{instance}}")], w=8)
    d.timeseries("Open streams", "GenerateStream calls open per replica (at most --max_streams), "
                 "and streams cancelled because the client took no chunk for "
                 "--stream_idle_seconds.", "short",
                 [(f"sum by (instance) (icae_decoder_streams_open{{{SEL}}})", "open {{instance}}"),
                  (f"sum by (instance) (rate(icae_decoder_streams_idle_cancelled_total{{{SEL}}}"
                   f"[$__rate_interval])) * 60", "idle-cancelled/min {{instance}}")], w=24)

    # Slot-prefix reuse (--prefix_cache_bytes; docs/operations.md, "Decoder").
    d.row("Prefix cache (slot-prefix reuse)")
    prefix_lookups = "icae_decoder_prefix_cache_lookups_total"
    prefix_hits = rate(prefix_lookups, 'result="hit"')
    d.timeseries("Prefix cache hit ratio",
                 "hit / (hit + miss): of the requests with a shareable context prefix (template "
                 "tokens, slots and text up to the prompt), the share that reused its KV instead "
                 "of prefilling it. Requests with skip_prefix_cache are not counted.",
                 "percentunit", [(f"{prefix_hits} / {rate(prefix_lookups)}", "hit ratio")], w=8)
    d.timeseries("Prefix cache lookups and evictions/s",
                 "Requests that reused a kept prefix (hit) or prefilled and kept theirs (miss), "
                 "and kept prefixes dropped (--prefix_cache_bytes reached, or KV room needed by "
                 "running requests).", "short",
                 [(rate(prefix_lookups, by="result"), "{{result}}/s"),
                  (rate("icae_decoder_prefix_cache_evictions_total"), "evictions/s")], w=8)
    d.timeseries("Context positions reused/s",
                 "Context positions whose KV was reused instead of prefilled, next to all the "
                 "context positions of admitted requests (prompt and slot tokens, reused ones "
                 "included).", "short",
                 [(rate("icae_decoder_prefix_cache_reused_positions_total"), "reused/s"),
                  (f'{rate("icae_decoder_prompt_tokens_total")} + '
                   f'{rate("icae_decoder_slot_tokens_total")}', "context/s")], w=8)
    d.timeseries("Prefix cache bytes", "Bytes of kept context-prefix KV per replica (at most "
                 "--prefix_cache_bytes).", "bytes",
                 [(f"sum by (instance) (icae_decoder_prefix_cache_bytes{{{SEL}}})",
                   "{{instance}}")], w=12)
    d.timeseries("Prefix cache entries", "Context prefixes kept per replica.", "short",
                 [(f"sum by (instance) (icae_decoder_prefix_cache_entries{{{SEL}}})",
                   "{{instance}}")], w=12)

    # Series exist only with --slot_store (docs/operations.md, "Shared slot store (Redis)").
    d.row("Slot handles (shared slot store)")
    d.timeseries("Store lookups/s by result",
                 "Slot handles fetched from Redis: hit, miss (expired or evicted: NOT_FOUND, the "
                 "client recompresses), error (Redis unreachable: UNAVAILABLE).", "short",
                 [(rate("icae_decoder_store_lookups_total", by="result"), "{{result}}")], w=8,
                 stack=True)
    d.timeseries("Store get latency",
                 "One round trip fetching every handle of a request, 99th percentile.", "s",
                 [(quantile(0.99, "icae_decoder_store_duration_seconds", 'op="get"'), "p99")],
                 w=8)
    d.timeseries("Store bytes read/s", "Slot bytes fetched through handles.", "Bps",
                 [(rate("icae_decoder_store_bytes_total", 'direction="read"'), "read")], w=8)
    info_row(d, "decoder")
    return d


def render(dashboard):
    return json.dumps(dashboard.to_json(), indent=2, sort_keys=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed dashboards differ from the generated ones")
    parser.add_argument("--out_dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    stale = []
    for dashboard in (encoder_dashboard(), decoder_dashboard()):
        path = args.out_dir / f"{dashboard.uid}.json"
        text = render(dashboard)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale (run deploy/tools/gen_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
