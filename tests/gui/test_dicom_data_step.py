"""The Data step with DICOM: patients shown, a window chosen, the image seen as the model
sees it, header facts without the patient."""

from __future__ import annotations

import pydicom

from ..core.test_dicom import dicom_folder, patient_values


def test_dicom_folder_window_and_preview(qtbot, window, tmp_path):
    folder = dicom_folder(tmp_path / "dicom")
    data = window.data_page
    data.load(folder)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=120_000)
    assert "36 images in 2 classes" in data.summary_label.text()
    assert "Patients per class: ct 7, mr 5" in data.groups_label.text()
    assert "grouping is active" in data.groups_label.text()
    qtbot.waitUntil(lambda: "modality: CT" in data.facts_label.text(), timeout=60_000)
    assert "transfer syntax" in data.facts_label.text()
    assert not data.preview.pixmap().isNull()
    for secret in patient_values(folder):
        assert secret not in data.facts_label.text()

    # a CT slice through the brain window, chosen from the list
    ct = next(i for i in range(data.thumbs.count())
              if data.thumbs.item(i).text() == "693_J2KR.dcm")
    data.thumbs.setCurrentRow(ct)
    qtbot.waitUntil(lambda: "693_J2KR.dcm" in data.facts_label.text(), timeout=60_000)
    assert "stored window: 40,100" in data.facts_label.text()
    before = data.preview.pixmap().toImage()
    data.window_combo.setCurrentIndex(data.window_combo.findData("custom"))
    data.centre_spin.setValue(400)
    data.width_spin.setValue(1800)
    data._window_chosen()
    assert window.state.window == "400,1800"
    qtbot.waitUntil(lambda: not data.scanning and window.state.index is not None,
                    timeout=120_000)
    qtbot.waitUntil(lambda: "693_J2KR.dcm" in data.facts_label.text()
                    and "400,1800" in data.facts_label.text(), timeout=60_000)
    assert data.preview.pixmap().toImage() != before  # bone window: another picture
    assert window.state.train_config().window == "400,1800"

    # a CT-only window on MR images: they are listed as not usable, with the reason
    data.window_combo.setCurrentIndex(data.window_combo.findData("brain"))
    data._window_chosen()
    qtbot.waitUntil(lambda: not data.scanning, timeout=120_000)
    assert window.state.index is None
    assert "for CT" in data.path_label.text()
    ds = pydicom.dcmread(folder / "mr" / "MR_small.dcm", stop_before_pixels=True)
    assert str(ds.PatientName) not in data.path_label.text()
