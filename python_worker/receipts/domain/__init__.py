"""The receipt app's domain code, plain Python with no database access, tested on fixtures.

`mail` (MIME intake and Japanese charsets), `ocr` (text layer or tesseract), `parse` (fields
from text), `matching` (receipt ↔ bank/card transaction), `filing` (storage paths), `report`
(monthly CSV/HTML/PDF). The jobs call these and do the database writes through `store`.
"""
