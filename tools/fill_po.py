"""Fill msgstr entries of a .po file from a TSV of `msgid<TAB>msgstr` lines (makemessages --no-wrap).

Usage: python tools/fill_po.py path/to/django.po translations.tsv
Entries already translated are kept unless the TSV gives them; fuzzy flags are cleared.
"""

import re
import sys
from pathlib import Path


def quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def main(po_path: str, tsv_path: str) -> None:
    pairs = {}
    for line in Path(tsv_path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            msgid, msgstr = line.split("\t", 1)
            pairs[msgid] = msgstr
    po = Path(po_path).read_text()
    # A fuzzy entry holds makemessages' guess from a similar msgid: drop the guess (the TSV fills it,
    # or it is reported untranslated) and the flag, keeping other flags such as python-format.
    po = re.sub(
        r'^#, fuzzy(?:, (.*))?\n((?:#\|.*\n)*)msgid "(.+)"\nmsgstr ".*"$',
        lambda m: (f"#, {m[1]}\n" if m[1] else "") + f'msgid "{m[3]}"\nmsgstr ""',
        po,
        flags=re.M,
    )
    po = re.sub(r"#, fuzzy\n", "", po)
    po = re.sub(r'#\| msgid ".*"\n', "", po)

    def fill(match: re.Match) -> str:
        msgid = match.group(1)
        raw = msgid.replace('\\"', '"').replace("\\\\", "\\")
        if raw in pairs:
            return f'msgid "{msgid}"\nmsgstr "{quote(pairs[raw])}"'
        return match.group(0)

    po = re.sub(r'^msgid "(.+)"\nmsgstr ".*"$', fill, po, flags=re.M)
    Path(po_path).write_text(po)
    missing = re.findall(r'^msgid "(.+)"\nmsgstr ""$', po, flags=re.M)
    for msgid in missing:
        print(f"untranslated: {msgid}", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:])
