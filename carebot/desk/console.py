"""The ops console at ``/console``, beside the inbox and behind the same login: the intents with
how each has done lately, an editor with a "try it" box and a change preview, publishing, the
history with one-click rollback, and the proposal queue. Agents with the ``ops`` role use it;
any agent may propose (from a reply in the inbox, or an unanswered topic on /insights), and the
proposal waits in the queue.

- ``GET /console``: intents, proposals waiting, latest changes.
- ``GET /console/intents/new`` and ``/console/intents/{id}``: the editor.
- ``POST /console/intents``: the editor's form, with ``action`` = ``check`` (check and preview),
  ``publish`` or ``delete``.
- ``POST /console/try``: a customer message decided by the live and the edited intents (JSON).
- ``GET /console/history``, ``GET /console/history/{n}``, ``POST /console/history/{n}/rollback``.
- ``GET /console/proposals/{n}`` (opens it in the editor), ``POST /console/proposals/{n}/reject``.
- ``POST /console/propose/reply`` (an agent's reply in the inbox) and
  ``POST /console/propose/topic`` (an unanswered topic on /insights).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import numpy as np
from aiohttp import web

from carebot.clock import Clock
from carebot.config import Settings
from carebot.console.editor import Checked, Editor
from carebot.console.intent_files import IntentEditError, IntentFiles
from carebot.console.intent_form import IntentForm
from carebot.console.preview import ChangePreview, Preview
from carebot.console.proposals import ProposalMaker
from carebot.console.publishing import Publisher
from carebot.desk.auth import Session, Sessions
from carebot.desk.console_view import decision_view, diff_lines, intent_row, preview_view
from carebot.desk.forms import number, posted
from carebot.desk.insight_view import topic_ref
from carebot.desk.insights import InsightSources
from carebot.desk.pages import Pages
from carebot.exceptions import CarebotError, StoreError
from carebot.insight.report import IntentRow, Period
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.encoder import Encoder
from carebot.runtime import Runtime
from carebot.store.intent_history import RevisionStore
from carebot.store.proposals import ProposalStore

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
View = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
Action = Callable[[web.Request, Session, Any], Awaitable[web.StreamResponse]]
LATELY = timedelta(days=28)
STATS_FOR = timedelta(minutes=1)


class ConsolePages:
    def __init__(
        self,
        *,
        sessions: Sessions,
        editor: Editor,
        maker: ProposalMaker,
        sources: InsightSources,
        clock: Clock,
        preview_limit: int = 2000,
    ) -> None:
        self._sessions = sessions
        self._editor = editor
        self._maker = maker
        self._sources = sources
        self._clock = clock
        self._preview_limit = preview_limit
        self._pages = Pages()
        self._stats: tuple[datetime, dict[str, IntentRow]] | None = None

    @property
    def editor(self) -> Editor:
        return self._editor

    @property
    def maker(self) -> ProposalMaker:
        """Makes proposals (the inbox's and Slack's Add to FAQ)."""
        return self._maker

    def mount(self, app: web.Application) -> None:
        app.on_startup.append(self._load_fates)
        app.router.add_get("/console", self._ops(self._home))
        app.router.add_get("/console/intents/new", self._ops(self._new))
        app.router.add_get("/console/intents/{id}", self._ops(self._open))
        app.router.add_post("/console/intents", self._post(self._save, ops=True))
        app.router.add_post("/console/try", self._post(self._try, ops=True))
        app.router.add_get("/console/history", self._ops(self._history))
        app.router.add_get(r"/console/history/{id:\d+}", self._ops(self._revision))
        app.router.add_post(
            r"/console/history/{id:\d+}/rollback", self._post(self._rollback, ops=True)
        )
        app.router.add_get(r"/console/proposals/{id:\d+}", self._ops(self._proposal))
        app.router.add_post(
            r"/console/proposals/{id:\d+}/reject", self._post(self._reject, ops=True)
        )
        app.router.add_post("/console/propose/reply", self._post(self._propose_reply))
        app.router.add_post("/console/propose/topic", self._post(self._propose_topic))

    async def _load_fates(self, _app: web.Application) -> None:
        try:
            await self._editor.refresh_fates()
        except CarebotError as exc:  # past decisions then show their old ids as they are
            log.warning("Renamed and deleted intents could not be read: %s", exc)

    # --- guards ----------------------------------------------------------------------------

    def _ops(self, view: View) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await self._sessions.read(request)
            if session is None:
                raise web.HTTPSeeOther(f"/inbox/login?next={quote(request.path_qs)}")
            if not session.agent.can("ops"):
                return self._not_ops(session)
            return await view(request, session)

        return handler

    def _post(self, action: Action, *, ops: bool = False) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            session = await self._sessions.read(request)
            if session is None:
                raise web.HTTPUnauthorized(text="Log in again: your session has ended.")
            form = await posted(request)
            token = str(form.get("csrf", "")) or request.headers.get("X-CSRF-Token", "")
            if not hmac.compare_digest(token.encode(), session.csrf.encode()):
                raise web.HTTPForbidden(text="Missing or wrong CSRF token: reload the page.")
            if ops and not session.agent.can("ops"):
                return self._not_ops(session)
            return await action(request, session, form)

        return handler

    def _not_ops(self, session: Session) -> web.Response:
        return self._problem(
            session,
            403,
            "The console is for ops staff",
            f"You are signed in as {session.agent.name}, who does not have the ops role. "
            "Agents propose answers from a reply in the inbox (Add to FAQ); ops staff edit and "
            'publish them. Ask an admin to add "ops" to your roles ([[inbox.agents]] roles in '
            "config.toml).",
        )

    # --- pages -----------------------------------------------------------------------------

    async def _home(self, request: web.Request, session: Session) -> web.StreamResponse:
        try:
            lately, stats_error = await self._lately(), None
        except CarebotError as exc:
            lately, stats_error = {}, str(exc)
        names = {
            i.id: self._editor.files.name_of(i.file) if i.file else ""
            for i in self._editor.live.intents
        }
        return self._pages.render(
            "console.html",
            session,
            title="Console",
            intents=[
                intent_row(
                    intent,
                    names[intent.id],
                    lately.get(intent.id),
                    self._editor.thresholds(intent),
                )
                for intent in sorted(self._editor.live.intents, key=lambda i: i.id)
            ],
            stats_error=stats_error,
            waiting=await self._editor.proposals.waiting(),
            decided=await self._editor.proposals.decided(limit=10),
            changes=await self._editor.revisions.recent(limit=10),
            notice=request.query.get("notice", ""),
        )

    async def _lately(self) -> dict[str, IntentRow]:
        """Each intent's numbers over the last 28 days, computed at most once a minute (the
        report reads every conversation of the period)."""
        now = self._clock()
        if self._stats is not None and now - self._stats[0] < STATS_FOR:
            return self._stats[1]
        report = await self._sources.report(Period(now - LATELY, now))
        rows = {row.intent: row for row in report.top_intents}
        self._stats = (now, rows)
        return rows

    async def _new(self, request: web.Request, session: Session) -> web.StreamResponse:
        try:
            form = self._editor.blank(request.query.get("file", ""))
        except CarebotError as exc:  # ?file= names no intents file
            return self._problem(session, 400, "A new intent cannot go there", str(exc))
        return self._editor_page(session, Checked(form, None))

    async def _open(self, request: web.Request, session: Session) -> web.StreamResponse:
        try:
            form = self._editor.open(request.match_info["id"])
        except CarebotError as exc:
            return self._problem(session, 404, "No such intent", str(exc))
        return self._editor_page(session, Checked(form, None))

    async def _proposal(self, request: web.Request, session: Session) -> web.StreamResponse:
        try:
            proposal = await self._editor.proposals.get(int(request.match_info["id"]))
            form = self._editor.of_proposal(proposal, as_new=request.query.get("as") == "new")
        except CarebotError as exc:
            return self._problem(session, 404, "This proposal cannot be opened", str(exc))
        return self._editor_page(session, Checked(form, None), proposal=proposal)

    async def _history(self, request: web.Request, session: Session) -> web.StreamResponse:
        intent = request.query.get("intent") or None
        return self._pages.render(
            "console_history.html",
            session,
            title="History",
            intent=intent,
            revisions=await self._editor.revisions.recent(limit=200, intent_id=intent),
        )

    async def _revision(self, request: web.Request, session: Session) -> web.StreamResponse:
        try:
            revision = await self._editor.revisions.get(int(request.match_info["id"]))
        except StoreError as exc:
            return self._problem(session, 404, "No such revision", str(exc))
        return self._pages.render(
            "console_revision.html",
            session,
            title=f"Revision {revision.id}",
            r=revision,
            diff=diff_lines(revision.diff),
            reverted=await self._editor.revisions.reverted(revision.id),
            error=request.query.get("error"),
        )

    # --- actions ---------------------------------------------------------------------------

    async def _save(self, request: web.Request, session: Session, data: Any) -> web.StreamResponse:
        form = IntentForm.posted(data)
        action = str(data.get("action", "check"))
        if action not in ("check", "publish", "check_delete", "delete"):
            raise web.HTTPBadRequest(text=f"Unknown action {action!r}")
        deleting = action in ("check_delete", "delete")
        checked = await self._editor.check(form, deleting=deleting)
        if action in ("publish", "delete") and checked.ok:
            author = session.agent.name
            try:
                if deleting:
                    revision = await self._editor.delete(checked, author=author)
                else:
                    revision = await self._editor.publish(checked, author=author)
            except CarebotError as exc:
                form.errors.setdefault("file", []).append(str(exc))
                return self._editor_page(session, Checked(form, None), status=409)
            notice = f"Published: {revision.summary} (revision {revision.id}); live in a moment."
            raise web.HTTPSeeOther(f"/console?notice={quote(notice)}")
        preview = None
        if checked.edit is not None:
            preview = await self._editor.preview(checked.edit, limit=self._preview_limit)
        status = 200
        if checked.stale_diff is not None:
            status = 409
        elif action in ("publish", "delete") and not checked.ok:
            status = 422
        proposal = None
        if form.proposal:  # the edit comes from a proposal: shown beside it
            try:
                proposal = await self._editor.proposals.get(number(form.proposal, "proposal"))
            except (StoreError, web.HTTPBadRequest) as exc:
                return self._problem(session, 404, "No such proposal", str(exc))
        return self._editor_page(
            session, checked, preview=preview, status=status, deleting=deleting, proposal=proposal
        )

    async def _try(self, request: web.Request, session: Session, data: Any) -> web.StreamResponse:
        text = str(data.get("text", "")).strip()
        if not text:
            return web.json_response({"error": "Type a customer message to try."}, status=400)
        edited_error = None
        edit = None
        if str(data.get("with_edit", "")) == "1":
            checked = await self._editor.check(IntentForm.posted(data))
            edit = checked.edit
            if edit is None:
                edited_error = "; ".join(m for ms in checked.form.errors.values() for m in ms)
        tried = await self._editor.try_text(text, edit)
        return web.json_response(
            {
                "text": tried.text,
                "live": decision_view(tried.live),
                "edited": decision_view(tried.edited) if tried.edited else None,
                "edited_error": edited_error,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _rollback(
        self, request: web.Request, session: Session, data: Any
    ) -> web.StreamResponse:
        revision_id = int(request.match_info["id"])
        try:
            done = await self._editor.rollback(revision_id, author=session.agent.name)
        except (IntentEditError, StoreError) as exc:
            raise web.HTTPSeeOther(
                f"/console/history/{revision_id}?error={quote(str(exc))}"
            ) from None
        notice = f"Done: {done.summary}, kept as revision {done.id}; live in a moment."
        raise web.HTTPSeeOther(f"/console?notice={quote(notice)}")

    async def _reject(
        self, request: web.Request, session: Session, data: Any
    ) -> web.StreamResponse:
        try:
            proposal = await self._editor.proposals.reject(
                int(request.match_info["id"]),
                by=session.agent.name,
                note=str(data.get("note", "")),
            )
        except StoreError as exc:
            return self._problem(session, 409, "Not rejected", str(exc))
        notice = f"Proposal {proposal.id} rejected."
        raise web.HTTPSeeOther(f"/console?notice={quote(notice)}")

    async def _propose_reply(
        self, request: web.Request, session: Session, data: Any
    ) -> web.StreamResponse:
        value = data.number("message_id")
        try:
            proposal = await self._maker.from_reply(value, author=session.agent.name)
        except StoreError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        target = f"/inbox/c/{proposal.conversation_id}?proposed={proposal.id}#m{value}"
        raise web.HTTPSeeOther(target)

    async def _propose_topic(
        self, request: web.Request, session: Session, data: Any
    ) -> web.StreamResponse:
        if not (session.agent.can("lead") or session.agent.can("ops")):
            return self._not_ops(session)
        try:
            period = Period(
                since=_instant(str(data.get("since", ""))),
                until=_instant(str(data.get("until", ""))),
                channel=str(data.get("channel", "")) or None,
            )
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"since/until: {exc}") from None
        ref = str(data.get("topic", ""))
        topic = next((t for t in await self._sources.topics(period) if topic_ref(t) == ref), None)
        if topic is None:
            return self._problem(
                session,
                404,
                "This topic is gone",
                "No unanswered topic of this period has these keywords any more (topics are "
                "regrouped as messages come in): open the insights page again.",
            )
        texts = await self._editor.proposals.texts_of(topic.message_ids)
        try:
            proposal = await self._maker.from_topic(
                topic,
                texts,
                author=session.agent.name,
                name=str(data.get("name", "")),
                new_intent=str(data.get("as", "")) == "new" or bool(str(data.get("name", ""))),
            )
        except ValueError as exc:
            return self._problem(session, 400, "Nothing to propose", str(exc))
        if session.agent.can("ops"):
            raise web.HTTPSeeOther(f"/console/proposals/{proposal.id}")
        notice = f"Proposal {proposal.id} is waiting for ops staff."
        raise web.HTTPSeeOther(f"/insights?notice={quote(notice)}")

    # --- rendering -------------------------------------------------------------------------

    def _editor_page(
        self,
        session: Session,
        checked: Checked,
        *,
        preview: Preview | None = None,
        proposal: Any = None,
        status: int = 200,
        deleting: bool = False,
    ) -> web.Response:
        form = checked.form
        return self._pages.render(
            "console_edit.html",
            session,
            status=status,
            title=f"Intent {form.id}" if form.id else "New intent",
            f=form,
            checked=checked,
            files=self._editor.names(),
            preview=preview and preview_view(preview, self._titles(checked)),
            proposal=proposal,
            stale_diff=diff_lines(checked.stale_diff) if checked.stale_diff else None,
            preview_limit=self._preview_limit,
            deleting=deleting,
        )

    def _titles(self, checked: Checked) -> Callable[[str], str]:
        """Intents' titles, as edited where the edit has them, else as live."""
        sets = [checked.edit.intents] if checked.edit else []
        sets.append(self._editor.live)

        def title(intent_id: str) -> str:
            found = next((s[intent_id] for s in sets if intent_id in s), None)
            return found.label if found else intent_id

        return title

    def _problem(self, session: Session, status: int, title: str, message: str) -> web.Response:
        return self._pages.render(
            "insight_problem.html", session, status=status, title=title, message=message
        )


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment


def build_console(
    settings: Settings, runtime: Runtime, sessions: Sessions, insight: InsightSources
) -> ConsolePages:
    """The console over the running service: its intents folder, store, triage and model
    thread."""
    in_model_thread = runtime.matches.in_model_thread
    triage = runtime.triage
    files = IntentFiles(
        directory=settings.path(settings.matcher.intents_dir),
        placeholders=settings.placeholders,
        encoder=lambda: _CachedEncoder(triage.matcher.encoder, runtime.cache),
        languages=settings.languages,
    )
    revisions = RevisionStore(runtime.db, clock=runtime.clock)
    proposals = ProposalStore(runtime.db, clock=runtime.clock)
    editor = Editor(
        files=files,
        publisher=Publisher(files=files, revisions=revisions, in_thread=in_model_thread),
        revisions=revisions,
        proposals=proposals,
        triage=triage,
        preview=ChangePreview(
            db=runtime.db,
            settings=settings,
            emotion=triage.emotion,
            cache=runtime.cache,
            in_model_thread=in_model_thread,
        ),
        cache=runtime.cache,
        in_model_thread=in_model_thread,
        now=runtime.clock,
        place=runtime.languages.detect if runtime.languages is not None else None,
    )
    maker = ProposalMaker(
        store=proposals, triage=triage, settings=settings, in_model_thread=in_model_thread
    )
    return ConsolePages(
        sessions=sessions, editor=editor, maker=maker, sources=insight, clock=runtime.clock
    )


class _CachedEncoder:
    """The live encoder behind the example cache: the check's conflict analysis encodes only
    examples never seen before."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache | None) -> None:
        self._encoder = encoder
        self._cache = cache

    @property
    def model_id(self) -> str:
        return self._encoder.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._cache is None:
            return self._encoder.encode(texts)
        return self._cache.encode(texts, self._encoder)
