"""Hooks with ocrpipe as a real process: killed (SIGKILL) after a job is recorded and before its event is
delivered, the event is delivered after the restart; ``run --once`` delivers before it exits, with the
documented examples (a command copying each output, a receiver checking the signature); and what
``ocrpipe status``, ``ocrpipe hooks``, /metrics, /health and the status page show of them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import finished_jobs, make_pdf
from test_hooks_delivery import an_event, hook_calls, hook_command

from ocrpipe.config import Settings
from ocrpipe.engine.snapshot import SnapshotHolder
from ocrpipe.folders.outbox import event_id
from ocrpipe.hooks.courier import Courier
from ocrpipe.web.api import Api

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"
SECRET = "whsec_" + base64.b64encode(b"a key of thirty-two bytes, or so").decode()


def ocrpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrpipe", *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")
def test_killed_between_recording_a_job_and_delivering_its_event_it_is_delivered_after_the_restart(
        data_dir: Path, fake_env: dict[str, str], tmp_path: Path) -> None:
    log, marker = tmp_path / "hook.jsonl", tmp_path / "hung-once"
    env = {**fake_env, "HOOK_COMMAND": hook_command(log, f"hang-once-{marker}"), "HOOK_TIMEOUT_SECONDS": "100"}
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    proc = subprocess.Popen([sys.executable, "-m", "ocrpipe", "run"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: hook_calls(log))  # the job is recorded and its hook runs (and hangs)
        hook = psutil.Process(hook_calls(log)[0]["pid"])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    hook.kill()  # in a session of its own, it outlived its parent: not ours to leave running
    [run] = finished_jobs(data_dir)
    assert run["state"] == "DONE"
    ident = event_id("job.done", run["jobKey"], run["runId"])
    assert (data_dir / "hooks" / "pending" / f"{ident}.json").is_file()

    result = ocrpipe(env, "run", "--once")
    assert result.returncode == 0, result.stderr
    delivered = [c for c in hook_calls(log) if c["scenario"] != "hang"]
    assert [c["stdin"]["id"] for c in delivered] == [ident]
    assert delivered[0]["env"]["OCRPIPE_OUTPUT"] == run["output"]
    assert not list((data_dir / "hooks" / "pending").iterdir())
    assert json.loads((data_dir / "index" / "metrics.json").read_text())["hooks_delivered"] == 1


def test_run_once_delivers_before_it_exits_with_the_copy_example(data_dir: Path, fake_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    """docs/examples/copy_output.py as HOOK_COMMAND: each output copied, none moved."""
    target = tmp_path / "dms import"
    env = {**fake_env, "HOOK_COMMAND": f'"{sys.executable}" "{EXAMPLES / "copy_output.py"}" "{target}"',
           "HOOK_EVENTS": "job.done"}
    (data_dir / "in" / "May").mkdir(parents=True)
    (data_dir / "in" / "May" / "one.pdf").write_bytes(make_pdf(1))
    (data_dir / "in" / "two.pdf").write_bytes(make_pdf(2))
    result = ocrpipe(env, "run", "--once")
    assert result.returncode == 0, result.stderr
    outputs = sorted(Path(r["output"]) for r in finished_jobs(data_dir))
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in outputs)
    for output in outputs:
        assert output.is_file() and (target / output.name).read_bytes() == output.read_bytes()
    status = json.loads(ocrpipe(env, "status", "--json").stdout)
    assert status["hooks"] == {"enabled": True, "pending": 0, "failed": 0, "delivered": 2, "oldestPendingAt": None}
    assert "Hook events: 2 delivered, 0 pending, 0 failed" in ocrpipe(env, "status").stdout


def test_the_receiver_example_checks_the_signature(data_dir: Path, fake_env: dict[str, str]) -> None:
    """docs/examples/webhook_receiver.py takes ocrpipe's posts and refuses a forged one."""
    receiver = subprocess.Popen([sys.executable, str(EXAMPLES / "webhook_receiver.py")],
                                env={**os.environ, "WEBHOOK_SECRET": SECRET, "PORT": "0"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline().split()[-1])
        url = f"http://127.0.0.1:{port}/"
        forged = urllib.request.Request(url, data=b"{}", method="POST", headers={
            "webhook-id": "evt_x", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,AAAA"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=10)
        assert refused.value.code == 401
        refused.value.close()
        env = {**fake_env, "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET}
        (data_dir / "in").mkdir(parents=True)
        (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
        result = ocrpipe(env, "run", "--once")
        assert result.returncode == 0, result.stderr
        [run] = finished_jobs(data_dir)
        line = receiver.stdout.readline().split()
        assert line[:3] == [event_id("job.done", run["jobKey"], run["runId"]), "job.done", "scan.pdf"]
    finally:
        receiver.kill()
        receiver.wait()
        if receiver.stdout is not None:
            receiver.stdout.close()


def test_health_and_status_page_show_the_hooks(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    clock = [0.0]
    settings = make_settings(HOOK_COMMAND=hook_command(tmp_path / "hook.jsonl", "fail"), HOOK_BACKLOG_SECONDS="600")
    settings.work_dir.mkdir(parents=True)
    ident = an_event(settings)
    created = (settings.data_dir / "hooks" / "pending" / f"{ident}.json").stat().st_mtime
    clock[0] = created
    courier = Courier(settings, clock=lambda: clock[0])
    courier.step(0.0)
    api = Api(settings, SnapshotHolder(), tools={"fake": "1"}, disk_free=lambda path: 10**12, hooks=courier.view)
    health = json.loads(api.handle("GET", "/health").body)
    assert health["checks"]["hooks"]["ok"] and health["checks"]["hooks"]["pending"] == 1
    page = api.handle("GET", "/").body.decode()
    assert "Hooks (command)" in page and "1 waiting" in page and "exited with 3" in page
    clock[0] = created + 601  # waited longer than HOOK_BACKLOG_SECONDS
    response = api.handle("GET", "/health")
    body = json.loads(response.body)
    assert response.status == 503 and "hooks" in body["failing"]
    assert body["checks"]["hooks"]["oldestPendingSeconds"] >= 600


def test_ocrpipe_hooks_lists_and_retries(data_dir: Path, fake_env: dict[str, str],
                                         make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(WEBHOOK_URL="http://127.0.0.1:9/")
    ident = an_event(settings)
    failed = settings.data_dir / "hooks" / "failed"
    failed.mkdir()
    (settings.data_dir / "hooks" / "pending" / f"{ident}.json").rename(failed / f"{ident}.json")
    env = {**fake_env, "WEBHOOK_URL": "http://127.0.0.1:9/"}
    listed = ocrpipe(env, "hooks")
    assert listed.returncode == 0 and ident in listed.stdout and "Pending: 0   failed: 1" in listed.stdout
    assert json.loads(ocrpipe(env, "hooks", "--json").stdout)["failedEvents"][0]["id"] == ident
    bad = ocrpipe(env, "hooks", "retry", "evt_" + "0" * 32)
    assert bad.returncode == 2 and "not in" in bad.stderr and "Traceback" not in bad.stderr
    again = ocrpipe(env, "hooks", "retry")
    assert again.returncode == 0 and "1 event(s) put back" in again.stdout
    assert (settings.data_dir / "hooks" / "pending" / f"{ident}.json").is_file()
