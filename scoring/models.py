"""Models of scoring: scoring, grading, HOT status and digests (built in their own issue)."""
