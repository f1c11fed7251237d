"""--quantization-config against vLLM's own parser run on CPU (tests/data/vllm_quant_config_oracle_v0.33.0.json
and _v0.34.0.json, tools/vllm_quant_config_oracle.py): each value vLLM refuses is refused in its words, each it
takes is taken (and read as the option: tests/test_vllm_online_quant.py checks the bytes it sizes)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vramcalc.errors import InputError
from vramcalc.pasted_command import read_command
from vramcalc.vllm.quant_config import read

DATA = Path(__file__).parent / "data"
ORACLES = {v: json.loads((DATA / f"vllm_quant_config_oracle_v{v}.json").read_text()) for v in ("0.33.0", "0.34.0")}
ROWS = [(v, r) for v, o in ORACLES.items() for r in o["cases"]]


def _core(text: str) -> str:
    """vLLM's words: pydantic's [type=...] and link left out, the JSON decoder's position left out, the regex
    library's own explanation and (0.33.0) the QuantKey repr after 'got' left out."""
    text = text.split(" [type=")[0]
    text = text.split("Invalid JSON")[0] + "Invalid JSON" if "Invalid JSON" in text else text
    text = text.split(" is not a valid regex: ")[0]
    return text


def _value(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--quantization-config"]


def test_the_fixtures_are_vllms():
    for v, o in ORACLES.items():
        assert o["release"] == v and "run on CPU" in o["produced_by"] and len(o["cases"]) == 31


@pytest.mark.parametrize("version,row", ROWS, ids=[f"{v} {' '.join(r['argv'])[:60]}" for v, r in ROWS])
def test_each_case_as_vllm_answers_it(version, row):
    values = _value(row["argv"])
    if not values:
        pytest.skip("--quantization alone: not this flag")
    said = row.get("parse_error") or row.get("error")
    if said:
        with pytest.raises(InputError) as e:
            read(values, version)
        mine = str(e.value)
        if version == "0.33.0" and "mutually exclusive" in said:  # 0.33.0 prints the QuantKey's repr
            said, mine = said.split(", got ")[0], mine.split(", got ")[0]
        assert _core(mine) == _core(said)
    else:
        assert isinstance(read(values, version), dict)


@pytest.mark.parametrize("row", [r for r in ORACLES["0.34.0"]["cases"] if r["argv"][0] == "--quantization-config"],
                         ids=lambda r: " ".join(r["argv"])[:60])
def test_a_pasted_command_refuses_or_warns_as_vllm_0_34(row):
    cmd = "vllm serve Qwen/Qwen3-0.6B --max-model-len 4096 " + " ".join(map(shlex.quote, row["argv"]))
    said = row.get("parse_error") or row.get("error")
    if said:
        with pytest.raises(InputError) as e:
            read_command(cmd)
        assert _core(str(e.value)) == _core(said)
    else:
        _, r = read_command(cmd)
        if not any(row["resolved"].values()):  # {}: nothing set
            assert any("--quantization-config" in n for n in r.no_effect)
            return
        # read as the option (tests/test_vllm_online_quant.py sizes it against vLLM's own online methods)
        assert r.options["quantization_config"] == _value(row["argv"])[-1]
        assert not any(w.code == "command.not_modelled" and "--quantization-config" in w.text for w in r.warnings)
