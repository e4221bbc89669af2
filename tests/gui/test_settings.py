"""Window geometry, last folder and last backbone survive a restart (settings in a temp dir)."""

from __future__ import annotations

from tlstudio.core.paths import app_data_dir
from tlstudio.gui.main_window import MainWindow
from tlstudio.gui.state import settings

from .conftest import drop_on


def test_settings_are_remembered(qtbot, window, shapes):
    assert str(app_data_dir()).endswith("home")  # the test's folder, not the user's
    drop_on(window, [shapes])
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not window.backbone_page.loading, timeout=60_000)
    window.backbone_page.select("mobilenet_v2")
    # a size of the user's own (inside the offscreen 800x600 screen, above the minimum)
    window.resize(max(700, window.minimumSizeHint().width()) + 4, 560)
    qtbot.wait(50)
    size = (window.width(), window.height())
    window.close()
    assert settings().value("last_folder") == str(shapes)
    assert (app_data_dir() / "settings.ini").is_file()

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.state.spec.name == "mobilenet_v2"
    assert (again.width(), again.height()) == size != (1180, 780)  # not the default size
    qtbot.waitUntil(lambda: not again.backbone_page.loading, timeout=60_000)
    assert again.backbone_page.cards["mobilenet_v2"].radio.isChecked()
