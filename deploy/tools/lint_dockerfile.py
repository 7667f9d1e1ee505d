#!/usr/bin/python3
"""A small Dockerfile linter for deploy/docker/*.Dockerfile (no Docker engine or hadolint here).

  lint_dockerfile.py deploy/docker/cpu.Dockerfile deploy/docker/cuda.Dockerfile

Rules: multi-stage with named stages; base images pinned by tag or digest, never `latest`;
`COPY --from` names an earlier stage; the encoder and decoder targets run as a non-root USER (the
uid the Kubernetes manifests use), carry a HEALTHCHECK or a commented `HEALTHCHECK NONE`, use an
exec-form ENTRYPOINT of the service binary and a CMD whose flags are in docs/operations.md with the
contract's ports, EXPOSE those ports and declare VOLUME /models; models are never copied in and the
Dockerfile's .dockerignore keeps models/, .git and build trees out; apt-get runs update, install
--no-install-recommends and list clean-up in one RUN; no sudo, no remote ADD; the build stage copies
the repository and runs `make build` (which runs tools/setup.sh, as the README's make targets do).
Prints one line per problem; exit status 1 when there is any.
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contract as contract_lib  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class Instruction:
    def __init__(self, keyword, args, comment, line):
        self.keyword, self.args, self.comment, self.line = keyword, args, comment, line

    def __repr__(self):
        return f"{self.keyword} {self.args} (line {self.line})"


def parse(text):
    """Instructions with continuation lines joined and the comment block right above each."""
    out, comment, pending, start = [], [], "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            comment = comment + [line.lstrip("# ")] if line.startswith("#") else []
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction are dropped by Docker too
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), comment, start))
        comment = []
    return out


def substitute(text, args):
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


class Stage:
    def __init__(self, image, name, line):
        self.image, self.name, self.line, self.instructions = image, name, line, []


def lint(text, name, ignore_text, contract, makefile_text, k8s_uid=None):
    problems = []
    instructions = parse(text)
    args, stages = {}, []
    if not text.startswith("# syntax=docker/dockerfile:1"):
        problems.append("first line should pin the frontend: # syntax=docker/dockerfile:1.x")
    for ins in instructions:
        if ins.keyword == "ARG" and not stages:
            key, _, value = ins.args.partition("=")
            args[key] = value
        elif ins.keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", ins.args, re.I)
            if not match or not match.group(2):
                problems.append(f"line {ins.line}: FROM without a stage name (AS name)")
            image = substitute(match.group(1), args) if match else ins.args
            stages.append(Stage(image, match.group(2) if match else None, ins.line))
        elif not stages:
            problems.append(f"line {ins.line}: {ins.keyword} before the first FROM")
        else:
            stages[-1].instructions.append(ins)
    if len(stages) < 2:
        problems.append("not a multi-stage build")
    names = {}
    for stage in stages:
        if stage.image in names:
            names[stage.name] = stage
            continue
        if "$" in stage.image:
            problems.append(f"line {stage.line}: base image {stage.image} has an unset ARG")
        elif "@sha256:" not in stage.image:
            repo, _, tag = stage.image.rpartition("/")[2].partition(":")
            if not tag or tag == "latest":
                problems.append(f"line {stage.line}: base image {stage.image} is not pinned "
                                f"(tag or digest, never latest)")
        names[stage.name] = stage

    def chain(stage_name):
        """Instructions of a stage, its parent stages first."""
        stage = names.get(stage_name)
        if stage is None:
            return []
        parent = chain(stage.image) if stage.image in names else []
        return parent + stage.instructions

    seen = set()
    for stage in stages:
        for ins in stage.instructions:
            check_instruction(ins, seen, problems)
        seen.add(stage.name)

    for svc in contract_lib.SERVICES:
        if svc not in names:
            problems.append(f"no `{svc}` target stage")
            continue
        check_target(svc, chain(svc), contract, problems, k8s_uid)

    if "build" not in names:
        problems.append("no `build` stage")
    else:
        runs = [i.args for i in names["build"].instructions if i.keyword == "RUN"]
        copies = [i.args for i in names["build"].instructions if i.keyword == "COPY"]
        if not any(re.search(r"\bmake build\b", r) for r in runs):
            problems.append("build stage does not run `make build` (the README's build)")
        if ". ." not in copies:
            problems.append("build stage does not COPY the repository (COPY . .)")
        if not any("deploy/docker/stage.sh" in r for r in runs):
            problems.append("build stage does not stage the binaries with deploy/docker/stage.sh")
    problems += check_makefile(makefile_text)
    problems += check_ignore(ignore_text, name)
    return problems


def check_instruction(ins, earlier_stages, problems):
    where = f"line {ins.line}"
    if ins.keyword == "RUN":
        if re.search(r"\bsudo\b", ins.args):
            problems.append(f"{where}: sudo in RUN (build steps run as root)")
        if re.search(r"\bapt\s+(install|update)", ins.args):
            problems.append(f"{where}: use apt-get, not apt, in scripts")
        if re.search(r"\bapt-get\b.*\binstall\b", ins.args):
            if "--no-install-recommends" not in ins.args:
                problems.append(f"{where}: apt-get install without --no-install-recommends")
            if "apt-get update" not in ins.args:
                problems.append(f"{where}: apt-get install without apt-get update in the same RUN")
            if "rm -rf /var/lib/apt/lists/*" not in ins.args:
                problems.append(f"{where}: apt lists not removed in the same RUN")
        downloads = re.search(r"\b(curl|wget)\s+(-|\"|'|\$|https?:)", ins.args)
        if downloads and "sha256sum -c" not in ins.args:
            problems.append(f"{where}: download without a checksum check")
    elif ins.keyword == "ADD" and re.search(r"https?://", ins.args):
        problems.append(f"{where}: ADD of a URL (use curl with a checksum)")
    elif ins.keyword in ("COPY", "ADD"):
        match = re.search(r"--from=(\S+)", ins.args)
        if match and match.group(1) not in earlier_stages:
            problems.append(f"{where}: COPY --from={match.group(1)} is not an earlier stage")
        sources = [a for a in ins.args.split() if not a.startswith("--")][:-1]
        if any(re.match(r"(\./)?models(/|$)", s) for s in sources) and not match:
            problems.append(f"{where}: copies models into the image (mount them instead)")
    elif ins.keyword == "WORKDIR" and not ins.args.startswith("/"):
        problems.append(f"{where}: WORKDIR must be absolute")


def exec_form(ins, problems):
    try:
        value = json.loads(ins.args)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    except ValueError:
        pass
    problems.append(f"line {ins.line}: {ins.keyword} is not in exec (JSON array) form")
    return []


def check_target(svc, instructions, contract, problems, k8s_uid):
    users = [i for i in instructions if i.keyword == "USER"]
    if not users:
        problems.append(f"{svc}: no USER (runs as root)")
    else:
        user = users[-1].args.split(":")[0]
        if user in ("0", "root"):
            problems.append(f"{svc}: USER {users[-1].args} is root")
        elif k8s_uid is not None and user != str(k8s_uid):
            problems.append(f"{svc}: USER {user} differs from the manifests' runAsUser {k8s_uid}")
    checks = [i for i in instructions if i.keyword == "HEALTHCHECK"]
    if not checks:
        problems.append(f"{svc}: no HEALTHCHECK (or HEALTHCHECK NONE with the reason)")
    elif checks[-1].args.upper() == "NONE" and not any(checks[-1].comment):
        problems.append(f"{svc}: HEALTHCHECK NONE without a comment giving the reason")
    entrypoints = [i for i in instructions if i.keyword == "ENTRYPOINT"]
    cmds = [i for i in instructions if i.keyword == "CMD"]
    if not entrypoints or exec_form(entrypoints[-1], problems)[:1] != [
            f"/opt/icae/bin/icae-{svc}"]:
        problems.append(f"{svc}: ENTRYPOINT is not [\"/opt/icae/bin/icae-{svc}\"]")
    flags = {}
    for arg in exec_form(cmds[-1], problems) if cmds else []:
        match = re.fullmatch(r"--([a-z_]+)=(.*)", arg)
        if not match:
            problems.append(f"{svc}: CMD argument {arg!r} is not --flag=value")
            continue
        flags[match.group(1)] = match.group(2)
    unknown = sorted(set(flags) - contract.flags(svc))
    if unknown:
        problems.append(f"{svc}: CMD flags {unknown} are not in docs/operations.md")
    ports = contract.ports[svc]
    for flag, kind in (("listen", "grpc"), ("metrics_listen", "metrics")):
        if not flags.get(flag, "").endswith(f":{ports[kind]}"):
            problems.append(f"{svc}: CMD --{flag}={flags.get(flag)} is not port {ports[kind]}")
    if not flags.get("model", "").startswith("/models/"):
        problems.append(f"{svc}: CMD --model is not under the /models volume")
    exposed = {p.split("/")[0] for i in instructions if i.keyword == "EXPOSE"
               for p in i.args.split()}
    for kind, port in ports.items():
        if str(port) not in exposed:
            problems.append(f"{svc}: port {port} ({kind}) not in EXPOSE")
    volumes = " ".join(i.args for i in instructions if i.keyword == "VOLUME")
    if "/models" not in volumes:
        problems.append(f"{svc}: no VOLUME /models")


def check_makefile(text):
    """`make build` must run tools/setup.sh, as the README's `make test` / `make demo` do."""
    problems = []
    targets = dict(re.findall(r"^([a-z-]+):[ \t]*([^\n=]*)$", text, re.M))
    recipe = re.search(r"^setup:.*\n((?:\t.*\n)+)", text, re.M)
    if not recipe or "tools/setup.sh" not in recipe.group(1):
        problems.append("Makefile: `setup` does not run tools/setup.sh")
    if "configure" not in targets.get("build", "").split():
        problems.append("Makefile: `build` does not depend on `configure`")
    if "setup" not in targets.get("configure", "").split():
        problems.append("Makefile: `configure` does not depend on `setup`")
    for readme_target in ("test", "demo"):
        if "build" not in targets.get(readme_target, "").split():
            problems.append(f"Makefile: `{readme_target}` does not build through `build`")
    return problems


def check_ignore(text, name):
    if text is None:
        return [f"no {name}.dockerignore next to the Dockerfile"]
    patterns = {line.strip().rstrip("/") for line in text.splitlines()
                if line.strip() and not line.startswith("#")}
    return [f"{name}.dockerignore does not exclude {p}" for p in ("models", ".git", "build",
                                                                   ".deps")
            if p not in patterns]


def k8s_run_as_user(repo):
    text = (repo / "deploy/k8s/base/encoder-deployment.yaml").read_text()
    match = re.search(r"runAsUser: (\d+)", text)
    return int(match.group(1)) if match else None


def lint_file(path, repo=REPO):
    path = Path(path)
    ignore = path.with_name(path.name + ".dockerignore")
    return lint(path.read_text(), path.name, ignore.read_text() if ignore.exists() else None,
                contract_lib.Contract(repo / "docs/operations.md"),
                (repo / "Makefile").read_text(), k8s_run_as_user(repo))


def main():
    failed = 0
    for path in sys.argv[1:]:
        problems = lint_file(path)
        for problem in problems:
            print(f"{path}: {problem}")
        failed += bool(problems)
        print(f"{path}: {'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
