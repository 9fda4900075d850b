"""The configuration model: loading, validation, templates and flattening. Pure: no I/O on hosts."""
