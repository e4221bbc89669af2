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
    assert page.table.item(1, 1).toolTip() == page.results[1].error  # the reason, whole
    assert page.table.columnSpan(1, 1) == 4  # the reason gets the answer columns' width


def test_save_as_csv_clear_and_a_summary_per_patient(qtbot, window, br35h_probe_run,
                                                     br35h_csv, tmp_path):
    import csv

    import pydicom
    from pydicom.data import get_testdata_file

    mri = br35h_csv.read_text().splitlines()[1].split(",")[0]
    scans = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm")]
    ids = {str(pydicom.dcmread(f, stop_before_pixels=True).PatientID) for f in scans}
    window.state.set_run(br35h_probe_run)
    page = window.predict_page
    window.go(6)
    assert not page.save_button.isEnabled()  # nothing to save yet
    page.predict_paths([mri, *scans])
    qtbot.waitUntil(lambda: page.table.rowCount() == 3 and not page.busy, timeout=60_000)

    # per patient: one row each, named by a one-way hash, never the PatientID
    assert page.groups_table.isVisibleTo(page) and page.groups_table.rowCount() == 2
    shown = {page.groups_table.item(r, 0).text() for r in range(2)}
    assert all(s.startswith("patient-") for s in shown) and not shown & ids
    images = sum(int(page.groups_table.item(r, 1).text()) for r in range(2))
    assert images == 2  # the PNG has no patient

    out = tmp_path / "saved" / "predictions.csv"
    out.parent.mkdir()
    page.save_csv(out)
    assert "3 predictions saved" in page.status_label.text()
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [mri, *scans]
    classes = page.predictor.classes
    for row, result in zip(rows, page.results, strict=True):
        assert row["called"] == result.label
        assert abs(sum(float(row[f"p_{c}"]) for c in classes) - 1) < 1e-4
    assert rows[0]["group"] == "" and {r["group"] for r in rows[1:]} == shown
    assert not ids & set(out.read_text().split(","))
    assert [p.name for p in out.parent.iterdir()] == ["predictions.csv"]  # no temp file left

    page.save_csv(tmp_path / "no" / "such" / "folder.csv")  # said, not raised
    assert "Not saved" in page.status_label.text()

    page.clear()
    assert page.table.rowCount() == 0 and not page.groups_table.isVisibleTo(page)
    assert not page.save_button.isEnabled() and page.rows == []


def test_counts_cover_the_whole_list_after_several_drops(qtbot, window, br35h_probe_run,
                                                         br35h_csv):
    """Issue 18: "1 image(s) predicted." above 3 rows (the count was the last drop's)."""
    images = [line.split(",")[0] for line in br35h_csv.read_text().splitlines()[1:4]]
    window.state.set_run(br35h_probe_run)
    page = window.predict_page
    window.go(6)
    for k, image in enumerate(images, 1):
        page.predict_paths([image])
        qtbot.waitUntil(lambda n=k: page.table.rowCount() == n and not page.busy,
                        timeout=60_000)
    assert page.status_label.text().startswith("3 images predicted (1 just added)")
