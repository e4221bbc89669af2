"""`tlstudio predict --csv FILE`: the table the studio's "Save as CSV" writes, refused before
any model loads when it cannot be written; DICOM images summarised per patient by a
pseudonym keyed by this installation's secret, never by the PatientID."""

from __future__ import annotations

import csv
import hashlib
import stat
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from tlstudio.cli import main
from tlstudio.core.pseudonyms import KEY_FILE, pseudonym_key
from tlstudio.pixels import dicom


def test_predict_writes_a_csv_and_a_summary_per_patient(br35h_probe_run, br35h_csv, tmp_path,
                                                        capsys):
    mri = br35h_csv.read_text().splitlines()[1].split(",")[0]
    scans = [get_testdata_file(name) for name in ("CT_small.dcm", "MR_small.dcm")]
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--run", str(br35h_probe_run), mri, *scans, "--csv", str(out)]) == 0
    printed = capsys.readouterr()
    assert f"predictions written to {out}" in printed.err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [mri, *scans]
    assert all(r["called"] and r["unfamiliar"] in ("yes", "no") for r in rows)
    groups = [r["group"] for r in rows]
    assert groups[0] == "" and all(g.startswith("patient-") for g in groups[1:])
    assert "by patient" in printed.out
    for group in groups[1:]:
        assert f"  {group}: 1 image: " in printed.out
    ids = {str(pydicom.dcmread(f, stop_before_pixels=True).PatientID) for f in scans}
    assert not any(i in printed.out or i in out.read_text() for i in ids)


def test_a_csv_that_cannot_be_written_is_refused_first(br35h_probe_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    for bad, message in ((tmp_path, "is a folder"),
                         (tmp_path / "missing" / "p.csv", "does not exist")):
        assert main(["predict", "--run", str(tmp_path / "no-run"), str(image),
                     "--csv", str(bad)]) == 2
        assert message in capsys.readouterr().err  # before the (missing) run was looked at


def test_a_patient_pseudonym_cannot_be_reversed_without_this_installations_key(
        tmp_path, monkeypatch):
    """Hospital IDs are short: a plain hash of one is found by hashing every possible ID.
    The pseudonym is keyed by a secret of this installation, kept for its owner only."""
    scan = Path(get_testdata_file("CT_small.dcm"))
    patient = str(pydicom.dcmread(scan, stop_before_pixels=True).PatientID)
    monkeypatch.setenv("TLSTUDIO_HOME", str(tmp_path / "here"))
    here = dicom.patient_group(scan, pseudonym_key())
    assert here.startswith("patient-") and patient not in here
    for guess in (f"tlstudio|PatientID|{patient}", f"PatientID|{patient}", patient):
        assert hashlib.sha256(guess.encode()).hexdigest()[:16] not in here
    key_file = tmp_path / "here" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert dicom.patient_group(scan, pseudonym_key()) == here  # the same patient, the same name

    monkeypatch.setenv("TLSTUDIO_HOME", str(tmp_path / "elsewhere"))
    assert dicom.patient_group(scan, pseudonym_key()) != here  # another installation's secret
    (tmp_path / "damaged").mkdir()  # a key file cut short: replaced, not used as it is
    (tmp_path / "damaged" / KEY_FILE).write_bytes(b"abc")
    monkeypatch.setenv("TLSTUDIO_HOME", str(tmp_path / "damaged"))
    key = pseudonym_key()
    assert len(key) == 32 and (tmp_path / "damaged" / KEY_FILE).read_bytes() == key
