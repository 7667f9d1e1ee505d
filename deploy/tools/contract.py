"""Reads the operations contract (docs/operations.md): ports, flags, health names and metrics.

The deploy checks compare manifests, rules and dashboards against this page, so a name changed in
the contract and not in a user (or the reverse) fails a test instead of a dashboard going blank.
"""

import re
from pathlib import Path

SERVICES = ("encoder", "decoder")


def _section(text, title_prefix):
    """Returns the body of the '## <title_prefix>...' section (up to the next '## ' heading)."""
    lines = text.splitlines()
    out, inside = [], False
    for line in lines:
        if line.startswith("## "):
            inside = line[3:].startswith(title_prefix)
            continue
        if inside:
            out.append(line)
    if not out:
        raise ValueError(f"operations.md has no section starting with {title_prefix!r}")
    return "\n".join(out)


def _table_rows(body):
    """Yields the cells of each data row of the markdown tables in body."""
    for line in body.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.match(r"^\|[-| :]+\|$", line):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        yield cells


def _ticked(cell):
    """Backticked words of a cell, leaving out those inside parentheses (value lists)."""
    depth, words = 0, []
    for token in re.findall(r"`[^`]*`|\(|\)", cell):
        if token == "(":
            depth += 1
        elif token == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            words.append(token.strip("`"))
    return words


class Contract:
    def __init__(self, path):
        self.path = Path(path)
        self.text = self.path.read_text()
        self.ports = self._parse_ports()
        self.health_services = self._parse_health()
        self.common_flags, self.service_flags = self._parse_flags()
        self.metrics = self._parse_metrics()

    # {"encoder": {"grpc": 50051, "metrics": 9091}, ...}
    def _parse_ports(self):
        ports = {}
        for cells in _table_rows(_section(self.text, "Ports")):
            if cells[0] not in SERVICES:
                continue
            grpc = re.search(r":(\d+)`", cells[1])
            metrics = re.search(r":(\d+)`", cells[2])
            ports[cells[0]] = {"grpc": int(grpc.group(1)), "metrics": int(metrics.group(1))}
        if set(ports) != set(SERVICES):
            raise ValueError("operations.md: ports table must list encoder and decoder")
        return ports

    # {"encoder": "icae.v1.Encoder", "decoder": "icae.v1.Decoder"}
    def _parse_health(self):
        match = re.search(r"`(icae\.v\d+\.Encoder)`\s*/\s*`(icae\.v\d+\.Decoder)`", self.text)
        if not match:
            raise ValueError("operations.md: health service names not found")
        return {"encoder": match.group(1), "decoder": match.group(2)}

    def _parse_flags(self):
        body = _section(self.text, "Flags")
        common = set()
        for cells in _table_rows(body):
            common.update(re.findall(r"--([a-z_]+)", cells[0]))
        per_service = {}
        for svc in SERVICES:
            match = re.search(rf"^{svc.capitalize()} only:(.*?)(?:\n\n|\Z)", body, re.S | re.M)
            if not match:
                raise ValueError(f"operations.md: no '{svc.capitalize()} only:' flag list")
            per_service[svc] = set(re.findall(r"`--([a-z_]+)`", match.group(1)))
        return common, per_service

    def flags(self, svc):
        return self.common_flags | self.service_flags[svc]

    def _parse_metrics(self):
        """{name: {"type": ..., "labels": set(...), "service": svc}} for every metric."""
        metrics = {}
        body = _section(self.text, "Metrics")
        for cells in _table_rows(body):
            if len(cells) < 3 or not cells[0].startswith("`icae_"):
                continue
            names = re.findall(r"`([^`]+)`", cells[0])
            kind = cells[1].split()[0]
            labels = set(_ticked(cells[2]))
            first = names[0]
            expanded = [first]
            for alt in names[1:]:
                if alt.startswith("icae_"):
                    expanded.append(alt)
                else:  # "_misses_total": replace as many trailing words of the first name
                    parts = first.split("_")
                    tail = alt.strip("_").split("_")
                    expanded.append("_".join(parts[: len(parts) - len(tail)] + tail))
            for name in expanded:
                services = SERVICES if "<svc>" in name else (name.split("_")[1],)
                for svc in services:
                    metrics[name.replace("<svc>", svc)] = {
                        "type": kind, "labels": labels, "service": svc}
        if not metrics:
            raise ValueError("operations.md: no metrics found")
        return metrics

    def series_names(self):
        """Every series name a scrape exposes: histograms as _bucket, _sum and _count."""
        names = set()
        for name, info in self.metrics.items():
            if info["type"] == "histogram":
                names.update(name + s for s in ("_bucket", "_sum", "_count"))
            else:
                names.add(name)
        return names


def metric_of_series(series_name, contract):
    """Maps a series name (foo_bucket) to its contract metric (foo), or None."""
    if series_name in contract.metrics:
        return series_name
    for suffix in ("_bucket", "_sum", "_count"):
        base = series_name[: -len(suffix)] if series_name.endswith(suffix) else None
        if base and contract.metrics.get(base, {}).get("type") == "histogram":
            return base
    return None
