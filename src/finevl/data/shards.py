"""WebDataset tar shards in open_clip_train's layout: `key.png`, `key.txt`, `key.json`."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from finevl.data.images import ImageLoader
from finevl.data.jsonio import write_json_atomic
from finevl.errors import FinevlError

FIXED_MTIME = 946684800.0  # tar members carry this time, so shards are byte-identical


class ShardSet:
    """Writes samples round a set of tar shards named `{prefix}-{k:06d}.tar`, and the
    `sizes.json` that open_clip_train reads for the sample count."""

    def __init__(self, folder: str | Path, prefix: str, n_shards: int, n_samples: int):
        import webdataset as wds

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n_shards, self.n_samples = max(1, min(n_shards, n_samples)), max(1, n_samples)
        self.names = [f"{prefix}-{k:06d}.tar" for k in range(self.n_shards)]
        self._writers = [
            wds.TarWriter(str(self.folder / n), user="finevl", group="finevl", mtime=FIXED_MTIME)
            for n in self.names
        ]
        self.sizes = dict.fromkeys(self.names, 0)
        self._written = 0

    def write(self, key: str, png: bytes, text: str, meta: dict[str, Any]) -> None:
        """Write the next sample; samples fill the shards in order, in equal blocks."""
        k = self._written * self.n_shards // self.n_samples
        self._writers[k].write({"__key__": key, "png": png, "txt": text, "json": json.dumps(meta).encode()})
        self.sizes[self.names[k]] += 1
        self._written += 1

    def close(self) -> dict[str, int]:
        for w in self._writers:
            w.close()
        return self.sizes


def write_sizes(folder: str | Path, sizes: dict[str, int]) -> None:
    write_json_atomic(Path(folder) / "sizes.json", sizes)


def shard_urls(spec: str | Path) -> list[str]:
    """A folder of shards, one tar, or a brace pattern (`train-{000000..000003}.tar`)."""
    from braceexpand import braceexpand

    path = Path(spec)
    urls = [str(p) for p in sorted(path.glob("*.tar"))] if path.is_dir() else list(braceexpand(str(spec)))
    missing = [u for u in urls if not Path(u).is_file()]
    if not urls or missing:
        raise FinevlError(f"{spec}: no shards found" if not urls else f"{missing[0]}: shard not found")
    return urls


def iter_shards(spec: str | Path, loader: ImageLoader | None = None) -> Iterator[dict[str, Any]]:
    """Samples of WebDataset shards as `{"key", "image" (RGB PIL), "text", "json"}`.

    Images go through the safe loader, so a corrupt one is an error naming the shard and
    key, or a counted skip when the loader's policy is 'skip'.
    """
    import webdataset as wds

    loader = loader or ImageLoader()
    for url in shard_urls(spec):
        yield from _samples(wds.WebDataset(url, shardshuffle=False), url, loader)


def _samples(dataset: Any, url: str, loader: ImageLoader) -> Iterator[dict[str, Any]]:
    """Decode one shard's samples; a damaged tar or JSON member is an error naming it."""
    try:
        for sample in dataset:
            key = sample["__key__"]
            blob = next((sample[k] for k in ("png", "jpg", "jpeg", "webp") if k in sample), None)
            if blob is None:
                raise FinevlError(f"{url}: sample {key} has no image")
            image = loader(io.BytesIO(blob), name=f"{url}: {key}")
            if image is None:
                continue
            yield {
                "key": key,
                "image": image,
                "text": sample.get("txt", b"").decode("utf-8"),
                "json": json.loads(sample["json"]) if "json" in sample else {},
            }
    except (tarfile.TarError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise FinevlError(f"{url}: damaged shard ({type(e).__name__}: {e})") from None
