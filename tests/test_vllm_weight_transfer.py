"""--weight-transfer-config (vramcalc/vllm/weight_transfer.py) against vLLM 0.34.0's own defaults read on CPU
(tests/data/vllm_weight_transfer_oracle_v0.34.0.json, made by tools/vllm_weight_transfer_oracle.py): the engine holds
nothing at start-up, and each weight update's receive buffers per GPU, at the trainer's default init info, come out
of what the KV cache leaves."""

import json

import pytest

from conftest import DATA
from vramcalc.errors import InputError
from vramcalc.pasted_command import check_command
from vramcalc.vllm.features import features
from vramcalc.vllm.weight_transfer import transfer_buffers

ORACLE = json.loads((DATA / "vllm_weight_transfer_oracle_v0.34.0.json").read_text())
WT = features().json_flags.weight_transfer
BASE = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"


def _flag(backend: str) -> str:
    return f"--weight-transfer-config '{json.dumps({'backend': backend})}'"


def _codes(r, prefix: str = "vllm.weight_transfer"):
    return [w for w in r.result.warnings if w.code.startswith(prefix)]


def test_oracle_names_release_and_method():
    assert ORACLE["release"] == "0.34.0" == WT.version and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"]


def test_every_registered_backend_is_sized_or_said_not_to_be():
    """The factory's registry: each backend either has default buffers (sized) or is warned about (unsized)."""
    assert ORACLE["backends"] == WT.backends
    assert set(WT.buffers) | set(WT.unsized) == set(WT.backends) and not set(WT.buffers) & set(WT.unsized)


@pytest.mark.parametrize("backend", ["nccl", "ipc", "sharded_rdt"])
def test_default_buffers_equal_vllms_own(backend):
    """Per GPU, at the trainer's default init info: NCCL packed_num_buffers x packed_buffer_size_bytes (the trainer
    defaults to packed); IPC none of its own (unpacked), one chunk of packed_buffer_size_bytes packed; sharded_rdt
    num_rdt_buffers slots of buffer_alloc_bytes' smallest (256 MiB) at the default presize."""
    t = transfer_buffers(backend)
    assert t is not None and t.bytes == ORACLE["figures"][backend]
    d, pt = ORACLE["defaults"], ORACLE["packed_tensor"]
    if backend == "nccl":
        nccl = d["NCCLTrainerInitInfo"]
        assert nccl["packed"] and not d["NCCLWeightTransferInitInfo"]["packed"]  # the trainer's default wins
        assert t.buffer_bytes == nccl["packed_buffer_size_bytes"] == pt["DEFAULT_PACKED_BUFFER_SIZE_BYTES"]
        assert t.num_buffers == nccl["packed_num_buffers"] == pt["DEFAULT_PACKED_NUM_BUFFERS"]
        assert t.packed_buffer_bytes == nccl["packed_buffer_size_bytes"]
    elif backend == "ipc":
        assert not d["IPCTrainerInitInfo"]["packed"] and not d["IPCWeightTransferInitInfo"]["packed"]
        assert t.packed_buffer_bytes == ORACLE["figures"]["ipc_packed"] == d["IPCTrainerInitInfo"][
            "packed_buffer_size_bytes"]
    else:
        rdt = d["ShardedRDTWeightTransferInitInfo"]
        assert rdt["buffer_presize_gb"] == 0
        assert t.buffer_bytes == ORACLE["sharded_rdt_min_slot_bytes"] and t.num_buffers == rdt["num_rdt_buffers"]


def test_unsized_backends_have_no_figure():
    assert all(transfer_buffers(b) is None for b in WT.unsized) and transfer_buffers(None) is None


def test_pasted_nccl_warns_the_figure_and_leaves_the_kv_cache_as_without_it():
    """Nothing at start-up: the KV cache is the same; the 2 GiB of the default packed buffers is said per GPU, with
    what the KV cache leaves and that the trainer's init info changes it."""
    plain = check_command(BASE, "h100")
    r = check_command(f"{BASE} {_flag('nccl')}", "h100")
    assert r.fits and r.result.kv_cache_tokens == plain.result.kv_cache_tokens
    (w,) = _codes(r)
    assert w.code == "vllm.weight_transfer.buffers" and "2 x 1.00 GiB = 2.00 GiB per GPU" in w.text
    assert "nothing is held at start-up" in w.text and "trainer's init info changes it" in w.text
    assert "no promise" in w.text
    assert not [w for w in r.warnings if w.code == "command.not_modelled"]
    assert _flag("nccl") in r.result.command


def test_pasted_buffers_that_do_not_fit_warn_that_the_kv_cache_still_starts():
    r = check_command(f"{BASE} {_flag('nccl')} --gpu-memory-utilization 0.99 --disable-extensible-kv-cache", "h100")
    assert r.fits
    (w,) = _codes(r)
    assert w.code == "vllm.weight_transfer.oom" and "the KV cache still starts" in w.text and w.fix
    assert "2.00 GiB per GPU" in w.text


def test_pasted_sharded_rdt_and_ipc():
    r = check_command(f"{BASE} {_flag('sharded_rdt')} --distributed-executor-backend ray", "h100")
    (w,) = _codes(r)
    assert w.code == "vllm.weight_transfer.buffers" and "at least 2 x 0.25 GiB = 0.50 GiB per GPU" in w.text
    r = check_command(f"{BASE} {_flag('ipc')}", "h100")
    (w,) = _codes(r)
    assert w.code == "vllm.weight_transfer.buffers" and "0 GiB of vLLM's own at the default" in w.text
    assert "1.00 GiB per GPU with packed" in w.text


@pytest.mark.parametrize("backend", sorted(WT.unsized))
def test_pasted_unsized_backend_is_a_precise_not_modelled_warning(backend):
    r = check_command(f"{BASE} {_flag(backend)}", "h100")
    assert not _codes(r)
    (w,) = [w for w in r.warnings if w.code == "command.not_modelled"]
    assert w.text.startswith("--weight-transfer-config") and backend in w.text and WT.unsized[backend] in w.text


def test_refusals_stay_in_vllms_words():
    with pytest.raises(InputError) as e:
        check_command(f"{BASE} {_flag('nonexistent')}", "h100")
    assert "Invalid weight transfer backend: nonexistent. Available engines: ['nccl', 'ipc'" in str(e.value)
    with pytest.raises(InputError) as e:
        check_command(f"{BASE} {_flag('sharded_rdt')} -tp 2 --distributed-executor-backend mp", "2xh100")
    assert "requires distributed_executor_backend='ray', got 'mp'" in str(e.value)


@pytest.mark.parametrize("backend,tp,pp", [("nccl", 1, 1), ("nccl", 2, 1), ("sharded_rdt", 1, 2)])
def test_the_explained_term_is_each_ranks_default_buffers(backend, tp, pp):
    """Every worker receives the trainer's weights: the term is per rank, against the tightest rank's room."""
    from vramcalc.gpus import find_gpu
    from vramcalc.sources.catalog import load
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    r = check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100"), VLLMOptions(tp=tp, pp=pp, max_model_len=8192,
                                                                       weight_transfer_backend=backend))
    (t,) = [t for t in r.trace if t.name.startswith("weight-transfer buffers")]
    assert t.value == ORACLE["figures"][backend] and t.inputs["backend"] == backend
    assert len([w for w in r.warnings if w.code.startswith("vllm.weight_transfer")]) == 1
    plain = check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100"), VLLMOptions(tp=tp, pp=pp, max_model_len=8192))
    assert plain.kv_cache_tokens == r.kv_cache_tokens and not [t for t in plain.trace if "weight-transfer" in t.name]
