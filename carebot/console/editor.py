"""What the ops console does, apart from its pages: open an intent into a form, check an edit,
try a message against the live and the edited intents, preview the change on stored messages,
publish, delete, roll back, and turn proposals into edits.

An edit is planned from the form and the file's version stamp taken when the form was opened.
When the file changed since, the save is refused with the diff (the texts of the files the
console opened are remembered by stamp for that; after a restart the revisions are looked up,
and without either the refusal says so without a diff). Nothing is written before an ops
person publishes; publishing writes the file atomically and the live reload picks it up.
"""

from __future__ import annotations

import asyncio
import difflib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carebot.console.intent_files import (
    Edit,
    IntentEditError,
    IntentFile,
    IntentFiles,
    StaleFileError,
)
from carebot.console.intent_form import IntentForm, shown_languages
from carebot.console.preview import ChangePreview, Preview
from carebot.console.proposals import personal_data_flags
from carebot.console.publishing import Publisher
from carebot.exceptions import IntentError
from carebot.models import Decision
from carebot.nlu.embedding_cache import EmbeddingCache
from carebot.nlu.intents import Intent, IntentSet, ParsedFiles
from carebot.store.intent_history import Action, Fate, Revision, RevisionStore
from carebot.store.proposals import Proposal, ProposalKind, ProposalStore
from carebot.triage import Triage, TriageContext

InModelThread = Callable[[Callable[[], Any]], Awaitable[Any]]
REMEMBERED = 256  # file texts kept by stamp, to show what changed under a stale save


@dataclass
class Checked:
    """A form after the checks: the edit when it can be saved (else None), the form with an
    error next to each field concerned, and findings about other intents."""

    form: IntentForm
    edit: Edit | None
    elsewhere: list[str] = field(default_factory=list)
    stale_diff: str | None = None
    blocking: list[str] = field(default_factory=list)  # personal data to remove first

    @property
    def ok(self) -> bool:
        return self.edit is not None and not self.blocking


@dataclass(frozen=True)
class Tried:
    """A customer message decided by the live intents and, when an edit is open, by it."""

    text: str
    live: Decision
    edited: Decision | None


class Editor:
    def __init__(
        self,
        *,
        files: IntentFiles,
        publisher: Publisher,
        revisions: RevisionStore,
        proposals: ProposalStore,
        triage: Triage,
        preview: ChangePreview,
        cache: EmbeddingCache | None,
        in_model_thread: InModelThread,
        now: Callable[[], datetime],
        place: Callable[[str], str | None] | None = None,
    ) -> None:
        """``place``: the language detected in a text ([languages] detect's; None: none), so
        examples proposed from customers' messages go to their language's list."""
        self.files = files
        self._place = place
        self.revisions = revisions
        self.proposals = proposals
        self._publisher = publisher
        self._triage = triage
        self._preview = preview
        self._cache = cache
        self._in_model_thread = in_model_thread
        self._now = now
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._edited: tuple[str, Triage] | None = None  # the last edited set's triage
        self._fates: dict[str, Fate] = {}  # ids past decisions name that are gone now

    @property
    def live(self) -> IntentSet:
        return self._triage.matcher.intents

    def thresholds(self, intent: Intent) -> tuple[float, float]:
        """The answer and draft thresholds that apply to ``intent`` (its own, else global)."""
        return self._triage.thresholds(intent)

    def title(self, intent_id: str) -> str:
        """An intent's title for people, also for ids past decisions name that were renamed
        ("old_id (now new_id)") or deleted since."""
        live = self.live
        if intent_id in live:
            return live[intent_id].label
        fate = self._fates.get(intent_id)
        return fate.describe(intent_id) if fate else intent_id

    async def refresh_fates(self, current: IntentSet | None = None) -> None:
        """Read again what became of renamed and deleted ids (``current``: the intents as
        they are now, when a publish has just changed them)."""
        ids = {i.id for i in (current or self.live).intents}
        self._fates = await self.revisions.fates(ids)

    # --- opening -------------------------------------------------------------------------

    def open(self, intent_id: str) -> IntentForm:
        """The form of the intent ``intent_id`` as its file holds it now."""
        if intent_id not in self.live:
            raise IntentError(f"There is no intent {intent_id!r} (live intents)")
        path = self.live[intent_id].file
        if path is None:
            raise IntentError(f"The intent {intent_id!r} was not read from a file")
        name = self.files.name_of(path)
        base = self._read(name)
        intent = next((i for i in ParsedFiles().read(base.path).intents if i.id == intent_id), None)
        if intent is None:  # the file changed and the reload has not happened yet
            raise IntentError(f"{name} no longer holds {intent_id!r}; reload the console")
        return IntentForm.of(intent, file=name, stamp=base.stamp, languages=self.files.languages)

    def blank(self, file: str = "") -> IntentForm:
        """The form of a new intent (in ``file``, or the first intents file)."""
        if not file:
            names = sorted({self.files.name_of(i.file) for i in self.live.intents if i.file})
            file = names[0] if names else "intents.yaml"
        languages = shown_languages(self.files.languages, ())
        return IntentForm(file=file, stamp=self._read(file).stamp, languages=languages)

    def of_proposal(self, proposal: Proposal, *, as_new: bool = False) -> IntentForm:
        """The form a proposal opens: its intent with the examples added, or a new intent
        (also for examples proposed for an intent, with ``as_new``: the matcher's guess of the
        intent can be wrong; the id, title and answer are then the editor's to write)."""
        if as_new and proposal.kind is ProposalKind.ADD_EXAMPLES:
            form = self.blank()
            form.add_examples(proposal.examples, place=self._place)
        elif proposal.kind is ProposalKind.ADD_EXAMPLES and proposal.intent_id in self.live:
            form = self.open(proposal.intent_id)
            form.add_examples(proposal.examples, place=self._place)
        else:
            form = self.blank()
            form.id, form.title, form.answer = proposal.intent_id, proposal.title, proposal.answer
            form.add_examples(proposal.examples, place=self._place)
        form.proposal = str(proposal.id)
        return form

    def names(self) -> list[str]:
        """The intent files, relative to the folder."""
        folder = self.files.directory
        found = [*folder.rglob("*.yaml"), *folder.rglob("*.yml")]
        return sorted(self.files.name_of(p) for p in found)

    # --- checking --------------------------------------------------------------------------

    async def check(self, form: IntentForm, *, deleting: bool = False) -> Checked:
        """Plan the form's edit (or the intent's deletion) and run the checks on it."""
        intent = None if deleting else form.intent(self.files.languages.default)
        if not deleting and intent is None:
            return Checked(form, None)
        try:
            base = self._base(form)
            edit = await self._in_model_thread(lambda: self._plan(base, form, intent))
        except StaleFileError as exc:
            form.errors.setdefault("file", []).append(str(exc).split("\n", 1)[0])
            return Checked(form, None, stale_diff=exc.diff)
        except IntentEditError as exc:
            elsewhere = form.place(exc.problems) if exc.problems else []
            if not exc.problems:
                form.errors.setdefault("file", []).append(str(exc))
            return Checked(form, None, elsewhere)
        elsewhere = form.place(edit.warnings)
        blocking = []
        if intent is not None and form.proposal:  # what came from a customer's conversation
            known = form.original_id in self.live
            before = self.live[form.original_id] if known else None
            blocking = _personal_data(intent, before, form)
        return Checked(form, edit, elsewhere, blocking=blocking)

    def _plan(self, base: IntentFile, form: IntentForm, intent: Intent | None) -> Edit:
        if intent is None:
            return self.files.plan_delete(base, form.original_id)
        return self.files.plan_save(base, intent, replaces=form.original_id or None)

    def _base(self, form: IntentForm) -> IntentFile:
        """The file as the form read it: refused (with the diff) when it changed since. A new
        intent is appended to the file as it is now (nothing in it is overwritten)."""
        now = self._read(form.file)
        if now.stamp == form.stamp or form.is_new:
            return now
        then = self._texts.get(form.stamp)
        diff = (
            "".join(
                difflib.unified_diff(
                    then.splitlines(keepends=True),
                    now.text.splitlines(keepends=True),
                    f"{form.file} (as you opened it)",
                    f"{form.file} (now)",
                )
            )
            if then is not None
            else ""
        )
        raise StaleFileError(
            f"{form.file} was changed by someone else since you opened it; your edit is not "
            "saved. Copy your changes, reopen the intent, and make them again.",
            diff or "(the earlier text is no longer known: the service restarted)",
        )

    def _read(self, name: str) -> IntentFile:
        base = self.files.read(name)
        if base.stamp:
            self._texts[base.stamp] = base.text
            self._texts.move_to_end(base.stamp)
            while len(self._texts) > REMEMBERED:
                self._texts.popitem(last=False)
        return base

    # --- trying and previewing -----------------------------------------------------------

    async def try_text(self, text: str, edit: Edit | None) -> Tried:
        """``text`` decided by the live intents and, with ``edit``, by the edited ones."""
        context = TriageContext(now=self._now())
        live = self._triage
        decided = await self._in_model_thread(lambda: live.decide(text, context))
        edited = None
        if edit is not None:
            triage = await self._edited_triage(edit)
            edited = await self._in_model_thread(lambda: triage.decide(text, context))
        return Tried(text, decided, edited)

    async def preview(self, edit: Edit, *, limit: int = 2000) -> Preview:
        """The change preview of ``edit``, with the matcher "try it" uses (built once)."""
        edited = await self._edited_triage(edit)
        return await self._preview.run(
            self._triage.matcher, edit.intents, limit=limit, matcher=edited.matcher
        )

    async def _edited_triage(self, edit: Edit) -> Triage:
        key = f"{edit.base.path}\0{edit.text}\0{id(self._triage.matcher)}"
        if self._edited is not None and self._edited[0] == key:
            return self._edited[1]
        matcher = await self._preview.edited_matcher(self._triage.matcher, edit.intents)
        triage = self._triage.with_matcher(matcher)
        self._edited = (key, triage)
        return triage

    # --- publishing ------------------------------------------------------------------------

    async def publish(self, checked: Checked, *, author: str) -> Revision:
        """Write a checked edit and keep it as a revision (and the proposal it came from as
        published)."""
        if checked.edit is None or checked.blocking:
            raise IntentEditError("This edit cannot be published: " + _why(checked))
        form = checked.form
        if form.is_new:
            action, summary = Action.CREATE, f"created {form.id}"
        elif form.id != form.original_id:
            action, summary = Action.RENAME, f"renamed {form.original_id} to {form.id}"
        else:
            action, summary = Action.EDIT, f"edited {form.id}"
        revision = await self._publisher.publish(
            checked.edit,
            author=author,
            action=action,
            intent_id=form.id,
            previous_id=form.original_id or None,
            summary=summary,
        )
        if form.proposal:
            await self.proposals.publish(int(form.proposal), by=author, revision_id=revision.id)
        await self.refresh_fates(checked.edit.intents)
        return revision

    async def delete(self, checked: Checked, *, author: str) -> Revision:
        if checked.edit is None:
            raise IntentEditError("The intent cannot be deleted: " + _why(checked))
        form = checked.form
        revision = await self._publisher.publish(
            checked.edit,
            author=author,
            action=Action.DELETE,
            intent_id=None,
            previous_id=form.original_id,
            summary=f"deleted {form.original_id}",
        )
        await self.refresh_fates(checked.edit.intents)
        return revision

    async def rollback(self, revision_id: int, *, author: str) -> Revision:
        revision = await self._publisher.rollback(revision_id, author=author)
        await self.refresh_fates(await asyncio.to_thread(self.files.intents_now))
        return revision


def _personal_data(intent: Intent, before: Intent | None, form: IntentForm) -> list[str]:
    """Personal data in the answer or the examples a proposal brings (what the live intent
    already had is not looked at again), which must go before publishing. An ops person who
    knows a finding is not a customer's (the shop's own address, say) writes it as a
    placeholder: ``[placeholders]`` in config.toml."""
    old_examples = set(before.examples) if before else set()
    written = intent.written_in("")
    known = before.written_in("") if before else {}
    answers = [text for code, text in written.items() if text and known.get(code) != text]
    examples = [e for e in intent.examples if e not in old_examples]
    found = []
    for name, kind, texts in (("answer", "answer", answers), ("examples", "example", examples)):
        for text in texts:
            for flag in personal_data_flags(kind, text):
                form.errors.setdefault(name, []).append(flag.message)
                found.append(flag.message)
    return found


def _why(checked: Checked) -> str:
    problems = [m for messages in checked.form.errors.values() for m in messages]
    return "; ".join(problems + checked.blocking) or "it was not checked"
