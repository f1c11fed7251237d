"""The citations in the code, data, tests, README and docs/ point at places a reader can open: the
upstream sources (pinned to a release tag or commit) and this repository's own docs/ sections.
No citation of notes kept outside the repository, and no text about how a figure was looked up."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
THIS = Path(__file__).resolve()

OUTSIDE = re.compile(r"\w+_rules\.md|\.\./shared")
PROVENANCE = re.compile("code" "-index|index file" " id|by the" " tool|looked_up" "_in_", re.I)  # split: no file holds them
DOC_CITE = re.compile(r"docs/([\w-]+)\.md#([\w-]+)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _text_files():
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*"))]
    for top in ("vramcalc", "tests"):
        paths += sorted((ROOT / top).rglob("*"))
    for p in paths:
        if not p.is_file() or p.resolve() == THIS or "__pycache__" in p.parts:
            continue
        data = p.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary test fixtures (GGUF, safetensors)
        yield p, data.decode("utf-8", errors="replace")


FILES = list(_text_files())


def _where(pattern):
    return [f"{p.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
            for p, text in FILES for m in pattern.finditer(text)]


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[`*_~]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(doc.read_text())}


def test_the_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p, _ in FILES}
    assert {"README.md", "docs/vllm.md", "docs/llamacpp.md", "vramcalc/vllm/kv.py"} <= names


def test_no_citation_of_notes_outside_the_repository():
    assert _where(OUTSIDE) == []


def test_no_text_about_how_a_figure_was_looked_up():
    assert _where(PROVENANCE) == []


def test_every_cited_doc_section_exists():
    cited = [(p, m.group(1), m.group(2)) for p, text in FILES for m in DOC_CITE.finditer(text)
             if p.parts[len(ROOT.parts)] in ("vramcalc", "tests", "README.md")]
    assert cited, "the code cites docs/ sections"
    missing = []
    for p, doc, anchor in cited:
        path = ROOT / "docs" / f"{doc}.md"
        if not path.exists() or anchor not in anchors(path):
            missing.append(f"{p.relative_to(ROOT)}: docs/{doc}.md#{anchor}")
    assert missing == []


@pytest.mark.parametrize("doc", ["vllm.md", "llamacpp.md"])
def test_doc_links_inside_each_doc_resolve(doc):
    path = ROOT / "docs" / doc
    text = path.read_text()
    own = anchors(path)
    assert [a for a in re.findall(r"\]\(#([\w-]+)\)", text) if a not in own] == []
    assert len(own) == len(HEADING.findall(text)), "headings are unique, so each anchor is stable"


def test_upstream_links_are_pinned():
    text = "\n".join((ROOT / "docs" / d).read_text() for d in ("vllm.md", "llamacpp.md"))
    vllm = re.findall(r"github\.com/vllm-project/vllm/(?:blob|tree)/([^/\s)]+)/", text)
    llama = re.findall(r"github\.com/ggml-org/llama\.cpp/(?:blob|tree)/([^/\s)]+)/", text)
    assert vllm and llama
    assert {ref for ref in vllm if not re.fullmatch(r"v\d+\.\d+\.\d+", ref)} == set()
    assert set(llama) == {"4df29be"}
