"""tlstudio: a desktop transfer-learning studio (engine in tlstudio.core, GUI in tlstudio.gui)."""

__version__ = "0.1.0"
