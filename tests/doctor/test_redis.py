"""The Redis check: PING against a real redis-server, a closed port an error; the URI's password never shown."""

from __future__ import annotations

import shutil

import pytest

from app.doctor.redis import masked, redis_findings
from tests.support.redis import RedisServer
from tests.support.servers import free_port


def test_a_password_in_the_uri_is_masked() -> None:
    assert masked("redis://:s3cret-pass@cache:6380/0") == "redis://***@cache:6380/0"
    assert masked("rediss://user:pw@[::1]:6379") == "rediss://***@[::1]:6379"
    assert masked("redis://cache:6379/1") == "redis://cache:6379/1"


def test_redis_not_answering_is_an_error_that_never_shows_the_password() -> None:
    (finding,) = redis_findings(f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0", timeout=2)
    assert (finding.check, finding.status) == ("redis", "error")
    assert "s3cret-pass" not in finding.message + finding.fix and "***@127.0.0.1" in finding.message
    assert "RATE_LIMIT__STORAGE_URI" in finding.fix


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed (.ci/run installs it)")
def test_a_running_redis_answers_ping() -> None:
    server = RedisServer().start()
    try:
        (finding,) = redis_findings(server.uri)
    finally:
        server.close()
    assert finding.status == "ok" and "answers PING" in finding.message
