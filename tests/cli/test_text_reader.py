"""The one text reader on arbitrary bytes: it returns, or raises one FinevlError that names
the file (and, for a decode or parse error, the line); nothing else escapes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from finevl.data.jsonio import iter_jsonl, read_csv, read_json, read_yaml
from finevl.errors import FinevlError

READERS = {
    "x.json": read_json,
    "x.jsonl": lambda p: list(iter_jsonl(p)),
    "x.csv": read_csv,
    "x.yaml": read_yaml,
}
# bytes that look like text files: JSON/YAML/CSV punctuation, newlines, invalid UTF-8
PIECES = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b":",
        b",",
        b"\n",
        b"\r",
        b"- ",
        b"a",
        b"1",
        b"\xff",
        b"\xc3",
        b"\xe9",
        b"\x00",
        b"  ",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.lists(PIECES, max_size=60).map(b"".join)))
def test_any_bytes_are_read_or_refused_in_one_line(data):
    with tempfile.TemporaryDirectory() as d:
        for name, read in READERS.items():
            path = Path(d) / name
            path.write_bytes(data)
            try:
                read(path)
            except FinevlError as e:
                message = str(e)
                assert message.startswith(f"{path}: ") and "\n" not in message, message
                if "UTF-8" in message or "malformed" in message:
                    assert message.startswith(f"{path}: line "), message


def test_a_bad_byte_is_named_by_its_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(b'{\n"a":\n"caf\xe9"}')
    try:
        read_json(path)
    except FinevlError as e:
        assert str(e).startswith(f"{path}: line 3: not UTF-8")
    else:
        raise AssertionError("read")
