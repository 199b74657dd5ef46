"""Delivery of the outbox's events, driven pass by pass through ``Courier.step(now)``: a real receiver on
loopback that fails the first two posts, one that never answers, one that redirects; command hooks that
fail, hang, flood their output or never read their stdin; order per job, giving up into hooks/failed/ and
``ocrpipe hooks retry``; event files that ocrpipe did not write."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import made_job_key

from ocrpipe.config import ConfigError, Settings
from ocrpipe.folders.outbox import write_event
from ocrpipe.hooks import cli as hookcli
from ocrpipe.hooks.courier import FIRST_PAUSE_SECONDS, Courier
from ocrpipe.hooks.webhook import signature
from ocrpipe.index.metrics import make_empty_metrics

FAKE_HOOK = Path(__file__).parent / "fakes" / "fake_hook.py"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def hook_command(log: Path, scenario: str) -> str:
    return f'"{sys.executable}" "{FAKE_HOOK}" "{log}" {scenario}'


def hook_calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def an_event(settings: Settings, name: str = "a", kind: str = "job.done", run: str = "run1") -> str:
    key = made_job_key(name)
    output = settings.out_dir / f"{name}.pdf"
    data = {"jobKey": key, "runId": run, "state": "DONE", "source": f"May/{name}.pdf", "output": str(output),
            "archived": str(settings.archive_dir / f"{name}.pdf"), "errorDir": None, "code": None, "reason": None,
            "pages": 3, "seconds": 1.5}
    ident = write_event(settings, kind, data, key, run)
    assert ident is not None
    return ident


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


class Receiver:
    """A loopback HTTP server answering each POST with the next status of ``answers`` (then 200)."""

    def __init__(self, answers: list[int], *, hang: threading.Event | None = None) -> None:
        self.answers = list(answers)
        self.posts: list[tuple[dict[str, str], bytes, int]] = []
        self.hang = hang
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.hang is not None:
                    receiver.hang.wait(30)
                    return
                status = receiver.answers.pop(0) if receiver.answers else 200
                receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ocrpipe?token=abc"

    def close(self) -> None:
        if self.hang is not None:
            self.hang.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answers: list[int] | None = None, **kwargs: Any) -> Receiver:
        made.append(Receiver(answers or [], **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def valid_signature(headers: dict[str, str], body: bytes, key: bytes) -> bool:
    mac = hmac.new(key, f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body,
                   hashlib.sha256).digest()
    return headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def test_the_signature_is_the_standard_webhooks_reference_one() -> None:
    """The specification's published vector: any Standard Webhooks library can check ocrpipe's posts."""
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert (signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
            == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_hook_settings_are_checked(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(HOOK_COMMAND='"/opt/my hooks/notify" --to "ops team"', WEBHOOK_SECRET=SECRET,
                             HOOK_EVENTS="job.done, job.error")
    assert settings.hooks.command == ("/opt/my hooks/notify", "--to", "ops team")
    assert settings.hooks.webhook_secret == b"0123456789abcdef0123456789abcdef"
    assert settings.hooks.events == {"job.done", "job.error"}
    assert SECRET not in repr(settings)
    assert make_settings(WEBHOOK_SECRET="plain words").hooks.webhook_secret == b"plain words"
    for name, value in (("WEBHOOK_URL", "ftp://host/x"), ("WEBHOOK_URL", "not a url"), ("HOOK_EVENTS", "job.finished"),
                        ("HOOK_TIMEOUT_SECONDS", "0"), ("WEBHOOK_SECRET", "whsec_***")):
        with pytest.raises(ConfigError, match=name) as caught:
            make_settings(**{name: value})
        assert name != "WEBHOOK_SECRET" or "***" not in str(caught.value)


def test_a_receiver_failing_the_first_two_posts_gets_the_event_once_signed(
        make_settings: Callable[..., Settings], receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([500, 503])
    settings = make_settings(WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET)
    ident = an_event(settings)
    courier = Courier(settings)
    assert courier.step(0.0) == 0
    assert courier.step(FIRST_PAUSE_SECONDS - 1) == 0  # still pausing: not posted again
    assert courier.step(FIRST_PAUSE_SECONDS) == 0
    assert len(receiver.posts) == 2
    delivery = json.loads((settings.data_dir / "hooks" / "pending" / f"{ident}.delivery.json").read_text())
    assert delivery["attempts"] == 2 and "answered 503" in delivery["lastError"]
    assert "token" not in delivery["lastError"]  # the address's query is not shown
    assert courier.step(FIRST_PAUSE_SECONDS * 3) == 1  # the pause doubled: 10 s, then 20 s
    assert [status for _, _, status in receiver.posts] == [500, 503, 200]
    key = base64.b64decode(SECRET[len("whsec_"):])
    for headers, body, _ in receiver.posts:
        assert headers["webhook-id"] == ident and valid_signature(headers, body, key)
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["id"] == ident and json.loads(body)["data"]["pages"] == 3
    assert files(settings.data_dir / "hooks" / "pending") == []
    assert courier.step(FIRST_PAUSE_SECONDS * 10) == 0 and len(receiver.posts) == 3  # delivered once: not again
    metrics = make_empty_metrics()
    courier.feed_metrics(metrics)
    assert metrics["hooks_delivered"] == 1 and metrics["hooks_pending"] == 0
    courier.feed_metrics(metrics)
    assert metrics["hooks_delivered"] == 1  # fed once


def test_a_receiver_that_never_answers_is_timed_out(make_settings: Callable[..., Settings],
                                                     receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(hang=threading.Event())
    settings = make_settings(WEBHOOK_URL=receiver.url, WEBHOOK_TIMEOUT_SECONDS="0.5")
    ident = an_event(settings)
    courier = Courier(settings)
    assert courier.step(0.0) == 0
    delivery = json.loads((settings.data_dir / "hooks" / "pending" / f"{ident}.delivery.json").read_text())
    assert "did not answer within WEBHOOK_TIMEOUT_SECONDS=0.5" in delivery["lastError"]
    assert courier.view()["pending"] == 1 and courier.view()["lastError"] == delivery["lastError"]


def test_a_redirect_is_not_followed(make_settings: Callable[..., Settings], receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([302])
    settings = make_settings(WEBHOOK_URL=receiver.url)
    ident = an_event(settings)
    Courier(settings).step(0.0)
    assert len(receiver.posts) == 1  # not posted to /elsewhere
    assert "redirect" in json.loads(
        (settings.data_dir / "hooks" / "pending" / f"{ident}.delivery.json").read_text())["lastError"]


def test_the_command_gets_the_event_in_variables_and_on_stdin(make_settings: Callable[..., Settings],
                                                              tmp_path: Path) -> None:
    log = tmp_path / "hook.jsonl"
    settings = make_settings(HOOK_COMMAND=hook_command(log, "ok"), WEBHOOK_SECRET=SECRET)
    ident = an_event(settings, "scan; rm -rf ~")  # a name from the dropper: never seen by a shell
    assert Courier(settings).step(0.0) == 1
    [call] = hook_calls(log)
    env, event = call["env"], call["stdin"]
    assert event["id"] == ident and event["type"] == "job.done"
    assert env["OCRPIPE_EVENT"] == "job.done" and env["OCRPIPE_EVENT_ID"] == ident
    assert env["OCRPIPE_JOB_KEY"] == event["data"]["jobKey"] and env["OCRPIPE_STATE"] == "DONE"
    assert env["OCRPIPE_OUTPUT"] == str(settings.out_dir / "scan; rm -rf ~.pdf")
    assert env["OCRPIPE_SOURCE"] == "May/scan; rm -rf ~.pdf" and env["OCRPIPE_PAGES"] == "3"
    assert env["OCRPIPE_ERROR_CODE"] == "" and "WEBHOOK_SECRET" not in env


def test_a_failing_command_is_retried_then_given_up_and_put_back_by_hooks_retry(
        make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    log, fixed = tmp_path / "hook.jsonl", tmp_path / "fixed"
    clock = [1e9]
    settings = make_settings(HOOK_COMMAND=hook_command(log, f"fail-until-{fixed}"), HOOK_RETRY_LIMIT_SECONDS="60")
    ident = an_event(settings)
    courier = Courier(settings, clock=lambda: clock[0])
    clock[0] = os.path.getmtime(settings.data_dir / "hooks" / "pending" / f"{ident}.json")
    courier.step(0.0)
    delivery = json.loads((settings.data_dir / "hooks" / "pending" / f"{ident}.delivery.json").read_text())
    assert "exited with 3" in delivery["lastError"] and "the receiving system is down" in delivery["lastError"]
    clock[0] += 61  # past HOOK_RETRY_LIMIT_SECONDS: given up
    courier.step(1000.0)
    assert files(settings.data_dir / "hooks" / "pending") == []
    assert files(settings.data_dir / "hooks" / "failed") == [f"{ident}.delivery.json", f"{ident}.json"]
    assert courier.view()["failed"] == 1
    metrics = make_empty_metrics()
    courier.feed_metrics(metrics)
    assert metrics["hooks_failed"] == 1
    [listed] = hookcli.hooks_summary(settings)["failedEvents"]
    assert listed["id"] == ident and listed["attempts"] == 2 and "exited with 3" in listed["lastError"]

    fixed.touch()
    with pytest.raises(ConfigError, match="not an event id"):
        hookcli.retry(settings, ["../../etc"])
    assert hookcli.retry(settings, []) == 1
    assert files(settings.data_dir / "hooks" / "failed") == []
    assert courier.step(2000.0) == 1  # the same id, delivered
    assert [c["stdin"]["id"] for c in hook_calls(log)] == [ident] * 3


def test_a_hanging_command_is_killed_with_its_children(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    log = tmp_path / "hook.jsonl"
    settings = make_settings(HOOK_COMMAND=hook_command(log, "hang"), HOOK_TIMEOUT_SECONDS="1")
    ident = an_event(settings)
    Courier(settings).step(0.0)
    [call] = hook_calls(log)
    for pid in (call["pid"], call["child"]):  # the hook and the child it started
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    delivery = json.loads((settings.data_dir / "hooks" / "pending" / f"{ident}.delivery.json").read_text())
    assert "longer than HOOK_TIMEOUT_SECONDS=1" in delivery["lastError"]


def test_a_command_writing_10_mb_without_reading_stdin_does_not_hang(make_settings: Callable[..., Settings],
                                                                    tmp_path: Path) -> None:
    log = tmp_path / "hook.jsonl"
    settings = make_settings(HOOK_COMMAND=hook_command(log, "flood"), HOOK_TIMEOUT_SECONDS="60")
    an_event(settings)
    assert Courier(settings).step(0.0) == 1
    assert files(settings.data_dir / "hooks" / "pending") == []


def test_one_job_s_events_go_in_order_and_wait_for_the_first(make_settings: Callable[..., Settings],
                                                            tmp_path: Path) -> None:
    log, fixed = tmp_path / "hook.jsonl", tmp_path / "fixed"
    settings = make_settings(HOOK_COMMAND=hook_command(log, f"fail-until-{fixed}"))
    first = an_event(settings, "a", run="run1")
    second = an_event(settings, "a", run="run2")  # the same job again, later
    other = an_event(settings, "b")
    courier = Courier(settings)
    courier.step(0.0)
    assert [c["stdin"]["id"] for c in hook_calls(log)] == [first, other]  # not the second while the first fails
    fixed.touch()
    assert courier.step(100.0) == 2
    assert courier.step(100.0) == 1
    assert [c["stdin"]["id"] for c in hook_calls(log)][2:] == [first, other, second]


def test_both_targets_a_retry_goes_only_to_the_one_that_failed(make_settings: Callable[..., Settings],
                                                               receivers: Callable[..., Receiver],
                                                               tmp_path: Path) -> None:
    log = tmp_path / "hook.jsonl"
    receiver = receivers([500])
    settings = make_settings(HOOK_COMMAND=hook_command(log, "ok"), WEBHOOK_URL=receiver.url)
    an_event(settings)
    courier = Courier(settings)
    assert courier.step(0.0) == 0
    assert courier.step(100.0) == 1
    assert len(hook_calls(log)) == 1 and len(receiver.posts) == 2


def test_event_files_ocrpipe_did_not_write_are_left_alone(make_settings: Callable[..., Settings],
                                                          tmp_path: Path) -> None:
    log = tmp_path / "hook.jsonl"
    settings = make_settings(HOOK_COMMAND=hook_command(log, "ok"))
    ident = an_event(settings)
    pending = settings.data_dir / "hooks" / "pending"
    event = json.loads((pending / f"{ident}.json").read_text())
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("x")
    forged = {**event, "id": "evt_" + "1" * 32, "data": {**event["data"], "output": str(secret_file)}}
    (pending / f"{forged['id']}.json").write_text(json.dumps(forged))
    (pending / ("evt_" + "2" * 32 + ".json")).write_text("{not json")
    os.symlink(pending / f"{ident}.json", pending / ("evt_" + "3" * 32 + ".json"))
    (pending / "notes.json").write_text(json.dumps(event))
    assert Courier(settings).step(0.0) == 1
    assert [c["stdin"]["id"] for c in hook_calls(log)] == [ident]
    assert files(pending) == sorted(["evt_" + "1" * 32 + ".json", "evt_" + "2" * 32 + ".json",
                                     "evt_" + "3" * 32 + ".json", "notes.json"])


def test_drain_delivers_what_is_pending_within_its_bound(make_settings: Callable[..., Settings],
                                                         receivers: Callable[..., Receiver]) -> None:
    receiver = receivers()
    settings = make_settings(WEBHOOK_URL=receiver.url)
    for name in "abc":
        an_event(settings, name)
    courier = Courier(settings)
    assert courier.drain(30) == 0 and len(receiver.posts) == 3
    dead = make_settings(WEBHOOK_URL="http://127.0.0.1:9/", DATA_DIR=str(settings.data_dir / "two"))
    an_event(dead)
    assert Courier(dead).drain(0) == 1  # nothing listens: tried once, then the bound ends it


def test_the_start_removes_only_its_own_leftover_temp_files(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(WEBHOOK_URL="http://127.0.0.1:9/")
    ident = an_event(settings)
    pending = settings.data_dir / "hooks" / "pending"
    ours = [f".{ident}.json.0123abcd.tmp", f".{ident}.delivery.json.89abcdef.tmp"]
    theirs = [".notes.tmp", f".{ident}.json.tmp"]
    for name in ours + theirs:
        (pending / name).write_text("x")
    courier = Courier(settings)
    courier.start()
    courier.stop()
    left = set(files(pending)) - {f"{ident}.delivery.json"}  # there once the thread tried it
    assert left == {f"{ident}.json", *theirs}
