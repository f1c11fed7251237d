"""--mm-encoder-attn-backend against vLLM 0.34.0's own code run on CPU (tools/vllm_vit_attn_backend_oracle.py,
tests/data/vllm_vit_attn_backend_oracle_v0.34.0.json): the value's parsing, the platform's assertion for a backend
it does not offer, and the default pick per compute capability, head size and dtype, case by case."""

import json

import pytest

from conftest import DATA
from vramcalc.errors import InputError
from vramcalc.gpus import GPU
from vramcalc.vllm.vit_attn import default_pick, parse, refusal

ORACLE = json.loads((DATA / "vllm_vit_attn_backend_oracle_v0.34.0.json").read_text())


def _gpu(cc: str | None, vendor: str = "nvidia") -> GPU:
    return GPU(id="x", name="x", memory_bytes=1, compute_capability=cc, vendor=vendor)


def test_the_fixture_names_its_release_and_maker():
    assert ORACLE["release"] == "0.34.0" and "vllm_vit_attn_backend_oracle.py" in ORACLE["produced_by"]


@pytest.mark.parametrize("value", sorted(ORACLE["parsing"]))
def test_parsing_in_vllms_words(value):
    want = ORACLE["parsing"][value]
    if "backend" in want:
        assert parse(value) == want["backend"]
    else:
        with pytest.raises(InputError) as e:
            parse(value)
        said = want["error"].split("Value error, ", 1)[1].split(" [type=value_error", 1)[0]
        assert str(e.value) == "ValueError: " + said


CUDA = [(r["compute_capability"], n, g) for r in ORACLE["cuda"] for n, g in r["given"].items()]


@pytest.mark.parametrize("cc,name,want", CUDA, ids=[f"{c}-{n}" for c, n, _ in CUDA])
def test_a_backend_cuda_does_not_offer_fails_its_assertion(cc, name, want):
    assert refusal(_gpu(cc), name) == want.get("error")


@pytest.mark.parametrize("name", sorted(ORACLE["rocm"]["given"]))
def test_a_backend_rocm_does_not_offer_fails_its_assertion(name):
    assert refusal(_gpu(None, "amd"), name) == ORACLE["rocm"]["given"][name].get("error")


PICKS = [(r["compute_capability"], k, v) for r in ORACLE["cuda"] for k, v in r["default"].items()]


@pytest.mark.parametrize("cc,key,want", PICKS, ids=[f"{c}-{k}" for c, k, _ in PICKS])
def test_the_default_pick_per_gpu_head_size_and_dtype(cc, key, want):
    head, dtype = key.split("/")
    assert default_pick(_gpu(cc), int(head), dtype) == want


def test_the_flag_is_read_by_a_pasted_command_and_refused_in_vllms_words():
    from vramcalc.vllm.engine import VLLMOptions

    assert VLLMOptions(mm_encoder_attn_backend="torch_sdpa").mm_encoder_attn_backend == "TORCH_SDPA"
    with pytest.raises(InputError, match="Unknown attention backend: 'FOO'"):
        VLLMOptions(mm_encoder_attn_backend="foo")


def test_a_start_naming_a_backend_the_platform_lacks_is_refused():
    """vLLM's assertion at the tower's build, for a Qwen2.5-VL start: CUDA does not offer ROCM_AITER_FA, ROCm does
    not offer FLASHINFER; a backend the platform offers starts and is written back."""
    from vramcalc.gpus import find_gpu
    from vramcalc.sources.catalog import load
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    spec = load("Qwen/Qwen2.5-VL-7B-Instruct")
    r = check_vllm(spec, find_gpu("h100-80gb-sxm"), VLLMOptions(max_model_len=4096, mm_encoder_attn_backend="ROCM_AITER_FA"))
    (e,) = [e for e in r.errors if e.code == "vllm.mm.encoder_attn_backend"]
    assert e.text.startswith(ORACLE["cuda"][5]["given"]["ROCM_AITER_FA"]["error"]) and not r.fits
    r = check_vllm(spec, find_gpu("h100-80gb-sxm"), VLLMOptions(max_model_len=4096, mm_encoder_attn_backend="TRITON_ATTN"))
    assert not any(e.code == "vllm.mm.encoder_attn_backend" for e in r.errors)
    assert "--mm-encoder-attn-backend TRITON_ATTN" in r.command
    r = check_vllm(spec, find_gpu("mi300x"), VLLMOptions(max_model_len=4096, mm_encoder_attn_backend="FLASHINFER"))
    (e,) = [e for e in r.errors if e.code == "vllm.mm.encoder_attn_backend"]
    assert e.text.startswith(ORACLE["rocm"]["given"]["FLASHINFER"]["error"])


def test_the_encoder_estimate_sizes_the_backend_vllm_runs():
    """The profile-run estimate (vramcalc/vllm/mm_profile.py) takes --mm-encoder-attn-backend, else the default pick:
    TORCH_SDPA on a T4 (SM 7.5), FLASH_ATTN on an A100; FLASHINFER is said not to be sized."""
    from vramcalc.gpus import find_gpu
    from vramcalc.sources.catalog import load
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    spec = load("Qwen/Qwen2.5-VL-3B-Instruct")

    def said(gpu, **kw):
        r = check_vllm(spec, find_gpu(gpu), VLLMOptions(max_model_len=8192, **kw))
        (w,) = [w for w in r.warnings if w.code == "vllm.mm.encoder_profile"]
        return w.text

    assert "vision attention TORCH_SDPA)" in said("t4", dtype="float16")
    assert "vision attention FLASH_ATTN)" in said("a100-80gb-sxm")
    assert "vision attention TRITON_ATTN)" in said("a100-80gb-sxm", mm_encoder_attn_backend="triton_attn")
    t = said("a100-80gb-sxm", mm_encoder_attn_backend="FLASHINFER")
    assert "forward peak" not in t and "--mm-encoder-attn-backend FLASHINFER" in t and "not sized" in t


def test_a_pasted_command_reads_the_flag():
    """The sized backends are read as modelled (any case, as vLLM upper-cases them); FLASHINFER is warned about as
    not modelled; a name vLLM does not know is refused in its words."""
    from vramcalc.pasted_command import check_command

    def run(v):
        return check_command(f"vllm serve Qwen/Qwen2.5-VL-3B-Instruct --max-model-len 8192 "
                             f"--mm-encoder-attn-backend {v}", "a100-80gb-sxm")

    r = run("torch_sdpa")
    assert not [w for w in r.warnings + r.result.warnings if w.code == "command.not_modelled"]
    assert any("vision attention TORCH_SDPA)" in w.text for w in r.result.warnings)
    r = run("FLASHINFER")
    assert [w for w in r.warnings + r.result.warnings if w.code == "command.not_modelled" and "FLASHINFER" in w.text]
    assert any("FLASHINFER the encoder's attention" in w.text for w in r.result.warnings)
    r = run("ROCM_AITER_FA")
    assert any(e.code == "vllm.mm.encoder_attn_backend" for e in r.result.errors) and not r.fits
