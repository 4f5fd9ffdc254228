# ruff: noqa: INP001 - a build script run by packaging/build-deb, not an importable package
"""Print DEP-5 ``Files`` paragraphs for the Python distributions bundled in the venv.

Run by ``packaging/build-deb`` with the staged venv's own interpreter, after
the locked dependencies are installed, so ``debian/copyright`` names exactly
what the package ships: each distribution's version, its license expression
from its own metadata, and the full text of its own license files.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Final

SITE: Final = "usr/lib/ssh-gatekeeper/venv/lib/python3*/site-packages"
PROJECT: Final = "ssh-gatekeeper"
_CLASSIFIER: Final = re.compile(r"^License :: OSI Approved :: (.+?)(?: License)?$")


def _meta(dist: metadata.Distribution, key: str) -> str:
    values = dist.metadata.get_all(key) or []
    return str(values[0]) if values else ""


def _license_name(dist: metadata.Distribution) -> str:
    expression = _meta(dist, "License-Expression")
    if not expression:
        short = _meta(dist, "License")
        expression = short if short and "\n" not in short and len(short) < 40 else ""
    if not expression:
        classifiers = dist.metadata.get_all("Classifier") or []
        found = [m.group(1) for c in classifiers if (m := _CLASSIFIER.match(c))]
        expression = " or ".join(found) or "unknown"
    # DEP-5 spells SPDX's OR/AND in lower case, and calls MIT "Expat".
    expression = expression.replace(" OR ", " or ").replace(" AND ", " and ")
    return re.sub(r"\bMIT\b", "Expat", expression)


#: Licenses whose full text Debian ships in /usr/share/common-licenses: refer to it.
_COMMON: Final = {
    "Apache-2.0": ("Apache License", "Version 2.0, January 2004"),
}


def _license_texts(dist: metadata.Distribution) -> list[str]:
    texts: list[str] = []
    for file in dist.files or []:
        parts = file.parts
        if not parts or not parts[0].endswith(".dist-info"):
            continue
        if "licenses" in parts[1:-1] or parts[-1].upper().startswith("LICEN"):
            text = Path(file.locate()).read_text(encoding="utf-8", errors="replace")
            for name, marks in _COMMON.items():
                if all(mark in text for mark in marks):
                    text = (
                        f"On Debian systems, the complete text of the {name} license can be "
                        f"found in /usr/share/common-licenses/{name}."
                    )
            texts.append(text)
    return texts


def _holders(dist: metadata.Distribution, texts: list[str]) -> list[str]:
    holders: list[str] = []
    for text in texts:
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.lower().startswith("copyright") and any(c.isdigit() for c in stripped):
                holder = re.sub(r"^copyright\s*(\(c\)|©)?\s*", "", stripped, flags=re.IGNORECASE)
                if holder and holder not in holders:
                    holders.append(holder)
    if not holders:
        author = _meta(dist, "Author") or _meta(dist, "Author-email")
        holders.append(author.strip() or f"the {_meta(dist, 'Name')} authors")
    return holders


def _tops(dist: metadata.Distribution) -> list[str]:
    tops: list[str] = []
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] in {"..", "__pycache__"}:
            continue
        top = parts[0] + ("/*" if len(parts) > 1 else "")
        if len(parts) == 1 and top.endswith(".py"):
            tops.append(f"__pycache__/{top.removesuffix('.py')}.*")
        if top not in tops:
            tops.append(top)
    return tops


def _block(text: str) -> list[str]:
    return [f" {line.rstrip()}" if line.strip() else " ." for line in text.strip().splitlines()]


def paragraph(dist: metadata.Distribution) -> str:
    """One DEP-5 ``Files`` paragraph for ``dist``."""
    name, version = dist.metadata["Name"], dist.version
    texts = _license_texts(dist)
    files = [f"{SITE}/{top}" for top in _tops(dist)]
    lines = ["Files: " + files[0], *(f"       {path}" for path in files[1:])]
    holders = _holders(dist, texts)
    lines += ["Copyright: " + holders[0], *(f"           {h}" for h in holders[1:])]
    lines += [f"Comment: {name} {version}, bundled from uv.lock"]
    lines += [f"License: {_license_name(dist)}"]
    for i, text in enumerate(texts):
        if i:
            lines.append(" .")
        lines += _block(text)
    return "\n".join(lines)


def main() -> int:
    """Print every bundled distribution's paragraph, sorted by name."""
    dists = sorted(
        (d for d in metadata.distributions() if d.metadata["Name"] != PROJECT),
        key=lambda d: str(d.metadata["Name"]).lower(),
    )
    sys.stdout.write("\n\n".join(paragraph(d) for d in dists) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
