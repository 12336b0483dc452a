"""The ops console: editing intents in place, previews, proposals."""
