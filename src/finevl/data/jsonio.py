"""JSON in and out: clear errors on bad files, atomic writes, and streamed big files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finevl.data.files import finish_file
from finevl.errors import FinevlError


def _missing_or_unreadable(path: Path, e: OSError) -> FinevlError:
    if isinstance(e, FileNotFoundError):
        return FinevlError(f"{path}: file not found")
    if isinstance(e, IsADirectoryError):
        return FinevlError(f"{path}: is a folder, expected a file")
    return FinevlError(f"{path}: cannot read ({e.strerror or e})")


def _decode(path: Path, data: bytes, first_line: int = 1) -> str:
    """UTF-8 (a leading byte-order mark dropped); a bad byte is an error naming its line."""
    try:
        return data.decode("utf-8-sig" if first_line == 1 else "utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data.count(b"\n", 0, e.start)
        raise FinevlError(f"{path}: line {line}: not UTF-8 text ({e.reason})") from None


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file: the one reader of finevl's text inputs. A missing,
    unreadable or non-UTF-8 file is a `FinevlError` naming the file (and the line)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _missing_or_unreadable(path, e) from None
    return _decode(path, data)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a `FinevlError` naming it and the line."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FinevlError(f"{path}: line {e.lineno}: malformed JSON (column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise FinevlError(f"{path}: JSON nested too deeply") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line of a JSONL file, streamed; a bad line
    is a `FinevlError` naming the file and the line."""
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as e:
        raise _missing_or_unreadable(path, e) from None
    with f:
        for lineno, raw in enumerate(_lines(path, f), 1):
            line = _decode(path, raw, lineno)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise FinevlError(f"{path}: line {lineno}: malformed JSON ({e.msg})") from None
            except RecursionError:
                raise FinevlError(f"{path}: line {lineno}: JSON nested too deeply") from None
            if not isinstance(record, dict):
                raise FinevlError(f"{path}: line {lineno}: expected a JSON object")
            yield lineno, record


def _lines(path: Path, f: Any) -> Iterator[bytes]:
    try:
        yield from f
    except OSError as e:  # a folder opens on some systems and fails on read
        raise _missing_or_unreadable(path, e) from None


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header, as dicts; errors name the file and the line."""
    import csv
    import io

    path = Path(path)
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        return [dict(r) for r in reader]
    except csv.Error as e:
        raise FinevlError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file (safe loader); errors name the file and the line."""
    import yaml

    path = Path(path)
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        # a reader error (a forbidden character) knows its position only
        position = text.count("\n", 0, getattr(e, "position", 0))
        line = (mark.line if mark is not None else position) + 1
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or str(e).splitlines()[0]
        raise FinevlError(f"{path}: line {line}: malformed YAML ({problem})") from None


def dumps(obj: Any) -> str:
    """Compact, deterministic JSON (insertion order kept, no spaces)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename: never half a file, and no
    temporary left on error. A path claimed as a command's output is recorded as finevl's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except BaseException:  # error or Ctrl-C: no temporary left beside the output
        Path(tmp).unlink(missing_ok=True)
        raise
    finish_file(path)


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
        try:
            self._join(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _join(self, tmp: Path) -> None:
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


def write_result(result: dict[str, Any], out: str | Path | None) -> dict[str, Any]:
    """A command's results, also written to `out` when given."""
    if out is not None:
        write_json_atomic(out, result)
    return result
