#!/usr/bin/env bash
# The throwaway venv tools/vllm_*oracle*.py run in: the vllm wheel without its dependencies, the CPU torch wheel
# and the light modules `import vllm` and the model classes need. Never vramcalc's own environment.
#   bash tools/vllm_oracle_venv.sh 0.33.0 [/work/venvs]     -> /work/venvs/vllm-0.33.0/bin/python
# Checked for 0.33.0 (transformers 5.24); 0.11.0 took transformers 4.57.
set -euo pipefail
release=${1:?vllm release, e.g. 0.33.0}
root=${2:-/work/venvs}
venv="$root/vllm-$release"
python3 -m venv "$venv"
pip="$venv/bin/pip"
"$pip" install -q torch==2.13.0
"$pip" install -q --no-deps "vllm==$release"
case "$release" in 0.1[01].*|0.[0-9].*) tf="transformers==4.57.*" ;; *) tf="transformers==5.24.*" ;; esac
"$pip" install -q numpy "$tf" pydantic msgspec cloudpickle psutil pyzmq sentencepiece tokenizers huggingface-hub \
    regex tqdm requests pyyaml einops cbor2 blake3 prometheus_client fastapi openai aiohttp partial-json-parser gguf \
    diskcache cachetools pybase64 setproctitle typing_extensions filelock jinja2 lark lm-format-enforcer \
    outlines_core xgrammar openai-harmony pillow uvloop py-cpuinfo llguidance compressed-tensors
# the Qwen3-VL / Qwen3.5 classes import transformers' Qwen2-VL image processor, which imports torchvision's
# transforms (its C ops are stubbed by tools/vllm_oracle.py _torchvision_stub)
"$pip" install -q --no-deps torchvision==0.28.0
VLLM_TARGET_DEVICE=cpu "$venv/bin/python" -c "import vllm; print('vllm', vllm.__version__, 'ready in $venv')"
