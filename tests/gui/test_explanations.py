"""Every setting and every measure says what it means where it appears (issue 18: Seed,
Epochs, Learning rate, ... had no explanation): a "?" beside it and the same words as the
tooltip of the field itself, from one glossary."""

from __future__ import annotations

import re

from tlstudio.core.glossary import MEASURES, SETTINGS
from tlstudio.gui.widgets import HelpMark


def test_every_explanation_is_two_sentences_or_more():
    for key, text in {**SETTINGS, **MEASURES}.items():
        assert len(re.findall(r"[.!?](\s|$)", text)) >= 2, key


def test_settings_and_measures_are_explained_where_they_appear(qtbot, window):
    train = window.train_page
    fields = {"epochs": train.epochs, "learning_rate": train.lr, "batch_size": train.batch,
              "augmentation": train.augmentation, "class_weights": train.class_weights,
              "patience": train.patience}
    for key, field in fields.items():
        assert field.toolTip() == SETTINGS[key], key
    for field in (train.scratch, train.threshold_rule, train.threshold_target, train.folds,
                  train.folds_final, train.start_from):
        assert len(field.toolTip()) > 40
    marks = {m.explanation for m in train.findChildren(HelpMark)}
    for key in ("mode", "epochs", "learning_rate", "batch_size", "augmentation",
                "class_weights", "compare_scratch", "patience", "threshold", "folds",
                "device", "start_from"):
        assert SETTINGS[key] in marks, key

    data = window.data_page
    for key, field in (("validation_share", data.val_spin), ("test_share", data.test_spin),
                       ("seed", data.seed_spin)):
        assert field.toolTip() == SETTINGS[key]
    assert {SETTINGS["seed"], SETTINGS["test_share"]} <= {
        m.explanation for m in data.findChildren(HelpMark)}

    from tlstudio.gui.widgets import TermsLine

    results = window.results_page.findChild(TermsLine).explanations.values()
    for key in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity",
                "ppv", "npv", "f1", "calibration", "interval"):
        assert MEASURES[key] in results, key
