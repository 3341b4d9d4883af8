"""Receipt domain code, pure Python with no database access.

Modules: `mail` (MIME intake and Japanese charsets), `ocr` (text layer or tesseract),
`parse` (fields from text), `matching` (receipt ↔ bank/card transaction), `filing` (storage
paths), `report` (monthly CSV/HTML/PDF). Handlers call these and do the database writes.
"""
