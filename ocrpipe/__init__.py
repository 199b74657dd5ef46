"""ocrpipe: a folder-drop OCR pipeline that turns scans into searchable PDF/A files."""

__version__ = "0.1.0"
