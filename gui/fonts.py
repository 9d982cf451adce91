"""Bundled fonts: register resources/fonts/*.otf|ttf and use them as the CJK fallback.

A machine without CJK fonts would draw the province characters (皖, 沪...) as boxes;
the bundled Noto Sans SC subset covers them. When no font is bundled the system
fonts are used unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

FONTS_DIR = Path(__file__).resolve().parents[1] / "resources" / "fonts"

_registered: list[str] | None = None


def register_bundled_fonts(folder: Path = FONTS_DIR) -> list[str]:
    """Register every .otf/.ttf under ``folder`` once; return the families found (may be empty)."""
    global _registered
    if _registered is not None:
        return _registered
    families: list[str] = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in (".otf", ".ttf"):
                continue
            fid = QFontDatabase.addApplicationFont(str(path))
            if fid < 0:
                log.warning("could not load font %s", path)
                continue
            for fam in QFontDatabase.applicationFontFamilies(fid):
                if fam not in families:
                    families.append(fam)
    _registered = families
    return families


def cjk_family() -> str | None:
    """The family to draw Chinese province characters with: bundled first, else a system CJK font."""
    fams = register_bundled_fonts()
    if fams:
        return fams[0]
    for fam in QFontDatabase.families(QFontDatabase.WritingSystem.SimplifiedChinese):
        return fam
    return None


def with_cjk_fallback(font: QFont) -> QFont:
    """A copy of ``font`` whose family list ends with the CJK family (used for missing glyphs)."""
    fam = cjk_family()
    out = QFont(font)
    if fam:
        families = [f for f in font.families() or [font.family()] if f != fam]
        out.setFamilies([*families, fam])
    return out


def plate_font(point_size: float, bold: bool = False) -> QFont:
    """The font for plate text (labels, predictions): the app font with the CJK fallback."""
    base = QApplication.font() if QApplication.instance() else QFont()
    f = with_cjk_fallback(base)
    f.setPointSizeF(point_size)
    f.setBold(bold)
    return f


def install_app_fonts(app: QApplication) -> str | None:
    """Register bundled fonts and make the CJK family the application-wide fallback."""
    fam = cjk_family()
    if fam:
        app.setFont(with_cjk_fallback(app.font()))
    return fam
