"""Several workers on one PostgreSQL database: what they share and how they agree.

Events cross processes over LISTEN/NOTIFY (:mod:`carebot.cluster.notify`), one worker leads
the singletons (:mod:`carebot.cluster.leader`), ``carebot serve --workers N`` runs and
supervises the processes of one machine (:mod:`carebot.cluster.supervisor`), and unsafe
set-ups are refused before anything starts (:mod:`carebot.cluster.safety`).
"""
