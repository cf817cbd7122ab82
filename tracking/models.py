"""Models of tracking: visitors, the tracking endpoints and the activity stream (built in their own issue)."""
