"""Models of forms: forms, landing pages, form handlers and submissions.

Built in their own issue; the app exists so the layout and migrations are in place.
"""
