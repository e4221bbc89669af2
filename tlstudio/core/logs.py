"""tlstudio's log: a rotating file in its own folder, so a bug can be read after the fact.

Messages for users stay short; the traceback of anything unexpected goes here, and the
message names this file.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from .paths import app_data_dir

_HANDLER_NAME = "tlstudio-file"


def log_file() -> Path:
    return app_data_dir() / "logs" / "tlstudio.log"


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Attach the rotating file (1 MB x 3) to the ``tlstudio`` logger once per process and
    per folder; returns its path, or None when the folder cannot be written."""
    path = log_file()
    logger = logging.getLogger("tlstudio")
    for handler in logger.handlers:
        if handler.get_name() == _HANDLER_NAME:
            if Path(handler.baseFilename) == path:
                return path
            logger.removeHandler(handler)
            handler.close()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=3,
                                                       encoding="utf-8")
    except OSError:
        return None
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    # Library warnings (Pillow's "Corrupt EXIF data", deprecations) belong in the log, not
    # in the user's terminal between the results.
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    for old in [h for h in warnings_logger.handlers if h.get_name() == _HANDLER_NAME]:
        warnings_logger.removeHandler(old)
    warnings_logger.addHandler(handler)
    warnings_logger.propagate = False
    return path


def report_bug(logger: logging.Logger, exc: BaseException, what: str) -> str:
    """Log ``exc`` with its traceback; return a one-paragraph message naming the log."""
    path = setup_logging()
    logger.error("%s failed", what, exc_info=exc)
    where = f" The details are in {path}." if path else ""
    return f"{what} failed: {type(exc).__name__}: {exc}.{where}"
