"""JSON in and out: clear errors on bad files, atomic writes, and streamed big files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finevl.errors import FinevlError


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a `FinevlError` naming it."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FinevlError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise FinevlError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise FinevlError(f"{path}: not UTF-8 text ({e.reason})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise FinevlError(f"{path}: file not found")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise FinevlError(f"{path}: line {lineno}: malformed JSON: {e.msg}") from None
            if not isinstance(record, dict):
                raise FinevlError(f"{path}: line {lineno}: expected a JSON object")
            yield lineno, record


def dumps(obj: Any) -> str:
    """Compact, deterministic JSON (insertion order kept, no spaces)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    """Write JSON atomically (see `write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


class StreamedJson:
    """Write `{header..., section: [items...], ...}` one item at a time, memory flat in N.

    Each section spools to its own temporary file (one item per line); `close` joins them.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     w = StreamedJson(f"{d}/x.json", {"info": {}}, ["images"])
    ...     w.add("images", {"id": 1}); w.close()
    ...     read_json(f"{d}/x.json")["images"]
    [{'id': 1}]
    """

    def __init__(
        self,
        path: str | Path,
        header: dict[str, Any],
        sections: list[str],
        footer: dict[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.header, self.footer = header, footer or {}
        self._spools = {s: tempfile.TemporaryFile("w+", encoding="utf-8") for s in sections}  # noqa: SIM115 (closed in close)
        self._counts = dict.fromkeys(sections, 0)

    def add(self, section: str, item: Any) -> None:
        spool = self._spools[section]
        spool.write(("\n" if self._counts[section] == 0 else ",\n") + dumps(item))
        self._counts[section] += 1

    def close(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.part")
        with tmp.open("w", encoding="utf-8") as out:
            out.write("{")
            fields = [(k, dumps(v)) for k, v in self.header.items()]
            out.write(",\n".join(f"{dumps(k)}:{v}" for k, v in fields))
            for k, (name, spool) in enumerate(self._spools.items()):
                out.write(("," if fields or k else "") + f"\n{dumps(name)}:[")
                spool.seek(0)
                shutil.copyfileobj(spool, out)
                spool.close()
                out.write("\n]")
            for name, value in self.footer.items():
                out.write(f",\n{dumps(name)}:{dumps(value)}")
            out.write("}\n")
        os.replace(tmp, self.path)


def write_csv_atomic(path: str | Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Rows as CSV with a header (columns: given, else every key in first-seen order), atomically."""
    import csv
    import io

    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
