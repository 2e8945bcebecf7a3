"""Questions nobody at a terminal can answer: queued for ``corral approve`` elsewhere.

The asking side inserts a row in ``pending`` and sleeps in short steps until the row is
answered or its deadline passes (no inotify: plain polling works on every filesystem and
costs one indexed read per step). An answer is a conditional update, so two answers race
safely: the first wins, the second is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from corral.approvals.model import Choice, Kind, Question, fmt_time, refuse
from corral.approvals.prompt import offered_choices
from corral.approvals.store import GrantStore, new_id

POLL_SECONDS = 0.05


@dataclass(frozen=True)
class PendingItem:
    """One queued question, as ``corral approve`` shows it."""

    id: str
    session_id: str | None
    kind: Kind
    action: dict[str, Any]
    digest: str
    reason: str
    reviewer_view: str | None
    created_at: float
    expires_at: float
    answered: str | None = None
    answered_by: str | None = None
    answered_at: float | None = None
    grant_expires: float | None = None  # expiry the person chose for the resulting grant

    def question(self) -> Question:
        a = self.action
        return Question(
            kind=Kind(a["kind"]), argv=tuple(a["argv"]), reason=a.get("reason", self.reason),
            cwd=a.get("cwd", ""), session_id=a.get("session_id"), project=a.get("project"),
            reviewer_view=self.reviewer_view, pattern=tuple(a.get("pattern") or a["argv"]),
            details=dict(a.get("details") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "session_id": self.session_id, "kind": self.kind.value,
                "action": self.action, "action_digest": self.digest, "reason": self.reason,
                "reviewer_view": self.reviewer_view, "created_at": fmt_time(self.created_at),
                "expires_at": fmt_time(self.expires_at), "answered": self.answered,
                "answered_by": self.answered_by}


@dataclass(frozen=True)
class PendingAnswer:
    """The answer to a queued question, who gave it (``user`` or ``remote``), and the expiry
    they chose for the resulting grant (session and project answers only)."""

    pending_id: str
    choice: Choice
    answered_by: str
    grant_expires: float | None = None


class PendingQueue:
    """The ``pending`` table of a :class:`GrantStore`'s database."""

    def __init__(self, store: GrantStore) -> None:
        self.store = store

    def post(self, question: Question, timeout: float, now: float | None = None) -> str:
        """Queue a question without waiting; returns its id."""
        t = time.time() if now is None else now
        pid = new_id("p-")
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO pending (id, session_id, kind, action, digest, reason, reviewer, "
                "created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (pid, question.session_id, question.kind.value, question.action_json(),
                 question.digest(), question.reason, question.reviewer_view, t, t + timeout),
            )
        return pid

    def wait(self, pending_id: str, poll: float = POLL_SECONDS) -> PendingAnswer | None:
        """Block until the question is answered (the answer) or its deadline passes (None;
        the row is then marked expired so a late answer is refused)."""
        try:
            while True:
                item = self.get(pending_id)
                if item is None:
                    return None
                if item.answered is not None:
                    if item.answered in {c.value for c in Choice}:
                        return PendingAnswer(item.id, Choice(item.answered),
                                             item.answered_by or "user", item.grant_expires)
                    return None
                now = time.time()
                if now >= item.expires_at:
                    self._close(pending_id, "expired")
                    continue  # an answer may have landed just before the deadline
                time.sleep(min(poll, max(0.0, item.expires_at - now)))
        except BaseException:
            self._close(pending_id, "cancelled")
            raise

    def ask(self, question: Question, timeout: float) -> PendingAnswer | None:
        return self.wait(self.post(question, timeout))

    def submit(self, question: Question, timeout: float) -> Choice | None:
        """Queue the question and block until answered (the choice) or expired (None)."""
        answer = self.ask(question, timeout)
        return None if answer is None else answer.choice

    def _close(self, pending_id: str, state: str) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE pending SET answered = ?, answered_at = ? WHERE id = ? AND "
                       "answered IS NULL", (state, time.time(), pending_id))

    def cancel(self, session_id: str, argv: tuple[str, ...] | None = None) -> int:
        """Close the session's unanswered questions (only those about ``argv`` when given):
        whoever waits on one gets no answer at once, and a late answer is refused. For an
        action that can no longer happen (its process was killed, its session ended)."""
        rows = self.store.query("SELECT id, action FROM pending WHERE session_id = ? AND "
                                "answered IS NULL", (session_id,))
        ids = [r[0] for r in rows
               if argv is None or tuple(json.loads(r[1]).get("argv") or ()) == tuple(argv)]
        for pending_id in ids:
            self._close(pending_id, "cancelled")
        return len(ids)

    def get(self, pending_id: str) -> PendingItem | None:
        rows = self.store.query("SELECT * FROM pending WHERE id = ?", (pending_id,))
        return _row_item(rows[0]) if rows else None

    def pending(self, now: float | None = None) -> list[PendingItem]:
        """Unanswered questions whose deadline has not passed, oldest first."""
        t = time.time() if now is None else now
        rows = self.store.query("SELECT * FROM pending WHERE answered IS NULL AND "
                                "expires_at > ? ORDER BY created_at, id", (t,))
        return [_row_item(r) for r in rows]

    def answer(self, pending_id: str, choice: Choice | str, by: str = "user",
               now: float | None = None, *, nonce: str | None = None,
               digest: str | None = None, grant_expires: float | None = None) -> PendingItem:
        """Answer a queued question; refused when unknown, already answered or expired.

        ``nonce`` and ``digest`` are set by remote tokens: the nonce is recorded in the same
        transaction (single use) and the digest must match the queued action."""
        t = time.time() if now is None else now
        try:
            ch = Choice(choice)
        except ValueError:
            raise refuse(f"unknown answer {choice!r}",
                         "expected once, session, project, persistent or deny") from None
        if grant_expires is not None:
            if ch not in (Choice.SESSION, Choice.PROJECT):
                raise refuse(f"an expiry applies to session and project answers, not {ch.value}",
                             "persistent grants live in rules files, which cannot expire"
                             if ch is Choice.PERSISTENT else None)
            if grant_expires <= t:
                raise refuse("the grant's expiry is not in the future")
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM pending WHERE id = ?", (pending_id,)).fetchone()
            if row is None:
                raise refuse(f"no pending question {pending_id!r}",
                             "run `corral approve` to list them")
            item = _row_item(row)
            if digest is not None and digest != item.digest:
                raise refuse(f"token is bound to a different action than pending question "
                             f"{pending_id}")
            if nonce is not None:
                used = db.execute("SELECT 1 FROM token_nonces WHERE nonce = ?",
                                  (nonce,)).fetchone()
                if used:
                    raise refuse("token was already used (tokens are single-use)")
                db.execute("INSERT INTO token_nonces (nonce, pending_id, used_at) "
                           "VALUES (?,?,?)", (nonce, pending_id, t))
            if item.answered is not None:
                raise refuse(f"pending question {pending_id} is already {item.answered}"
                             if item.answered in ("expired", "cancelled") else
                             f"pending question {pending_id} was already answered "
                             f"({item.answered})")
            offered = offered_choices(item.question())
            if ch not in offered:
                raise refuse(f"{ch.value} is not offered for pending question {pending_id}",
                             "offered: " + ", ".join(c.value for c in offered))
            if t >= item.expires_at:
                db.execute("UPDATE pending SET answered = 'expired', answered_at = ? "
                           "WHERE id = ?", (t, pending_id))
                raise refuse(f"pending question {pending_id} expired at "
                             f"{fmt_time(item.expires_at)}")
            db.execute("UPDATE pending SET answered = ?, answered_by = ?, answered_at = ?, "
                       "grant_expires = ? WHERE id = ?",
                       (ch.value, by, t, grant_expires, pending_id))
        return PendingItem(**{**item.__dict__, "answered": ch.value, "answered_by": by,
                              "answered_at": t, "grant_expires": grant_expires})


def _row_item(row: tuple[Any, ...]) -> PendingItem:
    (pid, session_id, kind, action, digest, reason, reviewer, created_at, expires_at,
     answered, answered_by, answered_at, grant_expires) = row
    return PendingItem(
        id=pid, session_id=session_id, kind=Kind(kind), action=json.loads(action),
        digest=digest, reason=reason, reviewer_view=reviewer, created_at=created_at,
        expires_at=expires_at, answered=answered, answered_by=answered_by,
        answered_at=answered_at, grant_expires=grant_expires,
    )
