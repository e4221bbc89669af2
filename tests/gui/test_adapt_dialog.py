"""The studio's "Adapt to new images…" on the Results step: the same adaptation as `tlstudio
adapt`, off the GUI thread, stoppable; the new run opens in Results and Predict names its
domain."""

from __future__ import annotations

import csv

from tlstudio.core.studies.simulated_domains import tone, write_domain


def _held_out(run):
    with open(run / "predictions.csv", newline="") as fh:
        return [(r["path"], r["label"]) for r in csv.DictReader(fh)]


def _open_dialog(qtbot, window, run):
    window.state.set_run(run)
    page = window.results_page
    window.stack.setCurrentWidget(page)
    page.on_enter()
    qtbot.waitUntil(lambda: page.adapt_button.isEnabled(), timeout=30_000)
    page.adapt_button.click()
    return page, page.adapt_dialog


def test_adapt_from_the_studio_then_show_and_predict(qtbot, window, br35h_probe_run,
                                                     tmp_path):
    domain = tmp_path / "site-b"
    labels = write_domain(domain, _held_out(br35h_probe_run)[:40], tone(3.0, 0.35))
    page, dialog = _open_dialog(qtbot, window, br35h_probe_run)
    dialog.images_edit.setText(str(domain / "images"))
    dialog.labels_edit.setText(str(labels))
    dialog.domain_edit.setText("site B")
    dialog.start_button.click()
    assert dialog.running and dialog.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=300_000)
    text = dialog.status.text()
    assert "Accuracy on 40 labeled new-domain images" in text, text
    assert "New run:" in text and dialog.open_button.isEnabled()
    out = dialog.out_dir
    assert out.name == f"{br35h_probe_run.name}-to-site-B" and (out / "metrics.json").is_file()

    dialog.open_button.click()
    assert window.state.run_dir == out
    qtbot.waitUntil(lambda: "Adapted" in page.summary_label.text(), timeout=30_000)
    assert page.part_combo.itemData(0) == "adapted"
    assert "site B" in page.summary_label.text()

    window.stack.setCurrentWidget(window.predict_page)
    window.predict_page.predict_paths([str(domain / "images" / "yes")])
    qtbot.waitUntil(lambda: window.predict_page.table.rowCount() > 0
                    and not window.predict_page.busy, timeout=60_000)
    assert "adapted to 'site B'" in window.predict_page.status_label.text()


def test_stop_leaves_nothing_and_bad_input_is_refused(qtbot, window, br35h_probe_run,
                                                      tmp_path):
    page, dialog = _open_dialog(qtbot, window, br35h_probe_run)
    dialog.start_button.click()
    assert "Choose a folder" in dialog.status.text() and not dialog.running
    dialog.images_edit.setText(str(tmp_path / "missing"))
    dialog.start_button.click()  # checked off the GUI thread, answered in a moment
    qtbot.waitUntil(lambda: not dialog.running, timeout=30_000)
    assert "Not adapted" in dialog.status.text() and "not a folder" in dialog.status.text()

    domain = tmp_path / "site-c"
    write_domain(domain, _held_out(br35h_probe_run)[:30], tone(2.2, 0.5))
    dialog.images_edit.setText(str(domain / "images"))
    dialog.start_button.click()
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    assert "Stopped: nothing was written" in dialog.status.text()
    runs = tmp_path / "home" / "runs"
    assert not runs.exists() or not any(p.name.startswith(br35h_probe_run.name)
                                        for p in runs.iterdir())
