"""Every image is reachable (issue 18: only 48 thumbnails per class, no note, no way to see
more), any image opens large on double-click, problem reasons wrap instead of needing a
sideways scroll, and long texts never widen the window."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from tlstudio.core.data.synthetic import make_shapes_folder


def _keys(thumbs) -> list[str]:
    return [thumbs.item(i).data(Qt.ItemDataRole.UserRole) for i in range(thumbs.count())]


def test_every_thumbnail_is_reachable_and_opens_large(qtbot, window, tmp_path):
    folder = make_shapes_folder(tmp_path / "shapes", per_class=60)
    long_name = "a-scan-exported-with-a-very-long-name-" * 4 + ".png"
    (folder / "disc" / long_name).write_bytes(b"broken")
    page = window.data_page
    width = window.width()
    page.load(folder, remember=False)
    qtbot.waitUntil(lambda: page.thumbs.count() == 48, timeout=30_000)
    assert "1–48 of 60" in page.pager.label.text() and page.pager.next.isEnabled()
    first = _keys(page.thumbs)
    page.pager.next.click()
    qtbot.waitUntil(lambda: page.thumbs.count() == 12, timeout=30_000)
    assert "49–60 of 60" in page.pager.label.text() and not page.pager.next.isEnabled()
    seen = first + _keys(page.thumbs)
    expected = sorted(str(p) for p in (folder / "disc").glob("disc_*.png"))
    assert sorted(seen) == expected  # all 60, each once

    page.thumbs.itemActivated.emit(page.thumbs.item(3))
    dialog = page.large_image
    qtbot.waitUntil(lambda: dialog.image_label.pixmap() is not None
                    and not dialog.image_label.pixmap().isNull(), timeout=10_000)
    assert dialog.image_label.pixmap().width() > 300  # large, not the 96 px thumbnail
    assert dialog.key == _keys(page.thumbs)[3]
    page.thumbs.itemActivated.emit(page.thumbs.item(4))
    assert page.large_image is not dialog and page.large_image.isVisible()
    qtbot.waitUntil(lambda: not shiboken6.isValid(dialog), timeout=5_000)
    page.large_image.close()

    # the broken file's reason: wrapped to the list's width, nothing to scroll sideways
    problems = page.problems
    assert any(long_name in problems.item(i).text() for i in range(problems.count()))
    assert problems.horizontalScrollBar().maximum() == 0
    assert window.width() == width


def test_long_texts_do_not_widen_the_window(qtbot, window):
    width = window.width()
    long = "a-very-long-path-without-spaces/" * 12
    for page in window.pages:
        for label in page.findChildren(QLabel):
            if label.text().endswith(":") or label.objectName() == "title" or \
                    label.text() in ("C", "W"):
                continue  # field names: fixed, short
            old = label.text()
            label.setText(long)
            qtbot.wait(1)
            assert window.minimumSizeHint().width() <= width, (type(page).__name__, old)
            label.setText(old)
    assert window.width() == width


def test_results_and_predict_reach_every_image_and_open_it_large(qtbot, window,
                                                                 br35h_probe_run):
    from tlstudio.gui.image_view import ImageDialog

    window.state.set_run(br35h_probe_run)
    results = window.results_page
    window.stack.setCurrentWidget(results)
    results.on_enter()
    qtbot.waitUntil(lambda: "Accuracy" in results.summary_label.text(), timeout=10_000)
    total = len(results.gallery_rows)
    results.gallery_pager.per_page = 20  # the sample's 46 test images over three pages
    results.show_cell(None)
    seen: list[str] = []
    for page in range(results.gallery_pager.pages):
        results.gallery_pager.go(page)
        expected = min(20, total - 20 * page)
        qtbot.waitUntil(lambda n=expected: results.gallery.count() == n, timeout=20_000)
        seen += [results.gallery.item(i).toolTip() for i in range(results.gallery.count())]
    assert sorted(seen) == sorted(r.path for r in results.gallery_rows) and len(seen) == total
    # an image of the last page opens as itself (not the first page's image at that place)
    results.gallery.itemActivated.emit(results.gallery.item(1))
    assert isinstance(results.dialog, ImageDialog)
    assert results.dialog.key == results.gallery.item(1).toolTip()
    first = results.dialog
    first.close()
    # the next image replaces it: the one before is freed, not kept hidden
    results.gallery.itemActivated.emit(results.gallery.item(0))
    assert results.dialog is not first and results.dialog.isVisible()
    qtbot.waitUntil(lambda: not shiboken6.isValid(first), timeout=5_000)
    assert results.findChildren(ImageDialog) == [results.dialog]
    results.dialog.close()

    predict = window.predict_page
    window.stack.setCurrentWidget(predict)
    image = results.gallery_rows[0].path
    predict.predict_paths([image])
    qtbot.waitUntil(lambda: predict.table.rowCount() == 1 and not predict.busy,
                    timeout=60_000)
    predict.table.cellDoubleClicked.emit(0, 0)
    assert isinstance(predict.dialog, ImageDialog) and predict.dialog.key == image
    qtbot.waitUntil(lambda: predict.dialog.prediction is not None, timeout=60_000)
    predict.dialog.close()
