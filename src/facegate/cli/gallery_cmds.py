"""Gallery commands: detect, enroll, enroll-dir, identify, verify, compare, subjects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import cv2
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from facegate.cli.common import (
    CollectionOption,
    ConsentExpiresOption,
    ConsentOption,
    DataDirOption,
    FaceOption,
    FmrOption,
    JsonOption,
    ModelOption,
    NoticeOption,
    build_settings,
    consent_grant,
    parse_face_choice,
)
from facegate.cli.output import console, err_console, print_json
from facegate.cli.render import decision_view, face_result_view, face_view, subject_view
from facegate.errors import (
    ConsentRequiredError,
    EphemeralCollectionError,
    FacegateError,
    ImageTooLargeError,
)
from facegate.gallery.records import DEFAULT_COLLECTION
from facegate.recognition import EnrollResult, FaceMatcher, FaceRecognizer, Refusal
from facegate.types import OperatingPoint, Verdict
from facegate.vision.decode import IMAGE_SUFFIXES
from facegate.vision.pipeline import FacePipeline

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm"}
ImageArg = Annotated[
    Path,
    typer.Argument(
        help="An image file (JPEG, PNG, WebP or BMP).", exists=True, dir_okay=False, readable=True
    ),
]
MediaArg = Annotated[
    Path,
    typer.Argument(
        help="An image file, or a video file with --frame.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(detect)
    app.command()(enroll)
    app.command("enroll-dir")(enroll_dir)
    app.command()(identify)
    app.command()(verify)
    app.command()(compare)


def _point_text(point: OperatingPoint) -> str:
    return f"threshold {point.threshold:.3f} ({point.model_id} at FMR {point.fmr:g})"


def open_recognizer(
    data_dir: Path | None,
    collection: str,
    *,
    model: str | None = None,
    fmr: float | None = None,
    create: bool = False,
) -> FaceRecognizer:
    """The recognizer of one collection; only enrolling creates a missing collection."""
    settings = build_settings(data_dir, None, None)
    recognizer = FaceRecognizer.open(settings, collection, model_id=model, fmr=fmr, create=create)
    if recognizer.gallery.ephemeral:
        recognizer.close()
        raise EphemeralCollectionError(
            f"collection {collection!r} is ephemeral: its faces live only inside the running "
            "service (facegate serve); use the HTTP API"
        )
    return recognizer


def detect(
    image: MediaArg,
    frame: Annotated[
        int | None, typer.Option("--frame", min=0, help="For a video: which frame (0 = first).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write an annotated copy here.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Find every face in an image: boxes, landmarks, detector score and quality."""
    settings = build_settings(None, None, None)
    pipeline = FacePipeline(settings.model, settings.vision)
    if frame is not None or image.suffix.lower() in VIDEO_SUFFIXES:
        picture = pipeline.decode(read_video_frame(image, frame or 0, settings.vision.max_pixels))
    else:
        picture = pipeline.load(image)
    faces = pipeline.detect(picture)
    if out is not None:
        if out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".bmp", ".webp"}:
            raise typer.BadParameter(f"--out must end in .png, .jpg, .bmp or .webp, got {out.name}")
        annotated = picture.copy()
        for i, face in enumerate(faces):
            x1, y1, x2, y2 = (round(v) for v in face.bbox)
            cv2.rectangle(annotated, (x1, y1), (x2, y2), (0, 200, 0), 2)
            for x, y in face.landmarks:
                cv2.circle(annotated, (round(float(x)), round(float(y))), 2, (0, 0, 255), -1)
            label = f"{i} q={face.quality.score:.2f}" if face.quality else str(i)
            cv2.putText(
                annotated,
                label,
                (x1, max(12, y1 - 4)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (0, 200, 0),
                1,
            )
        if not cv2.imwrite(str(out), annotated):
            raise typer.BadParameter(f"could not write {out} (use a .png or .jpg name)")
    if json_output:
        print_json(
            {
                "image": str(image),
                "faces": [face_view(f) for f in faces],
                "annotated": str(out) if out else None,
            }
        )
        return
    table = Table(
        "#",
        "box (x1, y1, x2, y2)",
        "score",
        "quality",
        "reasons",
        title=f"{len(faces)} face(s) in {image.name}",
    )
    for i, face in enumerate(faces):
        q = face.quality
        table.add_row(
            str(i),
            ", ".join(f"{v:.0f}" for v in face.bbox),
            f"{face.score:.2f}",
            f"{q.score:.2f}" if q else "",
            "; ".join(q.reasons) if q else "",
        )
    console.print(table)
    if out is not None:
        console.print(f"annotated image written to {out}")


def _print_refusals(refused: list[Refusal]) -> None:
    for r in refused:
        err_console.print(f"[yellow]refused[/] {r.source}: {r.message}")


def enroll(
    name: Annotated[
        str, typer.Argument(help="The person's display name (an existing name adds photos).")
    ],
    images: Annotated[
        list[Path],
        typer.Argument(
            help="One or more photos of this person only.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    external_id: Annotated[
        str | None, typer.Option(help="Your own unique key for this person.")
    ] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Always create a new subject, even if the name exists.")
    ] = False,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Enroll the usable photos and report the others.")
    ] = False,
    face: FaceOption = None,
    consent: ConsentOption = None,
    notice_version: NoticeOption = None,
    consent_expires: ConsentExpiresOption = None,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    model: ModelOption = None,
    json_output: JsonOption = False,
) -> None:
    """Enroll a consenting person from one or more photos (all or nothing unless --keep-going).

    A new person needs --consent and --notice-version: no consent, no enrollment.
    """
    grant = consent_grant(consent, notice_version, consent_expires)
    recognizer = open_recognizer(data_dir, collection, model=model, create=True)
    existing = None
    if not new:
        matches = recognizer.gallery.find_subjects(display_name=name)
        if external_id is not None:
            matches = recognizer.gallery.find_subjects(external_id=external_id)
        existing = matches[0] if len(matches) == 1 else None
        if len(matches) > 1:
            raise typer.BadParameter(
                f"{len(matches)} subjects are named {name!r}: use --external-id or --new"
            )
    result = recognizer.enroll(
        name,
        images,
        external_id=external_id,
        face=parse_face_choice(face),
        strict=not keep_going,
        subject=existing,
        consent=grant,
    )
    _report_enroll(result, json_output)


def _report_enroll(result: EnrollResult, json_output: bool) -> None:
    if json_output:
        print_json(
            {
                "subject": subject_view(result.subject),
                "created": result.created,
                "templates": [
                    {"id": t.id, "source": t.source, "quality": t.quality} for t in result.templates
                ],
                "refused": [_refusal_view(r) for r in result.refused],
            }
        )
        return
    verb = "enrolled" if result.created else "added photos to"
    console.print(
        f"[green]{verb}[/] {result.subject.display_name} ({result.subject.id}): "
        f"{len(result.templates)} template(s)"
    )
    _print_refusals(result.refused)


def _refusal_view(r: Refusal) -> dict[str, object]:
    return {"source": r.source, "code": r.code, "message": r.message, "reasons": list(r.reasons)}


def enroll_dir(
    directory: Annotated[
        Path,
        typer.Argument(
            help="One sub-folder per person, named after them.", exists=True, file_okay=False
        ),
    ],
    max_photos: Annotated[
        int, typer.Option(min=1, help="Use at most this many photos per person (sorted by name).")
    ] = 5,
    face: FaceOption = None,
    consent: ConsentOption = None,
    notice_version: NoticeOption = None,
    consent_expires: ConsentExpiresOption = None,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    model: ModelOption = None,
    json_output: JsonOption = False,
) -> None:
    """Enroll every person folder in DIR. Resumable: folders already enrolled are skipped.

    Each person is written in one transaction, so an interrupted run loses nothing and the
    next run carries on where it stopped. --consent/--notice-version record the same consent
    for every person: use them only if each person in DIR gave it.
    """
    grant = consent_grant(consent, notice_version, consent_expires)
    if grant is None:
        raise ConsentRequiredError(
            "enroll-dir needs the people's consent: --consent and --notice-version"
        )
    recognizer = open_recognizer(data_dir, collection, model=model, create=True)
    face_choice = parse_face_choice(face)
    folders = sorted(p for p in directory.iterdir() if p.is_dir())
    enrolled, skipped, failed = 0, 0, []
    refused: list[dict[str, object]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=json_output,
    ) as progress:
        task = progress.add_task("enrolling", total=len(folders))
        for folder in folders:
            progress.update(task, description=f"enrolling {folder.name[:30]}")
            if recognizer.gallery.find_subjects(external_id=folder.name):
                skipped += 1
                progress.advance(task)
                continue
            photos = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )[:max_photos]
            name = folder.name.replace("_", " ")
            try:
                if not photos:
                    raise FileNotFoundError("no image files in the folder")
                result = recognizer.enroll(
                    name,
                    photos,
                    external_id=folder.name,
                    strict=False,
                    face=face_choice,
                    consent=grant,
                )
                enrolled += 1
                refused += [{"person": folder.name, **_refusal_view(r)} for r in result.refused]
            except (FacegateError, OSError) as error:  # one bad folder never stops the run
                if isinstance(error, FacegateError):
                    code = error.code
                else:
                    code = "no_images" if not photos else "io_error"
                failed.append({"person": folder.name, "code": code, "message": str(error)})
            progress.advance(task)
    summary = {
        "folders": len(folders),
        "enrolled": enrolled,
        "skipped_already_enrolled": skipped,
        "failed": failed,
        "refused_photos": refused,
    }
    if json_output:
        print_json(summary)
        return
    console.print(
        f"[green]{enrolled} enrolled[/], {skipped} already enrolled, {len(failed)} not enrolled, "
        f"{len(refused)} photo(s) refused"
    )
    if failed or refused:
        table = Table("person", "photo", "why", title="Not used")
        for f in failed:
            table.add_row(str(f["person"]), "(all)", str(f["message"]))
        for r in refused:
            table.add_row(str(r["person"]), str(r["source"]), str(r["message"]))
        console.print(table)


def read_video_frame(path: Path, index: int, max_pixels: int) -> bytes:
    """One frame of a local video file, as PNG bytes (then decoded like any upload)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise typer.BadParameter(f"{path.name} is an image; --frame is for video files")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise typer.BadParameter(f"{path} could not be opened as a video")
        width = capture.get(cv2.CAP_PROP_FRAME_WIDTH)
        height = capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if width * height > max_pixels:  # refuse before a single frame is decoded
            raise ImageTooLargeError(
                f"the video is {width:.0f}x{height:.0f} pixels; the limit is {max_pixels}"
            )
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise typer.BadParameter(f"{path} has no frame {index}")
    encoded_ok, png = cv2.imencode(".png", frame)
    if not encoded_ok:
        raise typer.BadParameter(f"frame {index} of {path} could not be encoded")
    return png.tobytes()


def identify(
    image: MediaArg,
    frame: Annotated[
        int | None, typer.Option("--frame", min=0, help="For a video: which frame (0 = first).")
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, max=100, help="Candidates per face.")
    ] = None,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    model: ModelOption = None,
    fmr: FmrOption = None,
    json_output: JsonOption = False,
) -> None:
    """1:N: who is each face in the image? Below the operating point the answer is 'unknown'."""
    recognizer = open_recognizer(data_dir, collection, model=model, fmr=fmr)
    is_video = image.suffix.lower() in VIDEO_SUFFIXES
    if frame is not None or is_video:
        limit = recognizer.settings.vision.max_pixels
        results = recognizer.identify(read_video_frame(image, frame or 0, limit), top_k)
    else:
        results = recognizer.identify(image, top_k)
    names = {c.subject_id: c.display_name for r in results for c in r.candidates}
    point = recognizer.operating_point
    if json_output:
        print_json(
            {
                "image": str(image),
                "model": recognizer.model_id,
                "operating_point": point.as_dict(),
                "faces": [face_result_view(r, names) for r in results],
            }
        )
        return
    table = Table(
        "#",
        "box",
        "answer",
        "similarity",
        "quality",
        "runner-up",
        title=f"{len(results)} face(s); {_point_text(point)}",
    )
    for i, r in enumerate(results):
        sid = r.decision.match.subject_id
        answer = f"[green]{names[sid]}[/]" if sid else "[yellow]unknown[/]"
        runner = (
            f"{r.candidates[1].display_name} {r.candidates[1].similarity:.3f}"
            if len(r.candidates) > 1
            else ""
        )
        table.add_row(
            str(i),
            ", ".join(f"{v:.0f}" for v in r.face.bbox),
            answer,
            f"{r.decision.match.similarity:.3f}",
            f"{r.face.quality.score:.2f}" if r.face.quality else "",
            runner,
        )
    console.print(table)


def verify(
    subject: Annotated[str, typer.Argument(help="Subject id, external id or name.")],
    image: ImageArg,
    face: FaceOption = "largest",
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    model: ModelOption = None,
    fmr: FmrOption = None,
    json_output: JsonOption = False,
) -> None:
    """1:1: is this the enrolled person? Exit code 0 for a match, 1 for no match."""
    recognizer = open_recognizer(data_dir, collection, model=model, fmr=fmr)
    found, decision = recognizer.verify(subject, image, parse_face_choice(face))
    if json_output:
        print_json({"subject": subject_view(found), **decision_view(decision)})
    else:
        colour = "green" if decision.verdict is Verdict.MATCH else "red"
        point = decision.operating_point
        console.print(
            f"[{colour}]{decision.verdict.value}[/] {found.display_name}: similarity "
            f"{decision.match.similarity:.3f}, {_point_text(point)}"
        )
    raise typer.Exit(0 if decision.verdict is Verdict.MATCH else 1)


def compare(
    image_a: ImageArg,
    image_b: ImageArg,
    face: FaceOption = "largest",
    model: ModelOption = None,
    fmr: FmrOption = None,
    json_output: JsonOption = False,
) -> None:
    """1:1 between two photos (no gallery). Exit code 0 for the same person, 1 otherwise."""
    settings = build_settings(None, model, fmr)
    decision = FaceMatcher(settings).compare(image_a, image_b, parse_face_choice(face))
    if json_output:
        print_json({"image_a": str(image_a), "image_b": str(image_b), **decision_view(decision)})
    else:
        same = decision.verdict is Verdict.MATCH
        point = decision.operating_point
        console.print(
            f"[{'green' if same else 'red'}]{'same person' if same else 'different people'}[/]: "
            "similarity "
            f"{decision.match.similarity:.3f}, {_point_text(point)}"
        )
    raise typer.Exit(0 if decision.verdict is Verdict.MATCH else 1)
