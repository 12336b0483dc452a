"""Teams: which team a handoff goes to (:mod:`.routing`), what the stores know of the teams
(:mod:`.directory`), who may act on a team's handoffs (:mod:`.membership`) and the check of
the routing rules (:mod:`.check`). README, "Teams"."""
