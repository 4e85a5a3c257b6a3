"""Property-based: whatever an installer's editor produces, validation answers with clear problems (file,
key, message), never a traceback."""

import copy
import string
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import load_box_config
from edge.errors import ShelfWatchError
from firmware_config.store import validate_path

VALID = {
    "store": "s1",
    "box": "b1",
    "camera": {"source": "rtsp://cam/stream", "read_timeout_s": 5},
    "bundle": "bundle",
    "zones": [{"name": "shelf", "polygon": [[0, 0], [10, 0], [10, 10]]}],
    "mqtt": {"host": "broker", "port": 8883, "tls": {"ca": "ca.crt", "cert": "b.crt", "key": "b.key"}},
    "thresholds": {"detector_confidence": 0.4},
}
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True),
                    st.text(max_size=20))  # fmt: skip
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                    max_size=4), max_leaves=12)  # fmt: skip


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


def replaced(data, path, value):
    data = copy.deepcopy(data)
    if not path:
        return value
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "box.yaml"
        path.write_text(text)
        count, problems = validate_path(path)
        for p in problems:
            assert p.file == path and p.message and "\n" not in str(p).strip()
        try:
            load_box_config(path)
        except ShelfWatchError as error:
            assert str(path) in str(error) and "\n" not in str(error)
            assert problems, "load_box_config refused what validate accepted"
        else:
            assert count == 1 and not problems


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_valid_config_with_any_value_replaced_by_junk(data):
    path = data.draw(st.sampled_from(list(paths(VALID))))
    check(yaml.safe_dump(replaced(VALID, path, data.draw(junk))))


@settings(max_examples=100, deadline=None)
@given(junk)
def test_any_yaml_document(document):
    check(yaml.safe_dump(document))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=string.printable + "äß€\t", max_size=200))
def test_any_text(text):
    check(text)
