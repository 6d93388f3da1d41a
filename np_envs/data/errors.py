"""Exceptions and warnings of the data layer.

Every data problem raises :class:`DataError` (or a subclass), so that environments and the command
line can catch one type and show its message, which always says what is wrong and what to do.
"""

from __future__ import annotations


class DataError(Exception):
    """A data file is missing, corrupt, unreadable or cannot be downloaded."""


class DataMissingError(DataError):
    """A required data file is absent and could not be downloaded."""


class DataCorruptError(DataError):
    """A data file is present but fails its checksum or format checks; it was not used."""


class DataWarning(UserWarning):
    """Something about a data file deserves attention but does not stop it from being used."""
