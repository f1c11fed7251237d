"""What llama-server holds beside the model: LoRA adapters, a draft model, a multimodal projector, and the speed of a
draft and of -nkvo (vramcalc/llamacpp/extras.py, mmproj.py, spec_speed.py).

Oracles: a real llama.cpp (the CPU backend of the build vendored by llama-cpp-python 0.3.35, commit 4df29be) loaded
the files of tests/llamacpp_extras_models.py and printed its buffers (tools/record_llamacpp_extras.py,
tests/data/llamacpp_extras_runs.json): every printed buffer is compared to the printed 0.01 MiB. The speed with a
draft is checked on published llama.cpp runs (vramcalc/data/llamacpp_speculative.json, with their URLs).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

import llamacpp_extras_models as xm
from conftest import DATA
from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu as get_gpu
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.pasted_command import read_command
from vramcalc.serving import Deployment, for_engine_check
from vramcalc.sources import catalog, open_model
from vramcalc.sources.model_names import hf_default, hf_repo

# its module-level caches are shared by its tests: one xdist worker runs them all (pyproject --dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_llamacpp_extras")

MIB = 2**20
RECORDED = json.loads((DATA / "llamacpp_extras_runs.json").read_text())
RUNS = [r for r in RECORDED["runs"] if "error" not in r]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("extras")
    for b in xm.BASES:
        xm.write_base(b, t / f"{b}.gguf")
    for n in xm.DRAFTS:
        xm.write_base(n, t / f"{n}.gguf")
    for n in xm.LORAS:
        xm.write_lora(n, t / f"{n}.gguf")
    for n in xm.MMPROJS:
        xm.write_mmproj(n, t / f"{n}.gguf")
    return t


@lru_cache(maxsize=None)
def _src(path: str):
    return open_model(path)


def _opts(s: dict, **kw) -> LlamaOptions:
    return LlamaOptions(n_ctx=s.get("n_ctx", 4096), n_parallel=s.get("n_seq_max", 1),
                        kv_unified=s.get("kv_unified", False), n_batch=s.get("n_batch", 2048),
                        n_ubatch=s.get("n_ubatch", 512), flash_attn=s.get("flash_attn", "auto"),
                        n_outputs_max=s.get("n_outputs_max") or s.get("n_batch", 2048), **kw)


def _mib(b: int) -> float:
    return round(b / MIB, 2)


def _check(files, base: str, **kw):
    src = _src(str(files / f"{base}.gguf"))
    return check_llamacpp(src.spec, None, kw.pop("opts"), src.llama_tensors(), solve=False)


def test_the_recording_is_the_modelled_build():
    assert RECORDED["llama_cpp_commit"].startswith("4df29be") and RECORDED["tool"] == "tools/record_llamacpp_extras.py"
    kinds = {r["kind"] for r in RUNS}
    assert kinds == {"lora", "draft", "mmproj"} and len(RUNS) == len(RECORDED["runs"])


@pytest.mark.parametrize("run", [r for r in RUNS if r["kind"] == "lora"],
                         ids=lambda r: f"{r['lora']}-" + "-".join(f"{k}={v}" for k, v in r["settings"].items()))
def test_lora_buffers_and_the_compute_buffer_with_the_adapter_set(run, files):
    """llama_adapter_lora_init_impl's buffers (on the CPU: the mapped or plain CPU buffer type), and the compute
    buffer llama_context::sched_reserve prints once the adapter is set (the LoRA matmuls in the graph)."""
    s = run["settings"]
    r = _check(files, run["base"], opts=_opts(s, lora=(str(files / f"{run['lora']}.gguf"),)))
    lora = [b["mib"] for b in run["buffers"] if b["kind"] == "LoRA"]
    (extra,) = [e for e in r.extras if e.kind == "lora"]
    assert _mib(extra.host_bytes) == round(sum(lora), 2)
    with_lora = [b["mib"] for b in run["buffers"] if b["kind"] == "compute" and b["phase"] == "with_lora"]
    assert with_lora, run
    host = next(d for d in r.devices if d.device == "host RAM")
    assert _mib(host.compute_buffer_bytes) == with_lora[-1]


@pytest.mark.parametrize("run", [r for r in RUNS if r["kind"] == "draft"],
                         ids=lambda r: "-".join(f"{k}={v}" for k, v in r["settings"].items()))
def test_draft_model_buffers_in_the_context_llama_server_makes(run, files):
    """The draft's model, KV, output and compute buffers: a context of the target's -c, slots and batch with one
    logits row per slot (common_base_params_to_speculative)."""
    s = run["settings"]
    opts = _opts(s, model_draft=str(files / f"{run['draft']}.gguf"))
    r = _check(files, "llama-a", opts=opts)
    (d,) = [e for e in r.extras if e.kind == "draft"]
    got = {k: _mib(int(d.detail[k])) for k in ("kv", "compute", "output")}
    want = {k: round(sum(b["mib"] for b in run["buffers"] if b["kind"] == kind), 2)
            for k, kind in (("kv", "KV"), ("compute", "compute"), ("output", "output"))}
    assert got == want
    # the weights: every tensor of the file (llama_model_size). The recording CPU has AMX, whose extra buffer type
    # holds copies of the Q8_0 matmul weights beside the mapped file: not modelled (host_cpu has no AMX entry)
    assert int(d.detail["model"]) == run["model_size_bytes"]
    assert {b["buffer"] for b in run["buffers"] if b["kind"] == "model"} <= {"CPU_Mapped", "AMX"}
    assert d.detail["n_ctx"] == run["n_ctx"]


@pytest.mark.parametrize("run", [r for r in RUNS if r["kind"] == "mmproj"],
                         ids=lambda r: f"{r['mmproj']}-" + "-".join(f"{k}={v}" for k, v in r["settings"].items()))
def test_mmproj_weights_and_warmup_compute_buffer(run, files):
    """clip_model_loader's model size and warmup's compute buffer for the projector's image size."""
    fa = run["settings"]["flash_attn"]
    opts = _opts({"flash_attn": fa}, mmproj=str(files / f"{run['mmproj']}.gguf"))
    r = _check(files, "llama-a", opts=opts)
    (m,) = [e for e in r.extras if e.kind == "mmproj"]
    assert m.detail["image_size"] == run["warmup_image"]
    assert _mib(int(m.detail["weights"])) == next(b["mib"] for b in run["buffers"] if b["kind"] == "model") \
        or _mib(int(m.detail["weights"])) == run["clip_model_size_mib"]
    comp = [b["mib"] for b in run["buffers"] if b["kind"] == "compute"]
    assert _mib(int(m.detail["compute"])) == comp[-1]


def test_lora_refused_in_llama_cpps_words(files, tmp_path):
    base = _src(str(files / "llama-a.gguf"))
    with pytest.raises(InputError, match="failed to load lora adapter file from"):
        check_llamacpp(base.spec, None, LlamaOptions(n_ctx=4096, lora=(str(tmp_path / "none.gguf"),)),
                       base.llama_tensors(), solve=False)
    # an adapter made for another base model: a base tensor of another shape
    other = _src(str(files / "llama-draft.gguf"))
    r = check_llamacpp(other.spec, None, LlamaOptions(n_ctx=4096, lora=(str(files / "lora-r8-qv-f32.gguf"),)),
                       other.llama_tensors(), solve=False)
    assert [e.code for e in r.errors] == ["llamacpp.lora.refused"] and not r.fits
    assert "has incorrect shape (hint: maybe wrong base model?)" in r.errors[0].text


def test_lora_rank_without_the_file_matches_the_written_adapter(files):
    """--lora-rank R: the same tensors as convert_lora_to_gguf writes for every projection."""
    base = _src(str(files / "llama-a.gguf"))
    o = LlamaOptions(n_ctx=4096, n_parallel=1)
    by_file = check_llamacpp(base.spec, None, o.model_copy(update={"lora": (str(files / "lora-r16-all-f16.gguf"),)}),
                             base.llama_tensors(), solve=False)
    by_rank = check_llamacpp(base.spec, None, o.model_copy(update={"lora_rank": 16}), base.llama_tensors(), solve=False)
    assert by_file.extras[0].host_bytes == by_rank.extras[0].host_bytes
    assert by_file.devices[-1].compute_buffer_bytes == by_rank.devices[-1].compute_buffer_bytes


def test_pasted_command_reads_lora_draft_and_mmproj():
    p, r = read_command("llama-server -m x.gguf --lora a.gguf,b.gguf --lora-scaled c.gguf:0.5 -md d.gguf -ngld 10 "
                        "-devd none --spec-draft-n-max 8 -ctkd q8_0 --mmproj p.gguf --no-mmproj-offload")
    assert r.options == {"lora": ("a.gguf", "b.gguf"), "lora_scaled": ("c.gguf:0.5",), "model_draft": "d.gguf",
                         "n_gpu_layers_draft": 10, "device_draft": ("none",), "draft_max": 8, "type_k_draft": "q8_0",
                         "mmproj": "p.gguf", "mmproj_offload": False}
    assert p.refusal is None


def test_removed_draft_max_is_refused_as_llama_server_refuses_it():
    """common/arg.cpp arg_removed (4df29be): --draft-max stops llama-server; --spec-draft-n-max took its place."""
    p, r = read_command("llama-server -m x.gguf -md d.gguf --draft-max 16")
    said, at, words = p.refusal
    assert said.text == ('llama-server: error while handling argument "--draft-max": the argument has been removed. '
                         "use --spec-draft-n-max or --spec-ngram-mod-n-max")
    assert said.fix == "--spec-draft-n-max 16" and words == ["--spec-draft-n-max"] and r.options["draft_max"] == 16


def test_hf_without_a_tag_takes_llama_cpps_default_file():
    """common/download.cpp find_best_model: Q4_K_M, else Q8_0, else the first model file; ggml-org's gpt-oss repos
    hold only MXFP4 files."""
    assert hf_repo("ggml-org/gpt-oss-20b-GGUF") == ("openai/gpt-oss-20b", "MXFP4_MOE")
    assert hf_default("ggml-org/gpt-oss-120b-GGUF")[1] == "gpt-oss-120b-mxfp4-00001-of-00003.gguf"
    assert hf_default("unsloth/Qwen3-8B-GGUF") == ("Q4_K_M", None, None)  # files not known: the tag is assumed
    from vramcalc.pasted_command import _gguf_model

    warnings: list = []
    options: dict = {}
    _gguf_model("hf:unsloth/Qwen3-8B-GGUF", options, warnings)
    assert options["quant"] == "gguf:Q4_K_M"
    assert [w.code for w in warnings][:1] == ["llamacpp.hf.default_file"] and "is assumed" in warnings[0].text


def _speculative(run_id: str):
    from vramcalc.llamacpp.spec_speed import spec_data, with_draft
    from vramcalc.gguf_mix import plan_gguf

    run = next(r for r in spec_data().runs if r.id == run_id)
    target, draft, gpu, quant, dquant = {
        "llama3.1-8b-q8_0+llama3.2-1b-q8_0": ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B-Instruct",
                                              "rtx-3060-12gb", "Q8_0", "Q8_0"),
        "qwen2.5-coder-32b-q4_k_l+qwen2.5-coder-3b-q4_0": ("Qwen/Qwen2.5-32B", "Qwen/Qwen2.5-3B", "apple-m4-pro",
                                                           "Q4_K_M", "Q4_0")}[run_id]
    spec, dspec, g = catalog.load(target), catalog.load(draft), get_gpu(gpu)
    backend = "metal" if g.id.startswith("apple-") else "cuda"
    kw = dict(quant=f"gguf:{quant}", backend=backend, parallel=1, prompt=16, output=run.n_predict)
    est = for_engine_check(spec, "llamacpp", g, **kw)
    dep = Deployment(engine="llamacpp", backend=backend, gpu=g, quant=f"gguf:{quant}", link="pcie", parallel=1)
    fast, _ = with_draft(est, spec, g, dep, f"gguf:{quant}", dspec, plan_gguf(dspec, dquant), run.n_draft,
                         run.accept, 1)
    return run, fast


def test_speed_with_a_draft_on_published_runs():
    """The fitted run (its draft-token overhead was fitted on it) and the held-out one, whose error the estimate
    states (spec_speed.HELD_OUT_ERROR)."""
    from vramcalc.llamacpp.spec_speed import HELD_OUT_ERROR, per_token, printed_rate, tokens_per_step

    run, est = _speculative("llama3.1-8b-q8_0+llama3.2-1b-q8_0")
    assert abs(est.per_stream_tokens_per_s / run.tok_s_draft - 1) < 0.02
    # llama.cpp's tokens per step (n_predict over the steps, n_drafted / n_draft) from the printed rate
    a = per_token(run.accept, run.n_draft)
    assert abs(printed_rate(a, run.n_draft) - run.accept) < 1e-6
    assert abs(tokens_per_step(a, run.n_draft) - run.n_predict / (run.n_drafted / run.n_draft)) < 0.02
    run, est = _speculative("qwen2.5-coder-32b-q4_k_l+qwen2.5-coder-3b-q4_0")
    err = est.per_stream_tokens_per_s / run.tok_s_draft - 1
    assert abs(err - HELD_OUT_ERROR) < 0.02 and est.uncertainty == HELD_OUT_ERROR


def test_no_kv_offload_costs_host_reads_per_token():
    from vramcalc.llamacpp.spec_speed import with_host_kv

    spec, g = catalog.load("meta-llama/Llama-3.1-8B-Instruct"), get_gpu("rtx-4090")
    est = for_engine_check(spec, "llamacpp", g, quant="gguf:Q4_K_M", parallel=1, prompt=16384, output=256)
    slow, line = with_host_kv(est, spec, 1)
    # 16,512 cells x 128 KiB of F16 KV per token read at 60 GB/s: about 36 ms a token on top
    assert 30 < (slow.itl_s - est.itl_s) * 1e3 < 45 and "-nkvo" in line


LOGS = json.loads((DATA / "llamacpp_extras_logs.json").read_text())


@pytest.mark.parametrize("log", LOGS["lora"], ids=lambda l: l["url"])
def test_lora_buffers_of_a_published_run(log):
    """A real run's LoRA buffers per device (CUDA_Host for the CPU layers' pairs and token_embd's, the GPUs for the
    offloaded layers'), replayed at the modelled build's -ngl for the same placement."""
    from vramcalc.gguf_mix import plan_gguf
    from vramcalc.llamacpp.extras import LoraAdapter, LoraPair, lora_bytes
    from vramcalc.llamacpp.weights import model_buffers

    spec = catalog.load(log["model"])
    tensors = plan_gguf(spec, log["ftype"])
    ad, rank = log["adapter"], log["adapter"]["rank"]
    pairs = []
    for t, _ in tensors:
        kind = t.name.split(".")[-2] if t.name.startswith("blk.") else t.name.split(".")[0]
        if kind not in ad["targets"] or len(t.ne) != 2:
            continue
        if kind == "token_embd":  # lora_b {rank, n_embd}, lora_a {rank, n_vocab} (llm_build_inp_embd)
            pairs.append(LoraPair(base=t.name, a_ne=(rank, t.ne[1]), a_type=ad["type"], b_ne=(rank, t.ne[0]),
                                  b_type=ad["type"]))
        else:
            pairs.append(LoraPair(base=t.name, a_ne=(t.ne[0], rank), a_type=ad["type"], b_ne=(rank, t.ne[1]),
                                  b_type=ad["type"]))
    assert 2 * len(pairs) == 450
    adapter = LoraAdapter(ref="lora.gguf", arch="llama", alpha=float(rank), pairs=tuple(pairs))
    mb = model_buffers(tensors, spec.num_layers, log["n_gpu_layers_modelled"], [1.0, 1.0],
                       record=frozenset(p.base for p in pairs))
    gpu, host = lora_bytes([adapter], mb.tensor_device, 2, 32, 128, row_padding=True)
    assert (_mib(host), _mib(sum(gpu))) == (log["mib"]["host"], log["mib"]["gpus"])


def test_mmproj_url_is_the_file_llama_cpp_downloads_it_to(files, tmp_path):
    """-mmu / --mmproj-url URL (common/arg.cpp at 4df29be): common_models_handler_apply downloads the projector to
    --mmproj's path, else to the cache file of the URL's last part ($LLAMA_CACHE/NAME: common/common.cpp
    fs_get_cache_file, get_default_local_path drops ? and #), and loads it from there: the same projector as
    --mmproj of that file, whose buffers the recorded runs check. Not there: not counted, and said so."""
    from vramcalc.pasted_command import check_command

    name = "mmproj-gemma3-224.gguf"
    (tmp_path / name).write_bytes((files / name).read_bytes())
    model = f"-m {files / 'llama-a.gguf'} -c 4096 -np 1"
    mm = lambda r: next(e for e in r.result.extras if e.kind == "mmproj")  # noqa: E731
    direct = mm(check_command(f"llama-server {model} --mmproj {tmp_path / name}", "4090"))
    url = f"https://huggingface.co/x/y/resolve/main/{name}?download=true"
    r = check_command(f"LLAMA_CACHE={tmp_path} llama-server {model} -mmu '{url}'", "4090")
    assert (mm(r).gpu_bytes, mm(r).host_bytes) == (direct.gpu_bytes, direct.host_bytes) and mm(r).gpu_bytes[0] > 0
    assert r.options["mmproj"] == str(tmp_path / name) and "llamacpp.mmproj.url" not in [w.code for w in r.warnings]
    # with --mmproj PATH the download goes to that path
    given = check_command(f"llama-server {model} --mmproj {tmp_path / name} --mmproj-url {url}", "4090")
    assert mm(given).gpu_bytes == direct.gpu_bytes
    away = check_command(f"LLAMA_CACHE={tmp_path / 'empty'} llama-server {model} -mmu {url}", "4090")
    assert not [e for e in away.result.extras if e.kind == "mmproj"]
    (w,) = [w for w in away.warnings if w.code == "llamacpp.mmproj.url"]
    assert str(tmp_path / "empty" / name) in w.text and "not counted" in w.text


def test_image_token_limits_and_mtmd_batch_with_a_gemma3_projector(files, tmp_path):
    """--image-min-tokens / --image-max-tokens / --mtmd-batch-max-tokens (common/arg.cpp at 4df29be): Gemma 3's
    projector never reads the token limits (clip.cpp load_hparams calls no set_limit_image_tokens for
    PROJECTOR_TYPE_GEMMA3; mtmd_image_preprocessor_fixed_size resizes to image_size) and its graph takes no batches
    (clip_graph_siglip: support_batch false), so the warmup buffers the recorded runs check are the ones llama-server
    holds: listed as no effect. Checked on real runs with the three set (tools/record_mtmd_limits.py). Without a projector they act on nothing; with another projector type they are warned
    about as not modelled."""
    from vramcalc.pasted_command import check_command

    # the real runs (tests/data/llamacpp_mtmd_limits.json, llama.cpp 4df29be on the CPU): whatever the three settings,
    # the same warmup image and compute buffer, which vramcalc gives, and no second image in a batch
    limits = json.loads((DATA / "llamacpp_mtmd_limits.json").read_text())
    assert limits["llama_cpp_commit"] == "4df29be" and len(limits["runs"]) == 8
    for lim in limits["runs"]:
        opts = _opts({"flash_attn": "auto"}, mmproj=str(files / f"{lim['mmproj']}.gguf"))
        (m,) = [e for e in _check(files, "llama-a", opts=opts).extras if e.kind == "mmproj"]
        assert (m.detail["image_size"], _mib(int(m.detail["compute"]))) == (lim["warmup_image"], lim["compute_mib"])
        assert lim["batch_add"] == [0, 2]  # mtmd_batch_add_chunk: 2, no batch support (any batch_max_tokens)
        cmd = (f"llama-server -m {files / 'llama-a.gguf'} --mmproj {files / (lim['mmproj'] + '.gguf')} "
               f"--image-min-tokens {lim['image_min_tokens']} --image-max-tokens {lim['image_max_tokens']} "
               f"--mtmd-batch-max-tokens {lim['batch_max_tokens']}")
        assert read_command(cmd)[1].no_effect[-3:] == [f"--image-min-tokens {lim['image_min_tokens']}",
                                                       f"--image-max-tokens {lim['image_max_tokens']}",
                                                       f"--mtmd-batch-max-tokens {lim['batch_max_tokens']}"]

    mm = files / "mmproj-gemma3-448.gguf"
    run = next(r for r in RUNS if r["kind"] == "mmproj" and r["mmproj"] == "mmproj-gemma3-448"
               and r["settings"]["flash_attn"] == "auto")
    base = f"llama-server -m {files / 'llama-a.gguf'} -c 4096 -np 1 --mmproj {mm} --no-mmproj-offload"
    flags = "--image-min-tokens 64 --image-max-tokens 4096 --mtmd-batch-max-tokens 8192"
    r = check_command(f"{base} {flags}", "4090")
    (m,) = [e for e in r.result.extras if e.kind == "mmproj"]
    assert _mib(int(m.detail["compute"])) == [b["mib"] for b in run["buffers"] if b["kind"] == "compute"][-1]
    assert r.no_effect[-3:] == ["--image-min-tokens 64", "--image-max-tokens 4096", "--mtmd-batch-max-tokens 8192"]
    assert not [w for w in r.warnings if w.code == "command.not_modelled"]
    plain = check_command(base, "4090")
    assert r.result.extras == plain.result.extras
    # no projector: nothing to act on
    alone = check_command(f"llama-server -m {files / 'llama-a.gguf'} -c 4096 --image-max-tokens 256", "4090")
    assert alone.no_effect == ["--image-max-tokens 256"]
    # another projector type (a dynamic-resolution one): its graphs follow the limits, not modelled
    xm.write_mmproj("mmproj-gemma3-224", tmp_path / "q.gguf", projector="qwen2vl_merger")
    q = check_command(f"llama-server -m {files / 'llama-a.gguf'} -c 4096 --mmproj {tmp_path / 'q.gguf'} "
                      "--image-max-tokens 256", "4090")
    (said,) = [x for x in q.warnings if x.code == "command.not_modelled"]
    assert said.text.startswith("--image-max-tokens 256") and "qwen2vl_merger projector" in said.text
    hf = check_command("llama-server -hf ggml-org/gemma-3-4b-it-GGUF:Q4_K_M -c 4096 --image-max-tokens 256", "4090")
    assert [x for x in hf.warnings if x.code == "command.not_modelled"]
