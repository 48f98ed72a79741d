"""Helpers with no domain of their own: errors, atomic writes, quoting, backoff, processes,
progress, display, file trees, what people type, templating."""
