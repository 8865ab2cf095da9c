"""Work on a large collection split over N processes (`accelerate launch`), as clip-retrieval
does for collections that outgrow one machine: each process embeds its contiguous share and
writes it to disk; the main process merges the shares in order, so the result is the one a
single process gets."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finevl.data.files import temp_sibling
from finevl.data.jsonio import read_json, write_json_atomic

# a share's (embeddings (n, D), the items kept, the items skipped)
Share = tuple[np.ndarray, list[str], list[Any]]


def embed_in_shares(
    items: Sequence[Any], embed: Callable[[list[Any]], Share], near: str | Path
) -> Share | None:
    """`embed` over `items`, split between the processes; every share merged in order on the
    main process (others get None). One process: `embed(items)` directly. The shares pass
    through a temporary folder beside `near`, removed after the merge (and at exit)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=not torch.cuda.is_available())  # gloo between CPU processes
    if state.num_processes == 1:
        return embed(list(items))
    shared = [str(temp_sibling(near, "shares")) if state.is_main_process else None]
    broadcast_object_list(shared)
    folder = Path(shared[0])
    with state.split_between_processes(list(items)) as mine:
        vectors, kept, skipped = embed(list(mine))
    np.save(folder / f"{state.process_index:05d}.npy", vectors)
    write_json_atomic(folder / f"{state.process_index:05d}.json", {"kept": kept, "skipped": skipped})
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    shares = [_read_share(folder, k) for k in range(state.num_processes)]
    shutil.rmtree(folder)
    filled = [s[0] for s in shares if len(s[0])]
    vectors = np.concatenate(filled) if filled else shares[0][0]
    return vectors, [k for s in shares for k in s[1]], [x for s in shares for x in s[2]]


def _read_share(folder: Path, rank: int) -> Share:
    meta = read_json(folder / f"{rank:05d}.json")
    return np.load(folder / f"{rank:05d}.npy", allow_pickle=False), meta["kept"], meta["skipped"]
