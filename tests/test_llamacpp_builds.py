"""--llamacpp-build: a build is placed against each PR of data/llamacpp_builds.json and follows the rule of its
side; the older rules are checked against a recorded log of such a build."""

import pytest

from vramcalc.errors import NotModelledError
from vramcalc.gguf_mix import plan_gguf
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.builds import builds_data, resolve_build
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources.catalog import load

MIB = 2**20


def test_latest_and_the_modelled_commit_hold_every_change():
    every = {c.pr for c in builds_data().changes}
    for b in ("latest", "4df29be", "4DF29BE"):
        assert resolve_build(b).merged == every and resolve_build(b).label == "4df29be"


def test_a_date_is_placed_against_each_merge_date():
    b = resolve_build("2025-02-01")  # after PR #11124 (2025-01), before #12498 (2025-03-21)
    assert b.has(11124) and not b.has(12498) and not b.has(12632) and not b.has(23861)
    # a date after every merge but #25962's (after 2026-07-21)
    assert resolve_build("2026-07-01").merged == resolve_build("latest").merged - {25962}


@pytest.mark.parametrize("build, named", [
    ("2025-03", "#12498"),  # the month of a merge dated to the day: either side
    ("2025-11-15", "#17046"),  # inside the bounds (2025-11-07 to 11-28) of a merge the page gives no date for
    ("b4351", "first release not recorded"),  # no release number recorded for the boundaries
    ("2024-12-01", "older than PR #11124"),
    ("b2000", "older than PR #11124"),  # at or below release b2822 (May 2024, PR #6766)
    ("deadbeef1", "release tag"),
])
def test_a_build_that_cannot_be_placed_is_refused_by_name(build, named):
    with pytest.raises(NotModelledError, match=named):
        resolve_build(build)


def _c26(build: str):
    # llamacpp_dev c26 (tests/data/llamacpp_dev_gpus.json): Llama-3.1-8B Q4_0 with F16 token_embd and output,
    # -ngl 0 beside a Vulkan device, -c 4096; the log prints CPU_AARCH64 model buffer 3744.00 MiB, CPU KV 512.00 MiB
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    tensors = plan_gguf(spec, "Q4_0", token_embedding_type="F16", output_tensor_type="F16")
    opts = LlamaOptions(ftype="Q4_0", n_ctx=4096, n_parallel=1, n_gpu_layers=0, backend="vulkan", flash_attn="off",
                        program="llama-cli", build=build)
    return check_llamacpp(spec, [find_gpu("h100-sxm")], opts, tensors, solve=False)


def test_before_pr_12498_the_cpu_weights_are_repacked_beside_a_gpu():
    old = _c26("2025-02-01")
    host = old.devices[-1]
    assert round(host.repack_buffer_bytes / MIB, 2) == 3744.00
    assert round(sum(c.k_bytes + c.v_bytes for c in old.caches) / MIB, 2) == 512.00
    assert old.build == "master of 2025-02-01"
    new = _c26("latest")  # since PR #12632 the Vulkan_Host buffer takes them: no repack
    assert new.devices[-1].repack_buffer_bytes == 0 and new.build == "4df29be"


def test_before_pr_18148_ngl_counts_the_last_blocks_and_the_output_layer_last():
    """Before PR #18148 -ngl N put the last N blocks on the GPU and the output layer only for N > n_layer; since, the
    output layer is the first unit offloaded (m01's log, ggml-org/llama.cpp#13729, checks the old order to the
    byte in tests/test_llamacpp_dev_more.py)."""
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    for ngl, old_out, new_out in ((10, -1, 0), (32, -1, 0), (33, 0, 0)):
        old, new = (check_llamacpp(spec, [find_gpu("h100-sxm")], LlamaOptions(ftype="Q4_0", n_ctx=4096, n_gpu_layers=ngl,
                                                                             build=b), None, solve=False)
                    for b in ("2025-06-01", "latest"))
        assert old.n_gpu_layers == new.n_gpu_layers == ngl
        blocks_old = old.devices[0].model_buffer_bytes
        assert (blocks_old < new.devices[0].model_buffer_bytes) == (old_out != new_out)


def test_c26_blas_backend_keeps_the_matmuls_off_the_gpu():
    # c26 prints Vulkan0 compute 24.00 MiB: with a BLAS backend (--blas) no weight is copied to the GPU, which
    # holds the norm multiplies of the CPU layers only (3 F32 hidden columns of n_ubatch 512)
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    tensors = plan_gguf(spec, "Q4_0", token_embedding_type="F16", output_tensor_type="F16")
    opts = LlamaOptions(ftype="Q4_0", n_ctx=4096, n_parallel=1, n_gpu_layers=0, backend="vulkan", flash_attn="off",
                        program="llama-cli", build="2025-02-01", blas=True)
    r = check_llamacpp(spec, [find_gpu("h100-sxm")], opts, tensors, solve=False)
    assert round(r.devices[0].compute_buffer_bytes / MIB, 2) == 24.00
    # the log's host compute buffers: CPU 258.50 + Vulkan_Host 288.01 MiB; vramcalc counts the CPU layers' phase
    # formula there, which runs high here (never low)
    assert 546.51 <= r.host_compute_bytes / MIB <= 546.51 * 1.10


def test_plan_passes_the_build_to_the_llamacpp_rows():
    from vramcalc.errors import NotModelledError as NM
    from vramcalc.plan import Pins, plan
    from vramcalc.systems import parse_system
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(NM, match="#12498"):
        plan(spec, parse_system("rtx4090"), context=8192, engine="llamacpp", pins=Pins(llamacpp_build="2025-03"))
    old = plan(spec, parse_system("rtx4090"), context=8192, engine="llamacpp", pins=Pins(llamacpp_build="2025-02-01"))
    assert old.recommendations and not any("--swa-full" in c for c in old.recommendations[0].commands)


def _change(pr: int):
    return next(c for c in builds_data().changes if c.pr == pr)


@pytest.mark.parametrize("pr, lacks, unplaced, holds", [
    # b4465 of 2025-01-12 or older (issues/11204); b4879 of 2025-03-12 or newer (c12 runs gemma3, PR #12343)
    (11124, 2822, 4465, 4879),  # merged January 2025: b2822 (May 2024) lacks it, b4879 holds it
    (12498, 4879, 4880, 8428),  # merged 2025-03-21: b4879 (2025-03-13) lacks it, b8428 (qwen35, Feb 2026) holds it
    (13194, 5287, 5288, 7217),  # merged 2025-05-20: b5287 (2025-05-06) lacks it, b7217 (gpt-oss, 2025-08-05) holds it
    (17046, 6451, 6452, 8428),  # merged 2025-11-07 to 11-28: b6451 (2025-09-13) lacks it
    (18148, 7045, 7046, 8428),  # merged December 2025: b7045 (2025-11-13) lacks it
    (19067, 7571, 7572, 8428),  # merged January 2026: b7571 (2025-12-29) lacks it
    (18898, 7571, 7572, 8354),  # merged 2026-01-23: b8354 (qwen35moe, PR #19468, Feb 2026) holds it
    (23861, 9292, 9293, None),  # merged 2026-06-01: b9292 (2026-05-23, issues/23551) lacks it
    (14366, 5287, 5288, 7217),  # Vulkan RMS_NORM+MUL fusion, merged 2025-05-14 to 07-05 (speed_only)
    (15850, 5287, 5288, 7340),  # Vulkan graph sort, 2025-09-08: b7340 (of 2025-11-24 or newer) holds it (speed_only)
])
def test_a_release_number_on_each_side_of_a_bound_follows_that_side(pr, lacks, unplaced, holds):
    from vramcalc.llamacpp.builds import _by_release
    data, c = builds_data(), _change(pr)
    assert _by_release(lacks, c, data) is False and _by_release(lacks - 500, c, data) is False
    assert _by_release(unplaced, c, data) is None
    if holds is not None:
        assert _by_release(holds, c, data) is True and _by_release(holds + 500, c, data) is True


def test_a_release_inside_a_window_is_refused_naming_the_window():
    with pytest.raises(NotModelledError, match=r"PR #12498 \(2025-03-21, first release not recorded: between b4880 "
                                               r"and b7217\)"):
        resolve_build("b4900")
    with pytest.raises(NotModelledError, match=r"PR #23861 .*between b9293 and \?"):
        resolve_build("b9849")


def test_a_release_placed_on_every_bound_holds_the_rules_of_its_side():
    every = {c.pr for c in builds_data().changes}
    # after every merge but #23861's, #23981's, #23988's (2026-06-01; #23988 first in b9464) and #25962's
    for b in ("b8354", "b8428", "8428", "b9292"):
        assert resolve_build(b).merged == every - {23861, 23981, 23988, 25962} and resolve_build(b).label.startswith("b")


def test_the_logits_rows_switch_at_the_release_bounds_of_pr_23861():
    # llama-server before PR #23861 reserves n_batch logits rows, since it one per slot: release b9292 (2026-05-23)
    # computes as n_outputs_max = n_batch, the latest build does not
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    gpu = [find_gpu("h100-sxm")]
    old = check_llamacpp(spec, gpu, LlamaOptions(ftype="Q4_0", n_ctx=4096, build="b9292"), None, solve=False)
    hand = check_llamacpp(spec, gpu, LlamaOptions(ftype="Q4_0", n_ctx=4096, n_outputs_max=2048), None, solve=False)
    new = check_llamacpp(spec, gpu, LlamaOptions(ftype="Q4_0", n_ctx=4096), None, solve=False)
    # #14990 (merged 2025-07-31 to 2026-08-16) only splits the host's buffers: the label says b9292 takes its rule as
    # the modelled build's
    assert old.build == "b9292 (as the modelled build for the host buffer split of PR #14990)"
    assert old.devices[0].compute_buffer_bytes == hand.devices[0].compute_buffer_bytes
    assert old.devices[0].compute_buffer_bytes > new.devices[0].compute_buffer_bytes


def test_a_date_between_the_tightened_bounds_is_placed():
    # #13194 merged 2025-05-20 (its page), #17046 reviewed unmerged on 2025-11-07: a master build of 2025-09-01
    # holds the SWA cache and lacks the 256 context padding
    b = resolve_build("2025-09-01")
    assert b.has(13194) and not b.has(17046) and not b.has(18148)
    assert not resolve_build("2025-05-19").has(13194)


def test_c12_replays_under_its_release_b4879():
    # llamacpp_dev c12 (https://github.com/fabiomatricardi/Gemma3-1b-gradio-chatbot/blob/main/_terminalGemma3.py.py):
    # llama-server b4879 (f08f4b31), Gemma 3 1B Q8_0 on Vulkan, -c 8192, no flash attention. b4879 is placed
    # (AOSC PR 10063 of 2025-03-13; it runs Gemma 3, added 2025-03-12): it holds #11124 only, so it has no SWA
    # cache (all 26 layers cache the whole context: 208.00 MiB logged) and reserves n_batch logits rows
    assert resolve_build("b4879").merged == {11124}
    spec = load("google/gemma-3-1b-it")
    opts = LlamaOptions(ftype="Q8_0", n_ctx=8192, n_parallel=1, n_gpu_layers=999, backend="vulkan",
                        flash_attn="off", build="b4879")
    r = check_llamacpp(spec, [find_gpu("h100-sxm")], opts, plan_gguf(spec, "Q8_0"), solve=False)
    assert r.build == "b4879"
    assert round(sum(c.k_bytes + c.v_bytes for c in r.caches) / MIB, 2) == 208.00
    # Vulkan0 compute 514.25 MiB logged; the benchmark's +4.6% (never low)
    assert 514.25 <= r.devices[0].compute_buffer_bytes / MIB <= 514.25 * 1.06


def test_a_build_placed_in_part_follows_the_modelled_rule_only_where_asked():
    # b7342 (llamacpp_dev c01) lacks every PR after 2025-12-29 (b7571) but cannot be placed against #17046 / #18148
    with pytest.raises(NotModelledError, match="#18148"):
        resolve_build("b7342")
    b = resolve_build("b7342", unplaced_as_modelled=True)
    assert b.has(17046) and b.has(18148) and not b.has(18898) and not b.has(19067)
    assert "#17046" in b.label and "#18148" in b.label
    with pytest.raises(NotModelledError, match="older than PR #11124"):  # a build before every rule stays refused
        resolve_build("2024-02", unplaced_as_modelled=True)


def test_the_embeddings_input_joins_the_host_buffer_at_pr_18898():
    # llm_graph_context::build_inp_embd with ggml_build_forward_select (PR #18898, 2026-01-23): the unused F32
    # embeddings input (n_embd x n_ubatch) is a graph input of every graph, in the host compute buffer; a build of
    # 2025-11-30 lacks it, b8354 holds it. The GPU's buffer does not change (nothing copies the unused input).
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    gpu = [find_gpu("h100-sxm")]
    old = check_llamacpp(spec, gpu, LlamaOptions(ftype="Q4_0", n_ctx=4096, build="2025-11-30"), None, solve=False)
    new = check_llamacpp(spec, gpu, LlamaOptions(ftype="Q4_0", n_ctx=4096, build="b8354"), None, solve=False)
    assert new.host_compute_bytes - old.host_compute_bytes == 4096 * 512 * 4
    assert new.devices[0].compute_buffer_bytes == old.devices[0].compute_buffer_bytes


def test_a_speed_only_pr_the_build_cannot_be_placed_against_is_lacked_not_refused():
    """The Vulkan era PRs (data/speed.json llamacpp_vulkan_eras) change no buffer: a build inside their windows is
    not refused for them, counts as lacking them (the slower era) even with unplaced_as_modelled, and names them."""
    day = resolve_build("2025-06-01")  # inside PR #14366's bounds (2025-05-14 to 07-05), after #13194 (05-20)
    assert day.has(13194) and not day.has(14366) and day.unplaced == {14366}
    assert resolve_build("2025-09-08").unplaced == {15850}  # its merge day: either side
    b6715 = resolve_build("b6715", unplaced_as_modelled=True)  # between b5287 (lacks both) and b7217 / b7340
    assert b6715.unplaced == {14366, 15850} and not (b6715.has(14366) or b6715.has(15850)) and b6715.has(17046)
    b7293 = resolve_build("b7293", unplaced_as_modelled=True)  # at or above b7217 (holds #14366), below b7340
    assert b7293.has(14366) and b7293.unplaced == {15850}
    assert resolve_build("latest").unplaced == frozenset() and {14366, 15850} <= resolve_build("latest").merged
