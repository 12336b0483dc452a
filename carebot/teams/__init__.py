"""Teams: who takes a handoff, and by when. Which team a handoff goes to (:mod:`.routing`),
what the stores know of the teams (:mod:`.directory`), who may act on a team's handoffs
(:mod:`.membership`), the check of the routing rules (:mod:`.check`) and each team's
first-response target (:mod:`.targets`). README, "Teams"."""
