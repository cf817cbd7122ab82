"""Models of engagement: Engagement programs and automation rules (built in their own issue)."""
