"""HEIC/HEIF photos (phones) through pillow-heif, when this machine has it."""

from __future__ import annotations

from functools import lru_cache

from ocrpipe.errors import Code, PermanentError

INSTALL_HINT = "install pillow-heif (pip install pillow-heif) into ocrpipe's Python"


@lru_cache(maxsize=1)
def heif_available() -> bool:
    """Registers pillow-heif's opener with Pillow once per process; False when it cannot be imported
    (no wheel for this platform)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def heif_version() -> str | None:
    if not heif_available():
        return None
    import pillow_heif

    return str(pillow_heif.__version__)


def require_heif(name: str) -> None:
    if not heif_available():
        raise PermanentError(f"{name}: HEIC/HEIF photos are unsupported on this machine: {INSTALL_HINT}",
                             code=Code.IMAGE_UNSUPPORTED)
