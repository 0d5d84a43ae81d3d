"""The only way a document may load a resource: `data:` URLs and files shipped in this package.

WeasyPrint asks its URL fetcher for every stylesheet, image and font a document names. Documents carry text from
the ledger and from people, so a URL in them is hostile: a remote one would leak that the document was rendered
(and from where) and could hang the render, a `file:` one outside the package could read the machine's files.
Refused URLs are kept in `refused` (tests and logs say which) and the resource is left out of the document.
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

from weasyprint.urls import URLFetcher, URLFetcherResponse

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
ALLOWED_SCHEMES = ("data", "file")
MAX_RESOURCE_BYTES = 2_000_000  # a logo or a font of the package; anything bigger is not one of ours


class RefusedResource(ValueError):
    """A document named a resource it may not load (remote, outside the package, too big)."""


class LocalOnlyFetcher(URLFetcher):  # type: ignore[misc]  # WeasyPrint ships no type hints
    """A WeasyPrint URL fetcher that serves `data:` URLs and files under `root` (this package) only."""

    def __init__(self, root: Path = PACKAGE_DIR) -> None:
        super().__init__(allowed_protocols=ALLOWED_SCHEMES, allow_redirects=False, fail_on_errors=False)
        self.root = root.resolve()
        self.refused: list[str] = []

    def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
        """The resource at `url` when it is a data: URL or a file of the package; raises RefusedResource else."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "data":
            response: URLFetcherResponse = super().fetch(url, headers)
            return response
        if scheme == "file":
            path = Path(unquote(urlsplit(url).path)).resolve()
            if path.is_relative_to(self.root) and path.is_file() and path.stat().st_size <= MAX_RESOURCE_BYTES:
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": kind})
        self.refused.append(url)
        log.warning("a document named a resource it may not load; left out: %.200s", url)
        raise RefusedResource(f"documents load no resource from {url[:200]!r}: only data: URLs and their own files")
