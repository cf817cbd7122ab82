"""Models of scoring: scoring, grading, HOT status and digests.

Built in their own issue; the app exists so the layout and migrations are in place.
"""
