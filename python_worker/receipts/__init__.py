"""The receipt app: email intake, OCR, matching, filing, freee sync and reports, built on the
Kyu engine's public API (``python_worker``) and nothing else of it. Install with the
``receipts`` extra (``pip install '.[receipts]'``); the engine never imports this package.

- ``jobs/``: the six handlers (``--handlers python_worker.receipts.jobs``)
- ``domain/``: mail, ocr, parse, matching, filing, report: pure Python, no database
- ``store/``: the app's SQL on schema ``receipts`` (mirrors ``sql/receipts/``)
- ``adapters/``: storage (local, Drive, Supabase) and the freee client
- ``settings``, ``blobs``, ``services``: configuration, the intake blob store, adapters built
  from settings
- ``mail_source``: enqueue intake for a folder of .eml or an IMAP mailbox (a CLI)
- ``demo``: ``make demo``
"""
