"""Models of campaigns: campaigns, members and statuses, opportunities and ROI (built in their own issue)."""
