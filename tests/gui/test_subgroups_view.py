"""The Results step's Subgroups tab: one row per value, with its interval."""

from __future__ import annotations

import json

from ..core.test_subgroups import two_site_run


def test_the_subgroups_tab_lists_each_site(window, qtbot, tmp_path):
    run = two_site_run(tmp_path)
    window.state.set_run(run)
    results = window.results_page
    window.stack.setCurrentWidget(results)
    results.on_enter()
    qtbot.waitUntil(lambda: "Accuracy" in results.summary_label.text(), timeout=10_000)
    table = results.curves.subgroup_table
    labels = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    assert labels == ["site = A", "site = B"]
    site_a = json.loads((run / "metrics.json").read_text())["test"]["subgroups"]["site"]["A"]
    assert table.item(0, 0).text() == str(site_a["n"])
    assert table.item(0, 1).text().startswith(f"{site_a['accuracy'] * 100:.1f} % (")
