"""The one refusal every import raises: it names the file's object or field at fault."""

from __future__ import annotations

# A file above this is refused before it is read or uploaded (a million nuclei as GeoJSON is
# about 600 MB); HISTOLABEL_MAX_IMPORT_BYTES raises or lowers it.
DEFAULT_MAX_IMPORT_BYTES = 1 << 30


class ImportRefused(ValueError):
    """Bad import input; nothing was written. `where` names the object, row or field."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


def max_import_bytes() -> int:
    from histolabel.config import settings_from_env

    return settings_from_env().max_import_bytes


def check_size(size: int, name: str) -> None:
    limit = max_import_bytes()
    if size > limit:
        raise ImportRefused(
            f"the file is {size / 2**20:.0f} MiB; imports are limited to {limit / 2**20:.0f} MiB "
            "(split it per slide, or raise HISTOLABEL_MAX_IMPORT_BYTES)",
            name,
        )
