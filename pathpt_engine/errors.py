"""One family of user-facing errors.

Every message names the file (or object) and what is wrong, in one line, so the CLI can print it and the GUI can
show it in a dialog without a traceback.
"""

from __future__ import annotations


class PathPTError(Exception):
    """Base class of every error a user can cause and fix."""


class SlideError(PathPTError):
    """A slide cannot be opened or read."""


class FeatureFileError(PathPTError):
    """A feature/coords h5 file is missing, stale or malformed."""


class BackboneError(PathPTError):
    """A backbone name is unknown or its weights folder is missing or malformed."""


class ConfigError(PathPTError):
    """A configuration, class-set, labels or split file is invalid."""


class ProjectError(PathPTError):
    """A project folder or database cannot be used."""


class ProjectDamaged(ProjectError):
    """A project database fails SQLite's integrity check; `db_path` names it and `problems` lists what failed.

    The damaged file is never written to; `pathpt_engine.project.repair.recover_copy` salvages what it can into a
    new file beside it.
    """

    def __init__(self, message: str, db_path: object = None, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.db_path = db_path
        self.problems = list(problems or [])


class ExportError(PathPTError):
    """An export cannot be written or an export/score file cannot be read."""


class ClusterError(PathPTError):
    """Ray is missing, cannot start, the network is not private, or every worker died."""


class DeviceMemoryError(PathPTError):
    """The device ran out of memory even after halving the batch."""


class ImageWriteError(PathPTError):
    """An image (screenshot, exported view) could not be written."""


class NonFiniteLossError(PathPTError):
    """Training produced a non-finite loss or weights (no run is saved)."""


class JobCancelled(PathPTError):
    """A job stopped because the user cancelled it."""


class InvalidRegion(ConfigError):
    """An annotated region that cannot be stored (self-intersecting, zero area, hole outside its outline...)."""
