"""Per-person quotas: "1 item per person per 9 minutes", "3 meals per day".

A quota is a named limit of ``limit`` claims per ``window_s`` seconds, counted per person
in a sliding window: a claim counts from the moment it is granted until ``window_s``
later. When a person has ``limit`` claims in the window, the next one is denied, with
``retry_after_s``: the time until enough of their claims have left the window.

Two modes:

- ``enrolled``: the person is a subject identified in ``collection``. Granted claims are
  rows in the database (:class:`facegate.gallery.applications.ApplicationStore`), so they
  survive a restart, and erasing the subject erases them (foreign key cascade).
- ``anonymous``: for people who never enrolled (a public dispenser). A granted claim keeps
  the face's embedding and the claim time in this process's memory, and nothing else: no
  name, no id, no row, no log line. A later face counts as the same person when it scores
  at or above the threshold of a strict operating point (default FMR 1e-4) against a
  remembered one. Each remembered face is dropped ``window_s`` after its claim (by a
  background thread, and on every access), and all of them when the process stops.

A quota can be bound to a camera (``camera``): its worker claims the quota once for
every track it decides (stream/quotas.py), as the API does for one photo.

Definitions are plain data (a list of dicts, e.g. from JSON or TOML) checked by
:func:`parse_quotas`, which raises :class:`InvalidQuotaError` naming every bad field.
Nothing here imports the service: the command line can check and store a document too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from facegate.config import FMR_CHOICES
from facegate.errors import FacegateError, ModelMismatchError, PolicyError
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.records import MAX_EPHEMERAL_TTL_S, Collection, utc_now
from facegate.types import OperatingPoint

Clock = Callable[[], datetime]
QuotaMode = Literal["enrolled", "anonymous"]
# Why a claim was answered as it was.
QuotaReason = Literal["within_limit", "limit_reached", "unknown_person"]

QUOTAS_DOCUMENT = "quotas"  # the name of the definitions document in the application store
QUOTA_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # goes into URLs: /v1/quotas/{name}/claim
COLLECTION_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
CAMERA_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # as in [[cameras]]
MAX_LIMIT = 100_000
MAX_WINDOW_S = 366 * 24 * 3600.0  # enrolled: a year and a day
MAX_ANONYMOUS_WINDOW_S = MAX_EPHEMERAL_TTL_S  # anonymous: as long as an ephemeral template, 7 days
DEFAULT_ANONYMOUS_FMR = 1e-4  # strict: a false match denies a stranger
ANONYMOUS_MODEL = "sface"  # the model anonymous faces are embedded and matched with
MAX_ANONYMOUS_FACES = 100_000  # per quota: 51 MB of SFace embeddings
ENROLLED_SWEEP_EVERY = timedelta(hours=1)
_EXPIRY_POLL_S = (0.05, 60.0)  # the expiry thread wakes at the next expiry, within these bounds


class InvalidQuotaError(PolicyError):
    """Quota definitions that cannot be used; ``errors`` names each bad field."""

    def __init__(self, message: str, errors: Sequence[str]) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


class QuotaMemoryFullError(FacegateError):
    """An anonymous quota remembers as many faces as it may: a new face cannot be
    remembered, so it is not granted either (granting it unremembered would let the same
    person claim again and again)."""

    code = "quota_memory_full"


# --- definitions ------------------------------------------------------------------------------
class QuotaDefinition(BaseModel):
    """One named quota. ``limit`` claims per person per ``window_s`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=QUOTA_NAME,
        description="1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit.",
    )
    limit: StrictInt = Field(ge=1, le=MAX_LIMIT, description="Claims per person per window.")
    window_s: float = Field(
        gt=0,
        le=MAX_WINDOW_S,
        allow_inf_nan=False,
        description="The sliding window, seconds (anonymous quotas: at most 7 days).",
    )
    mode: QuotaMode = Field(
        description="'enrolled': per subject of `collection`, persisted; 'anonymous': faces "
        "kept in memory for one window only, never named or stored."
    )
    collection: str | None = Field(
        None,
        pattern=COLLECTION_NAME,
        description="enrolled: the durable collection whose subjects are counted (required). "
        "anonymous: optional; only keys allowed this collection may claim the quota (no faces "
        "are stored in it).",
    )
    fmr: float | None = Field(
        None,
        description="Operating point of the matching, 0.01, 0.001 or 0.0001. anonymous: "
        "default 0.0001; enrolled: default the collection's own.",
    )
    camera: str | None = Field(
        None,
        pattern=CAMERA_NAME,
        description="A camera (its [[cameras]] name) that claims this quota once for every "
        "track it decides, e.g. the camera over a dispenser. enrolled: the camera must "
        "identify against `collection`; claims also come through the API. anonymous: only "
        "the camera claims it (its worker process remembers the faces).",
    )
    description: str | None = Field(None, max_length=500)

    @field_validator("fmr")
    @classmethod
    def _known_fmr(cls, value: float | None) -> float | None:
        if value is None:
            return None
        for choice in FMR_CHOICES:
            if abs(value - choice) <= choice * 1e-6:
                return choice
        choices = ", ".join(f"{c:g}" for c in FMR_CHOICES)
        raise ValueError(f"fmr must be one of {choices}, got {value:g}")

    @model_validator(mode="after")
    def _mode_fields(self) -> QuotaDefinition:
        if self.mode == "enrolled" and self.collection is None:
            raise ValueError("collection: an enrolled quota needs the collection it counts")
        if self.mode == "anonymous" and self.window_s > MAX_ANONYMOUS_WINDOW_S:
            raise ValueError(
                f"window_s: an anonymous quota remembers faces for one window, at most "
                f"{MAX_ANONYMOUS_WINDOW_S:g} s (7 days); got window_s {self.window_s:g}"
            )
        return self

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_s)

    @property
    def matching_fmr(self) -> float | None:
        """The operating point's FMR; None for an enrolled quota that uses its collection's."""
        if self.fmr is not None:
            return self.fmr
        return DEFAULT_ANONYMOUS_FMR if self.mode == "anonymous" else None


@dataclass(frozen=True)
class QuotaSet:
    """Quota definitions with unique names, in the order given."""

    quotas: tuple[QuotaDefinition, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for quota in self.quotas:
            if quota.name in seen:
                raise PolicyError(f"duplicate quota name {quota.name!r}")
            seen.add(quota.name)

    def get(self, name: str) -> QuotaDefinition | None:
        return next((q for q in self.quotas if q.name == name), None)

    def __iter__(self) -> Iterator[QuotaDefinition]:
        return iter(self.quotas)

    def __len__(self) -> int:
        return len(self.quotas)

    def __contains__(self, name: object) -> bool:
        return any(q.name == name for q in self.quotas)

    @property
    def names(self) -> list[str]:
        return [q.name for q in self.quotas]

    def as_document(self) -> dict[str, Any]:
        """The stored form: ``{"quotas": [definition, ...]}`` (unset fields left out)."""
        return {QUOTAS_DOCUMENT: [q.model_dump(exclude_none=True) for q in self.quotas]}


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Where (a dotted field path) and what was expected, for one pydantic error."""
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    kind = error.get("type")
    if kind == "extra_forbidden":
        return where, "unknown field"
    if kind == "missing":
        return where, "required"
    if kind == "value_error":  # our own validators: the message says it all
        message = message.removeprefix("Value error, ")
        field_name, _, rest = message.partition(": ")
        if not where and field_name in QuotaDefinition.model_fields and rest:
            return field_name, rest  # a check across fields, about this one
        return where, message
    value = error.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        return where, f"{message} (got {value!r})"
    return where, message


def parse_quotas(data: Any) -> QuotaSet:
    """Check a list of quota definitions (dicts) and return them as a QuotaSet.

    Raises InvalidQuotaError (code ``invalid_policy``) listing every bad field as
    ``quotas[i].field: what was expected``: unknown or missing fields, duplicate names,
    limit < 1, window_s <= 0, an fmr with no calibrated threshold, an enrolled quota with no
    collection, an anonymous window over 7 days."""
    if not isinstance(data, list):
        problem = f"quotas: expected a list of definitions, got {type(data).__name__}"
        raise InvalidQuotaError(f"invalid quota definitions: {problem}", [problem])
    problems: list[str] = []
    parsed: list[QuotaDefinition] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(data):
        where = f"quotas[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object, got {type(item).__name__}")
            continue
        try:
            quota = QuotaDefinition.model_validate(item)
        except ValidationError as error:
            for e in error.errors():
                loc, message = _describe(e)
                problems.append(f"{where}{'.' + loc if loc else ''}: {message}")
            continue
        if quota.name in first_index:
            problems.append(
                f"{where}.name: duplicate quota name {quota.name!r} "
                f"(also quotas[{first_index[quota.name]}])"
            )
            continue
        first_index[quota.name] = i
        parsed.append(quota)
    if problems:
        raise InvalidQuotaError("invalid quota definitions: " + "; ".join(problems), problems)
    return QuotaSet(tuple(parsed))


def quotas_from_document(document: Any) -> QuotaSet:
    """The QuotaSet of a stored or uploaded document ``{"quotas": [...]}`` (None: no quotas)."""
    if document is None:
        return QuotaSet()
    if not isinstance(document, dict):
        raise InvalidQuotaError(
            f'the quota document must be an object {{"quotas": [...]}}, '
            f"got {type(document).__name__}",
            ["document: expected an object"],
        )
    extra = sorted(set(document) - {QUOTAS_DOCUMENT})
    if extra:
        problems = [f"{key}: unknown field (the document holds only 'quotas')" for key in extra]
        raise InvalidQuotaError("invalid quota document: " + "; ".join(problems), problems)
    if QUOTAS_DOCUMENT not in document:
        raise InvalidQuotaError(
            "invalid quota document: quotas: required", ["quotas: required (a list)"]
        )
    return parse_quotas(document[QUOTAS_DOCUMENT])


def load_quotas(store: ApplicationStore) -> QuotaSet:
    """The stored definitions (none stored: an empty set)."""
    found = store.get_document(QUOTAS_DOCUMENT)
    return quotas_from_document(None if found is None else found.document)


def check_collections(quotas: QuotaSet, collections: Iterable[Collection]) -> None:
    """Each enrolled quota must count the subjects of an existing, durable collection
    (an ephemeral collection's subjects exist only in memory: their claims could not be
    kept). Raises InvalidQuotaError naming each quota that does not."""
    known = {c.name: c for c in collections}
    problems = []
    for i, quota in enumerate(quotas):
        if quota.mode != "enrolled" or quota.collection is None:
            continue
        found = known.get(quota.collection)
        if found is None:
            problems.append(f"quotas[{i}].collection: no collection named {quota.collection!r}")
        elif found.ephemeral:
            problems.append(
                f"quotas[{i}].collection: {quota.collection!r} is ephemeral; an enrolled quota "
                "needs a durable collection (use mode 'anonymous' for passing faces)"
            )
    if problems:
        raise InvalidQuotaError("invalid quota definitions: " + "; ".join(problems), problems)


def check_cameras(quotas: QuotaSet, cameras: Mapping[str, str]) -> None:
    """Each quota bound to a camera must name one of the installation's ``cameras`` (name
    -> the collection it identifies against), and an enrolled quota's camera must
    identify against the quota's collection. Raises InvalidQuotaError naming each quota
    that does not."""
    problems = []
    for i, quota in enumerate(quotas):
        if quota.camera is None:
            continue
        if quota.camera not in cameras:
            known = ", ".join(sorted(cameras)) or "none"
            problems.append(
                f"quotas[{i}].camera: no camera named {quota.camera!r} in the settings "
                f"(cameras: {known})"
            )
        elif quota.mode == "enrolled" and cameras[quota.camera] != quota.collection:
            problems.append(
                f"quotas[{i}].camera: camera {quota.camera!r} identifies against collection "
                f"{cameras[quota.camera]!r}, not the quota's {quota.collection!r}"
            )
    if problems:
        raise InvalidQuotaError("invalid quota definitions: " + "; ".join(problems), problems)


# --- answers ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuotaAnswer:
    """The answer to one claim. ``remaining``: claims left in the window after this one
    (0 when denied). ``retry_after_s``: when denied for the limit, seconds until a claim
    would be granted. ``similarity``: anonymous mode, the best score against a remembered
    face when one matched."""

    quota: str
    granted: bool
    remaining: int
    retry_after_s: float | None
    reason: QuotaReason
    at: datetime
    similarity: float | None = None


def window_answer(
    definition: QuotaDefinition, claims: Sequence[datetime], now: datetime
) -> QuotaAnswer:
    """The sliding-window rule, on one person's earlier granted claims.

    A claim at ``t`` counts while ``now < t + window``. With ``n`` claims counting and
    ``n < limit`` the claim is granted (``remaining = limit - n - 1``); otherwise it is
    denied and ``retry_after_s`` is when the ``(n - limit + 1)``-th oldest leaves the window
    (the oldest one, when ``n == limit``)."""
    since = now - definition.window
    live = sorted(c for c in claims if c > since)
    n, limit = len(live), definition.limit
    if n < limit:
        return QuotaAnswer(definition.name, True, limit - n - 1, None, "within_limit", now)
    frees = live[n - limit] + definition.window
    wait = max((frees - now).total_seconds(), 0.0)
    return QuotaAnswer(definition.name, False, 0, wait, "limit_reached", now)


def unknown_person(definition: QuotaDefinition, now: datetime) -> QuotaAnswer:
    """Enrolled mode, nobody identified: denied, and nothing counted."""
    return QuotaAnswer(definition.name, False, 0, None, "unknown_person", now)


# --- anonymous memory -------------------------------------------------------------------------
class _FaceMemory:
    """One anonymous quota's remembered faces: unit embeddings ``(n, D)`` float32 and their
    claim times (POSIX seconds). No ids, nothing else."""

    def __init__(self, model_id: str, dim: int, window_s: float) -> None:
        self.model_id = model_id
        self.window_s = window_s
        self.vectors: NDArray[np.float32] = np.zeros((16, dim), np.float32)
        self.times: NDArray[np.float64] = np.zeros(16, np.float64)
        self.count = 0

    def next_expiry(self) -> float | None:
        return float(self.times[: self.count].min()) + self.window_s if self.count else None

    def purge(self, now: float) -> int:
        """Drop faces whose claim left the window; their rows are zeroed, not just dropped."""
        n = self.count
        keep = self.times[:n] + self.window_s > now
        gone = int(n - keep.sum())
        if gone:
            kept = int(keep.sum())
            self.vectors[:kept] = self.vectors[:n][keep]
            self.times[:kept] = self.times[:n][keep]
            self.vectors[kept:n] = 0.0
            self.times[kept:n] = 0.0
            self.count = kept
        return gone

    def add(self, vector: NDArray[np.float32], at: float) -> None:
        if self.count == len(self.times):
            grown = np.zeros((2 * self.count, self.vectors.shape[1]), np.float32)
            grown[: self.count] = self.vectors
            self.vectors.fill(0.0)
            self.vectors = grown
            times = np.zeros(2 * self.count, np.float64)
            times[: self.count] = self.times
            self.times = times
        self.vectors[self.count] = vector
        self.times[self.count] = at
        self.count += 1

    def scores(self, vector: NDArray[np.float32]) -> NDArray[np.float32]:
        result: NDArray[np.float32] = self.vectors[: self.count] @ vector
        return result

    def wipe(self) -> None:
        self.vectors.fill(0.0)
        self.times.fill(0.0)
        self.count = 0


def _unit(embedding: NDArray[Any], dim: int | None) -> NDArray[np.float32]:
    vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if dim is not None and vector.shape != (dim,):
        raise ValueError(f"embedding must be ({dim},), got {np.shape(embedding)}")
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError("embedding must be finite and non-zero")
    return vector / norm


@dataclass
class QuotaCounter:
    """Counts claims for every quota of one process: enrolled claims in the database,
    anonymous faces in this object's memory only.

    ``clock`` is read for every claim and expiry (tests set it to move time).
    A background thread drops each anonymous face when its window ends; it runs only while
    some face is remembered. ``close()`` forgets every face."""

    clock: Clock = utc_now
    max_faces: int = MAX_ANONYMOUS_FACES
    _memories: dict[str, _FaceMemory] = field(default_factory=dict, repr=False)
    _wake: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _expirer: threading.Thread | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)
    _enrolled_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_sweep: datetime | None = field(default=None, repr=False)

    # --- enrolled ----------------------------------------------------------------------------
    def claim_enrolled(
        self,
        store: ApplicationStore,
        definition: QuotaDefinition,
        subject_id: str,
        *,
        quotas: QuotaSet | None = None,
    ) -> QuotaAnswer:
        """Count a claim of an identified subject; a granted one is written to ``store``.
        With ``quotas`` (all current definitions), claims older than every window are
        deleted, at most once an hour."""
        if definition.mode != "enrolled":
            raise PolicyError(f"quota {definition.name!r} is {definition.mode}, not enrolled")
        now = self.clock()
        with self._enrolled_lock:  # one process: no two grants from the same claims
            claims = store.claims_since(definition.name, subject_id, now - definition.window)
            answer = window_answer(definition, claims, now)
            if answer.granted:
                store.add_claim(definition.name, subject_id, now)
            if quotas is not None and (
                self._last_sweep is None or now - self._last_sweep >= ENROLLED_SWEEP_EVERY
            ):
                self.sweep_enrolled(store, quotas, now)
        return answer

    def sweep_enrolled(
        self, store: ApplicationStore, quotas: QuotaSet, now: datetime | None = None
    ) -> int:
        """Delete enrolled claims that no current quota's window reaches (all of them when
        no enrolled quota is defined). Returns how many were deleted."""
        now = now or self.clock()
        windows = [q.window for q in quotas if q.mode == "enrolled"]
        self._last_sweep = now
        return store.sweep_claims(now - max(windows, default=timedelta(0)))

    # --- anonymous ---------------------------------------------------------------------------
    def claim_anonymous(
        self, definition: QuotaDefinition, embedding: NDArray[Any], point: OperatingPoint
    ) -> QuotaAnswer:
        """Count a claim of an unnamed face. It is the same person as a remembered face
        when it scores at or above ``point.threshold`` (cosine of unit embeddings). A
        granted claim remembers the face for one window; a denied one is not remembered."""
        if definition.mode != "anonymous":
            raise PolicyError(f"quota {definition.name!r} is {definition.mode}, not anonymous")
        now = self.clock()
        stamp = now.timestamp()
        with self._wake:
            if self._closed:
                raise PolicyError("the quota counter is closed")
            memory = self._memories.get(definition.name)
            if memory is None:
                vector = _unit(embedding, None)
                memory = _FaceMemory(point.model_id, vector.shape[0], definition.window_s)
                self._memories[definition.name] = memory
            elif memory.model_id != point.model_id:
                raise ModelMismatchError(
                    f"quota {definition.name!r} remembers {memory.model_id!r} faces, "
                    f"not {point.model_id!r}"
                )
            vector = _unit(embedding, memory.vectors.shape[1])
            memory.window_s = definition.window_s
            memory.purge(stamp)
            scores = memory.scores(vector)
            same = scores >= point.threshold
            similarity = float(scores[same].max()) if same.any() else None
            times = np.sort(memory.times[: memory.count][same])
            claims = [now + timedelta(seconds=float(t) - stamp) for t in times]
            answer = window_answer(definition, claims, now)
            if answer.granted:
                if memory.count >= self.max_faces:
                    raise QuotaMemoryFullError(
                        f"quota {definition.name!r} already remembers {memory.count} faces "
                        f"(the most it may); try again when some leave the window"
                    )
                memory.add(vector, stamp)
                self._start_expirer()
                self._wake.notify_all()
            return QuotaAnswer(
                answer.quota,
                answer.granted,
                answer.remaining,
                answer.retry_after_s,
                answer.reason,
                now,
                similarity,
            )

    def faces(self, quota: str | None = None) -> int:
        """How many faces are remembered (for ``quota``, or for all), expired ones dropped."""
        self.purge()
        with self._wake:
            if quota is not None:
                found = self._memories.get(quota)
                return 0 if found is None else found.count
            return sum(m.count for m in self._memories.values())

    def purge(self, now: datetime | None = None) -> int:
        """Drop every anonymous face whose window has ended; returns how many."""
        stamp = (now or self.clock()).timestamp()
        with self._wake:
            return self._purge(stamp)

    def _purge(self, stamp: float) -> int:
        gone = 0
        for name in list(self._memories):
            memory = self._memories[name]
            gone += memory.purge(stamp)
            if memory.count == 0:
                memory.wipe()
                del self._memories[name]
        return gone

    def apply(self, quotas: QuotaSet) -> int:
        """New definitions: forget the faces of quotas that are gone or no longer
        anonymous, and expire the others by their (possibly new) windows. Returns how
        many faces were forgotten."""
        anonymous = {q.name: q for q in quotas if q.mode == "anonymous"}
        gone = 0
        with self._wake:
            for name in list(self._memories):
                memory = self._memories[name]
                definition = anonymous.get(name)
                if definition is None:
                    gone += memory.count
                    memory.wipe()
                    del self._memories[name]
                else:
                    memory.window_s = definition.window_s
            gone += self._purge(self.clock().timestamp())
            self._wake.notify_all()
        return gone

    def close(self) -> None:
        """Forget every face and stop the expiry thread."""
        with self._wake:
            self._closed = True
            for memory in self._memories.values():
                memory.wipe()
            self._memories.clear()
            self._wake.notify_all()
            expirer = self._expirer
        if expirer is not None:
            expirer.join(timeout=5)

    # --- expiry ------------------------------------------------------------------------------
    def _start_expirer(self) -> None:
        """Called with the lock held."""
        if self._expirer is None and not self._closed:
            self._expirer = threading.Thread(
                target=self._expire_forever, name="facegate-quota-expiry", daemon=True
            )
            self._expirer.start()

    def _expire_forever(self) -> None:
        low, high = _EXPIRY_POLL_S
        with self._wake:
            while not self._closed:
                stamp = self.clock().timestamp()
                self._purge(stamp)
                due = [e for m in self._memories.values() if (e := m.next_expiry()) is not None]
                if not due:
                    break
                self._wake.wait(min(max(min(due) - stamp, low), high))
            self._expirer = None
