"""Insight for care leads and ops staff: the numbers (metrics), the report, the unanswered
topics. It reads what production writes (the store) and nothing reads it but the web app and
the command line."""
