"""Every bundled data file validates against its model (vramcalc/data_models.py), and the loader
refuses a malformed file with the file and the field named."""

import json
from importlib import resources

import pytest

from vramcalc.data_files import DataFileError, load, load_file, names, raw
from vramcalc.data_models import FILES, CatalogFile, LlamaMargins, Planner

DATA = resources.files("vramcalc").joinpath("data")


def test_every_data_file_has_a_model():
    on_disk = {f.name for f in DATA.iterdir() if f.name.endswith(".json")}
    assert on_disk == set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_data_file_validates(name):
    model = FILES[name]
    assert isinstance(load(name, model), model)
    # the raw view is the file as written
    assert raw(name, model) == json.loads(DATA.joinpath(name).read_text())


@pytest.mark.parametrize("name", names("models"))
def test_catalog_file_validates(name):
    entry = load(f"models/{name}", CatalogFile)
    assert name == entry.repo_id.replace("/", "__") + ".json"


def test_missing_field_is_refused(tmp_path):
    d = json.loads(DATA.joinpath("planner.json").read_text())
    del d["default_context"]
    p = tmp_path / "planner.json"
    p.write_text(json.dumps(d))
    with pytest.raises(DataFileError, match=r"planner\.json does not match Planner: default_context: Field required"):
        load_file(p, Planner)


def test_unknown_field_and_wrong_type_are_refused(tmp_path):
    d = json.loads(DATA.joinpath("llamacpp_margins.json").read_text())
    d["replay_margins"]["granitehybrid"]["value"] = "three percent"
    d["uncertainty"]["typo"] = 1
    p = tmp_path / "margins.json"
    p.write_text(json.dumps(d))
    with pytest.raises(DataFileError) as e:
        load_file(p, LlamaMargins)
    assert "replay_margins.granitehybrid.value" in str(e.value) and "uncertainty.typo" in str(e.value)


def test_not_json_is_refused(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text("{")
    with pytest.raises(DataFileError, match="not valid JSON"):
        load_file(p, Planner)


def test_margins_carry_their_evidence():
    m = load("llamacpp_margins.json", LlamaMargins)
    for margin in (m.uncertainty, m.replay_gpu_margin, *m.replay_margins.values()):
        assert 0 <= margin.value < 1
        assert "tests/data/" in margin.evidence or "shared/ground_truth/" in margin.evidence
