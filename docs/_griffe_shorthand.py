"""A griffe extension for the API reference: NumPy-style entries written as ``name : description``.

Many stlsim docstrings list parameters as ``layers : list of stlsim layers; every ...``,
putting the description where the NumPy convention puts the type. Parsed as written,
the description's first line would be shown as a type. This extension rewrites such an
entry, in the docstring text only (the source is untouched), to ``name`` followed by the
description indented below it, before the docstring is parsed. An entry counts as a
description when what follows the colon ends with a period, contains a semicolon, or
has more than four words; ``tau : float`` or ``reset : {"hard", "soft"}`` stay types.
"""
from __future__ import annotations

import re

import griffe

_SECTIONS = {"parameters", "other parameters", "returns", "yields", "raises", "attributes"}
_ENTRY = re.compile(r"^(?P<indent>\s*)(?P<name>[*\w][\w, *]*?)\s+:\s+(?P<rest>\S.*)$")


def _is_description(text: str) -> bool:
    text = text.strip()
    return text.endswith(".") or ";" in text or len(text.split()) > 4


def rewrite(docstring: str) -> str:
    lines = docstring.split("\n")
    out, section, base = [], None, None
    for i, line in enumerate(lines):
        underline = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if underline and line.strip():
            section = line.strip().lower()
            base = len(line) - len(line.lstrip())
            out.append(line)
            continue
        match = _ENTRY.match(line)
        if (section in _SECTIONS and match and len(match["indent"]) == base
                and _is_description(match["rest"])):
            out.append(f"{match['indent']}{match['name']}")
            out.append(f"{match['indent']}    {match['rest']}")
            continue
        out.append(line)
    return "\n".join(out)


class NumpyShorthand(griffe.Extension):
    """Rewrite ``name : description`` entries before mkdocstrings parses the docstring."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None and " : " in obj.docstring.value:
            obj.docstring.value = rewrite(obj.docstring.value)
