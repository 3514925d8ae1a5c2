"""MkDocs hook: resolve and check the links inside the executed tutorials.

The tutorials (docs/tutorials/*.py) link to other pages the way a reader of the source
sees them, e.g. ``[the model](../model.md)``. MkDocs rewrites and validates such links in
Markdown pages, but not in the HTML that mkdocs-jupyter renders from a notebook, where
they would stay ``../model.md`` and break. This hook rewrites every relative ``.md`` or
``.py`` link of a tutorial page to the target page's URL, and logs a warning (an error
under ``mkdocs build --strict``) for a target that is not part of the site.
"""
from __future__ import annotations

import logging
import posixpath
import re

from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.plugins.tutorial_links")
_HREF = re.compile(r'href="(?P<target>[^":#?]+\.(?:md|py|ipynb))(?P<anchor>#[^"]*)?"')


def on_page_content(html, page, config, files):
    src = page.file.src_uri
    if not src.endswith((".py", ".ipynb")):
        return html
    base = posixpath.dirname(src)

    def resolve(match):
        target = posixpath.normpath(posixpath.join(base, match["target"]))
        file = files.get_file_from_path(target)
        if file is None or not file.is_documentation_page():
            log.warning("Tutorial '%s' links to '%s', which is not a page of the site.",
                        src, match["target"])
            return match[0]
        return f'href="{get_relative_url(file.url, page.url)}{match["anchor"] or ""}"'

    return _HREF.sub(resolve, html)
