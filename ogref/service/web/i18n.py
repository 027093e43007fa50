"""The console's languages: English (the source strings) and Spanish
(``locale/es/LC_MESSAGES/messages.po``, the seed's own terms: *Restaurar*, *Aula*, *Equipo*,
*Asistente de despliegue*…).

The catalogue is a gettext ``.po`` file read with Babel and compiled in memory (``write_mo``) the
first time a page in that language is rendered: no binary ``.mo`` committed, no compile step at
install, nothing fetched.  ``messages()`` lists the strings the templates and pages mark for
translation (Babel's extractor over the templates), so a test can check the catalogue covers them.  The language is the ``lang`` cookie
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
DOMAIN = "messages"


def catalogue(lang: str) -> Path:
    """The ``.po`` file of ``lang``."""
    return LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(lang: str) -> NullTranslations:
    """The gettext translations of ``lang`` (English: the identity)."""
    po = catalogue(lang)
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


def messages() -> set[str]:
    """Every string the console's templates mark for translation (``_('…')``, ``{% trans %}``)."""
    from babel.messages.extract import extract_from_dir

    here = Path(__file__).parent
    found = extract_from_dir(
        str(here / "templates"),
        method_map=[("**.html", "jinja2")],
        options_map={
            "**.html": {
                "extensions": "jinja2.ext.i18n",
                "trim_blocks": "true",
                "lstrip_blocks": "true",
            }
        },
    )
    from ogref.model import ClientStatus

    # strings a template translates from a value (``_(r.status)``…)
    out: set[str] = {s.meaning for s in ClientStatus}
    out |= {"not_started", "ok", "failed", "crashed", "refused", "queued", "running", "done"}
    out |= {"restore", "deploy", "update_cache", "create", "clone", "boot"}
    out |= {"current", "stale", "partial"}  # a cached copy in the image catalogue
    for _file, _line, message, _comments, _context in found:
        out.add(message if isinstance(message, str) else message[0])
    return out
