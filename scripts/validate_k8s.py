"""Offline checks of memgate's Kubernetes manifests and Dockerfile; scripts/validate-k8s.sh runs
it with the pinned tools. Each kustomization is rendered by a real kustomize (kubectl's) and every
rendered object is validated against the Kubernetes JSON schemas in strict mode (unknown fields
are errors), for the oldest and the newest Kubernetes version the manifests are meant for. Then
come the rules no schema knows: the probes hit the admin listener memgate.toml configures, the
storage fits the replica count, the secrets are placeholders, the shutdown budget matches
src/server.rs, the Dockerfile's final stage runs the binary it copies, as the user the manifests
expect. The last line is "N passed, N failed"; the exit code is 1 when anything failed."""

import argparse
import base64
import fnmatch
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils
import yaml

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "REPLACE_ME"
PLACEHOLDER_DIGEST = "0" * 64
# Kubernetes 1.30 is the oldest with both features the manifests use enabled by default: native
# sidecars (restartPolicy on an init container, 1.29) and the preStop sleep action (1.30).
DEFAULT_VERSIONS = "1.30 1.35"

# Every validate() call would otherwise parse the 1.5 MB definitions file again.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
    kubernetes_validate.utils.schema_contents
)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failures = []
        self.scope = ""

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            line = f"{self.scope}: {what}" + (f" ({detail})" if detail else "")
            self.failures.append(line)
            print(f"FAIL {line}")
        return ok


def render(kubectl, directory):
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True
    )
    if out.returncode != 0:
        return None, out.stderr.strip()
    return [d for d in yaml.safe_load_all(out.stdout) if d], ""


def port_of(listen):
    return int(listen.rsplit(":", 1)[1])


def quantity_bytes(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(q))
    if not m or m.group(2) not in {**units, "": 1}:
        return None
    return float(m.group(1)) * units.get(m.group(2), 1)


def secret_values(secret):
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def default_shutdown_grace():
    """proxy.shutdown_grace_seconds when memgate.toml does not set it (src/config.rs)."""
    text = (ROOT / "src" / "config.rs").read_text()
    found = re.search(r"shutdown_grace_seconds: (\d+),", text)
    return int(found.group(1)) if found else None


def runtime_shutdown_timeout():
    """Seconds Pingora's runtimes get once the grace period is over (src/server.rs)."""
    found = re.search(r"const SHUTDOWN_TIMEOUT_SECONDS: u64 = (\d+);",
                      (ROOT / "src" / "server.rs").read_text())
    return int(found.group(1)) if found else None


class Rendered:
    def __init__(self, docs):
        self.docs = docs
        self.by_kind = {}
        for d in docs:
            self.by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    def get(self, kind, name):
        return self.by_kind.get(kind, {}).get(name)


def memgate_containers(pod):
    for field in ("containers", "initContainers"):
        for c in pod.get(field) or []:
            if c["name"] == "memgate":
                yield field, c


def resolve_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    return None


def effective_env(container, rendered, c):
    """The container's MEMGATE_* variables with secret and ConfigMap references resolved."""
    env = {}
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        source = e.get("valueFrom") or {}
        for ref_kind, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = source.get(ref_kind)
            if not ref:
                continue
            obj = rendered.get(kind, ref["name"])
            values = (secret_values(obj) if kind == "Secret" else obj.get("data", {})) if obj else {}
            if c.check(ref["key"] in values, f"env {e['name']} refers to an existing {kind} key",
                       f"{ref['name']}/{ref['key']}"):
                env[e["name"]] = values[ref["key"]]
    return env


def apply_env(config, env):
    for name, value in env.items():
        if name.startswith("MEMGATE_") and "__" in name:
            section, key = name[len("MEMGATE_"):].lower().split("__", 1)
            config.setdefault(section, {})[key] = value
    return config


def mount_for(container, path):
    """The volume mount holding `path` (the longest mount path that contains it)."""
    best = None
    for m in container.get("volumeMounts") or []:
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
            best = m
    return best


def volume(pod, name):
    return next((v for v in pod.get("volumes") or [] if v["name"] == name), None)


def check_workload(c, rendered, workload, args):
    pod = workload["spec"]["template"]["spec"]
    labels = workload["spec"]["template"]["metadata"].get("labels") or {}
    annotations = workload["spec"]["template"]["metadata"].get("annotations") or {}
    selector = workload["spec"]["selector"].get("matchLabels") or {}
    c.check(selector.items() <= labels.items(), "the selector matches the pod's labels")
    found = list(memgate_containers(pod))
    for field, mg in found:
        # The configuration memgate actually reads: the ConfigMap file named by --config, then
        # the environment on top of it.
        argv = mg.get("args") or []
        c.check(argv[:1] == ["serve"], "memgate runs `serve`", str(argv))
        config_path = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
        config_text = None
        if c.check(config_path is not None, "memgate is given --config"):
            m = mount_for(mg, config_path)
            v = volume(pod, m["name"]) if m else None
            cm = rendered.get("ConfigMap", v["configMap"]["name"]) if v and "configMap" in v else None
            key = config_path[len(m["mountPath"].rstrip("/")) + 1:] if m else None
            if c.check(cm is not None and key in cm.get("data", {}),
                       "--config names a file of a rendered ConfigMap", config_path):
                config_text = cm["data"][key]
        if config_text is None:
            continue
        file_config = tomllib.loads(config_text)
        env = effective_env(mg, rendered, c)
        config = apply_env(json.loads(json.dumps(file_config)), env)
        check_config_file(c, file_config)
        if args.memgate_bin:
            check_config_with_binary(c, args.memgate_bin, config_text, env)

        listen = {s: config.get(s, {}).get("listen") for s in ("proxy", "admin")}
        if not c.check(all(listen.values()), "memgate.toml sets proxy.listen and admin.listen"):
            continue
        proxy_port, admin_port = port_of(listen["proxy"]), port_of(listen["admin"])
        c.check(resolve_port(mg, "proxy") == proxy_port, "the `proxy` port is proxy.listen's", str(proxy_port))
        c.check(resolve_port(mg, "admin") == admin_port, "the `admin` port is admin.listen's", str(admin_port))

        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = (mg.get(probe) or {}).get("httpGet") or {}
            c.check(get.get("path") == path and resolve_port(mg, get.get("port")) == admin_port,
                    f"{probe} is GET {path} on the admin port {admin_port}", json.dumps(get))
        c.check("startupProbe" in mg, "a startupProbe holds liveness off during migrations")
        c.check(annotations.get("prometheus.io/scrape") == "true"
                and annotations.get("prometheus.io/port") == str(admin_port)
                and annotations.get("prometheus.io/path") == "/metrics",
                f"Prometheus scrapes /metrics on the admin port {admin_port}")

        sc = {**(pod.get("securityContext") or {}), **(mg.get("securityContext") or {})}
        c.check(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 1) != 0, "memgate runs as non-root")
        c.check(sc.get("readOnlyRootFilesystem") is True, "the root filesystem is read-only")
        c.check(sc.get("allowPrivilegeEscalation") is False, "privilege escalation is off")
        c.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), "every capability is dropped")
        c.check((sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "seccomp is RuntimeDefault")
        if args.image_user is not None:
            c.check(sc.get("runAsUser") == args.image_user,
                    "runAsUser is the Dockerfile's USER", f"{sc.get('runAsUser')} vs {args.image_user}")

        res = mg.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        c.check("cpu" in req and "memory" in req and "memory" in lim,
                "cpu and memory requests and a memory limit are set", json.dumps(res))
        if "memory" in req and "memory" in lim:
            c.check((quantity_bytes(req["memory"]) or 0) <= (quantity_bytes(lim["memory"]) or 0),
                    "the memory request is within the limit")

        image = mg.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        c.check("@sha256:" in image or (tag and tag != "latest"),
                "the image has a fixed tag (not latest)", image)

        grace_setting = config.get("proxy", {}).get("shutdown_grace_seconds", default_shutdown_grace())
        timeout = runtime_shutdown_timeout()
        if c.check(grace_setting is not None and timeout is not None,
                   "proxy.shutdown_grace_seconds and src/server.rs's SHUTDOWN_TIMEOUT_SECONDS are known"):
            budget = int(grace_setting) + timeout
            pre_stop = ((mg.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
            grace = pod.get("terminationGracePeriodSeconds", 30)
            c.check(grace > pre_stop + budget,
                    "terminationGracePeriodSeconds exceeds preStop sleep + memgate's shutdown budget",
                    f"{grace} vs {pre_stop} + {budget}")

        # Storage: the embedded store is one process's file, on a volume that outlives the
        # container's read-only root; more replicas need Postgres.
        storage = str(config.get("storage", {}).get("url", "sqlite://data/memgate.db"))
        replicas = workload["spec"].get("replicas", 1)
        if storage.startswith("sqlite:"):
            path = re.sub(r"^sqlite:(//)?", "", storage).split("?")[0]
            m = mount_for(mg, path) if path.startswith("/") else None
            v = volume(pod, m["name"]) if m else None
            c.check(v is not None and not m.get("readOnly") and ("emptyDir" in v or "persistentVolumeClaim" in v),
                    "the SQLite file is on a writable volume", storage)
            c.check(replicas == 1, "the embedded store runs in a single replica", f"replicas={replicas}")
        else:
            c.check(storage.startswith(("postgres://", "postgresql://")), "storage.url is sqlite or postgres", storage)
        c.check(any(m["mountPath"] == "/tmp" and not m.get("readOnly") for m in mg.get("volumeMounts") or []),
                "/tmp is writable (SQLite's temporary files)")

        keys_file = config.get("auth", {}).get("keys_file")
        if keys_file:
            m = mount_for(mg, keys_file)
            v = volume(pod, m["name"]) if m else None
            secret = rendered.get("Secret", v["secret"]["secretName"]) if v and "secret" in v else None
            name = keys_file[len(m["mountPath"].rstrip("/")) + 1:] if m else None
            items = {i["path"]: i["key"] for i in (v or {}).get("secret", {}).get("items") or []}
            c.check(secret is not None and items.get(name, name) in secret_values(secret),
                    "auth.keys_file is a file of a rendered Secret", keys_file)

        for mount in mg.get("volumeMounts") or []:
            c.check(volume(pod, mount["name"]) is not None, f"volume {mount['name']} exists")

        if field == "initContainers":
            c.check(mg.get("restartPolicy") == "Always", "the sidecar is a native sidecar (restartPolicy Always)")
            apps = pod.get("containers") or []
            want = f"http://localhost:{proxy_port}/v1"
            c.check(apps and all(any(e.get("name") == "OPENAI_BASE_URL" and e.get("value") == want
                                     for e in a.get("env") or []) for a in apps),
                    f"the application's OPENAI_BASE_URL is {want}")
    return found, labels


def check_config_file(c, config):
    c.check(not any("key" in k for k in config.get("auth", {}).get("keys", [])),
            "memgate.toml holds no plain keys (they belong in the Secret)")
    c.check("api_key" not in config.get("internal", {}), "memgate.toml holds no internal.api_key")
    c.check("password" not in config.get("graph", {}), "memgate.toml holds no graph.password")
    storage = config.get("storage", {}).get("url", "")
    c.check(urllib.parse.urlsplit(storage).password is None, "memgate.toml's storage.url carries no password")


def check_config_with_binary(c, binary, config_text, env):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memgate.toml"
        path.write_text(config_text)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MEMGATE_")}
        out = subprocess.run([binary, "check-config", "--config", str(path)],
                             env={**clean, **env}, capture_output=True, text=True)
    c.check(out.returncode == 0, "`memgate check-config` accepts the ConfigMap and the environment",
            out.stderr.strip()[-400:])


def check_placeholders(c, rendered):
    for name, secret in rendered.by_kind.get("Secret", {}).items():
        for key, value in secret_values(secret).items():
            c.check(PLACEHOLDER in value, f"Secret {name} key {key} is a {PLACEHOLDER} placeholder")
            if key.endswith(".toml"):
                entries = tomllib.loads(value).get("keys", [])
                c.check(all("key" not in e and e.get("key_sha256") == PLACEHOLDER_DIGEST for e in entries),
                        f"Secret {name} key {key} lists only the all-zero placeholder digest")
            if "://" in value:
                c.check(urllib.parse.urlsplit(value.strip()).password in (None, PLACEHOLDER),
                        f"Secret {name} key {key} has a placeholder password")


def check_routing(c, rendered, pods):
    """Services and disruption budgets select memgate's pods and name its ports."""
    for kind in ("Service", "PodDisruptionBudget"):
        for name, obj in rendered.by_kind.get(kind, {}).items():
            sel = obj["spec"]["selector"]
            sel = sel.get("matchLabels", {}) if kind == "PodDisruptionBudget" else sel
            targets = [(labels, cs) for labels, cs in pods if sel and sel.items() <= labels.items()]
            c.check(bool(targets), f"{kind} {name} selects memgate's pods", json.dumps(sel))
            if kind == "Service":
                for p in obj["spec"]["ports"]:
                    tp = p.get("targetPort", p["port"])
                    c.check(any(resolve_port(mg, tp) for _, cs in targets for _, mg in cs),
                            f"Service {name} port {p.get('name', p['port'])} targets a memgate port", str(tp))


# --- Dockerfile -----------------------------------------------------------------------------

def dockerfile_instructions(text):
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        op, _, rest = current.partition(" ")
        lines.append((op.upper(), rest.strip()))
        current = ""
    return lines


def dockerignore_patterns():
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    return [l.strip().rstrip("/") for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]


def ignored(path, patterns):
    parts = Path(path).parts
    return any(fnmatch.fnmatch(str(Path(*parts[:i])), p) for p in patterns for i in range(1, len(parts) + 1))


def check_dockerfile(c, dockerfile, listen_ports):
    c.scope = dockerfile.name
    stages = []
    for op, rest in dockerfile_instructions(dockerfile.read_text()):
        if op == "FROM":
            words = rest.split()
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append({"image": words[0], "alias": alias, "ops": []})
        elif stages:
            stages[-1]["ops"].append((op, rest))
    if not c.check(len(stages) >= 2, "the build is multi-stage"):
        return None
    aliases = {s["alias"] for s in stages if s["alias"]}
    for s in stages:
        image = s["image"]
        if image in aliases or image == "scratch":
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        c.check("@sha256:" in image or (tag and tag != "latest"), f"base image {image} has a fixed tag")

    final = stages[-1]
    users = [rest for op, rest in final["ops"] if op == "USER"]
    user = users[-1].split(":")[0] if users else ""
    c.check(user not in ("", "0", "root"), "the final stage switches to a non-root USER", user or "none")

    entry = next((rest for op, rest in reversed(final["ops"]) if op == "ENTRYPOINT"), None)
    cmd = next((rest for op, rest in reversed(final["ops"]) if op == "CMD"), None)
    try:
        entry_argv = json.loads(entry) if entry else []
        cmd_argv = json.loads(cmd) if cmd else []
    except json.JSONDecodeError:
        entry_argv, cmd_argv = [], []
    c.check(bool(entry_argv), "ENTRYPOINT is in exec form (so the binary receives SIGTERM)", entry or "none")
    c.check((entry_argv + cmd_argv)[1:2] == ["serve"], "the image runs `memgate serve` by default",
            json.dumps(entry_argv + cmd_argv))

    copies = []
    for op, rest in final["ops"]:
        if op == "COPY":
            words = shlex.split(rest)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)
            paths = [w for w in words if not w.startswith("--")]
            copies.append((flags.get("from"), paths[:-1], paths[-1]))
    binary = entry_argv[0] if entry_argv else None
    from_build = [(src, frm) for frm, srcs, dest in copies if frm and dest == binary for src in srcs]
    if c.check(bool(from_build), "ENTRYPOINT's binary is the one COPY --from a build stage puts there", str(binary)):
        src, frm = from_build[0]
        build = next((s for s in stages if s["alias"] == frm), None)
        runs = " ".join(rest for op, rest in (build or {}).get("ops", []) if op == "RUN")
        c.check(bool(re.search(r"cargo build\b.*--release", runs)) and "--locked" in runs,
                f"stage {frm} runs cargo build --release --locked")
        c.check(src in runs and "target/release/memgate" in runs,
                f"stage {frm} leaves the release binary at {src}")
        c.check("cmake" in runs, f"stage {frm} installs cmake (libz-ng-sys)")
        build_sources = {p.rstrip("/") for op, rest in (build or {}).get("ops", []) if op == "COPY"
                         for p in shlex.split(rest)[:-1] if not p.startswith("--")}
        needed = {"Cargo.toml", "Cargo.lock", "src"}
        for rs in (ROOT / "src").rglob("*.rs"):
            needed |= {Path(d).parts[0] for d in re.findall(r'migrate!\("([^"]+)"\)', rs.read_text())}
        manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
        needed |= {d for key, d in (("bench", "benches"), ("example", "examples"), ("test", "tests"))
                   if manifest.get(key)}
        c.check(needed <= build_sources, "the build stage copies what cargo needs",
                f"missing {sorted(needed - build_sources)}")

    patterns = dockerignore_patterns()
    for want in ("target", ".git", "data"):
        c.check(want in patterns, f".dockerignore leaves out {want}/")
    for frm, srcs, _ in copies + [(None, shlex.split(r)[:-1], None) for s in stages[:-1]
                                  for op, r in s["ops"] if op == "COPY"]:
        for src in srcs:
            if frm or src.startswith("--"):
                continue
            c.check((ROOT / src).exists() and not ignored(src, patterns),
                    f"COPY source {src} is in the build context")

    exposed = {int(p.split("/")[0]) for op, rest in final["ops"] if op == "EXPOSE" for p in rest.split()}
    c.check(listen_ports <= exposed, "EXPOSE lists the proxy and admin ports", f"{sorted(exposed)}")
    return int(user) if user.isdigit() else None


# --- main -----------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--k8s-dir", default=str(ROOT / "k8s"))
    parser.add_argument("--dockerfile", default=str(ROOT / "Dockerfile"))
    args = parser.parse_args()
    args.memgate_bin = os.environ.get("MEMGATE_BIN") or None
    versions = os.environ.get("MEMGATE_K8S_VERSIONS", DEFAULT_VERSIONS).split()
    k8s_dir = Path(args.k8s_dir)

    kubectl_version = subprocess.run([args.kubectl, "version", "--client"], capture_output=True,
                                     text=True).stdout.replace("\n", ", ").strip(", ")
    print(f"tools: kubectl {kubectl_version}; kubernetes-validate {kubernetes_validate.__version__}"
          f" (schemas {', '.join(versions)}, strict)")
    if args.memgate_bin:
        print(f"check-config with {args.memgate_bin}")
    else:
        print("check-config skipped: set MEMGATE_BIN to a built memgate to run it")

    c = Checks()
    base_config = tomllib.loads((k8s_dir / "base" / "memgate.toml").read_text())
    listen_ports = {port_of(base_config[s]["listen"]) for s in ("proxy", "admin")}
    args.image_user = check_dockerfile(c, Path(args.dockerfile), listen_ports)
    print(f"{c.scope}: {c.passed} checks")

    targets = [k8s_dir / "base"] + sorted(p for p in (k8s_dir / "overlays").iterdir()
                                          if (p / "kustomization.yaml").exists())
    for target in targets:
        c.scope = str(target.relative_to(k8s_dir.parent))
        before = c.passed
        docs, error = render(args.kubectl, target)
        if not c.check(docs is not None, "kustomize renders it", error):
            continue
        for doc in docs:
            for version in versions:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    c.check(True, "")
                except kubernetes_validate.ValidationError as e:
                    where = ".".join(str(p) for p in e.absolute_path)
                    c.check(False, f"{doc['kind']}/{doc['metadata']['name']} is valid for Kubernetes {version}",
                            f"{where}: {e.message}")
                except (kubernetes_validate.SchemaNotFoundError,
                        kubernetes_validate.utils.VersionNotSupportedError) as e:
                    c.check(False, f"{doc['kind']}/{doc['metadata']['name']} has a schema for {version}", e.message)
        rendered = Rendered(docs)
        pods = []
        for kind in ("Deployment", "StatefulSet", "DaemonSet"):
            for workload in rendered.by_kind.get(kind, {}).values():
                found, labels = check_workload(c, rendered, workload, args)
                if found:
                    pods.append((labels, found))
        c.check(bool(pods), "a workload runs memgate")
        check_placeholders(c, rendered)
        check_routing(c, rendered, pods)
        kinds = ", ".join(sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
        print(f"{c.scope}: {kinds}: {c.passed - before} checks")

    print(f"{c.passed} passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
