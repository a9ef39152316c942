"""The approvals bundle: one interrupt asking a person about several calls of one step."""

from __future__ import annotations

import functools
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from .._approvals import EditReader
from .._decision import Decision
from .._events import ToolCall
from ._drivers import Op
from ._hitl import bundle_with_hitl, read_answers
from ._pending import PendingLog, _pending_key
from ._where import Where


class Bundle(PendingLog):
    """The gate's bundle flow (part of :class:`~._gate.Gate`): asks like the pending log
    does, several calls in one interrupt."""

    def bundle_flow(
        self,
        items: Sequence[tuple[ToolCall, Where]],
        key: str | None,
        edits: Mapping[str, EditReader] | None = None,
    ) -> Generator[Op, Any, dict[str, Decision]]:
        """Ask a person about several calls of one step at once: one interrupt of type
        ``"approvals"`` lists them all; it is answered per call (``{call_id: answer}``) or
        with one answer for all. Calls left unanswered are asked again in a further
        interrupt, or with LangChain's ``{"decisions": [...]}`` (by position). A resume it
        cannot read raises ``ApprovalAnswerError`` before any call is decided. ``edits``
        (by call id) applies a person's edit as each tool's schema reads it. The calls' pending documents (written when they were deferred) hold the
        asked decisions and, once answered, the finals; the step's document (``key``) logs
        which calls each interrupt listed, so a re-run replays them in order. Returns the
        final decision of each call whose pending document holds an asked decision."""
        memos: dict[str, dict[str, Any]] = {}
        by_id: dict[str, ToolCall] = {}
        for call, _ in items:
            found = yield ("get", (_pending_key(call),))
            if isinstance(found, Mapping) and "asked" in found:
                memos[str(call.call_id)] = dict(found)
                by_id[str(call.call_id)] = call
        rounds: list[list[str]] = []
        if key is not None:
            step = yield ("get", (key,))
            if isinstance(step, Mapping):
                rounds = [list(r) for r in step.get("rounds", ())]
        answers: dict[str, Any] = {}
        r = 0
        while True:
            for cid, value in answers.items():
                memo = memos[cid]
                if "final" in memo:
                    continue
                call = by_id[cid]
                asked = Decision.from_doc(memo["asked"])
                final: Decision
                if (
                    self.approval_timeout is not None
                    and self.clock() - float(memo["at"]) > self.approval_timeout
                ):
                    why = f"no answer within {self.approval_timeout:g}s: the approval expired"
                    final = yield ("expire", (call, asked, why))
                else:
                    edit = (edits or {}).get(cid)
                    final = yield ("resolve", (call, asked, value, edit))
                memo["final"] = final.to_doc()
                yield ("put", (_pending_key(call), memo))
            waiting = [cid for cid, memo in memos.items() if "final" not in memo]
            if not waiting:
                break
            if r < len(rounds):
                listed = [cid for cid in rounds[r] if cid in memos]
            else:
                listed = waiting
                rounds.append(listed)
                if key is not None:
                    yield ("put", (key, {"rounds": rounds}))
            payload: dict[str, Any] = {
                "type": "approvals",
                "requests": [
                    self._approval_payload(
                        by_id[cid],
                        Decision.from_doc(memos[cid]["asked"]),
                        float(memos[cid]["at"]),
                    )
                    for cid in listed
                ],
            }
            reader = functools.partial(read_answers, listed=[by_id[c] for c in listed])
            read = yield ("interrupt", (bundle_with_hitl(payload), reader))
            r += 1
            for cid, approval in read.items():
                answers.setdefault(cid, approval)
        return {cid: Decision.from_doc(memo["final"]) for cid, memo in memos.items()}
