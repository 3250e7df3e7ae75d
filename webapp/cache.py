"""Cleaning Gradio's file cache, done here because Gradio's own schedule dies under traffic.

The Gradio behaviour this works around: with ``gr.Blocks(delete_cache=(every, age))`` Gradio starts
``gradio.route_utils.delete_files_on_schedule``, which runs ``delete_files_created_by_app`` in a worker thread.
That function iterates each of the page's live sets of cached files (``Blocks.temp_file_sets``) directly,
while request threads add the files they serve to those same sets. Under steady traffic an iteration soon
fails with "RuntimeError: Set changed size during iteration", the scheduled task ends there, and the cache
grows without bound for the rest of the server's life (the soak test, ``tests/benchmarks/soak.py``, shows it).

``clean_cache`` is the same work on snapshots (copying a set is atomic under the GIL), and
``start_cache_cleaner`` runs it on the same schedule in a thread of its own. The app still passes
``delete_cache`` to Gradio: with it, Gradio also deletes every file the app cached when the server shuts
down. When Gradio iterates copies, delete this module and the call to ``start_cache_cleaner`` in ``app.main``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gradio as gr

#: Gradio's cache (uploads, served images): files older than this many minutes are deleted (checked every
#: minute, or every age / 4 if that is shorter), so a long-running server's disk use levels off.
CACHE_MAX_AGE_MINUTES = 15.0


def delete_cache(max_age_minutes: float) -> tuple[int, int]:
    """Gradio's ``delete_cache`` (every how many seconds, of files older than how many seconds)."""
    age = max(1, round(max_age_minutes * 60))
    return max(1, min(60, age // 4)), age


def clean_cache(demo: gr.Blocks, max_age_s: float) -> int:
    """Delete the files this app put in Gradio's cache more than ``max_age_s`` ago; returns how many.

    It keeps what Gradio keeps: the page's own values (``keep_in_cache``). Emptied hash folders go too. A file
    leaves its set before it leaves the disk, so a listed file is always there.
    """
    keep = set().union(*(getattr(block, "keep_in_cache", ()) for block in list(demo.blocks.values())))
    now, removed = time.time(), 0
    for files in list(demo.temp_file_sets):
        for path in list(files):
            if path in keep:
                continue
            try:
                if now - os.lstat(path).st_ctime <= max_age_s:
                    continue
            except FileNotFoundError:
                files.discard(path)  # gone already: stop listing it
                removed += 1
                continue
            # Out of the set first, then off the disk: at no moment is a file listed that is not there.
            files.discard(path)
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError:
                files.add(path)  # could not delete it (permissions, ...): keep it listed for the next round
                continue
            removed += 1
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(path))  # only if empty
    return removed


def start_cache_cleaner(demo: gr.Blocks, max_age_minutes: float) -> threading.Event:
    """Run ``clean_cache`` on ``delete_cache``'s schedule in a daemon thread until the event is set."""
    every, age = delete_cache(max_age_minutes)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            try:
                clean_cache(demo, age)
            except Exception as e:  # noqa: BLE001 - a failed round is reported; the next one runs anyway
                print(f"warning: cleaning the cache failed: {e!r}", file=sys.stderr, flush=True)

    threading.Thread(target=run, name="cache-cleaner", daemon=True).start()
    return stop
