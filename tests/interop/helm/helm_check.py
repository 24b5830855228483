#!/usr/bin/env python3
"""Checks of the guichet Helm chart, with Helm's own Go SDK and the Kubernetes API schemas.

    helm_check.py check [--chart DIR] [-f VALUES]... [--set K=V]... [--out FILE]
        Validates the values against values.schema.json, lints the chart (strict, as for the
        oldest supported Kubernetes), renders it offline, validates every manifest against the
        Kubernetes OpenAPI schemas in strict mode (no unknown field) for the oldest and newest
        supported versions, and checks that the objects fit together (selectors, ports, every
        `{ env: NAME }` of the rendered Guichet configuration set by the Deployment, every file
        it reads provided by a volume). Writes the manifests to --out. With --guichet BINARY,
        also runs `BINARY check` on the rendered configuration as the pod would (see
        guichet_check below; tests/tests/e2e/helm.rs does the same in the test suite). Exit
        status 1, with one line per problem on stderr, when anything fails.

    helm_check.py values-table [--chart DIR] (--check | --write) README
        The table of every value (key, type, default, description) generated from
        values.schema.json and values.yaml, compared with (or written into) README between the
        `<!-- values-table:begin -->` and `<!-- values-table:end -->` markers.

Nothing is fetched from the network: Helm is the Go SDK bundled in the helm-python-sdk wheel
(`helm_python`), the schemas are those bundled in kubernetes-validate.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import kubernetes_validate.utils as kv
import yaml

REPO = Path(__file__).resolve().parents[3]
DEFAULT_CHART = REPO / "helm" / "guichet"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion; preStop `sleep` is on by
# default from 1.30) and the newest whose schemas kubernetes-validate ships.
OLDEST_KUBERNETES = "1.30.0"
MARK_BEGIN = "<!-- values-table:begin -->"
MARK_END = "<!-- values-table:end -->"


class Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of several values files: maps merged, anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(files: list[str], sets: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for file in files:
        # Helm's own YAML reading, so that types are what `helm -f` would give.
        values = deep_merge(values, helm.values_from_yaml(Path(file).read_text()) or {})
    for assignment in sets:
        values = deep_merge(values, helm.parse_set_string(assignment))
    return values


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def supported_versions() -> list[str]:
    newest = kv.latest_version()
    return [OLDEST_KUBERNETES] if newest == OLDEST_KUBERNETES else [OLDEST_KUBERNETES, newest]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def env_references(node: Any, found: list[str]) -> None:
    """Every `{ env: NAME }` of a Guichet configuration."""
    if isinstance(node, dict):
        if len(node) == 1 and isinstance(node.get("env"), str):
            found.append(node["env"])
        for value in node.values():
            env_references(value, found)
    elif isinstance(node, list):
        for value in node:
            env_references(value, found)


def file_references(node: Any, found: list[tuple[str, str]], path: str = "") -> None:
    """Every file a Guichet configuration reads: `{ file: PATH }` and `*_file` settings."""
    if isinstance(node, dict):
        if len(node) == 1 and isinstance(node.get("file"), str):
            found.append((path, node["file"]))
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and str(key).endswith("_file"):
                found.append((child, value))
            else:
                file_references(value, found, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            file_references(value, found, f"{path}[{index}]")


def check_consistency(objects: list[dict[str, Any]], problems: Problems) -> list[str]:
    """Cross-object checks no schema can make. Returns notes for the summary."""
    notes: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    deployments = by_kind.get("Deployment", [])
    pod_templates = [(d["metadata"]["name"], d["spec"]["template"]) for d in deployments]

    def pods_selected(selector: dict[str, str]) -> list[dict[str, Any]]:
        return [tpl for _, tpl in pod_templates if labels_match(selector, tpl["metadata"].get("labels", {}))]

    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        if not labels_match(selector, deployment["spec"]["template"]["metadata"].get("labels", {})):
            problems.add(f"Deployment {deployment['metadata']['name']}: its selector does not match its pods")
    for name, tpl in pod_templates:
        for other, other_tpl in pod_templates:
            if other != name and labels_match(
                next(d for d in deployments if d["metadata"]["name"] == name)["spec"]["selector"]["matchLabels"],
                other_tpl["metadata"].get("labels", {}),
            ):
                problems.add(f"Deployment {name}: its selector also matches the pods of {other}")

    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    for service in services.values():
        pods = pods_selected(service["spec"]["selector"])
        if len(pods) != 1:
            problems.add(f"Service {service['metadata']['name']}: selects the pods of {len(pods)} Deployments, not 1")
            continue
        port_names = {p.get("name") for c in pods[0]["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and target not in port_names:
                problems.add(f"Service {service['metadata']['name']}: targetPort {target} is no container port")
    for ingress in by_kind.get("Ingress", []):
        for rule in ingress["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services.get(backend["name"])
                if service is None or backend["port"].get("name") not in {p["name"] for p in service["spec"]["ports"]}:
                    problems.add(f"Ingress {ingress['metadata']['name']}: backend {backend} is no Service port")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for obj in by_kind.get(kind, []):
            selector = obj["spec"]["selector" if kind == "PodDisruptionBudget" else "podSelector"]["matchLabels"]
            if not pods_selected(selector):
                problems.add(f"{kind} {obj['metadata']['name']}: selects no pod of the release")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        if target["name"] not in {d["metadata"]["name"] for d in deployments}:
            problems.add(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: scales {target['name']}, no Deployment")
        elif "replicas" in next(d for d in deployments if d["metadata"]["name"] == target["name"])["spec"]:
            problems.add(f"HorizontalPodAutoscaler {hpa['metadata']['name']}: the Deployment also sets replicas")
    # ServiceMonitor: a CRD, absent from the Kubernetes schemas; checked against the Service.
    for monitor in by_kind.get("ServiceMonitor", []):
        spec = monitor["spec"]
        matched = [s for s in services.values() if labels_match(spec["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        if len(matched) != 1:
            problems.add(f"ServiceMonitor {monitor['metadata']['name']}: selects {len(matched)} Services, not 1")
            continue
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            if endpoint.get("port") not in ports:
                problems.add(f"ServiceMonitor {monitor['metadata']['name']}: port {endpoint.get('port')} is not on the Service")
        # Without a namespaceSelector, the operator looks in the ServiceMonitor's namespace.
        looked_in = spec.get("namespaceSelector", {}).get("matchNames", [monitor["metadata"].get("namespace")])
        if matched[0]["metadata"].get("namespace") not in looked_in:
            problems.add(f"ServiceMonitor {monitor['metadata']['name']}: its namespaceSelector misses the Service's namespace")
        notes.append("ServiceMonitor (a CRD, no Kubernetes schema) checked against the Service it scrapes")

    # The Guichet configuration against the Deployment that runs it.
    config_maps = [c for c in by_kind.get("ConfigMap", []) if "guichet.yaml" in c.get("data", {})]
    gateway = [d for d in deployments if any(c["name"] == "guichet" for c in d["spec"]["template"]["spec"]["containers"])]
    if len(config_maps) != 1 or len(gateway) != 1:
        problems.add(f"expected one ConfigMap with guichet.yaml and one Guichet Deployment, got {len(config_maps)} and {len(gateway)}")
        return notes
    config = yaml.safe_load(config_maps[0]["data"]["guichet.yaml"])
    pod = gateway[0]["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "guichet")
    defined = {e["name"] for e in container.get("env") or []}
    wanted: list[str] = []
    env_references(config, wanted)
    for name in sorted(set(wanted) - defined):
        problems.add(f"the configuration reads {{ env: {name} }}, which the Deployment does not set")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    provided: list[str] = []  # files (exact) and directories (ending in /)
    for mount in container.get("volumeMounts", []):
        root = mount["mountPath"].rstrip("/") + "/"
        volume = volumes.get(mount["name"], {})
        if "projected" in volume:
            for source in volume["projected"]["sources"]:
                for kind in ("configMap", "secret"):
                    if kind not in source:
                        continue
                    if source[kind].get("items"):
                        provided += [root + item["path"] for item in source[kind]["items"]]
                    elif kind == "configMap":
                        cm = next((c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"] == source[kind]["name"]), None)
                        provided += [root + key for key in (cm or {}).get("data", {})] if cm else [root]
                    else:
                        provided.append(root)
        else:
            provided.append(root)
    files: list[tuple[str, str]] = []
    file_references(config, files)
    for where, path in files:
        if not any(path == p or (p.endswith("/") and path.startswith(p)) for p in provided):
            problems.add(f"the configuration's {where} reads {path}, which no volume of the Deployment provides")
    return notes


def plausible(name: str, config: dict[str, Any]) -> str:
    """A plausible value for a variable the Deployment sets, as its Secret would hold it; the
    Redis URL is a TLS one when the configuration gives Redis a CA."""
    if name.startswith("GUICHET_SESSION_KEY"):
        return base64.b64encode(os.urandom(32)).decode()
    if name == "GUICHET_REDIS_URL":
        if "ca_file" in config.get("session", {}).get("store", {}):
            return "rediss://redis.guichet.test:6380/0"
        return "redis://redis.guichet.test:6379/0"
    return f"test-secret-{name.lower()}"


def rewrite_paths(node: Any, old: str, new: str) -> Any:
    if isinstance(node, str) and node.startswith(old):
        return new + node[len(old):]
    if isinstance(node, dict):
        return {key: rewrite_paths(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [rewrite_paths(value, old, new) for value in node]
    return node


def guichet_check(binary: str, objects: list[dict[str, Any]], problems: Problems) -> None:
    """`guichet check` on the rendered configuration, the way the pod would run it: /etc/guichet
    holds what the configuration volume projects (the ConfigMap's files, a throw-away CA where
    it projects one from your Secret or ConfigMap), the environment is exactly the Deployment's
    `env`, each secret a plausible value."""
    config_map = next(o for o in objects if o["kind"] == "ConfigMap" and "guichet.yaml" in o.get("data", {}))
    deployment = next(o for o in objects if o["kind"] == "Deployment"
                      and any(c["name"] == "guichet" for c in o["spec"]["template"]["spec"]["containers"]))
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "guichet")
    with tempfile.TemporaryDirectory() as etc:
        for name, content in config_map["data"].items():
            if name != "guichet.yaml":
                Path(etc, name).write_text(content)
        volume = next(v for v in pod["volumes"] if v["name"] == "config")
        for source in volume["projected"]["sources"]:
            for kind in ("secret", "configMap"):
                for item in source.get(kind, {}).get("items", []):
                    target = Path(etc, item["path"])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                    "-nodes", "-subj", "/CN=helm-check test CA", "-days", "1",
                                    "-keyout", os.devnull, "-out", str(target)],
                                   check=True, capture_output=True)
        config = rewrite_paths(yaml.safe_load(config_map["data"]["guichet.yaml"]), "/etc/guichet/", etc + "/")
        config_file = Path(etc, "guichet.yaml")
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {e["name"]: e["value"] if "value" in e else plausible(e["name"], config) for e in container.get("env") or []}
        result = subprocess.run([binary, "check", "--config", str(config_file)], env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            problems.add("guichet check refuses the rendered configuration: "
                         + (result.stderr.strip() or result.stdout.strip()))


def cmd_check(args: argparse.Namespace) -> int:
    problems = Problems()
    chart_dir = Path(args.chart)
    values = load_values(args.values, args.set)
    label = ", ".join(args.values + [f"--set {s}" for s in args.set]) or "the default values"
    with helm.Chart.load(chart_dir) as chart:
        try:
            chart.validate_schema(values)
        except helm.HelmError as error:
            print(f"{label}: values.schema.json refuses the values:\n{error}", file=sys.stderr)
            return 1
        # Lint renders in Helm's lint mode, where `fail` only logs (to the Go runtime's standard
        # error): the render below reports those failures, so the log is dropped.
        with native_stderr_silenced():
            report = helm.lint(chart_dir, values, strict=True, namespace=args.namespace,
                               kube_version="v" + OLDEST_KUBERNETES)
        for message in report["messages"]:
            line = f"helm lint: [{('unknown', 'info', 'warning', 'error')[message['severity']]}] {message['path']}: {message['error'].strip()}"
            if message["severity"] >= 2:
                problems.add(line)
            else:
                print(line)
        try:
            rendered = chart.render(values, name=args.release, namespace=args.namespace, is_install=True)
        except helm.HelmError as error:
            print(f"{label}: the chart does not render:\n{error}", file=sys.stderr)
            return 1

    documents: list[tuple[str, str]] = []
    objects: list[dict[str, Any]] = []
    for source in sorted(rendered):
        if source.endswith("NOTES.txt"):
            continue
        for text in rendered[source].split("\n---"):
            obj = yaml.safe_load(text)
            if not obj:
                continue
            documents.append((source, text.strip("\n")))
            objects.append(obj)
    if not objects:
        problems.add("the chart rendered no object")

    versions = supported_versions()
    skipped: set[str] = set()
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") == "ServiceMonitor":
            skipped.add(obj["kind"])
            continue
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                problems.add(f"{name}: not valid for Kubernetes {error.version} (strict): {path}: {error.message}")
            except kv.SchemaNotFoundError as error:
                problems.add(f"{name}: {error.message}")
    notes = check_consistency(objects, problems)
    if args.guichet and not problems.lines:
        guichet_check(args.guichet, objects, problems)
        if not problems.lines:
            notes.append(f"{args.guichet} check accepts the configuration")

    if args.out:
        Path(args.out).write_text("".join(f"---\n# Source: {src}\n{text}\n" for src, text in documents))
    if problems.lines:
        for line in problems.lines:
            print(f"{label}: {line}", file=sys.stderr)
        return 1
    kinds = sorted({o["kind"] for o in objects})
    print(f"{label}: {len(objects)} objects ({', '.join(kinds)}) lint-clean and valid for Kubernetes "
          f"{' and '.join(versions)} (strict)" + (f"; {'; '.join(sorted(set(notes)))}" if notes else ""))
    return 0


# ---- the values table ------------------------------------------------------------------------

def schema_type(node: dict[str, Any]) -> str:
    kind = node.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(kinds)


def leaves(node: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        if child.get("type") == "object" and "properties" in child:
            rows += leaves(child, path)
        else:
            rows.append((path, child))
    return rows


def default_of(values: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def render_default(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(text) > 60:
        return "see values.yaml"
    return f"`{text}`"


def values_table(chart_dir: Path, problems: Problems) -> str:
    schema = json.loads((chart_dir / "values.schema.json").read_text())
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for path, node in leaves(schema):
        present, value = default_of(values, path)
        if not present:
            problems.add(f"values.yaml has no default for {path}, which values.schema.json describes")
        description = node.get("description")
        if not description:
            problems.add(f"values.schema.json has no description for {path}")
        cell = (description or "").replace("|", "\\|")
        default = render_default(value).replace("|", "\\|")
        rows.append(f"| `{path}` | {schema_type(node)} | {default} | {cell} |")
    return "\n".join(rows) + "\n"


def cmd_values_table(args: argparse.Namespace) -> int:
    problems = Problems()
    table = values_table(Path(args.chart), problems)
    readme = Path(args.readme)
    text = readme.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        problems.add(f"{readme}: the markers {MARK_BEGIN} and {MARK_END} are missing")
    else:
        head, rest = text.split(MARK_BEGIN, 1)
        current, tail = rest.split(MARK_END, 1)
        wanted = f"{head}{MARK_BEGIN}\n{table}{MARK_END}{tail}"
        if args.write:
            readme.write_text(wanted)
        elif wanted != text:
            problems.add(f"{readme}: the values table is not the one values.schema.json and values.yaml give: "
                         f"run {Path(__file__).name} values-table --write {readme}")
    for line in problems.lines:
        print(line, file=sys.stderr)
    return 1 if problems.lines else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate, lint, render and check the chart")
    check.add_argument("--chart", default=str(DEFAULT_CHART))
    check.add_argument("-f", "--values", action="append", default=[], help="a values file (repeatable)")
    check.add_argument("--set", action="append", default=[], help="KEY=VALUE, as helm --set (repeatable)")
    check.add_argument("--release", default="guichet")
    check.add_argument("--namespace", default="guichet")
    check.add_argument("--out", help="write the rendered manifests there")
    check.add_argument("--guichet", help="a guichet binary: run its `check` on the rendered configuration")
    check.set_defaults(run=cmd_check)
    table = commands.add_parser("values-table", help="the README's table of values")
    table.add_argument("--chart", default=str(DEFAULT_CHART))
    mode = table.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    table.add_argument("readme")
    table.set_defaults(run=cmd_values_table)
    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
