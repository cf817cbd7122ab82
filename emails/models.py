"""Models of emails: templates, list emails, the send pipeline, sending domains (built in their own issue)."""
