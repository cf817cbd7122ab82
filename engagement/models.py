"""Models of engagement: Engagement programs and automation rules.

Built in their own issue; the app exists so the layout and migrations are in place.
"""
