"""Danish and English: gettext catalogs (locale/*/LC_MESSAGES/messages.po, kept with
Babel) and dates and numbers in the reader's language.

The .po files are compiled in memory when first used (Babel's write_mo), so a fresh
`pip install -e .` needs no build step and no compiled file is committed. Danish is
the default; the reader's choice is a cookie.
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from health import PROJECT_ROOT

LOCALE_DIR = PROJECT_ROOT / "locale"
DOMAIN = "messages"
LANGUAGES = {"da": "Dansk", "en": "English"}
DEFAULT_LANGUAGE = "da"
LANGUAGE_COOKIE = "health_language"
# Times are shown as a Danish citizen lives them.
TIME_ZONE = ZoneInfo("Europe/Copenhagen")


def language_of(cookie: str | None) -> str:
    """The language a cookie value asks for, if we have it; else the default."""
    return cookie if cookie in LANGUAGES else DEFAULT_LANGUAGE


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog of `language`, compiled from its .po file (English: the msgids)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translate(language: str, message: str) -> str:
    return translations(language).gettext(message)


def translate_plural(language: str, singular: str, plural: str, count: int) -> str:
    return translations(language).ngettext(singular, plural, count)


def local_date(value: date | datetime | None, language: str, form: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(TIME_ZONE).date()
    return format_date(value, format=form, locale=language)


def local_datetime(value: datetime | None, language: str, form: str = "medium") -> str:
    if value is None:
        return ""
    return format_datetime(value, format=form, tzinfo=TIME_ZONE, locale=language)


def local_month(value: datetime | None, language: str) -> str:
    """Month and year ("mar. 2024"), for chart ticks."""
    if value is None:
        return ""
    return format_date(value.date(), format="MMM y", locale=language)


def local_number(value: float | None, language: str) -> str:
    if value is None:
        return ""
    return format_decimal(value, format="#,##0.###", locale=language)
