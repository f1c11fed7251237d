"""The installed package carries every module and data file the source tree has."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_contains_every_module_and_data_file(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    wheel = next(tmp_path.glob("vramcalc-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    src = {str(f.relative_to(ROOT)) for f in (ROOT / "vramcalc").rglob("*")
           if f.is_file() and f.suffix in (".py", ".json", ".typed") and "__pycache__" not in f.parts}
    assert src - names == set()
