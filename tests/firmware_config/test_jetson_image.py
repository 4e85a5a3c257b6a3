"""Dockerfile.jetson cannot be built here (no arm64 Jetson), so it is linted and its promises are checked."""

import re
import subprocess
import sys
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile.jetson"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pinned_jetpack_base_edge_only_non_root_with_a_healthcheck():
    steps = instructions()
    args = dict(rest.split("=", 1) for kw, rest in steps if kw == "ARG" and "=" in rest)
    assert args["L4T_IMAGE"] == "nvcr.io/nvidia/l4t-jetpack:r36.4.0"  # JetPack 6.1, pinned
    assert [rest for kw, rest in steps if kw == "FROM"] == ["${L4T_IMAGE}"]
    runs = " ".join(rest for kw, rest in steps if kw == "RUN")
    assert "onnxruntime-gpu==${ORT_VERSION}" in runs and "jetson-ai-lab" in args["ORT_INDEX"]
    assert '".[gpu]"' in runs and "torch" not in runs and "ultralytics" not in runs
    user = [rest for kw, rest in steps if kw == "USER"]
    assert user and user[-1] not in ("root", "0")
    health = [rest for kw, rest in steps if kw == "HEALTHCHECK"]
    assert health and '"edge", "health"' in health[0]
    assert [rest for kw, rest in steps if kw == "ENTRYPOINT"] == ['["shelfwatch"]']
