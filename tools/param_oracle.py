"""The parameter-count oracle: instantiate each catalog config with transformers on the meta
device (no weights, no memory) and count its parameters, in total and by group.

Writes tests/data/param_oracle.json, which the test suite compares vramcalc's counts against.
Needs torch and transformers (not runtime dependencies of vramcalc):

    pip install torch transformers
    python tools/param_oracle.py            # -> tests/data/param_oracle.json
    python tools/param_oracle.py STEM...    # only those catalog files, merged into the committed file

Configs are instantiated as transformers would load them from the Hub, with three documented
departures, each recorded per entry:
- `completed`: a partial copy lacks a field vramcalc requires; the oracle fills it with the
  config class's default and the test feeds vramcalc the same completed config.
- `translated`: Zyphra's own Zamba2 configs use pre-mainline key names that mainline transformers
  ignores (it would silently build 8 Mamba heads instead of 112); they are renamed first.
- kimi_k2 is instantiated as DeepseekV3 (its architectures field says DeepseekV3ForCausalLM).
- an architectures name transformers does not define (Kimi-K2.5's remote-code KimiK25ForConditionalGeneration)
  is instantiated as the class transformers' auto mapping gives its model_type (Kimi_K25ForConditionalGeneration).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig
from transformers.models.auto import modeling_auto

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vramcalc.params import group_of  # noqa: E402
from vramcalc.sources.catalog import config_of  # noqa: E402
from vramcalc.sources.hf_config import TEXT_TYPES, _architectures  # noqa: E402

ZAMBA2_LEGACY = {  # Zyphra config key -> mainline Zamba2Config key
    "state_size": "mamba_d_state",
    "conv_dimension": "mamba_d_conv",
    "expansion_factor": "mamba_expand",
    "ffn_hidden_size": "intermediate_size",
    "use_shared_attention_lora": "use_shared_attention_adapter",
    "lora_rank": "adapter_rank",
}


def model_class(cfg: dict, model_type: str):
    archs = cfg.get("architectures")
    if archs and hasattr(transformers, archs[0]):
        return getattr(transformers, archs[0])
    # a remote-code class name transformers spells otherwise (KimiK25ForConditionalGeneration): the class
    # transformers' own auto mapping gives the model_type
    for mapping in ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"):
        names = getattr(modeling_auto, mapping)
        if model_type in names:
            return getattr(transformers, names[model_type])
    raise KeyError(model_type)


def prepare(cfg: dict) -> tuple[dict, dict, dict]:
    """The config to instantiate, the fields completed from defaults, and the keys translated."""
    cfg = json.loads(json.dumps(cfg))
    completed, translated = {}, {}
    mt = cfg.get("model_type")
    if mt == "kimi_k2":
        cfg["model_type"] = mt = "deepseek_v3"
    if mt == "zamba2" and "mamba_headdim" in cfg:
        for old, new in ZAMBA2_LEGACY.items():
            if old in cfg:
                cfg[new] = cfg.pop(old)
                translated[old] = new
        inner = cfg["mamba_expand"] * cfg["hidden_size"]
        cfg["n_mamba_heads"] = inner // cfg.pop("mamba_headdim")
        translated["mamba_headdim"] = "n_mamba_heads"
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    text_type = TEXT_TYPES.get(text.get("model_type") or mt, text.get("model_type") or mt)
    table = _architectures().text.get(text_type)
    if table:
        for field in table.required:
            if field in text or field in translated.values():
                continue
            if field in table.defaults and field != "layer_types":  # a layout is never defaulted
                text[field] = table.defaults[field]
                completed[field] = table.defaults[field]
            else:  # no class default under that name: vramcalc must refuse this copy
                completed.setdefault("_missing", []).append(field)
    return cfg, completed, translated


# Variants of partial copies with an invented value, to test a family's formulas when the copy
# cannot stand for the real model: stem, the fields added, and why.
SYNTHETIC = {
    "ibm-granite__granite-4.0-h-small#layout-invented": (
        "ibm-granite__granite-4.0-h-small",
        {"layer_types": ["attention" if i % 10 == 5 else "mamba" for i in range(40)]},
        "the copy lacks layer_types; its notes give 36 mamba + 4 attention at unseen positions, so the "
        "positions here are invented: this tests the granitemoehybrid formulas, not the real model's count",
    ),
}


def count(cfg: dict) -> dict:
    mt = cfg["model_type"]
    config = AutoConfig.for_model(mt, **{k: v for k, v in cfg.items() if k != "model_type"})
    with torch.device("meta"):
        model = model_class(cfg, mt)._from_config(config)
    by_group: dict[str, int] = {}
    for name, p in model.named_parameters():  # tied parameters are yielded once
        g = group_of(name)
        by_group[g] = by_group.get(g, 0) + p.numel()
    return {"total": sum(by_group.values()), "by_group": dict(sorted(by_group.items()))}


def main() -> None:
    only = set(sys.argv[1:])
    dest = ROOT / "tests" / "data" / "param_oracle.json"
    out = {"_source": f"transformers {transformers.__version__}, torch {torch.__version__}: "
                      "model_class._from_config(config) on the meta device; tools/param_oracle.py",
           "models": json.loads(dest.read_text())["models"] if only else {}}
    for path in sorted((ROOT / "vramcalc" / "data" / "models").glob("*.json")):
        if only and path.stem not in only:
            continue
        entry = json.loads(path.read_text())
        raw = config_of(entry["repo_id"])  # a partial copy completed from its architecture_from model
        if not isinstance(raw, dict) or not (raw.get("model_type") or raw.get("architectures")):
            out["models"][path.stem] = {"skipped": "no model_type or architectures in the copy"}
            continue
        if "model_type" not in raw:
            out["models"][path.stem] = {"skipped": "no model_type in the copy"}
            continue
        cfg, completed, translated = prepare(raw)
        try:
            rec = count(cfg)
        except Exception as e:  # recorded, not hidden: the test reports these families as untested
            out["models"][path.stem] = {"skipped": f"transformers failed: {type(e).__name__}: {e}"[:300]}
            continue
        rec["partial"] = entry["partial"]
        if "_missing" in completed:
            rec["missing_required"] = completed.pop("_missing")
        if completed:
            rec["completed"] = completed
        if translated:
            rec["translated"] = translated
        out["models"][path.stem] = rec
        print(f"{path.stem:60s} {rec['total']:>16,d}", file=sys.stderr)
    for key, (stem, added, why) in SYNTHETIC.items():
        if only:
            break
        cfg = config_of(json.loads((ROOT / "vramcalc" / "data" / "models" / f"{stem}.json").read_text())["repo_id"])
        cfg, completed, _ = prepare({**cfg, **added})
        completed.pop("_missing", None)
        rec = count(cfg)
        rec.update(partial=True, completed={**added, **completed}, synthetic=why)
        out["models"][key] = rec
    dest.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
