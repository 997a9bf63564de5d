"""Every string the site shows is translated into Chinese, placeholders intact."""
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_chinese_catalogue_covers_every_source_string():
    with open(ROOT / "faka/translations/zh_Hans_CN/LC_MESSAGES/messages.po", "rb") as fh:
        catalogue = read_po(fh)
    method_map = [("faka/**.py", "python"), ("faka/templates/**.html", "jinja2"), ("faka/templates/**.txt", "jinja2")]
    keywords = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None}
    source = {msg for _f, _l, msg, *_ in extract_from_dir(str(ROOT), method_map, keywords=keywords) if isinstance(msg, str)}
    assert len(source) > 50  # the extraction really found the site's strings
    missing = sorted(m for m in source if not (catalogue.get(m) and catalogue.get(m).string))
    assert missing == [], "run `make extract-messages` and translate: " + ", ".join(missing)
    for message in catalogue:
        if message.id and message.string:
            assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(message.string)), message.id
