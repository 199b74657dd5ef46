"""Full-text search end to end with the fake tools: each page's text read in the worker, stored with its run,
found by the CLI and the API (words, accents folded, phrases, prefixes, OR), bad queries refused plainly,
batches and split documents keeping each page's own text, FORCE_REPROCESS under its new run, reindexing
old outputs, readings flagging a document, and the text going with its run's row."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from conftest import drive, http_json, http_request, read_calls
from faultkit import Driven, finished

from ocrpipe.cli import main
from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.index.db import DB_FILE, connect
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.search import SearchSyntaxError, flagged, search
from ocrpipe.index.textschema import META_TABLE, TEXT_TABLE
from ocrpipe.web.api import Api
from ocrpipe.web.server import serve

INVOICE = [["Numéro de facture 4711", "Client Müller, Zürich"],
           ["Delivery note for the order", "Signed by the courier"]]
LETTER = [["The quick brown fox", "jumps over the lazy dog"]]


def text_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A born-digital PDF, one page per entry, in Helvetica with WinAnsi encoding (so é and ü are real
    letters, not StandardEncoding's stand-ins): its text is the page's own, not OCR's."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica,
                                                Encoding=pikepdf.Name.WinAnsiEncoding))
    for n, lines in enumerate(pages):
        pdf.add_blank_page(page_size=(612, 792))
        page = pdf.pages[n]
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        shown = b" ".join(b"(%s) Tj 0 -20 Td" % line.encode("cp1252").replace(b"(", b"\\(").replace(b")", b"\\)")
                          for line in lines)
        page.Contents = pdf.make_stream(b"BT /F1 14 Tf 72 720 Td " + shown + b" ET")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.save(path, static_id=True)
    return path


def scan_pdf(path: Path, pages: list[str], *, confidences: list[int | None] | None = None) -> Path:
    """A PDF whose pages have no text, only what the fake ocrmypdf "reads" on each (``FAKE-TEXT``), and how
    well (``FAKE-CONFIDENCE``), with FAKE_OCR_READS set; like a scan, it can share a batch or be split."""
    pdf = pikepdf.new()
    for n, words in enumerate(pages):
        pdf.add_blank_page(page_size=(200, 200))
        marker = f"% FAKE-CONFIDENCE:{confidences[n]}\n" if confidences and confidences[n] is not None else ""
        pdf.pages[n].Contents = pdf.make_stream(f"% FAKE-TEXT: {words}\n{marker}".encode("cp1252"))
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.save(path, static_id=True)
    return path


def run(settings: Settings, *files: tuple[str, list[list[str]]]) -> Driven:
    for name, pages in files:
        text_pdf(settings.in_dir / name, pages)
    driven = Driven(settings)
    driven.run_all(0.0)
    return driven


def cli(settings: Settings, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["search", *args, "--data", str(settings.data_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def hits(settings: Settings, query: str, **kwargs: Any) -> list[tuple[str, int]]:
    """(output file name, page) of each hit, newest first."""
    with JobIndex(settings.index_dir, readonly=True) as index:
        found = search(index, query, **kwargs)
    return [(Path(h.output or "").name, h.page) for h in found.hits]


@pytest.fixture(autouse=True)
def _fake_ocr_reads(fake_env: dict[str, str]) -> None:
    fake_env["FAKE_OCR_READS"] = "1"  # the fake ocrmypdf "reads" the words each scan_pdf page names


@pytest.fixture
def searched(make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings()
    run(settings, ("invoice.pdf", INVOICE), ("letters/fox.pdf", LETTER))
    return settings


def test_each_word_finds_its_document_and_page(searched: Settings) -> None:
    assert hits(searched, "4711") == [("invoice.pdf", 1)]
    assert hits(searched, "courier") == [("invoice.pdf", 2)]
    assert hits(searched, "fox") == [("fox.pdf", 1)]
    assert hits(searched, "facture 4711") == [("invoice.pdf", 1)]  # both words on the page
    assert hits(searched, "facture courier") == []  # on two different pages: no page has both
    assert hits(searched, "unicorn") == []


def test_accents_and_case_fold_both_ways(searched: Settings) -> None:
    assert hits(searched, "numero") == [("invoice.pdf", 1)]
    assert hits(searched, "NUMÉRO") == [("invoice.pdf", 1)]
    assert hits(searched, "zurich muller") == [("invoice.pdf", 1)]


def test_phrases_prefixes_and_or(searched: Settings) -> None:
    assert hits(searched, '"delivery note"') == [("invoice.pdf", 2)]
    assert hits(searched, '"note delivery"') == []  # a phrase keeps its order
    assert hits(searched, "deliv*") == [("invoice.pdf", 2)]
    assert sorted(hits(searched, "fox OR courier")) == [("fox.pdf", 1), ("invoice.pdf", 2)]
    assert hits(searched, "quick NOT fox") == []


def test_the_cli_shows_output_page_and_the_match_marked(searched: Settings,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(searched, "courier", capsys=capsys)
    assert code == 0
    assert f"{searched.out_dir / 'invoice.pdf'}  page 2" in out
    assert "[courier]" in out and "1 page(s), newest first" in out
    code, out, _ = cli(searched, "numero", "--json", capsys=capsys)
    [hit] = json.loads(out)["hits"]
    assert hit["page"] == 1 and hit["output"] == str(searched.out_dir / "invoice.pdf")
    assert "[Numéro]" in hit["snippet"] and hit["source"] == "invoice.pdf"
    code, out, _ = cli(searched, "the", "--limit", "1", capsys=capsys)
    assert code == 0 and "more match" in out
    code, out, _ = cli(searched, "fox", "--since", "2999-01-01", capsys=capsys)
    assert code == 0 and out.strip() == "No page matches."


@pytest.mark.parametrize("query", ['"unbalanced', "fox AND", "(fox", "nocolumn:fox", "*", "   "])
def test_a_bad_query_is_a_clear_message_and_exit_2(searched: Settings, query: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(searched, query, capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith("ocrpipe: error: ") and "Traceback" not in err
    assert "not valid" in err or "nothing to search for" in err
    with JobIndex(searched.index_dir, readonly=True) as index, pytest.raises(SearchSyntaxError):
        search(index, query)


def test_bad_since_and_limit_are_usage_errors(searched: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(searched, "fox", "--since", "yesterday", capsys=capsys)[0] == 2
    with pytest.raises(SystemExit) as exit_:
        main(["search", "fox", "--limit", "0", "--data", str(searched.data_dir)])
    assert exit_.value.code == 2


def test_the_api_searches_pages_with_a_cursor_and_refuses_bad_syntax(searched: Settings) -> None:
    api = Api(searched, _no_snapshot(), tools={})
    with serve(api, "127.0.0.1", 0) as service:
        status, body = http_json(service.url + "search?q=courier")
        assert status == 200
        [hit] = body["hits"]
        assert hit["page"] == 2 and hit["output"].endswith("invoice.pdf") and "[courier]" in hit["snippet"]
        status, first = http_json(service.url + "search?q=the&limit=1")
        assert status == 200 and len(first["hits"]) == 1 and first["nextBefore"]
        status, rest = http_json(service.url + f"search?q=the&limit=5&before={first['nextBefore']}")
        assert {(h["output"], h["page"]) for h in rest["hits"]}.isdisjoint(
            {(h["output"], h["page"]) for h in first["hits"]})
        assert rest["nextBefore"] is None
        for bad in ("q=%22open", "q=", "", "q=fox&limit=0", "q=fox&since=soon"):
            status, body = http_json(service.url + "search?" + bad)
            assert status == 400 and body["error"], bad
        status, _, page = http_request(service.url + "?q=courier")
        assert status == 200 and b"<mark>courier</mark>" in page


def _no_snapshot() -> Any:
    from ocrpipe.engine.snapshot import SnapshotHolder

    return SnapshotHolder()


def split_settings(make_settings: Callable[..., Settings], **overrides: str) -> Settings:
    """A lone document of 4 pages or more is OCRed as two ranges (whatever this machine's cores)."""
    return dataclasses.replace(make_settings(OCR_CONCURRENCY="2", OCR_SPLIT_MIN_PAGES="4", OCR_SPLIT_PARTS="2",
                                             **overrides), cpu_count=2)


def ocr_inputs(tool_log: Path) -> list[str]:
    """The input of each ocrmypdf call, as its folder and name (``split/range-0.pdf``, ``.batch-…/raw.pdf``)."""
    return ["/".join(Path(c["input"]).parts[-2:]) for c in read_calls(tool_log)
            if c["tool"] == "ocrmypdf" and c["event"] == "start"]


def run_together(driven: Driven, now: float) -> float:
    """Every pending call ends before the next tick: documents prepared together are OCRed together."""
    for _ in range(20):
        now += 1.0
        driven.scheduler.tick(now)
        pending = driven.calls()
        if not pending and driven.scheduler.idle():
            return now
        for _ in pending:
            future, fn, args, kwargs = driven.pop()
            future.set_result(fn(*args, **kwargs))
    raise AssertionError("the scheduler did not finish")


def test_batches_and_split_documents_keep_each_page_s_own_text(make_settings: Callable[..., Settings],
                                                               tool_log: Path) -> None:
    settings = split_settings(make_settings, PREP_CONCURRENCY="3")
    scan_pdf(settings.in_dir / "book.pdf", [f"chapter{n} word{n}x" for n in range(1, 6)])
    driven = Driven(settings)
    now = run_together(driven, 0.0)  # alone: split into ranges
    scan_pdf(settings.in_dir / "a.pdf", ["alpha page"])
    scan_pdf(settings.in_dir / "b.pdf", ["beta page", "gamma"])
    scan_pdf(settings.in_dir / "c.pdf", ["delta page"])
    run_together(driven, now)  # three ready for two slots: a batch
    calls = ocr_inputs(tool_log)
    assert sum(c.startswith("split/range-") for c in calls) == 2, calls
    assert sum(c.endswith("/raw.pdf") and c.startswith(".batch-") for c in calls) == 1, calls
    for n in range(1, 6):
        assert hits(settings, f"word{n}x") == [("book.pdf", n)]
    for word, where in (("alpha", ("a.pdf", 1)), ("beta", ("b.pdf", 1)), ("gamma", ("b.pdf", 2)),
                        ("delta", ("c.pdf", 1))):
        assert hits(settings, word) == [where]


def test_force_reprocess_shows_under_its_new_run(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    driven = run(settings, ("invoice.pdf", INVOICE))
    text_pdf(settings.in_dir / "invoice.pdf", INVOICE)  # the same bytes again: held as a duplicate
    now = driven.run_all(100.0)
    [held] = [p for p in settings.hold_dir.iterdir() if p.is_dir()]
    (held / "decision.json").write_text(json.dumps({"action": "FORCE_REPROCESS"}), encoding="utf-8")
    driven.run_all(now)
    first, second = finished(settings.data_dir)
    assert first["runId"] != second["runId"]
    with JobIndex(settings.index_dir, readonly=True) as index:
        found = search(index, "courier").hits
    assert [(h.runId, Path(h.output or "").name, h.page) for h in found] == [
        (second["runId"], "invoice (2).pdf", 2), (first["runId"], "invoice.pdf", 2)]


def test_search_index_off_stores_no_text_but_keeps_readings(make_settings: Callable[..., Settings],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(SEARCH_INDEX="off")
    scan_pdf(settings.in_dir / "poor.pdf", ["smudged words", "clear words"], confidences=[40, 95])
    Driven(settings).run_all(0.0)
    assert hits(settings, "words") == []
    [record] = finished(settings.data_dir)
    assert record["lowConfidence"] is True and record["lowConfidencePages"] == [1]
    # The text comes afterwards from the output in out/, while the readings stay as they were.
    on = make_settings()
    assert main(["search", "--reindex", "--data", str(on.data_dir)]) == 0
    assert "Reindexed 1 job(s), 2 page(s)" in capsys.readouterr().out
    assert hits(on, "smudged") == [("poor.pdf", 1)]
    with JobIndex(on.index_dir, readonly=True) as index:
        entries, _ = flagged(index, on.low_confidence)
    assert [(e["source"], e["lowConfidencePages"]) for e in entries] == [("poor.pdf", [1])]


def test_reindex_fills_old_jobs_skips_gone_outputs_and_is_safe_to_repeat(
        make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(SEARCH_INDEX="off")
    run(settings, ("kept.pdf", [["walrus"]]), ("gone.pdf", [["narwhal"]]), ("linked.pdf", [["beluga"]]))
    (settings.out_dir / "gone.pdf").unlink()
    linked = settings.out_dir / "linked.pdf"
    linked.unlink()
    linked.symlink_to(settings.out_dir / "kept.pdf")  # a link put there is never followed
    assert main(["search", "--reindex", "--data", str(settings.data_dir)]) == 0
    out = capsys.readouterr().out
    assert "Reindexed 1 job(s), 1 page(s)" in out and "skipped 2 whose output is no longer" in out
    assert hits(settings, "walrus") == [("kept.pdf", 1)]
    assert hits(settings, "narwhal OR beluga") == []
    assert main(["search", "--reindex", "--data", str(settings.data_dir)]) == 0
    assert "Reindexed 0 job(s)" in capsys.readouterr().out


def test_reindex_writes_beside_a_running_writer(make_settings: Callable[..., Settings],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The run's index stays open and keeps writing between the reindex's short transactions."""
    settings = make_settings(SEARCH_INDEX="off")
    driven = run(settings, ("one.pdf", [["otter"]]))
    text_pdf(settings.in_dir / "two.pdf", [["badger"]])
    assert main(["search", "--reindex", "--data", str(settings.data_dir)]) == 0
    now = driven.run_all(100.0)  # the same scheduler, its index open all along, records the next job
    assert main(["search", "--reindex", "--data", str(settings.data_dir)]) == 0
    assert hits(settings, "otter OR badger") == [("two.pdf", 1), ("one.pdf", 1)]
    assert now > 100.0
    capsys.readouterr()


def test_readings_flag_a_document_in_a_batch_and_in_a_split(make_settings: Callable[..., Settings],
                                                            tool_log: Path) -> None:
    settings = split_settings(make_settings, PREP_CONCURRENCY="3", LOW_CONFIDENCE="60")
    scan_pdf(settings.in_dir / "long.pdf", [f"p{n}" for n in range(5)], confidences=[90, 88, None, 42, 95])
    driven = Driven(settings)
    now = run_together(driven, 0.0)
    scan_pdf(settings.in_dir / "clean.pdf", ["fine"], confidences=[93])
    scan_pdf(settings.in_dir / "smudge.pdf", ["fine", "bad"], confidences=[91, 35])
    scan_pdf(settings.in_dir / "other.pdf", ["fine"], confidences=[80])
    run_together(driven, now)
    calls = ocr_inputs(tool_log)
    assert sum(c.startswith("split/range-") for c in calls) == 2 and any(c.startswith(".batch-") for c in calls)
    records = {r["source"]: r for r in finished(settings.data_dir)}
    assert records["clean.pdf"]["lowConfidence"] is False and records["clean.pdf"]["confidence"] == 93.0
    assert records["smudge.pdf"]["lowConfidencePages"] == [2] and records["smudge.pdf"]["confidence"] == 63.0
    assert records["long.pdf"]["lowConfidencePages"] == [4]  # numbered in the document, across the ranges
    with JobIndex(settings.index_dir, readonly=True) as index:
        entries, _ = flagged(index, settings.low_confidence)
        assert [e["source"] for e in entries] == ["smudge.pdf", "long.pdf"]  # newest first
        assert flagged(index, 30.0)[0] == []
        first, cursor = flagged(index, settings.low_confidence, limit=1)
        rest, end = flagged(index, settings.low_confidence, limit=1, before=cursor)
        assert [e["source"] for e in first + rest] == ["smudge.pdf", "long.pdf"] and end is None


def test_a_run_s_row_removed_takes_its_text_and_readings_with_it(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    scan_pdf(settings.in_dir / "a.pdf", ["stoat"], confidences=[20])
    scan_pdf(settings.in_dir / "b.pdf", ["stoat "], confidences=[20])
    Driven(settings).run_all(0.0)
    assert len(hits(settings, "stoat")) == 2
    conn = connect(settings.index_dir / DB_FILE)
    try:
        conn.execute("DELETE FROM jobs WHERE source = 'a.pdf'")  # what retention does to a row
        assert conn.execute(f"SELECT count(*) FROM {TEXT_TABLE}").fetchone()[0] == 1
        assert conn.execute(f"SELECT count(*) FROM {META_TABLE}").fetchone()[0] == 1
    finally:
        conn.close()
    assert hits(settings, "stoat") == [("b.pdf", 1)]


def test_an_index_made_before_search_gets_the_tables_at_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "index" / DB_FILE
    path.parent.mkdir()
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE jobs (id INTEGER PRIMARY KEY, job_key TEXT NOT NULL, run_id TEXT, "
                      "state TEXT NOT NULL, source TEXT, output TEXT, archived TEXT, error_dir TEXT, pages INTEGER, "
                      "kind TEXT, pdfa TEXT, attempts TEXT, timings TEXT, reason TEXT, code INTEGER, "
                      "created_at TEXT, finished_at TEXT, decision TEXT, extra TEXT);"
                      "INSERT INTO jobs (job_key, run_id, state) VALUES ('k', 'r', 'DONE');")
    old.close()
    with JobIndex(path.parent, readonly=True) as reader:  # a reader changes nothing: it says so instead
        with pytest.raises(Exception, match="holds no page text"):
            search(reader, "fox")
    with JobIndex(path.parent) as writer:
        assert search(writer, "fox").hits == []
        assert [e["jobKey"] for e in writer] == ["k"]


@pytest.mark.parametrize("spoil", ["garbage", "wrong-shape", "link"])
def test_a_spoiled_pages_file_stores_no_text_and_the_job_is_done(make_settings: Callable[..., Settings],
                                                                 caplog: pytest.LogCaptureFixture,
                                                                 tmp_path: Path, spoil: str) -> None:
    """pages.json is in work/, which others may write (a cluster's workers): what is not as ocrpipe writes it,
    or is a link, is refused and said; the job is recorded done, without text."""
    settings = make_settings()
    text_pdf(settings.in_dir / "a.pdf", [["otter"]])
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"texts": ["planted words"], "readings": [None]}), encoding="utf-8")
    driven, now = Driven(settings), 0.0
    while not (now and driven.scheduler.idle()):
        now += 1.0
        driven.scheduler.tick(now)
        for _ in range(len(driven.calls())):
            future, fn, args, kwargs = driven.pop()
            result = fn(*args, **kwargs)
            for pages_file in settings.work_dir.glob("*/pages.json"):  # written by the worker, before the tick
                pages_file.unlink()
                if spoil == "link":
                    pages_file.symlink_to(elsewhere)
                else:
                    pages_file.write_text("{not json" if spoil == "garbage" else '{"texts": [1, 2], "readings": []}')
            future.set_result(result)
        assert now < 50
    [record] = finished(settings.data_dir)
    assert record["state"] == "DONE" and "lowConfidence" not in record
    assert hits(settings, "otter OR planted") == []
    assert any("pages.json" in r.getMessage() and "not indexed" in r.getMessage() for r in caplog.records)
    from ocrpipe.index.search import checked_page_record

    good = checked_page_record({"texts": ["abcdef"], "readings": [{"chars": 5, "confidence": 101}]}, max_chars=3)
    assert good is not None and good.texts == ["abc"] and good.readings == [None]  # cut, and a bad reading dropped


def test_spawned_workers_extract_the_text(make_settings: Callable[..., Settings],
                                          scheduler_for: Callable[..., Scheduler]) -> None:
    settings = make_settings()
    text_pdf(settings.in_dir / "spawned.pdf", [["platypus"]])
    scheduler = scheduler_for(settings)
    drive(scheduler)
    assert hits(settings, "platypus") == [("spawned.pdf", 1)]


def test_status_api_and_page_list_what_read_poorly_and_what_just_finished(
        make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings()  # the default threshold, as the CLI reads it too
    scan_pdf(settings.in_dir / "smudge.pdf", ["faint", "fainter"], confidences=[91, 20])
    scan_pdf(settings.in_dir / "<b>clean</b>.pdf", ["crisp"], confidences=[95])
    Driven(settings).run_all(0.0)
    assert main(["status", "--data", str(settings.data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"Read poorly (a page below LOW_CONFIDENCE={settings.low_confidence:g}" in out
    assert f"{settings.out_dir / 'smudge.pdf'}  page(s) 2" in out and "clean" not in out.split("Read poorly")[1]
    assert main(["status", "--json", "--data", str(settings.data_dir)]) == 0
    [poor] = json.loads(capsys.readouterr().out)["readPoorly"]
    assert poor["source"] == "smudge.pdf" and poor["pages"] == [2]
    api = Api(settings, _no_snapshot(), tools={})
    with serve(api, "127.0.0.1", 0) as service:
        status, body = http_json(service.url + "jobs?flag=low-confidence")
        assert status == 200 and [(j["fileName"], j["lowConfidencePages"]) for j in body["jobs"]] == [
            ("smudge.pdf", [2])]
        assert http_json(service.url + "jobs?flag=blurry")[0] == 400
        status, _, raw = http_request(service.url)
    page = raw.decode("utf-8")
    recent = page[page.index("<h2>Recently finished"):page.index("<h2>Last errors")]
    assert "&lt;b&gt;clean&lt;/b&gt;.pdf" in recent and "smudge.pdf" in recent and "<b>clean" not in page
    key = finished(settings.data_dir)[0]["jobKey"]
    assert f'href="/jobs/{key}"' in recent
    poorly = page[page.index("<h2>Read poorly"):]
    assert "smudge.pdf" in poorly and "clean" not in poorly.split("<h2>", 2)[1]
    assert '<input id="q" name="q"' in page and 'http-equiv="refresh"' in page


def test_doctor_says_whether_search_is_available(make_settings: Callable[..., Settings],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from ocrpipe.ops.doctor import doctor

    doctor(make_settings())
    out = capsys.readouterr().out
    assert "Full-text search (SEARCH_INDEX=on):" in out and "ok       FTS5" in out


def test_forget_gone_drops_the_text_of_outputs_removed_by_hand(make_settings: Callable[..., Settings],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings()
    run(settings, ("kept.pdf", [["heron"]]), ("removed.pdf", [["heron egret"]]))
    (settings.out_dir / "removed.pdf").unlink()
    assert len(hits(settings, "heron")) == 2  # nothing is forgotten unasked: out/ may be drained elsewhere
    assert main(["search", "--forget-gone", "--data", str(settings.data_dir)]) == 0
    assert "Forgot the text of 1 job(s)" in capsys.readouterr().out
    assert hits(settings, "heron") == [("kept.pdf", 1)]
