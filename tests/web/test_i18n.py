"""Every string the site shows is translated into Chinese, placeholders intact."""

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_chinese_catalogue_covers_every_source_string():
    with open(ROOT / "faka/translations/zh_Hans_CN/LC_MESSAGES/messages.po", "rb") as fh:
        catalogue = read_po(fh)
    method_map = [("faka/**.py", "python"), ("faka/templates/**.html", "jinja2"), ("faka/templates/**.txt", "jinja2")]
    context = ((1, "c"), 2)  # pgettext("coupon", "Code"): the context, then the message
    keywords = {
        "_": None,
        "_l": None,
        "gettext": None,
        "lazy_gettext": None,
        "ngettext": (1, 2),
        "pgettext": context,
        "_p": context,
        "lazy_pgettext": context,
        "npgettext": ((1, "c"), 2, 3),
    }
    source = {(msg, ctx) for _f, _l, msg, _c, ctx in extract_from_dir(str(ROOT), method_map, keywords=keywords)}
    assert len(source) > 50  # the extraction really found the site's strings
    assert any(ctx for _msg, ctx in source)  # ...and the ones with a context

    def translations(message) -> tuple:
        # A plural message has a tuple of forms; every form must be translated.
        return message.string if isinstance(message.string, tuple) else (message.string,)

    def key(msg):
        return msg[0] if isinstance(msg, tuple) else msg

    missing = sorted(
        f"{ctx}|{m}" if ctx else str(m)
        for m, ctx in source
        if not (catalogue.get(key(m), context=ctx) and all(translations(catalogue.get(key(m), context=ctx))))
    )
    assert missing == [], "run `make extract-messages` and translate: " + ", ".join(missing)
    for message in catalogue:
        if message.id:
            source_text = " ".join(message.id) if isinstance(message.id, tuple) else message.id
            for text in translations(message):
                assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(source_text)), message.id


def test_catalogues_pass_babels_own_checks():
    # `make translations` compiles with these checks: a Chinese plural has one form, which
    # Babel checks against the singular msgid, so both English forms must name the same
    # placeholders (say "at most %(num)s file", not "one file").
    for language in ("en", "zh_Hans_CN"):
        with open(ROOT / f"faka/translations/{language}/LC_MESSAGES/messages.po", "rb") as fh:
            catalogue = read_po(fh)
        problems = [(message.id, [str(error) for error in errors]) for message, errors in catalogue.check()]
        assert problems == [], language
