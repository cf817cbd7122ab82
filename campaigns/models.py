"""Models of campaigns: campaigns, members and statuses, opportunities and ROI.

Built in their own issue; the app exists so the layout and migrations are in place.
"""
