"""Adapters to external services: file storage (local, Google Drive, Supabase) and freee.

Errors are reported as `errors.PermanentServiceError` / `errors.RetryableServiceError`.
"""
