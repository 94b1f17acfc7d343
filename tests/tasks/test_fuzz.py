"""Hostile params for `tasks/get`, `tasks/update` and `tasks/cancel` against a real served app (the task test tools):
wrong JSON types, missing fields, unknown and forged ids, someone else's task, oversized and garbage answers to a real
question. The server never answers 5xx, always a JSON-RPC result or error (or the 403 step-up an id naming a tool the
token may not call gets), never an internal error, and logs no error or traceback; a run given garbage answers ends
as a tool error, never as a failed task.
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.servers import ServerThread
from tests.support.task_replicas import TASK_TOOLS, Answer, RawTasks, accept, meta

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]  # many generated examples against real servers
INTERNAL_ERROR = -32603
MAX_ANSWER = 1024  # TASKS__MAX_ANSWER_BYTES here (its lowest): an oversized answer is cheap to send
METHODS = ["tasks/get", "tasks/update", "tasks/cancel"]
POOL = 3  # real tasks kept waiting for an answer
HEADER_SAFE = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
random_part = st.text(string.ascii_letters + string.digits + "-_", min_size=32, max_size=32)
named_tools = st.sampled_from(["long_job", "asking_report", "plain_tool", "only_as_task", "admin_job", "no_such", ""])
shaped_ids = st.builds("{}.{}".format, random_part, named_tools | st.text(max_size=20))


@dataclass(frozen=True)
class RealId:
    """One of the pool's real task ids, as is or edited; `other` sends it with another caller's token."""

    n: int
    edit: str
    other: bool


real_ids = st.builds(
    RealId,
    st.integers(0, POOL - 1),
    st.sampled_from(["as is", "as is", "tool", "random", "spaces", "upper"]),
    st.booleans(),
)
task_ids = st.one_of(
    real_ids,
    shaped_ids,
    st.text(max_size=40),
    st.text(min_size=257, max_size=300),
    json_value.filter(lambda v: not isinstance(v, str)),
)
answer_keys = st.sampled_from(["input-0", "input-0", "input-1", "input-99", ""]) | st.text(max_size=20)
content = json_value | st.dictionaries(st.sampled_from(["archived", "x", ""]), json_value, max_size=3)
answer_shaped = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["accept", "decline", "cancel"]) | json_leaf,
        "content": content,
        "role": st.sampled_from(["assistant", "user"]) | json_leaf,
        "model": json_leaf,
        "_meta": json_value,
    },
)
garbage_answers = st.one_of(
    st.dictionaries(answer_keys, answer_shaped, max_size=3),
    st.dictionaries(answer_keys, json_value, max_size=4),  # answers of any JSON type
    st.builds(lambda k, n: {k: accept(archived="x" * n)}, answer_keys, st.integers(MAX_ANSWER - 40, 4 * MAX_ANSWER)),
    st.integers(30, 120).map(lambda n: {f"input-{i}": accept(archived=True) for i in range(n)}),  # too many keys
)
input_responses = garbage_answers | json_value
metas = st.one_of(
    st.just(meta()),
    st.just(meta(tasks=False)),
    json_value,
    st.builds(lambda k, v: {**meta(), k: v}, st.sampled_from(sorted(meta())), json_value),
)
FIELDS = {"taskId": task_ids, "inputResponses": input_responses, "_meta": metas}


@st.composite
def task_params(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed params (a real or well-shaped id, the envelope, maybe answers), then up to two fields removed or
    replaced with anything."""
    sent: dict[str, Any] = {"taskId": draw(real_ids | shaped_ids), "_meta": meta()}
    if draw(st.booleans()):
        sent["inputResponses"] = draw(garbage_answers)
    for field in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=2, unique=True)):
        if draw(st.booleans()):
            sent.pop(field, None)
        else:
            sent[field] = draw(FIELDS[field])
    return sent


class Pool:
    """Real tasks of `asking_report`, each kept waiting for its answer (one that has moved on is replaced)."""

    def __init__(self, owner: RawTasks) -> None:
        self.owner, self.ids = owner, [""] * POOL
        self.made: list[str] = []

    def waiting(self, n: int) -> str:
        if not self.ids[n] or self.owner.get(self.ids[n]).result["status"] != "input_required":
            self.ids[n] = self.owner.start("asking_report", {"topic": f"fuzz {len(self.made)}", "seconds": 0})
            self.made.append(self.ids[n])
            self.owner.wait_for(self.ids[n], "input_required")
        return self.ids[n]

    def resolve(self, value: Any) -> Any:
        if not isinstance(value, RealId):
            return value
        task_id = self.waiting(value.n)
        random, _, tool = task_id.partition(".")
        edited = {
            "as is": task_id,
            "tool": f"{random}.long_job" if tool != "long_job" else f"{random}.asking_report",
            "random": f"{random[:-1]}{'A' if random[-1] != 'A' else 'B'}.{tool}",
            "spaces": f" {task_id} ",
            "upper": task_id.upper(),
        }
        return edited[value.edit]


def check(answer: Answer, where: object) -> None:
    """Never a 5xx; a JSON-RPC result or error that is not an internal error, or the OAuth 403 step-up."""
    assert answer.status < 500, (answer.status, where, answer.message)
    event(f"HTTP {answer.status}")
    if answer.status == 403:
        assert "insufficient_scope" in answer.headers["www-authenticate"], where
        assert answer.message["error"] == "insufficient_scope", where
        return
    message = answer.message
    assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", (where, message)
    assert ("result" in message) != ("error" in message), (where, message)
    if "error" in message:
        assert message["error"]["code"] != INTERNAL_ERROR, (where, message)
        event(f"error {message['error']['code']}")
    else:
        assert answer.status == 200, (where, message)
    assert "Traceback" not in str(message), where


def serve_tasks(serve: Callable[..., ServerThread]) -> ServerThread:
    return serve(
        tools={"dir": TASK_TOOLS},
        tasks={"max_answer_bytes": MAX_ANSWER, "max_per_principal": 50},
        rate_limit={"default": "100000/minute", "unauthenticated": "100000/minute"},
    )


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, [(r.name, r.levelname, r.getMessage()[:300]) for r in bad]


def settle(owner: RawTasks, made: list[str]) -> None:
    """Every real task the fuzzer touched is waiting, cancelled or completed (a tool error at worst), never failed."""
    for task_id in made:
        deadline = time.monotonic() + 15
        while (task := owner.get(task_id).result)["status"] == "working" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert task["status"] in {"input_required", "completed", "cancelled"}, task
        if task["status"] == "completed":
            assert task["result"]["content"], task


def test_tasks_methods_with_hostile_params_never_fail(
    serve: Callable[..., ServerThread], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = serve_tasks(serve)
    owner = RawTasks(server.url, token("notes.read"))
    other = RawTasks(server.url, token("notes.read", oid="eeeeeeee-0000-4000-8000-000000000001"))
    pool = Pool(owner)

    @settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        method=st.sampled_from(METHODS),
        sent=st.one_of(task_params(), task_params(), task_params(), json_value),
        name=st.sampled_from(["task id", "task id", "none", "other"]),
    )
    def hostile(method: str, sent: Any, name: str) -> None:
        caller = owner
        if isinstance(sent, dict) and isinstance(sent.get("taskId"), RealId):
            caller = other if sent["taskId"].other else owner
            sent = {**sent, "taskId": pool.resolve(sent["taskId"])}
        task_id = sent.get("taskId") if isinstance(sent, dict) else None
        header = {"task id": task_id if isinstance(task_id, str) else None, "none": None, "other": "x.long_job"}[name]
        header = header if header is None or HEADER_SAFE.match(header) else None
        check(caller.send(method, sent, header), (method, sent, header))

    hostile()
    settle(owner, pool.made)
    no_errors_logged(caplog)


def test_garbage_answers_to_a_real_question_never_fail_the_server_or_the_run(
    serve: Callable[..., ServerThread], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = serve_tasks(serve)
    owner = RawTasks(server.url, token("notes.read"))
    pool = Pool(owner)

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(n=st.integers(0, POOL - 1), answers=garbage_answers)
    def garbage(n: int, answers: dict[str, Any]) -> None:
        task_id = pool.waiting(n)
        check(owner.update(task_id, answers), answers)
        check(owner.get(task_id), answers)

    garbage()
    settle(owner, pool.made)
    no_errors_logged(caplog)


def test_an_oversized_answer_or_too_many_answers_are_refused_and_the_question_still_stands(
    serve: Callable[..., ServerThread], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    owner = RawTasks(serve_tasks(serve).url, token("notes.read"))
    task_id = owner.start("asking_report", {"topic": "limits", "seconds": 0})
    owner.wait_for(task_id, "input_required")

    oversized = owner.update(task_id, {"input-0": accept(archived="x" * MAX_ANSWER)})
    assert oversized.status == 400
    assert oversized.error["code"] == -32602
    assert f"over the {MAX_ANSWER}-byte limit" in oversized.error["message"]
    too_many = owner.update(task_id, {f"input-{i}": accept(archived=True) for i in range(33)})
    assert too_many.status == 400 and too_many.error["code"] == -32602
    wrong_type = owner.update(task_id, {"input-0": "accept"})
    assert wrong_type.status == 400 and wrong_type.error["code"] == -32602
    waiting = owner.get(task_id).result
    assert waiting["status"] == "input_required" and list(waiting["inputRequests"]) == ["input-0"]

    assert owner.update(task_id, {"input-0": accept(archived=True)}).ack == {}
    done = owner.wait_for(task_id, "completed")
    assert done["result"]["content"][0]["text"] == "report on limits: archived=True"
    no_errors_logged(caplog)
