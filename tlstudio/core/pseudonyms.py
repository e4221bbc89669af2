"""The secret that names a patient without naming them.

DICOM images of one patient stay in one part of a split, and a table of predictions sums them
up per patient, under a pseudonym: an HMAC of the PatientID (``pixels.dicom.grouping``) keyed
by a random secret kept in tlstudio's own folder (``pseudonym.key``, readable by its owner
only). A plain hash of an ID would not do: hospital IDs are short, and hashing every possible
one takes seconds, so anyone holding an output could find the patient. Without this
installation's secret, a pseudonym tells nothing; with it, the same patient keeps the same
pseudonym in every run and table made here.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path

from .paths import app_data_dir

KEY_FILE = "pseudonym.key"
log = logging.getLogger(__name__)
_KEY_BYTES = 32
_known: dict[Path, bytes] = {}
_lock = threading.Lock()  # the dataset check reads DICOM headers on several threads


def pseudonym_key() -> bytes:
    """This installation's secret, made on first use; where tlstudio's folder cannot be
    written, a secret for this process alone (pseudonyms then differ between sessions)."""
    path = app_data_dir() / KEY_FILE
    with _lock:
        if path not in _known:
            _known[path] = _read(path) or _create(path) or secrets.token_bytes(_KEY_BYTES)
        return _known[path]


def _read(path: Path) -> bytes | None:
    try:
        key = path.read_bytes()
    except OSError:
        return None
    return key if len(key) == _KEY_BYTES else None


def _create(path: Path) -> bytes | None:
    """Written beside and linked into place, so that two processes starting at once
    (torchrun's ranks) end up with the one secret that got there first. A damaged file (cut
    short) is replaced, and the log says so: pseudonyms made before it no longer match."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(_KEY_BYTES))
        try:
            os.link(tmp, path)  # fails when another process made it first
        except FileExistsError:
            if _read(path) is None:
                log.warning("%s is damaged: replaced by a new secret (patients' pseudonyms "
                            "made before differ from those made from now on)", path)
                os.replace(tmp, path)
    except OSError:
        return None
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)
