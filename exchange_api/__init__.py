"""The exchange API: signed, scoped, audited lookups of the shared libraries by registered departments."""
