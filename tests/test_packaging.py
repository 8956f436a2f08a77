"""What the README says the ``torchvision`` extra installs is what pip would install.

The extra cannot be pinned to a pair that keeps a CPU torch from PyPI on every platform, so the
README says what happens instead; this asks pip's resolver (a dry run, nothing installed) and
holds the README to its answer.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _would_install(requirement: str, tmp_path: Path) -> dict[str, str]:
    report = tmp_path / "report.json"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report",
             str(report), requirement],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip("pip's resolver did not answer within 300 s (no package index reachable?)")
    if done.returncode != 0 or not report.is_file():
        pytest.skip(f"pip could not resolve {requirement} here: {done.stderr.strip()[-200:]}")
    items = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in items}


def test_readme_says_what_the_torchvision_extra_installs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    readme = " ".join(ROOT.joinpath("README.md").read_text().split())
    assert "pip **replaces torch** with that release" in readme
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    plan = _would_install(".[torchvision]", tmp_path)
    if "torchvision" not in plan:
        pytest.skip("torchvision is already installed here: nothing to resolve")
    import torch

    installed = torch.__version__.split("+")[0]
    if platform.machine() == "x86_64" and "+cpu" not in torch.__version__:
        # The README's claim: the extra brings the torch it was built with, not the one installed.
        assert "torch" in plan and plan["torch"] != installed, plan
        assert any(name.startswith("nvidia-") for name in plan), plan  # a CUDA build
