"""Every setting and measure explained in plain words: two sentences and, for settings, a
sensible range. The studio shows them as tooltips and behind its "?" marks; the report can
quote them. Written for a clinician or a lab scientist, not for an ML engineer."""

from __future__ import annotations

SETTINGS: dict[str, str] = {
    "mode": (
        "How much of the pretrained network learns from your images. Recommended trains the "
        "new head first, then the layers your images need; linear probe trains only the head "
        "(fastest); fine-tune trains the layers you tick."),
    "epochs": (
        "How many times training goes through all training images. More epochs can learn more "
        "but also memorise; the best epoch on validation is kept either way. Typical: 10-40 "
        "for a linear probe, 5-15 for fine-tuning ('auto' chooses from your data)."),
    "learning_rate": (
        "How big a step the weights take after each batch. Too large and training jumps "
        "around or diverges, too small and it barely moves. Typical: 0.0001-0.001 for "
        "fine-tuning, 0.001-0.01 for a linear probe ('auto' uses these)."),
    "batch_size": (
        "How many images the model looks at before each step. Larger batches are smoother "
        "and faster on a GPU but need more memory. Typical: 16-64; lower it if memory runs "
        "out."),
    "augmentation": (
        "Random changes to the training images (mirroring, small shifts, crops, colour) so "
        "the model does not memorise them. 'light' suits most images; 'none' when "
        "orientation or colour carries the diagnosis."),
    "class_weights": (
        "Counts mistakes on rare classes more, as if the classes were equally common. Use it "
        "when one class has far fewer images than another (say under a third)."),
    "compare_scratch": (
        "Also trains the same network from random weights on the same images, to measure "
        "what pretraining gains. It about doubles the time; 'auto' does it for small "
        "datasets."),
    "patience": (
        "Stops training after this many epochs without a better validation result. It saves "
        "time and the best epoch is kept. Typical: 3-10 ('auto' follows the mode)."),
    "threshold": (
        "With two classes: the probability above which the second class is called, chosen "
        "on the validation images. 'Balanced' weighs missed cases and false alarms equally; "
        "'sensitivity ≥ 95 %' misses few cases at the cost of more false alarms."),
    "folds": (
        "Trains K models, each tested on a different part of the images, for a mean and "
        "spread that do not depend on one lucky split. Takes K+1 trainings; useful below a "
        "few hundred images (typical K: 5)."),
    "seed": (
        "The number that fixes every random choice (the split, the order, augmentation). "
        "The same seed gives the same split and the same numbers; another seed shows how "
        "much luck is in them."),
    "validation_share": (
        "Images kept out of training to choose the best epoch, the threshold and the "
        "calibration. Typical: 15-25 %."),
    "test_share": (
        "Images kept out of training and of every choice: the headline results are measured "
        "on them. Typical: 15-25 %; 0 % reports on validation only (optimistic)."),
    "device": (
        "Where training runs: a GPU is 10-50 times faster than the CPU for fine-tuning. A "
        "linear probe is quick on a CPU."),
    "start_from": (
        "Continue from a finished run of the same backbone and classes (for instance a "
        "linear probe) instead of the pretrained weights alone. The usual second step after "
        "a quick probe, when more accuracy is worth more time."),
    "gpus": (
        "Share the training among this many GPUs of this machine, one process each. Stop "
        "still stops after the current step; pausing is for one GPU."),
}

MEASURES: dict[str, str] = {
    "accuracy": (
        "The share of images called correctly. It can look good when one class dominates: "
        "read it with balanced accuracy."),
    "balanced_accuracy": (
        "The average of the per-class hit rates (each class's sensitivity), so a rare class "
        "counts as much as a common one. 50 % is chance with two classes."),
    "sensitivity": (
        "Of the images that truly are this class, the share the model calls this class (also "
        "called recall or true positive rate). High sensitivity means few missed cases."),
    "specificity": (
        "Of the images that are not this class, the share the model correctly calls "
        "something else. High specificity means few false alarms."),
    "ppv": (
        "Positive predictive value (precision): of the images called this class, the share "
        "that truly are. It depends on how common the class is in the images tested."),
    "npv": (
        "Negative predictive value: of the images called something else, the share that "
        "truly are not this class. It also depends on how common the class is."),
    "f1": (
        "One number combining sensitivity and PPV (their harmonic mean): high only when both "
        "are. Used to compare models, not to decide on a patient."),
    "macro_f1": (
        "F1 of each class, averaged so every class counts the same. Low when any class is "
        "handled badly."),
    "roc_auc": (
        "The chance that a random image of the second class gets a higher probability than a "
        "random image of the first: 0.5 is guessing, 1.0 is perfect ranking. It does not "
        "depend on the threshold."),
    "calibration": (
        "How far the stated probabilities are from the observed frequencies (expected "
        "calibration error): 0 means a 'probability 80 %' is right 80 % of the time. "
        "Temperature scaling on validation lowers it."),
    "interval": (
        "95 % confidence interval: the range the true value most likely lies in, given how "
        "few images were tested. Wide intervals mean more test images are needed."),
    "loss": (
        "How wrong the model's probabilities are on average (cross-entropy); lower is better. "
        "Training loss falling while validation loss rises means memorising."),
    "unfamiliar": (
        "The image is unlike anything the model was trained on (its features are far from "
        "the training images'). Its answer is not to be trusted."),
}


def explain(key: str) -> str:
    """The explanation for a setting or a measure (KeyError for an unknown key: a typo in a
    caller must not show an empty tooltip)."""
    return SETTINGS.get(key) or MEASURES[key]
