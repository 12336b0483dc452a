"""Editing one intent in place in the YAML intent files, for the ops console.

An edit (change, rename, create or delete one intent) rewrites only that intent's lines; every
other byte of the file (comments, order, the other intents, blank lines, quoting) is kept.
What happens to the comments inside the edited intent is told in
:mod:`carebot.console.intent_yaml`; comments above an intent at the list's level stay where they
are (a deleted intent's leave with nothing below them, a created intent goes after them).

A save is refused (:class:`IntentEditError`, the file untouched) when:

- the file changed since it was read (:class:`StaleFileError`, with the diff since then): a save
  carries the :class:`IntentFile` it was read as, whose ``stamp`` is the sha256 of its bytes;
- the bytes outside the intent's lines would differ, or the new file would not read back (with
  carebot's own loader) as the old intents with only this one changed;
- the checks of ``carebot intents check`` (:func:`carebot.nlu.intent_check.check_intents`),
  run on the folder as it would be, find an error; anywhere in the folder, since the service
  would not load it. Their warnings come back with the result, to show next to the fields; the
  conflict analysis (with an encoder) looks at the edited intent's conflicts only, so that its
  cost grows with the folder, not with its square.

Files are written atomically: a temporary file in the same folder, fsync, ``os.replace``.
Between the last stamp check and the replace there is a window of microseconds in which
another process's write would be lost; the console saves through one process.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from carebot.config import LanguageSettings
from carebot.console.intent_render import render
from carebot.console.intent_yaml import Layout, LayoutError, Span, Style, layout
from carebot.exceptions import IntentError
from carebot.nlu.intent_check import check_intents
from carebot.nlu.intents import Intent, IntentSet, Problem, Severity, read_intents

if TYPE_CHECKING:
    from carebot.nlu.encoder import Encoder

log = logging.getLogger(__name__)


class IntentEditError(IntentError):
    """An edit that was not saved; ``problems`` holds the check's findings, if it ran."""

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class StaleFileError(IntentEditError):
    """The file changed since the edit read it; ``diff`` is the unified diff since then."""

    def __init__(self, message: str, diff: str) -> None:
        super().__init__(message)
        self.diff = diff


def stamp_of(data: bytes) -> str:
    """The version stamp of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class IntentFile:
    """One intents file as it was read: its text and its version stamp (``""`` when the file
    did not exist, for an intent created in a new file)."""

    path: Path
    text: str
    stamp: str

    @classmethod
    def read(cls, path: Path) -> IntentFile:
        """The file now (not yet existing: empty text, empty stamp)."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(path, "", "")
        return cls(path, data.decode("utf-8"), stamp_of(data))


@dataclass(frozen=True)
class Edit:
    """A checked edit, not yet written: the file's new text, the check's warnings, the
    comments of the edited intent that had no place left, and the whole folder's intents as
    they will read once it is written (to preview and try before publishing)."""

    base: IntentFile
    text: str
    warnings: tuple[Problem, ...]
    dropped_comments: tuple[str, ...]
    intents: IntentSet = dataclasses.field(default=IntentSet(()), compare=False, repr=False)


class IntentFiles:
    """Edits the intents under ``directory`` in place (see the module's docstring)."""

    def __init__(
        self,
        *,
        directory: Path,
        placeholders: Mapping[str, str],
        encoder: Callable[[], Encoder] | None = None,
        languages: LanguageSettings | None = None,
    ) -> None:
        self._directory = directory
        self._placeholders = dict(placeholders)
        self._languages = languages or LanguageSettings()
        self._encoder = encoder

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def languages(self) -> LanguageSettings:
        """The default language (that of a plain answer) and those customers are told apart in."""
        return self._languages

    def name_of(self, path: Path) -> str:
        """``path`` relative to the folder, as revisions and the console name files."""
        return path.resolve().relative_to(self._directory.resolve()).as_posix()

    def intents_now(self) -> IntentSet:
        """The folder's intents as the files hold them now."""
        return self._read(self._directory)[0]

    def _read(self, folder: Path) -> tuple[IntentSet, list[Problem]]:
        languages = self._languages
        return read_intents(
            folder, self._placeholders, language=languages.default, served=languages.detect
        )

    def read(self, name: str) -> IntentFile:
        """The file ``name`` (relative to the folder) as it is now."""
        return IntentFile.read(self._file(name))

    def plan_save(self, base: IntentFile, intent: Intent, *, replaces: str | None) -> Edit:
        """``intent`` saved in ``base``'s file: in place of the intent ``replaces`` (an edit, or
        a rename when the ids differ), or appended after the file's last intent when ``replaces``
        is None (in a new file when the file does not exist). Checked, not written."""
        intent = _clean(intent).in_default(self._languages.default)
        self._ensure_current(base)
        if not base.stamp:
            if replaces is not None:
                raise IntentEditError(f"{base.path} does not exist: there is no {replaces!r}")
            text, dropped = render(intent, Style(), language=self._languages.default)
            return self._checked(base, "intents:\n" + text, 0, 0, dropped, intent, None)
        found = self._layout(base)
        if replaces is None:
            return self._append(base, found, intent)
        span = self._span(found, replaces)
        text, dropped = render(
            intent,
            span.style,
            keys=span.keys,
            comments=span.comments,
            old=span.values,
            verbatim=span.verbatim,
            language=self._languages.default,
        )
        new = "".join(found.lines[: span.start]) + text + "".join(found.lines[span.end :])
        return self._checked(base, new, span.start, span.end, dropped, intent, replaces)

    def plan_delete(self, base: IntentFile, intent_id: str) -> Edit:
        """``base``'s file without the intent ``intent_id`` (and the blank lines after it)."""
        self._ensure_current(base)
        found = self._layout(base)
        span = self._span(found, intent_id)
        if len(found.spans) == 1:
            raise IntentEditError(
                f"{intent_id!r} is the only intent in {base.path}: delete the file instead"
            )
        start, end = span.start, span.end
        if span is not found.spans[-1]:
            while end < len(found.lines) and not found.lines[end].strip():
                end += 1
        else:
            while start > 0 and not found.lines[start - 1].strip():
                start -= 1
        new = "".join(found.lines[:start]) + "".join(found.lines[end:])
        return self._checked(base, new, start, end, [], None, intent_id)

    def plan_restore(self, base: IntentFile, text: str) -> Edit:
        """``base``'s file put back to ``text`` as a whole (a rollback to an earlier version,
        which was itself checked when it was published; ``""``: the file did not exist then,
        and is removed). The check runs on the folder as it would be; no error may remain."""
        self._ensure_current(base)
        with _folder_as_if(self._directory, base.path, text if text else None) as (folder, real):
            after, _ = self._read(folder)
            problems = [  # a version published before: its conflicts were shown then
                dataclasses.replace(p, file=real(p.file))
                for p in check_intents(
                    folder, placeholders=self._placeholders, languages=self._languages
                )
            ]
            intents = [dataclasses.replace(i, file=real(i.file)) for i in after.intents]
        errors = tuple(p for p in problems if p.severity is Severity.ERROR)
        if errors:
            listing = "\n  ".join(str(p) for p in errors)
            raise IntentEditError(
                f"not restored: the folder would not load as it would be:\n  {listing}", errors
            )
        warnings = tuple(p for p in problems if p.severity is Severity.WARNING)
        edited = IntentSet(tuple(intents), after.out_of_scope, after.served)
        return Edit(base, text, warnings, (), edited)

    def save(self, base: IntentFile, intent: Intent, *, replaces: str | None) -> Edit:
        """:meth:`plan_save`, then written; returns the edit (``read`` gives the new stamp)."""
        return self.write(self.plan_save(base, intent, replaces=replaces))

    def delete(self, base: IntentFile, intent_id: str) -> Edit:
        """:meth:`plan_delete`, then written."""
        return self.write(self.plan_delete(base, intent_id))

    def write(self, edit: Edit) -> Edit:
        """Write a planned edit atomically, if its file is still as it was read (an empty text
        removes the file: a restore to before it existed)."""
        self._ensure_current(edit.base)
        path = edit.base.path
        if edit.text:
            path.parent.mkdir(parents=True, exist_ok=True)  # a new file in a new subfolder
            write_atomically(path, edit.text.encode("utf-8"))
        else:
            path.unlink(missing_ok=True)
            # The subfolders it leaves empty go too (as they were before it was created).
            top = self._directory.resolve()
            folder = path.resolve().parent
            while folder != top and folder.is_relative_to(top) and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
        log.info("Saved %s (%d warning(s))", edit.base.path, len(edit.warnings))
        return edit

    def _file(self, name: str) -> Path:
        path = (self._directory / name).resolve()
        if not path.is_relative_to(self._directory.resolve()) or path.suffix not in (
            ".yaml",
            ".yml",
        ):
            raise IntentEditError(f"{name!r} is not a .yaml file inside {self._directory}")
        return path

    def _ensure_current(self, base: IntentFile) -> None:
        now = IntentFile.read(base.path)
        if now.stamp == base.stamp:
            return
        diff = "".join(
            difflib.unified_diff(
                base.text.splitlines(keepends=True),
                now.text.splitlines(keepends=True),
                f"{base.path.name} (as you read it)",
                f"{base.path.name} (now)",
            )
        )
        raise StaleFileError(
            f"{base.path} was changed by someone else since you opened it; your edit is not "
            f"saved. Reopen the file, make your edit again, and save. What changed:\n{diff}",
            diff,
        )

    @staticmethod
    def _layout(base: IntentFile) -> Layout:
        try:
            return layout(base.text)
        except LayoutError as exc:
            raise IntentEditError(f"{base.path}: cannot edit in place: {exc}") from exc

    @staticmethod
    def _span(found: Layout, intent_id: str) -> Span:
        try:
            return found.span(intent_id)
        except LayoutError as exc:
            raise IntentEditError(str(exc)) from exc

    def _append(self, base: IntentFile, found: Layout, intent: Intent) -> Edit:
        at = found.spans[-1].end if found.spans else len(found.lines)
        text, dropped = render(intent, found.style, language=self._languages.default)
        before = found.lines[at - 1] if at else ""
        lead = "" if before.endswith("\n") or not before else found.style.newline
        lead += found.style.newline if found.style.blank_between and found.spans else ""
        new = "".join(found.lines[:at]) + lead + text + "".join(found.lines[at:])
        return self._checked(base, new, at, at, dropped, intent, None)

    def _checked(
        self,
        base: IntentFile,
        new: str,
        start: int,
        end: int,
        dropped: list[str],
        intent: Intent | None,
        replaces: str | None,
    ) -> Edit:
        """The edit, once the bytes outside lines ``start:end`` and the intents read back from
        the new text are as they must be, and the check finds no error."""
        old_lines = base.text.splitlines(keepends=True)
        head, tail = "".join(old_lines[:start]), "".join(old_lines[end:])
        if not (new.startswith(head) and new.endswith(tail) and len(new) >= len(head + tail)):
            raise IntentEditError(f"{base.path}: the edit would change other lines; not saved")
        before, _ = self._read(self._directory)
        with _folder_as_if(self._directory, base.path, new) as (folder, real):
            after, _ = self._read(folder)
            problems = [  # conflicts: only those of the edited intent (none for a deletion)
                dataclasses.replace(p, file=real(p.file))
                for p in check_intents(
                    folder,
                    placeholders=self._placeholders,
                    languages=self._languages,
                    encoder=self._encoder if intent is not None else None,
                    only={intent.id} if intent is not None else None,
                )
            ]
            after_intents = [dataclasses.replace(i, file=real(i.file)) for i in after.intents]
        errors = tuple(p for p in problems if p.severity is Severity.ERROR)
        if errors:
            listing = "\n  ".join(str(p) for p in errors)
            raise IntentEditError(f"not saved: the check finds errors:\n  {listing}", errors)
        expected = _expected(before, base.path, intent, replaces)
        if _plain(after_intents) != expected or after.out_of_scope != before.out_of_scope:
            raise IntentEditError(
                f"{base.path}: the edited file would not read back as written (a value YAML "
                "cannot hold as given?); not saved. Edit this intent by hand."
            )
        warnings = tuple(p for p in problems if p.severity is Severity.WARNING)
        edited = IntentSet(tuple(after_intents), after.out_of_scope, after.served)
        return Edit(base, new, warnings, tuple(dropped), edited)


def _clean(intent: Intent) -> Intent:
    """The intent as the loader reads it back (examples and answer stripped)."""
    return dataclasses.replace(
        intent,
        examples=tuple(e.strip() for e in intent.examples),
        other_examples=tuple(
            (code, tuple(e.strip() for e in texts)) for code, texts in intent.other_examples
        ),
        answer=intent.answer.strip(),
        answers=tuple((code, text.strip()) for code, text in intent.answers),
        titles=tuple((code, text.strip()) for code, text in intent.titles),
        tags=tuple(str(t) for t in intent.tags),
    )


def _plain(intents: list[Intent]) -> list[Intent]:
    return [dataclasses.replace(i, line=None, example_lines=()) for i in intents]


def _expected(
    before: IntentSet, path: Path, intent: Intent | None, replaces: str | None
) -> list[Intent]:
    """The intents as they must read back after the edit, in reading order."""
    path = path.resolve()
    old = _plain([dataclasses.replace(i, file=(i.file or path).resolve()) for i in before.intents])
    new = dataclasses.replace(intent, file=path, line=None) if intent else None
    if replaces is not None:
        index = next((k for k, i in enumerate(old) if i.id == replaces and i.file == path), None)
        if index is None:
            raise IntentEditError(f"{path} holds no readable intent {replaces!r}")
        return old[:index] + ([new] if new else []) + old[index + 1 :]
    assert new is not None
    files = sorted({i.file for i in old if i.file} | {path})
    return sorted([*old, new], key=lambda i: files.index(i.file or path))


@contextmanager
def _folder_as_if(
    directory: Path, path: Path, text: str | None
) -> Iterator[tuple[Path, Callable[[Path | None], Path]]]:
    """A temporary folder mirroring ``directory`` (links), with ``path`` holding ``text`` (None:
    without ``path``), and the function taking its paths back to the real ones."""
    directory, path = directory.resolve(), path.resolve()
    with tempfile.TemporaryDirectory(prefix="carebot-intents-") as tmp:
        root = Path(tmp)
        files = [p.resolve() for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")]
        for file in {*files, path}:
            mirror = root / file.relative_to(directory)
            mirror.parent.mkdir(parents=True, exist_ok=True)
            if file == path:
                if text is not None:
                    mirror.write_text(text, encoding="utf-8")
            else:
                mirror.symlink_to(file)

        def real(file: Path | None) -> Path:
            if file is None:
                return directory
            return directory / file.relative_to(root) if file.is_relative_to(root) else file

        yield root, real


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsynced, then
    ``os.replace``: readers see the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
