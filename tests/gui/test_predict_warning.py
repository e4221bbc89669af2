"""Predict marks an image unlike anything the run was trained on, in the table, the preview
and the status line; images like the training ones carry no mark."""

from __future__ import annotations

from tlstudio.core.data.synthetic import make_shapes_folder


def test_an_image_from_another_domain_is_marked(qtbot, window, br35h_probe_run, br35h_csv,
                                                tmp_path):
    mri = br35h_csv.read_text().splitlines()[1].split(",")[0]
    shape = next((make_shapes_folder(tmp_path / "shapes", per_class=1) / "disc").iterdir())
    window.state.set_run(br35h_probe_run)
    page = window.predict_page
    window.go(6)
    page.predict_paths([mri, shape])
    qtbot.waitUntil(lambda: page.table.rowCount() == 2 and not page.busy, timeout=60_000)
    assert not page.table.item(0, 1).text().startswith("⚠")
    called = page.table.item(1, 1)
    assert called.text().startswith("⚠") and "unlike anything" in called.toolTip()
    assert "1 unlike anything this model was trained on" in page.status_label.text()
    page.table.selectRow(1)
    assert "not to be trusted" in page.preview_text.text()
    assert page.status_label.text().startswith("2 images predicted")


def test_counts_say_what_was_predicted_and_what_was_not(qtbot, window, br35h_probe_run,
                                                        br35h_csv, tmp_path):
    mri = br35h_csv.read_text().splitlines()[1].split(",")[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    window.state.set_run(br35h_probe_run)
    page = window.predict_page
    window.go(6)
    page.predict_paths([mri, broken])
    qtbot.waitUntil(lambda: page.table.rowCount() == 2 and not page.busy, timeout=60_000)
    # one answer and one unreadable file: not "2 image(s) predicted, 1 unreadable"
    assert page.status_label.text().startswith("1 image predicted, 1 file unreadable")
