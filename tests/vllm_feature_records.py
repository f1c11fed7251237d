"""Shared reading of the speculative-decoding start-up records of tests/data/vllm_feature_logs.json: the KV pool a
record's target and drafter make (vramcalc/vllm/spec_decode.py plan_speculative, the drafter's config as the record
gives it), for the replays in test_vllm_features.py and test_vllm_feature_logs.py."""

from vramcalc.sources.catalog import load
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.kv import KVPool, KVSettings, kv_pool
from vramcalc.vllm.spec_decode import plan_speculative


def drafter_pool(r: dict, with_drafter: bool = True) -> tuple[KVPool, KVSettings]:
    """The record's KV pool and settings; with_drafter=False leaves the drafter's KV layers out (what it costs)."""
    spec, o = load(r["model"]), r["options"]
    sc = o["speculative_config"]
    draft = spec_from_config(r["draft_config"], model_id=sc["model"], source=r["draft_config_source"], where=r["id"])
    plan = plan_speculative(sc, spec, o["tp"], 1, o["max_model_len"], None, draft)
    assert not plan.errors, plan.errors
    s = KVSettings(tp=o["tp"], kv_cache_dtype=o["kv_cache_dtype"], max_num_batched_tokens=o["max_num_batched_tokens"],
                   block_size=o["block_size"], num_speculative_tokens=plan.num_speculative_tokens,
                   max_model_len=o["max_model_len"])
    pool_spec = spec.model_copy(update={"layers": spec.layers + plan.draft_layers}) if with_drafter else spec
    return kv_pool(pool_spec, s), s
