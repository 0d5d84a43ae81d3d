"""PDF documents rendered from HTML templates: customer statements now, the hand-off pack's letters later.

`connector.documents.pdf.render_pdf(template, variables)` renders a Jinja2 template of this package's
`templates/` (autoescaped: every value from the ledger or a person is hostile) to HTML and then to PDF with
WeasyPrint, using the machine's fonts (fontconfig; DejaVu on Debian) and the shared stylesheet `document.css`.
Nothing is ever fetched from the network: the URL fetcher (`connector.documents.fetching.LocalOnlyFetcher`)
serves `data:` URLs and this package's own files and refuses everything else, so a hostile name such as
`<img src="http://...">` can neither leak a request nor slow a render down.

A new document is a template that extends `_document.html` (page size and margins, the sender's header, page
numbers in the footer) and the `money` / `date` filters, which format for the document's locale.
"""
