"""LayerTreeModel: the backbone's module tree as a checkable Qt item model.

Checked = trainable. A parent shows partially checked when only some of its parameters
train; checking a parent trains everything under it. Counts come from the core
FreezePlan, so the tree, the summary line and the trainer never disagree.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from ..core.models.layers import FreezePlan, LayerNode, layer_in_words

COLUMNS = ("Layer", "Type", "Parameters", "Trainable", "Shift")
SHIFT_TIP = ("How far your images move this stage from what it saw in pretraining (symmetric "
             "KL divergence between its BatchNorm statistics on your images and on ImageNet; "
             "0 = just like ImageNet). Large early-stage shifts mean low-level differences "
             "(noise, contrast, modality); a large last-stage shift means new concepts.")
_ROOT = QModelIndex()  # the invalid index Qt passes for "no parent"


class _Item:
    __slots__ = ("node", "parent", "row", "children")

    def __init__(self, node: LayerNode, parent: _Item | None, row: int):
        self.node, self.parent, self.row = node, parent, row
        self.children = [_Item(child, self, i) for i, child in enumerate(node.children)]


def _fmt(n: int) -> str:
    return f"{n:,}"


class LayerTreeModel(QAbstractItemModel):
    plan_changed = Signal()

    def __init__(self, tree: LayerNode, plan: FreezePlan, parent=None):
        super().__init__(parent)
        self._root = _Item(tree, None, 0)
        self.plan = plan
        self.editable = True
        self.shifts: dict[str, float] = {}  # stage path -> shift from pretraining
        self.adapt: set[str] = set()  # the stages recommended to adapt

    # --- structure -------------------------------------------------------------------
    def _item(self, index: QModelIndex | QPersistentModelIndex) -> _Item:
        return index.internalPointer() if index.isValid() else self._root

    def index(self, row, column, parent=_ROOT):
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        parent_item = self._item(parent) if parent.isValid() else None
        items = parent_item.children if parent_item is not None else [self._root]
        return self.createIndex(row, column, items[row])

    def parent(self, index=_ROOT):
        if not index.isValid():
            return QModelIndex()
        item: _Item = index.internalPointer()
        if item.parent is None:
            return QModelIndex()
        return self.createIndex(item.parent.row, 0, item.parent)

    def rowCount(self, parent=_ROOT):
        if parent.column() > 0:
            return 0
        if not parent.isValid():
            return 1  # the whole model is the single top item
        return len(self._item(parent).children)

    def columnCount(self, parent=_ROOT):
        return len(COLUMNS)

    # --- data ------------------------------------------------------------------------
    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole \
                and section == 4:
            return SHIFT_TIP
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == 0 and self.editable and self._item(index).node.parameters:
            flags |= Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate
        return flags

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        node = self._item(index).node
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return node.name
            if column == 1:
                return "whole network" if not node.path else layer_in_words(node.type_name)[0]
            if column == 2:
                return _fmt(node.parameters)
            if column == 4:
                if node.path not in self.shifts:
                    return ""
                value = self.shifts[node.path]
                bar = "▮" * max(1, min(12, round(value * 6)))  # a glance, not a scale
                mark = "  · adapt" if node.path in self.adapt else ""
                return f"{value:5.2f} {bar}{mark}"
            return _fmt(self.plan.trainable(node.path)) if node.parameters else "-"
        if role == Qt.ItemDataRole.CheckStateRole and column == 0 and node.parameters:
            state = self.plan.state(node.path)
            return {"trainable": Qt.CheckState.Checked, "frozen": Qt.CheckState.Unchecked}.get(
                state, Qt.CheckState.PartiallyChecked)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == 4 and node.path in self.shifts:
                return SHIFT_TIP + (" Recommended to adapt." if node.path in self.adapt else "")
            if column == 1:
                words, sentence = layer_in_words(node.type_name)
                return f"{node.type_name}: {sentence}" if node.path else node.type_name
            return f"{node.path or '(whole model)'}: {self.plan.state(node.path)}"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole):
        if role != Qt.ItemDataRole.CheckStateRole or not index.isValid() or index.column() != 0:
            return False
        if not self.editable:
            return False
        state = Qt.CheckState(value) if not isinstance(value, Qt.CheckState) else value
        item = self._item(index)
        self.plan.set_trainable(item.node.path, state != Qt.CheckState.Unchecked)
        self._refresh(item)
        self.plan_changed.emit()
        return True

    # --- helpers ---------------------------------------------------------------------
    def set_plan(self, plan: FreezePlan) -> None:
        self.plan = plan
        self._refresh(self._root)
        self.plan_changed.emit()

    def set_shifts(self, shifts: dict[str, float], adapt: list[str]) -> None:
        """Show each stage's shift from pretraining (empty: not measured)."""
        self.beginResetModel()
        self.shifts, self.adapt = dict(shifts), set(adapt)
        self.endResetModel()

    def show_plan(self, plan: FreezePlan) -> None:
        """Show a plan without announcing an edit (the Recommended mode's layers)."""
        self.plan = plan
        self._refresh(self._root)

    def set_editable(self, editable: bool) -> None:
        self.beginResetModel()
        self.editable = editable
        self.endResetModel()

    def _refresh(self, item: _Item) -> None:
        """Repaint the changed subtree and its ancestors (their states and counts moved)."""
        last = len(COLUMNS) - 1
        top = self.createIndex(item.row, 0, item)
        self.dataChanged.emit(top, self.createIndex(item.row, last, item))
        stack = [item]
        while stack:
            current = stack.pop()
            if current.children:
                first, final = current.children[0], current.children[-1]
                self.dataChanged.emit(self.createIndex(first.row, 0, first),
                                      self.createIndex(final.row, last, final))
                stack.extend(c for c in current.children if c.children)
        parent = item.parent
        while parent is not None:
            self.dataChanged.emit(self.createIndex(parent.row, 0, parent),
                                  self.createIndex(parent.row, last, parent))
            parent = parent.parent

    def index_of(self, path: str) -> QModelIndex:
        """Model index of a module path (``""`` is the whole model)."""
        item = self._root
        if path:
            for depth in range(1, path.count(".") + 2):
                prefix = ".".join(path.split(".")[:depth])
                item = next(c for c in item.children if c.node.path == prefix)
        return self.createIndex(item.row, 0, item)
