"""Models of forms: forms, landing pages, form handlers and submissions (built in their own issue)."""
