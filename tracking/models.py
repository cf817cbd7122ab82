"""Models of tracking: visitors, the tracking endpoints and the activity stream.

Built in their own issue; the app exists so the layout and migrations are in place.
"""
