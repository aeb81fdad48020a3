"""The customer guide's screen names are the UI's Japanese labels.

docs/guide/ holds the bank's guide the portal is built from; every screen, link and button it
names (「…」 and **…**) must be found, word for word, in what the Japanese UI shows: the
compiled catalogues' translations or the templates' own Japanese text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import translation

BASE_DIR = Path(__file__).resolve().parents[2]
GUIDE = BASE_DIR / "docs" / "guide" / "seed-certificate-renewal-guide.ja.txt"


def guide_labels() -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    named = re.findall(r"「([^」]+)」", text) + re.findall(r"\*\*\s*([^*]+?)\s*\*\*", text)
    named += ["このウィンドウを閉じる"]  # the guide names this button without marks
    return sorted(set(named))


def japanese_ui_text() -> str:
    catalog = translation.trans_real.translation("ja")._catalog  # every app's and templates/' Japanese
    shown = [str(catalog[key]) for key in catalog.keys()]  # noqa: SIM118 (a TranslationCatalog is not iterable)
    templates = [path.read_text(encoding="utf-8") for pattern in ("templates/**/*.html", "screens/**/*.html")
                 for path in BASE_DIR.glob(pattern)]
    return "\n".join(shown + templates)


def test_the_guide_names_the_screens_it_walks_through():
    screens = {"電子証明書の更新はこちら", "電子証明書更新前処理中", "電子証明書更新開始", "電子証明書発行 発行完了"}
    assert screens <= set(guide_labels())


@pytest.mark.parametrize("label", guide_labels())
def test_each_label_the_guide_names_is_shown_by_the_japanese_ui(label):
    assert label in japanese_ui_text(), f"the guide's 「{label}」 is not a label of the Japanese UI"
