"""A small live plot of loss and TAP accuracy per epoch, drawn with QPainter.

Plain Qt keeps plotting free of extra dependencies; two panels share the epoch axis.
"""

from __future__ import annotations

import itertools

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

#: (panel title, metric keys with their line colours)
PANELS = (
    ("loss", {"loss": "#4fc3f7", "val_loss": "#ffb74d"}),
    ("TAP accuracy", {"acc": "#4fc3f7", "val_acc": "#ffb74d"}),
)


class MetricsPlot(QWidget):
    """Training (blue) and validation (orange) loss and accuracy, one point per epoch."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.setMinimumHeight(180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("blue: training, orange: validation (dashed: chance)")

    def clear(self) -> None:
        """Forget all points (a new run starts)."""
        self.series.clear()
        self.update()

    def add(self, epoch: int, values: dict[str, float]) -> None:
        """Append the metrics of one epoch."""
        for key, value in values.items():
            self.series.setdefault(key, []).append((float(epoch), float(value)))
        self.update()

    def paintEvent(self, _event: object) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#262930"))
        h = self.height() / len(PANELS)
        for k, (title, keys) in enumerate(PANELS):
            box = QRectF(36, k * h + 16, self.width() - 44, h - 30)
            self._panel(p, box, title, keys, chance=0.5 if "acc" in keys else None)
        p.end()

    def _panel(
        self,
        p: QPainter,
        box: QRectF,
        title: str,
        keys: dict[str, str],
        chance: float | None,
    ) -> None:
        points = [pt for key in keys for pt in self.series.get(key, [])]
        p.setPen(QColor("#a0a0a0"))
        p.drawText(QPointF(box.left(), box.top() - 3), title)
        p.drawRect(box)
        if not points:
            return
        xs = [x for x, _ in points]
        ys = [y for _, y in points] + ([chance] if chance is not None else [])
        x0, x1 = min(xs), max(max(xs), min(xs) + 1)
        y0, y1 = min(ys), max(ys)
        y0, y1 = (y0 - 0.05, y1 + 0.05) if y1 - y0 < 0.1 else (y0, y1)

        def at(x: float, y: float) -> QPointF:
            return QPointF(
                box.left() + (x - x0) / (x1 - x0) * box.width(),
                box.bottom() - (y - y0) / (y1 - y0) * box.height(),
            )

        p.drawText(QPointF(2, box.top() + 10), f"{y1:.2f}")
        p.drawText(QPointF(2, box.bottom()), f"{y0:.2f}")
        if chance is not None:
            p.setPen(QPen(QColor("#707070"), 1, Qt.PenStyle.DashLine))
            p.drawLine(at(x0, chance), at(x1, chance))
        for key, colour in keys.items():
            pts = [at(x, y) for x, y in self.series.get(key, [])]
            p.setPen(QPen(QColor(colour), 2))
            for a, b in itertools.pairwise(pts):
                p.drawLine(a, b)
            for a in pts:
                p.drawEllipse(a, 2.5, 2.5)
