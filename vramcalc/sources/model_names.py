"""Model names read without the network (data/model_names.json): a quantized release's repo id as its base model in
the catalog and a quant target (Qwen/Qwen3.6-27B-FP8 -> Qwen/Qwen3.6-27B, fp8-block), and a GGUF file name or
`-hf repo:quant` as a catalog model and a llama.cpp file type (qwen3.6-27b-UD-Q4_K_XL.gguf -> Qwen/Qwen3.6-27B,
UD-Q4_K_XL, a publisher's mix bracketed by standard types)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import PurePosixPath

from ..data_files import load, names
from ..data_models import GGUFMix, ModelNames
from ..ggml import ftypes
from . import catalog


def model_names() -> ModelNames:
    return load("model_names.json", ModelNames)


def _strip_suffix(name: str) -> tuple[str, str] | None:
    """(name without its quantized-release suffix, the quant target it stands for)."""
    org = name.split("/")[0] if "/" in name else ""
    for q in sorted(model_names().quantized_repos, key=lambda q: -len(q.suffix)):
        if name.lower().endswith(q.suffix.lower()):
            return name[: -len(q.suffix)], q.by_org.get(org, q.quant)
    return None


@lru_cache(maxsize=None)
def _catalog_bases() -> dict[str, str]:
    """A catalog entry's name (after the org, lower case), and that of a quantized release's base, -> its repo id:
    nvidia/Gemma-4-31B-IT-NVFP4 also answers for gemma-4-31b-it (the same architecture)."""
    out: dict[str, str] = {}
    for f in names("models"):
        repo = f.removesuffix(".json").replace("__", "/", 1)
        stem = repo.split("/", 1)[-1]
        stripped = _strip_suffix(stem)
        if stripped:
            out.setdefault(stripped[0].lower(), repo)
    for f in names("models"):  # an unquantized entry wins over a quantized release of it
        repo = f.removesuffix(".json").replace("__", "/", 1)
        out[repo.split("/", 1)[-1].lower()] = repo
    return out


def catalog_base(name: str) -> str | None:
    """The catalog model a name stands for: itself (an id or alias), or a catalog entry of the same base model."""
    stem = name.split("/", 1)[-1]
    # as written; a publisher's Org_Model (bartowski/Qwen_Qwen3-32B-GGUF); without Meta- (Meta-Llama-3.1-8B); the
    # base of an -Instruct / -it / -Chat release (the same architecture)
    plain = re.sub(r"^Meta-", "", stem, flags=re.I)
    for n in (name, stem, stem.replace("_", "/", 1), plain, re.sub(r"-(Instruct|it|Chat)$", "", plain, flags=re.I)):
        hit = catalog.resolve(n) or _catalog_bases().get(n.split("/", 1)[-1].lower())
        if hit:
            return hit
    return None


def quantized_release(name: str) -> str | None:
    """The quant target a quantized release's name stands for (nvidia/DeepSeek-V3-0324-NVFP4: nvfp4), or None."""
    stripped = _strip_suffix(name.split("/", 1)[-1])
    return stripped[1] if stripped else None


def quantized_base(repo_id: str) -> tuple[str, str] | None:
    """A quantized release's repo id as (its base model in the catalog, the quant target): None when the name has no
    known suffix or its base is not in the catalog."""
    stripped = _strip_suffix(repo_id)
    if stripped is None:
        return None
    base = catalog_base(stripped[0])
    return (base, stripped[1]) if base else None


_FTYPE = r"(UD-)?(I?Q\d_[A-Z0-9]+(?:_[A-Z]+)?|Q\d_K|BF16|F16|F32|MXFP4(?:_MOE)?|TQ\d_0)"


def _file_type_at(text: str) -> tuple[str, int] | None:
    m = None
    for m in re.finditer(r"(?:^|[-._:])" + _FTYPE + r"(?=$|[-._])", text, re.I):
        pass
    if m is None:
        return None
    ftype = m.group(0).lstrip("-._:").upper()
    ftype = "MXFP4_MOE" if ftype == "MXFP4" else ftype  # gpt-oss-120b-mxfp4.gguf: llama-quantize's MXFP4_MOE
    return (ftype, m.start()) if (ftype in ftypes() or ftype in model_names().gguf_mixes) else None


def gguf_file_type(text: str) -> str | None:
    """The file type a GGUF name or -hf tag carries (Q4_K_M, UD-Q4_K_XL), upper case; None when it names none."""
    hit = _file_type_at(text)
    return hit[0] if hit else None


def gguf_name(path: str) -> tuple[str | None, str | None]:
    """A GGUF file name as (the catalog model it names, its file type): qwen3.6-27b-UD-Q4_K_XL.gguf -> (Qwen/Qwen3.6-27B,
    UD-Q4_K_XL). Split files (-00001-of-00003) are one model."""
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", PurePosixPath(path).name.removesuffix(".gguf"))
    hit = _file_type_at(stem)
    ftype, base = (hit[0], stem[:hit[1]].rstrip("-._")) if hit else (None, stem)
    return catalog_base(re.sub(r"[-_.]GGUF$", "", base, flags=re.I)), ftype


def hf_repo(spec: str) -> tuple[str | None, str]:
    """-hf <user>/<model>[:quant] as (the catalog model, the file type: llama.cpp's default Q4_K_M without :quant)."""
    repo, _, tag = spec.partition(":")
    base = re.sub(r"[-_.]GGUF$", "", repo, flags=re.I)
    ftype = (gguf_file_type(tag) or tag.upper()) if tag else hf_default(repo)[0]
    return catalog_base(base) or catalog_base(base.split("/", 1)[-1]), ftype


def hf_default(repo: str) -> tuple[str, str | None, str | None]:
    """-hf REPO without :quant, as common/download.cpp find_best_model picks (data/llamacpp_hf_files.json): (the file
    type, the file, the page listing the repo's files); the file None where the repo's files are not known, and the
    file type then the first tag tried (Q4_K_M)."""
    from ..data_models import LlamaHFDefaults

    t = load("llamacpp_hf_files.json", LlamaHFDefaults)
    entry = next((r for r in t.repos if r.repo.lower() == repo.lower()), None)
    if entry is None:
        return t.tags[0], None, None
    files = [f for f in entry.files if not re.search(r"-\d{5}-of-\d{5}\.gguf$", f) or "-00001-of-" in f]
    for tag in t.tags:
        hit = next((f for f in files if re.search(re.escape(tag) + r"[.-]", f, re.I)), None)
        if hit:
            return gguf_file_type(hit) or tag, hit, entry.source
    first = files[0]
    return gguf_file_type(first) or t.tags[0], first, entry.source


def gguf_mix(ftype: str) -> GGUFMix | None:
    """A publisher's own mix (UD-Q4_K_XL), with the standard types that bracket it; None for a standard type."""
    return model_names().gguf_mixes.get(ftype.upper())


def offline_quantized(name: str, error: Exception) -> tuple[str, str, str] | None:
    """A quantized release that could not be read (`error`): (its base in the catalog, the quant target, the one
    warning line naming the repo to fetch); None when the name is no such release or its base is not in the catalog."""
    base = quantized_base(name)
    if base is None:
        return None
    why = str(error).split(": ")[-1]
    while why.count(")") > why.count("("):  # the tail of a parenthesis the split cut into
        why = why[:why.rindex(")")] + why[why.rindex(")") + 1:]
    return base[0], base[1], (f"{name} could not be read ({why}): checked as {base[0]} with "
                              f"--quant {base[1]}; fetch {name} (or pass its local folder) for its exact bytes")
