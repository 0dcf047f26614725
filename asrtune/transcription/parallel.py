"""Scale-out: the same per-file work on N local processes (``--workers``) or a Ray cluster (``--ray``).

Both keep one writer: workers and actors only transcribe and hand back records, and the
calling process writes every output and journal line. So resuming, atomic outputs and
"every file exactly once" work the same as in a single process, and Ray workers on other
machines need to read the audio but never the output folder.

* ``--workers N``: N spawned processes, each loading the model once (on its first task) and
  limiting its math libraries to its share of the cores. The file list is cut into shards of
  consecutive file indices, handed out as workers free up, so a shard of long files does not
  hold the rest back.
* ``--ray``: ``ray.data.from_items(sources).map_batches(RayTranscriber, compute=ActorPoolStrategy(size=N))``
  with model-holding actors; the driver streams results as they arrive. Connects to the cluster
  named by ``ray_address`` / ``RAY_ADDRESS`` or one already initialised, else starts a local one.
"""

from __future__ import annotations

import json
import math
import os
from functools import partial
from typing import Iterator

from asrtune.errors import AsrtuneError
from asrtune.extras import needs_extra
from asrtune.inference import load_recognizer
from asrtune.inference.options import RecognizerOptions
from asrtune.transcription.inputs import AudioSource
from asrtune.transcription.runner import FileOutcome, describe_error, transcribe_sources

_LOAD_FAILED = "__asrtune_load_failed__"


def shard_size(n_files: int, workers: int, batch_size: int) -> int:
    """Files per shard: about four shards per worker (load balance), at most ``batch_size``.

    >>> shard_size(1000, 4, 16), shard_size(6, 4, 16)
    (16, 1)
    """
    return max(1, min(batch_size, n_files // (4 * workers)))


def make_shards(sources: list[AudioSource], workers: int, batch_size: int) -> list[list[AudioSource]]:
    size = shard_size(len(sources), workers, batch_size)
    return [sources[i : i + size] for i in range(0, len(sources), size)]


def load_recognizer_from(recipe: dict):
    """The recogniser a recipe ``{"model": name, "options": RecognizerOptions as a dict}`` describes.

    The recipe is plain data, so it pickles to spawned processes and serialises to Ray actors;
    every process rebuilds the model from it.
    """
    return load_recognizer(recipe["model"], RecognizerOptions.from_dict(recipe["options"], source="worker recipe"))


# ----------------------------------------------------------------------------- local processes

_worker_recognizer = None


def _init_worker(threads: int) -> None:
    # Before torch / CTranslate2 / onnxruntime start their thread pools in this process.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch  # heavy: torch, in each worker process

    torch.set_num_threads(threads)


def _work_shard(recipe: dict, segmenting: dict, shard: list[dict]) -> list[tuple]:
    global _worker_recognizer
    if _worker_recognizer is None:
        try:
            _worker_recognizer = load_recognizer_from(recipe)
        except Exception as e:  # reported by the parent as one clear error
            return [(_LOAD_FAILED, describe_error(e))]
    sources = [AudioSource(**s) for s in shard]
    return [(o.source.to_dict(), o.record, o.error) for o in transcribe_sources(_worker_recognizer, sources, **segmenting)]


def run_workers(
    recipe: dict, sources: list[AudioSource], workers: int, batch_size: int, segmenting: dict
) -> Iterator[FileOutcome]:
    """Transcribe ``sources`` on ``workers`` spawned processes; yield outcomes as shards finish."""
    if not sources:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    shards = [[s.to_dict() for s in shard] for shard in make_shards(sources, workers, batch_size)]
    import multiprocessing as mp  # heavy: multiprocessing, only for --workers

    ctx = mp.get_context("spawn")  # fork would copy a parent's torch thread pools and locks
    with ctx.Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
        worker_recipe = dict(recipe, options=dict(recipe["options"], threads=threads))  # each worker its share of the cores
        work = partial(_work_shard, worker_recipe, dict(segmenting, batch_size=batch_size))
        for results in pool.imap_unordered(work, shards):
            for source, record, error in results:
                if source == _LOAD_FAILED:
                    pool.terminate()
                    raise AsrtuneError(f"a worker could not load the model: {record}")
                yield FileOutcome(AudioSource(**source), record, error)


# ----------------------------------------------------------------------------- Ray


class RayTranscriber:
    """A Ray Data actor: loads the recogniser once, transcribes batches of sources (JSON rows)."""

    def __init__(self, recipe: dict, segmenting: dict):
        self.recognizer = load_recognizer_from(recipe)
        self.segmenting = segmenting

    def __call__(self, batch: dict) -> dict:
        sources = [AudioSource(**json.loads(s)) for s in batch["source"]]
        out: dict[str, list] = {"source": [], "record": [], "error": []}
        for o in transcribe_sources(self.recognizer, sources, **self.segmenting):
            out["source"].append(json.dumps(o.source.to_dict()))
            out["record"].append(json.dumps(o.record, ensure_ascii=False) if o.record else "")
            out["error"].append(o.error or "")
        return out


def check_ray() -> None:
    """Ray Data imports; otherwise one line naming the [ray] extra (checked before a run writes anything)."""
    with needs_extra("ray", "--ray", "Ray Data"):
        import ray.data  # noqa: F401


def run_ray(
    recipe: dict,
    sources: list[AudioSource],
    workers: int,
    batch_size: int,
    segmenting: dict,
    address: str | None = None,
) -> Iterator[FileOutcome]:
    """Transcribe ``sources`` as a Ray Data job with ``workers`` model-holding actors."""
    check_ray()
    # optional extra [ray], checked by check_ray
    import ray
    import ray.data

    if not sources:
        return
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # asrtune's own bar counts files
    shard = shard_size(len(sources), workers, batch_size)
    dataset = ray.data.from_items([{"source": json.dumps(s.to_dict())} for s in sources], override_num_blocks=math.ceil(len(sources) / shard))
    results = dataset.map_batches(
        RayTranscriber,
        fn_constructor_kwargs={"recipe": recipe, "segmenting": dict(segmenting, batch_size=batch_size)},
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=shard,
        batch_format="numpy",
        num_cpus=1,
    )
    for row in results.iter_rows():
        yield FileOutcome(AudioSource(**json.loads(row["source"])), json.loads(row["record"]) if row["record"] else None, row["error"] or None)
