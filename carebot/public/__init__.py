"""The public side of social care: comments and mentions, answered in public or moved to
private (platform rules, the personal-data guard, shadow mode, the classifier)."""
