"""The --json outputs follow their published JSON Schema (docs/schema/), and parse back into the
typed results a library user gets."""

import json
from pathlib import Path

import pytest

from vramcalc.check import CheckResult
from vramcalc.cli import main
from vramcalc.cli.schema import SCHEMAS, json_schema
from vramcalc.trace import Explanation
from vramcalc.llamacpp.engine import LlamaResult
from vramcalc.vllm.engine import VLLMResult

DOCS = Path(__file__).parent.parent / "docs" / "schema"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_published_schema_is_current(name):
    assert json.loads((DOCS / f"{name}.json").read_text()) == json.loads(json.dumps(json_schema(name), sort_keys=True))


@pytest.mark.parametrize("argv,model", [
    (["check", "qwen3-30b-a3b", "--gpu", "rtx4090", "--ctx", "8192", "--json"], CheckResult),
    (["check", "qwen3-32b", "--gpu", "2x4090", "--engine", "vllm", "--quant", "awq", "--ctx", "8192", "--json"], VLLMResult),
    (["check", "gemma-3-27b", "--gpu", "rtx4090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M", "--ctx", "32768",
      "--json"], LlamaResult),
    (["explain", "qwen3-32b", "--gpu", "2x4090", "--engine", "vllm", "--quant", "awq", "--ctx", "8192", "--json"],
     Explanation),
])
def test_cli_json_validates_against_its_schema(capsys, argv, model):
    main(argv)
    out = capsys.readouterr().out
    parsed = model.model_validate_json(out)  # the schema's own validator, field by field
    required = set(model.model_json_schema().get("required", []))
    assert required <= set(json.loads(out)) and parsed.model_dump(mode="json") == json.loads(out)



@pytest.mark.parametrize("argv,name", [(["models", "qwen3", "--json"], "models"), (["gpus", "h100", "--json"], "gpus")])
def test_list_outputs_validate_against_their_schema(capsys, argv, name):
    import importlib

    from pydantic import TypeAdapter

    main(argv)
    out = json.loads(capsys.readouterr().out)
    module, cls = SCHEMAS[name].removeprefix("list of ").split(":")
    adapter = TypeAdapter(list[getattr(importlib.import_module(module), cls)])
    assert out and adapter.dump_python(adapter.validate_python(out), mode="json") == out
