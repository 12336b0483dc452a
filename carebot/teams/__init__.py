"""Teams: who takes a handoff, and by when."""
