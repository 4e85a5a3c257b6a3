"""The small files a box is given (configs, keys, signatures) are read up to their limit, never further: a wrong path
to a big file is one line, whichever kind of file was expected."""

from __future__ import annotations

import pytest

from edge.errors import ShelfWatchError
from edge.signing import MAX_KEY_BYTES, MAX_SIGNATURE_BYTES, SIGNATURE, load_public_key, read_signatures
from edge.small_files import read_small


def test_up_to_the_limit_is_read_and_past_it_is_one_line(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 2048)
    assert read_small(path, 2048, "a thing") == b"x" * 2048
    with pytest.raises(ShelfWatchError, match=r"f: larger than 1 KiB; not a thing$"):
        read_small(path, 2047, "a thing")
    with pytest.raises(ShelfWatchError, match=r"nowhere: cannot be read \(No such file or directory\)$"):
        read_small(tmp_path / "nowhere", 2048, "a thing")


def test_a_huge_key_or_signature_is_refused_by_its_size(tmp_path):
    key = tmp_path / "box.pub"
    key.write_bytes(b"-----BEGIN PUBLIC KEY-----\n" + b"A" * MAX_KEY_BYTES)
    with pytest.raises(ShelfWatchError, match=r"larger than .* KiB; not a public key"):
        load_public_key(key)
    (tmp_path / SIGNATURE).write_bytes(b"{" + b" " * MAX_SIGNATURE_BYTES)
    with pytest.raises(ShelfWatchError, match=r"larger than .* KiB; not a signature file"):
        read_signatures(tmp_path)
