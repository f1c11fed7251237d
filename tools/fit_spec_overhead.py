"""Fit vLLM speculative decoding's verify overhead (data/vllm_spec.json verify_overhead) on the fit split of the
published runs (tests/data/spec_speed_measurements.json, split by a hash of URL and case id fixed before any
comparison): the median of the measured verify step less the modelled one, in plain decode steps, over the fit
runs that print their acceptance length. The held-out runs are never read. --write stores it.

    PYTHONPATH=$PWD python tools/fit_spec_overhead.py [--write]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import spec_speed_cases as S  # noqa: E402


def main() -> None:
    share, ids = S.fit_verify_overhead()
    print(f"verify overhead: {share:.4f} plain steps, fitted on {len(ids)} runs: {', '.join(ids)}")
    if "--write" in sys.argv:
        path = ROOT / "vramcalc" / "data" / "vllm_spec.json"
        d = json.loads(path.read_text())
        d["verify_overhead"]["plain_steps"] = round(share, 2)
        d["verify_overhead"]["fitted_on"] = ids
        path.write_text(json.dumps(d, indent=1) + "\n")


if __name__ == "__main__":
    main()
