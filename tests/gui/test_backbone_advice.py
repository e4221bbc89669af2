"""The Backbone step's advisor: measured on the user's images off the GUI thread, shown on
the cards, applied with one click, dropped when the images change."""

from __future__ import annotations

import functools

from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.studies import advisor


def test_which_backbone_suits_my_images(qtbot, window, shapes, tmp_path, monkeypatch):
    two = functools.partial(advisor.advise, backbones=["mobilenet_v2", "efficientnet_lite0"])
    monkeypatch.setattr(advisor, "advise", lambda index, **kw: two(index, **kw))
    window.data_page.load(shapes)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    window.go(2)
    page = window.backbone_page
    qtbot.waitUntil(lambda: not page.loading, timeout=60_000)
    page.start_advice()
    assert not page.advise_button.isEnabled()  # running, off the GUI thread
    qtbot.waitUntil(lambda: page.use_button.isEnabled(), timeout=120_000)
    recommended = page.recommended
    assert recommended in {"mobilenet_v2", "efficientnet_lite0"}
    card = page.cards[recommended]
    assert "recommended" in card.advice.text() and "quick probe" in card.advice.text()
    assert card.spec.display_name in page.advice_label.text()
    assert page.cards["resnet50"].advice.text() == ""  # not measured when not asked
    page.select("efficientnet_lite1")
    page.use_button.click()
    assert window.state.spec.name == recommended

    # another window: other pixels, so the advice is dropped too
    window.state.set_window("auto")
    assert page.advice is None and card.advice.text() == ""
    page.start_advice()
    qtbot.waitUntil(lambda: page.use_button.isEnabled(), timeout=120_000)

    # other images: the advice was about the old ones and is gone
    window.data_page.load(make_shapes_folder(tmp_path / "other", per_class=6, seed=4))
    qtbot.waitUntil(lambda: page.advice is None, timeout=60_000)
    assert not page.use_button.isEnabled() and card.advice.text() == ""
