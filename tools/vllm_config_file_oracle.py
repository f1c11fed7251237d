"""`vllm serve --config FILE` run through vLLM's own argument parser on a CPU machine:
tests/data/vllm_config_file_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_config_file_oracle.py \
        --out tests/data/vllm_config_file_oracle_v0.33.0.json

Per case: a YAML file's text written to a temporary folder and the `vllm serve` words with `--config` naming it,
given to FlexibleArgumentParser._pull_args_from_config (vllm/utils/argparse_utils.py, with load_config_file and
PyYAML's safe_load) of the parser `vllm serve` builds (vllm/entrypoints/common/cli_args.py make_arg_parser): the
words it hands on to argparse, or the exception it raises, with the file's path written as FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

# (file name, its text, the words after `vllm`; FILE is the file's path)
CASES: list[tuple[str, str, list[str]]] = [
    ("flat.yaml", "tensor-parallel-size: 2\nmax-model-len: 8192\ngpu-memory-utilization: 0.85\n",
     ["serve", "Qwen/Qwen3-8B", "--config", "FILE"]),
    ("flat.yaml", "tensor-parallel-size: 2\nmax_model_len: 8192\n", ["serve", "Qwen/Qwen3-8B", "--config", "FILE",
                                                                     "-tp", "1"]),
    ("model.yml", "model: Qwen/Qwen3-8B\nmax-model-len: 4096\n", ["serve", "--config", "FILE"]),
    ("nomodel.yaml", "max-model-len: 4096\n", ["serve", "--config", "FILE"]),
    ("bools.yaml", "# comment\nenforce-eager: true\nenable-prefix-caching: false\nenable-lora: yes\n"
                   "disable-custom-all-reduce: off\ntrust-remote-code: True\n",
     ["serve", "Qwen/Qwen3-8B", "--config", "FILE"]),
    ("lists.yaml", "cudagraph-capture-sizes: [1, 2, 4]\ncpu-offload-params:\n  - experts\n"
                   "kv-cache-dtype-skip-layers: []\n", ["serve", "Qwen/Qwen3-30B-A3B", "--config", "FILE"]),
    ("quoted.yaml", "max-model-len: '4096'\nkv-cache-dtype: \"fp8\"\ndtype: bfloat16  # the model's\n"
                    "block-size: 0x10\nmax-num-seqs: 1_024\n", ["serve", "Qwen/Qwen3-8B", "--config", "FILE"]),
    ("nested.yaml", "speculative-config:\n  method: ngram\n  num_speculative_tokens: 3\n"
                    "hf-overrides: {\"max_position_embeddings\": 16384}\n",
     ["serve", "Qwen/Qwen3-8B", "--config", "FILE"]),
    ("args.json", "{}", ["serve", "Qwen/Qwen3-8B", "--config", "FILE"]),
    ("last.yaml", "", ["serve", "Qwen/Qwen3-8B", "--config"]),
    ("twice.yaml", "max-model-len: 4096\n", ["serve", "Qwen/Qwen3-8B", "--config", "FILE", "--config", "FILE"]),
    ("absent.yaml", None, ["serve", "Qwen/Qwen3-8B", "--config", "FILE"]),  # type: ignore[list-item]
    ("eq.yaml", "max-model-len: 4096\n", ["serve", "Qwen/Qwen3-8B", "--config=FILE"]),
    ("flagmodel.yaml", "max-model-len: 4096\n", ["serve", "--model", "Qwen/Qwen3-8B", "--config", "FILE"]),
]


class _Pulled(Exception):
    pass


def _pulled(parser: Any, args: list[str]) -> list[str] | None:
    """The words FlexibleArgumentParser.parse_args gets back from _pull_args_from_config (after its own --model
    move); None where it does not call it."""
    got: list[list[str]] = []
    pull = type(parser)._pull_args_from_config

    def spy(self: Any, a: list[str]) -> list[str]:
        got.append(pull(self, a))
        raise _Pulled

    parser._pull_args_from_config = spy.__get__(parser)
    try:
        with contextlib.suppress(_Pulled):
            if "--config" not in args:
                return None
            parser.parse_args(args)
    finally:
        del parser._pull_args_from_config
    return got[0] if got else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser())
    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: FlexibleArgumentParser._pull_args_from_config / load_config_file "
        "(vllm/utils/argparse_utils.py, PyYAML safe_load) of make_arg_parser's parser, on each case's file and "
        "words, after parse_args' own --model move; run on CPU: VLLM_TARGET_DEVICE=cpu python "
        "tools/vllm_config_file_oracle.py")}
    with tempfile.TemporaryDirectory() as d:
        for name, text, words in CASES:
            path = os.path.join(d, name)
            if text is not None:
                with open(path, "w") as f:
                    f.write(text)
            args = [w.replace("FILE", path) for w in words]
            row: dict[str, Any] = {"file": name, "text": text, "words": words}
            try:
                out = _pulled(parser, args)
                if out is None:  # parse_args went on without reading the file: what it parsed
                    ns = parser.parse_args(args[1:])  # the serve subcommand's own parser: the words after serve
                    row["args"] = [w.replace(path, "FILE") for w in args]
                    row["parsed_config"] = str(ns.config).replace(path, "FILE")
                else:
                    row["args"] = [w.replace(path, "FILE") for w in out]
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {str(e).replace(path, 'FILE')}"
            doc["cases"].append(row)
            print(row, file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
