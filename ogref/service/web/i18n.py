"""The console's languages: English (the source strings) and Spanish (``locale/es.po``, the
seed's own terms: *Restaurar*, *Aula*, *Unidad organizativa*…).

The catalogue is a gettext ``.po`` file read with Babel and compiled in memory at start-up (no
binary ``.mo`` committed, no compile step at install).  The language is the ``lang`` cookie
(set by the language links), else the browser's ``Accept-Language``, else English.

Not here: the pages themselves (:mod:`.pages`).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "es")
LOCALE = Path(__file__).with_name("locale")


@cache
def translations(lang: str) -> NullTranslations:
    """The gettext translations of ``lang`` (English: the identity)."""
    po = LOCALE / f"{lang}.po"
    if lang == "en" or not po.is_file():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def pick(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the cookie, else the first supported in Accept-Language."""
    if cookie in LANGUAGES:
        return str(cookie)
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "en"
