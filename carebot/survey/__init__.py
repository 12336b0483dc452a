"""Asking the customer: "did that answer your question?" after a bot answer
(:mod:`carebot.survey.questions`), and a 1-5 rating once a conversation is resolved, which a
sweep asks after an assumed bot resolution (:mod:`carebot.survey.ratings`). The store side is
:mod:`carebot.store.surveys`."""
