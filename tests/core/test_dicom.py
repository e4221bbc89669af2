"""DICOM in: real files from pydicom and pydicom-data, every decoder, windows in Hounsfield
units, MONOCHROME1, padding, colour, multi-frame; patients kept together; nothing of the
patient in what a run or an export writes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from tlstudio import export_runtime, pixels
from tlstudio.core.data.dataset import scan
from tlstudio.core.data.preprocess import Preprocessing, eval_view, prepare
from tlstudio.core.data.split import make_split

CT_SMALL = "CT_small.dcm"


def dcm(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.fail(f"{name} is missing: make test installs pydicom-data")
    return Path(path)


def picture(path, window="file") -> np.ndarray:
    return np.asarray(pixels.read_image(path, window))


# Lossless pairs: the compressed file must decode to exactly the uncompressed one's picture.
LOSSLESS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),  # RLE
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),  # JPEG 2000 lossless
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),  # JPEG-LS lossless
    ("MR_small.dcm", "MR_small_bigendian.dcm"),  # big endian
    ("MR_small.dcm", "MR_small_implicit.dcm"),  # implicit VR
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("RG1_UNCR.dcm", "RG1_J2KR.dcm"),  # CR, MONOCHROME1
    ("RG3_UNCR.dcm", "RG3_J2KR.dcm"),
    ("US1_UNCR.dcm", "US1_J2KR.dcm"),  # ultrasound RGB / YBR_RCT
    ("693_UNCR.dcm", "693_J2KR.dcm"),  # 512 x 512 head CT
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),  # palette colour
    ("emri_small.dcm", "emri_small_RLE.dcm"),  # multi-frame
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
]


@pytest.mark.parametrize("plain,packed", LOSSLESS, ids=[p for _, p in LOSSLESS])
def test_compressed_dicom_decodes_to_the_uncompressed_picture(plain, packed):
    ours = picture(dcm(packed))
    assert ours.dtype == np.uint8 and ours.ndim == 3 and ours.shape[2] == 3
    assert ours.std() > 5, "a flat picture tests nothing"
    np.testing.assert_array_equal(ours, picture(dcm(plain)))


@pytest.mark.parametrize("name", ["JPGLosslessP14SV1_1s_1f_8b.dcm",  # JPEG lossless
                                  "color3d_jpeg_baseline.dcm",  # JPEG baseline, YBR
                                  "SC_rgb_jpeg_gdcm.dcm", "MR2_J2KI.dcm", "RG1_J2KI.dcm",
                                  "US1_J2KI.dcm", "SC_ybr_full_uncompressed.dcm",
                                  "examples_palette.dcm", "SC_rgb_rle_16bit.dcm"])
def test_lossy_and_colour_syntaxes_read_as_rgb(name):
    ours = picture(dcm(name))
    assert ours.ndim == 3 and ours.shape[2] == 3 and ours.max() > ours.min()


def test_undecodable_and_imageless_files_say_why():
    reasons = {}
    for name in ("JPEG-lossy.dcm", "MR_truncated.dcm", "rtplan.dcm"):
        with pytest.raises(pixels.ImageReadError) as err:
            pixels.read_image(dcm(name))
        reasons[name] = str(err.value)
    assert "JPEG Extended" in reasons["JPEG-lossy.dcm"]
    assert "1.2.840.10008.1.2.4.51" in reasons["JPEG-lossy.dcm"]
    assert "pylibjpeg-libjpeg" in reasons["JPEG-lossy.dcm"]
    assert "cannot decode" in reasons["MR_truncated.dcm"]
    assert "no pixel data" in reasons["rtplan.dcm"]


def test_a_known_hounsfield_value_lands_where_the_window_says():
    ds = pydicom.dcmread(dcm(CT_SMALL))
    hu = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    out = picture(dcm(CT_SMALL), "40,80")[..., 0]  # brain: 0 HU black, 80 HU white
    assert np.array_equal(out, picture(dcm(CT_SMALL), "brain")[..., 0])
    inside = (hu > 0) & (hu < 80)
    assert inside.any()
    expected = np.floor(np.clip((hu - 0.0) * (255 / 80) + 0.5, 0, 255))
    np.testing.assert_array_equal(out, expected.astype(np.uint8))
    y, x = np.argwhere(hu == 40)[0] if (hu == 40).any() else np.argwhere(inside)[0]
    assert abs(int(out[y, x]) - (hu[y, x] / 80 * 255)) <= 0.5
    assert out[hu <= 0].max() == 0 and out[hu >= 80].min() == 255
    lung = picture(dcm(CT_SMALL), "lung")[..., 0]
    assert lung[hu <= -1350].max(initial=0) == 0 and lung[hu >= 150].min() == 255


def test_the_stored_window_is_the_default_and_auto_uses_percentiles():
    ds = pydicom.dcmread(dcm("MR_small.dcm"))
    centre, width = float(ds.WindowCenter), float(ds.WindowWidth)
    np.testing.assert_array_equal(picture(dcm("MR_small.dcm")),
                                  picture(dcm("MR_small.dcm"), f"{centre},{width}"))
    auto = picture(dcm("MR_small.dcm"), "auto")[..., 0]
    assert auto.max() == 255 and auto.min() == 0
    assert 0.001 < (auto == 255).mean() < 0.05  # the top 0.5 % clip, not half the picture


def test_monochrome1_is_shown_the_way_a_viewer_shows_it():
    ds = pydicom.dcmread(dcm("RG1_UNCR.dcm"))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = ds.pixel_array
    out = picture(dcm("RG1_UNCR.dcm"), "auto")[..., 0]
    low, high = np.unravel_index(raw.argmin(), raw.shape), np.unravel_index(raw.argmax(),
                                                                          raw.shape)
    assert out[low] == 255 and out[high] == 0  # low stored values are white in MONOCHROME1


def test_padding_is_black_and_left_out_of_auto(tmp_path):
    ds = pydicom.dcmread(dcm(CT_SMALL))
    raw = ds.pixel_array
    padding = int(raw.min())
    ds.PixelPaddingValue = padding
    path = tmp_path / "padded.dcm"
    ds.save_as(path)
    out = picture(path, "auto")[..., 0]
    assert out[raw == padding].max() == 0
    without = picture(dcm(CT_SMALL), "auto")[..., 0]
    assert not np.array_equal(out[raw != padding], without[raw != padding])


def test_three_windows_make_three_channels_and_presets_need_ct(tmp_path):
    rgb = picture(dcm(CT_SMALL), "brain+subdural+bone")
    for channel, window in enumerate(("brain", "subdural", "bone")):
        np.testing.assert_array_equal(rgb[..., channel], picture(dcm(CT_SMALL), window)[..., 0])
    with pytest.raises(pixels.ImageReadError, match="for CT"):
        pixels.read_image(dcm("MR_small.dcm"), "brain")
    sixteen = tmp_path / "s.png"
    Image.fromarray(np.arange(4096, dtype=np.uint16).reshape(64, 64)).save(sixteen)
    with pytest.raises(pixels.ImageReadError, match="for CT"):
        pixels.read_image(sixteen, "lung")
    fixed = np.asarray(pixels.read_image(sixteen, "1000,1000"))[..., 0]
    assert fixed.reshape(-1)[500] == 0 and fixed.reshape(-1)[1500] == 255
    assert fixed.reshape(-1)[1000] in (127, 128)
    with pytest.raises(pixels.ImageReadError, match="window"):
        pixels.read_image(sixteen, "brain+bone")


def test_multi_frame_gives_the_middle_frame():
    ds = pydicom.dcmread(dcm("emri_small.dcm"))
    frames = ds.pixel_array
    assert frames.shape[0] == 10
    out = picture(dcm("emri_small.dcm"), "0,2000")[..., 0]
    expected = np.floor(np.clip((frames[5] + 1000.0) * (255 / 2000) + 0.5, 0, 255))
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_dicom_is_recognised_by_content_without_an_extension(tmp_path):
    bare = tmp_path / "IM000001"
    shutil.copy(dcm(CT_SMALL), bare)
    assert pixels.looks_like_image(bare)
    np.testing.assert_array_equal(picture(bare), picture(dcm(CT_SMALL)))


def test_the_runtime_sees_the_apps_pixels_on_dicom():
    prep = Preprocessing((224, 224), (0.5,) * 3, (0.5,) * 3, "bicubic", 0.875,
                         window="brain+subdural+bone")
    spec = {"pixel_rule": {"id": pixels.RULE}, "input_size": [224, 224], "resize": "bicubic",
            "crop_pct": 0.875, "window": prep.window}
    for name in ("693_J2KR.dcm", CT_SMALL):
        square = torch.from_numpy(prepare(pixels.read_image(dcm(name), prep.window), prep))
        ours = eval_view(square.permute(2, 0, 1), prep).numpy().astype(np.float32) / 255
        np.testing.assert_array_equal(export_runtime.preprocess(dcm(name), spec), ours)


def test_header_facts_hold_no_patient_data():
    facts = pixels.dicom.facts(dcm("693_J2KR.dcm"))
    assert facts["modality"] == "CT" and facts["size"] == "512 x 512"
    assert "JPEG 2000" in facts["transfer syntax"] and facts["stored window"] == "40,100"
    assert "CQ500" not in json.dumps(facts)


# --- a DICOM dataset: patients, training, export, privacy ---------------------------------
CT_FILES = ["CT_small.dcm", "693_UNCR.dcm", "693_J2KR.dcm", "J2K_pixelrep_mismatch.dcm",
            "eCT_Supplemental.dcm", "explicit_VR-UN.dcm", "17106", "17136", "17166", "17196",
            "2062", "2392", "2693", "3023", "3353", "6293", "6924"]
MR_FILES = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR2_UNCR.dcm",
            "MR2_J2KR.dcm", "emri_small.dcm", "emri_small_RLE.dcm",
            "MR-SIEMENS-DICOM-WithOverlays.dcm", "examples_overlay.dcm", "15820", "15970",
            "4467", "4528", "4558", "4588", "4618", "4648", "4678", "4919"]


def dicom_folder(root: Path) -> Path:
    """CT and MR slices sorted into class folders, as a radiologist would (names kept,
    some without extension)."""
    for label, names in (("ct", CT_FILES), ("mr", MR_FILES)):
        (root / label).mkdir(parents=True)
        for name in names:
            shutil.copy(dcm(name), root / label / name)
    return root


def patient_values(folder: Path) -> set[str]:
    values = set()
    for f in folder.rglob("*"):
        if f.is_file():
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            for key in ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs"):
                value = str(ds.get(key, "") or "").strip()
                # short numbers ("0010") turn up in any metrics file by chance
                if len(value) >= 6 and value not in ("None", "Anonymized"):
                    values.add(value)
    return values


def test_patients_group_the_split(tmp_path):
    index = scan(dicom_folder(tmp_path / "dicom"))
    assert len(index.items) == len(CT_FILES) + len(MR_FILES) and index.has_groups
    groups = {item.group for item in index.items}
    assert 5 <= len(groups) < len(index.items)
    for seed in range(5):
        split = make_split(index, 0.3, seed=seed)
        train_groups = {index.items[p].group for p in split.train}
        val_groups = {index.items[p].group for p in split.val}
        assert not train_groups & val_groups, seed
    secrets = patient_values(tmp_path / "dicom")
    assert "CQ500-CT-310" in secrets
    assert not any(s in g for g in groups for s in secrets)  # hashed, not the IDs


@pytest.mark.slow
def test_a_dicom_folder_trains_predicts_exports_and_keeps_patients_out(tmp_path):
    from tlstudio.cli import main

    data = dicom_folder(tmp_path / "dicom")
    run, export = tmp_path / "run", tmp_path / "export"
    assert main(["train", "--data", str(data), "--out", str(run), "--backbone",
                 "efficientnet_lite0", "--mode", "linear-probe", "--epochs", "15",
                 "--batch-size", "8",
                 "--val-fraction", "0.3", "--test-fraction", "0", "--window", "auto"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_accuracy"] >= 0.7  # 9 validation images from few patients
    # results per DICOM subgroup: CT and MR side by side (counts and rates only)
    modality = metrics["validation"]["subgroups"]["modality"]
    assert set(modality) == {"CT", "MR"}
    assert sum(v["n"] for v in modality.values()) == metrics["validation"]["n"]
    from tlstudio.core.runs.predict import Predictor

    rows = Predictor.from_run(run).predict([data])
    assert not any(r.error for r in rows) and len(rows) == len(CT_FILES) + len(MR_FILES)
    right = sum(Path(r.path).parent.name == r.label for r in rows)
    assert right / len(rows) >= 0.85  # a random model: about half of 36
    config = json.loads((run / "config.json").read_text())
    assert config["preprocessing"]["window"] == "auto" and config["dataset"]["groups"] >= 5
    assert main(["export", "--run", str(run), "--format", "onnx", "--out", str(export)]) == 0
    parity = json.loads((export / "parity.json").read_text())
    assert parity["passed"] and parity["images"] >= 8
    assert json.loads((export / "preprocessing.json").read_text())["window"] == "auto"
    assert main(["predict", "--model", str(export / "model.onnx"), str(data / "ct")]) == 0
    assert main(["predict", "--run", str(run), str(data / "mr" / "4467")]) == 0
    assert main(["report", "--run", str(run)]) == 0  # the report too holds no patient data
    assert (run / "report.html").is_file()

    secrets = patient_values(data)
    for folder in (run, export):
        for f in folder.rglob("*"):
            if f.is_file():
                content = f.read_bytes()
                # whole values only: an ID of 1s is not inside the number 0.1111111111
                found = [s for s in secrets if re.search(
                    rb"(?<![0-9A-Za-z.])" + re.escape(s.encode()) + rb"(?![0-9A-Za-z])",
                    content)]
                assert not found, f"{f.name} holds patient data {found}"


# --- every frame as an image of its own -------------------------------------------------------
FRAME_CLASSES = {"a": ["emri_small.dcm", "eCT_Supplemental.dcm", "MR_small.dcm"],
                 "b": ["SC_rgb_2frame.dcm", "OBXXXX1A_2frame.dcm", "US1_UNCR.dcm"]}


def frames_folder(root: Path) -> Path:
    for label, names in FRAME_CLASSES.items():
        (root / label).mkdir(parents=True)
        for name in names:
            shutil.copy(dcm(name), root / label / name)
    return root


def test_every_frame_is_an_image_and_frames_of_a_file_stay_together(tmp_path):
    folder = frames_folder(tmp_path / "frames")
    prep = Preprocessing((224, 224), (0.5,) * 3, (0.5,) * 3, frames="all")
    index = scan(folder, prep=prep)
    assert index.counts() == {"a": 10 + 2 + 1, "b": 2 + 2 + 1}
    emri = [i for i in index.items if i.path.name == "emri_small.dcm"]
    assert sorted(i.frame for i in emri) == list(range(10))
    assert len({i.group for i in emri}) == 1 and emri[3].key.endswith("emri_small.dcm#frame=3")
    assert scan(folder).counts() == {"a": 3, "b": 3}  # the middle frame by default
    for seed in range(6):
        split = make_split(index, 0.4, seed=seed)
        train = {index.items[p].path for p in split.train}
        assert not train & {index.items[p].path for p in split.val}, seed
    frames = pydicom.dcmread(dcm("emri_small.dcm")).pixel_array
    out = np.asarray(pixels.read_image(dcm("emri_small.dcm"), "0,2000", frame=3))[..., 0]
    expected = np.floor(np.clip((frames[3] + 1000.0) * (255 / 2000) + 0.5, 0, 255))
    np.testing.assert_array_equal(out, expected.astype(np.uint8))
    with pytest.raises(pixels.ImageReadError, match="holds 10 frames"):
        pixels.read_image(dcm("emri_small.dcm"), frame=10)


@pytest.mark.slow
def test_a_run_on_every_frame_predicts_and_exports_per_frame(tmp_path):
    from tlstudio.cli import main

    folder = frames_folder(tmp_path / "frames")
    run, export = tmp_path / "run", tmp_path / "export"
    assert main(["train", "--data", str(folder), "--out", str(run), "--backbone",
                 "efficientnet_lite0", "--epochs", "3", "--batch-size", "8",
                 "--val-fraction", "0.4", "--frames", "all", "--window", "auto"]) == 0
    split = json.loads((run / "split.json").read_text())
    assert any("#frame=" in key for part in split.values() for key in part)
    assert json.loads((run / "config.json").read_text())["preprocessing"]["frames"] == "all"
    from tlstudio.core.runs.predict import Predictor

    rows = Predictor.from_run(run).predict([folder / "a" / "emri_small.dcm"])
    assert [r.frame for r in rows] == list(range(10)) and not any(r.error for r in rows)
    assert main(["export", "--run", str(run), "--format", "onnx", "--out", str(export)]) == 0
    assert json.loads((export / "parity.json").read_text())["passed"]
    exported = export_runtime.ExportedModel.load(export / "model.onnx")
    theirs = exported.predict([folder / "a" / "emri_small.dcm"])
    assert [r["frame"] for r in theirs] == list(range(10))
    assert [r["label"] for r in theirs] == [r.label for r in rows]
