"""Models of emails: templates, list emails, the send pipeline, sending domains.

Built in their own issue; the app exists so the layout and migrations are in place.
"""
