"""The exception tree. The library raises these; only the CLI maps them to exit codes."""

from __future__ import annotations


class FacegateError(Exception):
    """Base of every error facegate raises on purpose.

    ``code`` is a stable, machine-readable name (used by ``--json`` output and, later,
    by the HTTP problem types).
    """

    code = "facegate_error"


# --- configuration and models -------------------------------------------------------
class ConfigError(FacegateError):
    code = "config_error"


class DataKeyError(ConfigError):
    """The data key that encrypts templates is missing, wrong, or cannot be written."""

    code = "data_key"


class SchemaError(ConfigError):
    """The database was made by another facegate version and cannot be used as it is."""

    code = "schema_mismatch"


class PolicyError(ConfigError):
    """An access policy, quota definition or liveness setting that cannot be used as
    given; the message names the field and what was expected."""

    code = "invalid_policy"


class AcceleratorError(ConfigError):
    """``vision.device = "cuda"`` was asked for but no CUDA route works here."""

    code = "accelerator_unavailable"


class ModelError(FacegateError):
    code = "model_error"


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class ModelIntegrityError(ModelError):
    """The weights on disk do not match the SHA-256 in their manifest."""

    code = "model_integrity"


class ModelMismatchError(ModelError):
    """Embeddings from two different models were about to be compared."""

    code = "model_mismatch"


# --- image input ----------------------------------------------------------------------
class ImageError(FacegateError):
    """The input could not be used as an image. Nothing was changed."""

    code = "invalid_image"


class EmptyImageError(ImageError):
    code = "empty_image"


class NotAnImageError(ImageError):
    code = "not_an_image"


class UnsupportedImageFormatError(ImageError):
    code = "unsupported_image_format"


class CorruptImageError(ImageError):
    code = "corrupt_image"


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class UnreadableImageError(ImageError):
    """The file could not be read (missing, not a regular file, no permission)."""

    code = "unreadable_image"


# --- faces ----------------------------------------------------------------------------
class VideoSourceError(ImageError):
    """A video file or stream that cannot be opened or decoded."""

    code = "video_source"


class FaceError(FacegateError):
    code = "face_error"


class NoFaceError(FaceError):
    code = "no_face"


class MultipleFacesError(FaceError):
    """Several faces were found and the caller did not say which one to use."""

    code = "multiple_faces"

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


class LowQualityError(FaceError):
    code = "low_quality"

    def __init__(self, message: str, quality: float, reasons: tuple[str, ...]) -> None:
        super().__init__(message)
        self.quality = quality
        self.reasons = reasons


# --- gallery --------------------------------------------------------------------------
class GalleryError(FacegateError):
    code = "gallery_error"


class UnknownCollectionError(GalleryError):
    code = "unknown_collection"


class DuplicateCollectionError(GalleryError):
    code = "duplicate_collection"


class InvalidSubjectError(GalleryError):
    """A subject's fields are not acceptable (empty or overlong name, ...)."""

    code = "invalid_subject"


class UnknownSubjectError(GalleryError):
    code = "unknown_subject"


class AmbiguousSubjectError(GalleryError):
    code = "ambiguous_subject"


class DuplicateSubjectError(GalleryError):
    code = "duplicate_subject"


class UnknownTemplateError(GalleryError):
    code = "unknown_template"


class NoTemplatesError(GalleryError):
    """The subject exists but has nothing enrolled for the model in use."""

    code = "no_templates"


class EmptyGalleryError(GalleryError):
    code = "empty_gallery"


class ConsentRequiredError(GalleryError):
    """No biometric template is stored for a subject without an active consent record."""

    code = "consent_required"


class InvalidConsentError(GalleryError):
    code = "invalid_consent"


class EphemeralCollectionError(GalleryError):
    """The operation needs a durable collection, or a running service, not an ephemeral one."""

    code = "ephemeral_collection"


# --- benchmarks ---------------------------------------------------------------------
class BenchmarkError(FacegateError):
    """A benchmark could not run: missing data, a service that would not start."""

    code = "benchmark_failed"
