"""``tlstudio report``: one self-contained file a reviewer can open anywhere."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from tlstudio.cli import main
from tlstudio.core.evaluation.uncertainty import format_ci


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources += [v for k, v in attrs if k in ("src", "href") and v]


def test_the_report_carries_the_runs_real_numbers_in_one_file(br35h_probe_run, tmp_path,
                                                               capsys):
    out = tmp_path / "report.html"
    assert main(["report", "--run", str(br35h_probe_run), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    test = json.loads((br35h_probe_run / "metrics.json").read_text())["test"]
    assert format_ci(test["accuracy"], test["accuracy_ci"]) in text
    assert format_ci(test["roc_auc"], test["roc_auc_ci"], percent=False) in text
    assert f"at least {test['threshold']:.4f}" in text and "46 held-out test images" in text
    parsed = _Tags()
    parsed.feed(text)
    assert parsed.tags.count("svg") >= 5  # loss, accuracy, ROC, PR, reliability
    pictures = [s for s in parsed.sources if s.startswith("data:image/png;base64,")]
    assert len(pictures) == 12  # six examples, each with its heatmap
    assert "script" not in parsed.tags
    assert all(s.startswith("data:") for s in parsed.sources)  # nothing fetched from elsewhere
    assert "Model card" in text and "208 training" in text


def test_report_refuses_what_is_not_a_finished_run(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path)]) == 2
    assert "not a tlstudio run folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
