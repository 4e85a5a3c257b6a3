"""Every script in bench/ has its smoke test (tests/bench/test_bench_smoke.py, named test_<script>...)."""

from tests.bench import test_bench_smoke
from tests.bench.conftest import ROOT


def test_every_bench_has_a_smoke_test():
    tests = [name for name in dir(test_bench_smoke) if name.startswith("test_")]
    scripts = sorted(p.stem for p in (ROOT / "bench").glob("*.py"))
    missing = [s for s in scripts if not any(t.startswith(f"test_{s}") for t in tests)]
    assert missing == [], f"benches without a smoke test: {missing}"
