"""The Slack agent desk: each handoff becomes a card and a thread in the care channel.

* :mod:`.credentials` - the tokens, from the environment variables config.toml names;
* :mod:`.api` - the Web API calls the desk makes (retried on 429/5xx, paced per channel);
* :mod:`.card` - the handoff card (Block Kit) and the thread posts, as pure functions;
* :mod:`.sync` - keeps each thread up to date with its conversation (store -> Slack);
* :mod:`.listeners` - thread replies, buttons and the edit modal (Slack -> agent desk);
* :mod:`.faq` - ``/care faq <words>``: FAQ answers for an agent to copy into a reply;
* :mod:`.people` - who may act, and agents' names;
* :mod:`.desk` - puts it together: HTTP at /slack/events and/or Socket Mode.
"""
