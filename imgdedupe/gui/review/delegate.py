"""Paints one thumbnail cell: picture, keep/delete badge, keeper star, caption.

Uniform cells (``setUniformItemSizes``) let the view lay out 10k items
without asking each one for its size. A cell whose thumbnail is not ready
paints a placeholder; asking the model for it queues the decode.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ...report import printable
from .group_model import (
    BROKEN_ROLE,
    KEEPER_ROLE,
    MARKED_ROLE,
    MEMBER_ROLE,
    THUMB_ROLE,
    companion_badge,
)
from .thumbnails import THUMBNAIL_PX


def cell_size(thumbnail_px: int) -> QSize:
    """A card: the picture, margins, and three caption lines (name, score, size)."""
    return QSize(thumbnail_px + 24, thumbnail_px + 80)


CELL = cell_size(THUMBNAIL_PX)
KEEP_COLOUR = QColor(46, 160, 67)
DELETE_COLOUR = QColor(215, 58, 73)
STAR_WIDTH = 96  # the "★ suggested" tag at the picture's bottom left


class ThumbnailDelegate(QStyledItemDelegate):
    thumbnail_px = THUMBNAIL_PX  # the review's size slider sets it per delegate

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        return cell_size(self.thumbnail_px)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        member = index.data(MEMBER_ROLE)
        if member is None:
            return
        painter.save()
        palette = option.palette  # type: ignore[attr-defined]
        rect: QRect = option.rect.adjusted(4, 4, -4, -4)  # type: ignore[attr-defined]
        selected = bool(option.state & QStyle.StateFlag.State_Selected)  # type: ignore[attr-defined]
        decision = index.data(MARKED_ROLE)  # None: no keep/delete here
        marked = bool(decision)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight).lighter(160)
                             if palette.color(QPalette.ColorRole.Window).lightness() > 127
                             else palette.color(QPalette.ColorRole.Highlight).darker(150))
        side = self.thumbnail_px
        picture = QRect(rect.left() + (rect.width() - side) // 2, rect.top() + 4, side, side)
        self._paint_picture(painter, picture, index, palette)
        if marked:
            # Dim a marked picture so the decision reads at a glance.
            painter.fillRect(picture, QColor(0, 0, 0, 90))
        if decision is not None:
            self._paint_badge(painter, picture, marked)
        if index.data(KEEPER_ROLE):
            self._paint_star(painter, picture)
        if member.companions:
            self._paint_companions(painter, picture, companion_badge(member))
        text_rect = QRect(rect.left(), picture.bottom() + 4, rect.width(),
                          rect.bottom() - picture.bottom() - 4)
        painter.setPen(palette.color(QPalette.ColorRole.HighlightedText if selected and
                                     palette.color(QPalette.ColorRole.Window).lightness() <= 127
                                     else QPalette.ColorRole.Text))
        # The caption's own lines stay; a name in it shows its control
        # characters as escapes (a bidi override would reorder the line).
        # Each line elided to the card (a long file name keeps its start and end).
        metrics = painter.fontMetrics()
        caption = "\n".join(
            metrics.elidedText(line, Qt.TextElideMode.ElideMiddle, text_rect.width())
            for line in printable(index.data(Qt.ItemDataRole.DisplayRole) or "",
                                  lines=True).splitlines())
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop),
                         caption)
        painter.restore()

    def _paint_picture(self, painter: QPainter, box: QRect,
                       index: QModelIndex | QPersistentModelIndex, palette: QPalette) -> None:
        pixmap = index.data(THUMB_ROLE)
        if pixmap is not None and not pixmap.isNull():
            scaled = pixmap.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(box.left() + (box.width() - scaled.width()) // 2,
                           box.top() + (box.height() - scaled.height()) // 2,
                           scaled.width(), scaled.height())
            # Smooth: a thumbnail made for another size is scaled until
            # its sharper one arrives (the size slider).
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawPixmap(target, pixmap)
            return
        painter.fillRect(box, palette.color(QPalette.ColorRole.AlternateBase))
        broken = index.data(BROKEN_ROLE)
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter),
                         f"cannot show\n({broken})" if broken else "…")

    def _paint_badge(self, painter: QPainter, picture: QRect, marked: bool) -> None:
        badge = QRect(picture.right() - 30, picture.top() + 6, 24, 24)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(DELETE_COLOUR if marked else KEEP_COLOUR)
        painter.drawEllipse(badge)
        pen = QPen(QColor("white"), 2.5)
        painter.setPen(pen)
        c = badge.center()
        if marked:  # a cross: this file goes to the trash
            painter.drawLine(c.x() - 5, c.y() - 5, c.x() + 5, c.y() + 5)
            painter.drawLine(c.x() - 5, c.y() + 5, c.x() + 5, c.y() - 5)
        else:  # a tick: this file stays
            painter.drawLine(c.x() - 6, c.y(), c.x() - 2, c.y() + 5)
            painter.drawLine(c.x() - 2, c.y() + 5, c.x() + 6, c.y() - 5)
        label = "DELETE" if marked else "KEEP"
        font = QFont(painter.font())
        font.setBold(True)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        tag = QRect(picture.left() + 6, picture.top() + 6, 58, 18)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(DELETE_COLOUR if marked else KEEP_COLOUR)
        painter.drawRoundedRect(tag, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(tag, int(Qt.AlignmentFlag.AlignCenter), label)

    def _paint_star(self, painter: QPainter, picture: QRect) -> None:
        box = QRect(picture.left() + 6, picture.bottom() - 24, STAR_WIDTH, 18)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(255, 205, 60))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), "★ suggested")

    def _paint_companions(self, painter: QPainter, picture: QRect, badge: str) -> None:
        """"+XMP +RAW" at the picture's bottom right: these files move with it."""
        font = QFont(painter.font())
        font.setBold(True)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        width = painter.fontMetrics().horizontalAdvance(badge) + 10
        box = QRect(picture.right() - 6 - width, picture.bottom() - 24, width, 18)
        if box.left() < picture.left() + 6 + STAR_WIDTH + 4:  # a small card: above the star
            box.translate(0, -22)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(30, 90, 170, 210))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter), badge)
