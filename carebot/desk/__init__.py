"""The built-in agent inbox (``/inbox``): the embedded default agent desk, no Slack needed."""
