"""The tool versions and Tesseract languages remembered between starts (tools/probecache.py): a start with
the cache gives exactly the profile a fresh probe gives, a replaced tool or a new language is asked again,
and a cache file that is not exactly what ocrpipe writes (a link, a FIFO, wrong types, paths as keys…)
counts as no cache at all, with nothing outside the index folder read or written."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ocrpipe.config import Settings
from ocrpipe.tools.check import check_tools, with_candidates
from ocrpipe.tools.probecache import CACHE_FILE, MAX_AGE_SECONDS, ProbeCache

TOOLS = ("7z", "tesseract", "gs", "soffice")
# One script per tool, so that one of them can be replaced alone. Each call is appended to calls.log.
SCRIPT = '''import os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.log"), "a") as log:
    log.write(os.path.basename(__file__) + " " + " ".join(sys.argv[1:]) + "\\n")
if "--list-langs" in sys.argv:
    folder = os.environ["FAKE_TESSDATA"]
    langs = sorted(n[:-12] for n in os.listdir(folder) if n.endswith(".traineddata"))
    print(f'List of available languages in "{folder}/" ({len(langs)}):', *langs, sep="\\n")
else:
    print("faketool VERSION")
'''


def write_tool(folder: Path, tool: str, version: str) -> Path:
    script = folder / f"{tool}.py"
    script.write_text(SCRIPT.replace("VERSION", version), encoding="utf-8")
    return script


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        write_tool(folder, tool, "1.0.0")
    return folder


@pytest.fixture
def tessdata(tmp_path: Path) -> Path:
    folder = tmp_path / "tessdata"
    folder.mkdir()
    for lang in ("eng", "fra", "osd"):
        (folder / f"{lang}.traineddata").write_bytes(b"fake")
    return folder


@pytest.fixture
def settings(make_settings: Callable[..., Settings], bin_dir: Path, tessdata: Path) -> Settings:
    commands = {name: f'"{sys.executable}" -S "{bin_dir / (tool + ".py")}"'
                for name, tool in (("SEVEN_ZIP", "7z"), ("TESSERACT", "tesseract"), ("GHOSTSCRIPT", "gs"),
                                   ("SOFFICE", "soffice"))}
    # OCR_LANG=auto: the installed languages are in the profile too (as the candidates).
    return make_settings(**commands, OCR_LANG="auto", OFFICE_INPUT="auto", FAKE_TESSDATA=str(tessdata))


def start(settings: Settings, cache: ProbeCache | None) -> tuple[dict[str, Any], Settings]:
    """What ``ocrpipe run`` does at start: the profile, the settings the workers get, the cache written."""
    profile = check_tools(settings, cache)
    resolved = with_candidates(settings, cache)
    if cache is not None:
        cache.save()
    return profile, resolved


def cache_file(settings: Settings) -> Path:
    return settings.index_dir / CACHE_FILE


def fresh(settings: Settings) -> tuple[dict[str, Any], Settings]:
    return start(settings, ProbeCache.for_index(settings.index_dir, trusted=False))


def test_a_second_start_asks_no_tool_and_gets_exactly_the_profile_a_probe_gives(settings: Settings,
                                                                                bin_dir: Path) -> None:
    first = fresh(settings)
    asked = calls(bin_dir)
    assert sorted(asked) == ["7z.py ", "gs.py --version", "soffice.py --version", "tesseract.py --list-langs",
                             "tesseract.py --version"], "each tool asked once, its languages once"
    assert cache_file(settings).is_file()

    second = fresh(settings)
    assert calls(bin_dir) == asked, "nothing asked again"
    uncached = start(settings, None)  # as ocrpipe doctor does: every tool asked
    assert first == second == uncached
    assert second[1].ocr_lang_candidates == ("eng", "fra")
    assert second[0]["tool_versions"]["soffice"] == "1.0.0"


@pytest.mark.parametrize("same_size", [False, True], ids=["new-size", "same-size-new-mtime"])
def test_a_replaced_tool_is_asked_again(settings: Settings, bin_dir: Path, same_size: bool) -> None:
    fresh(settings)
    before = os.stat(bin_dir / "gs.py")
    script = write_tool(bin_dir, "gs", "2.0.0" if same_size else "2.0.0.1")
    os.utime(script, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    asked = len(calls(bin_dir))

    profile, _ = fresh(settings)
    assert calls(bin_dir)[asked:] == ["gs.py --version"], "only the replaced tool"
    assert profile["tool_versions"]["ghostscript"] == ("2.0.0" if same_size else "2.0.0.1")
    assert (profile, _) == start(settings, None)
    asked = len(calls(bin_dir))
    assert fresh(settings)[0] == profile and len(calls(bin_dir)) == asked, "the new version is remembered"


def test_a_new_language_is_noticed(settings: Settings, bin_dir: Path, tessdata: Path) -> None:
    fresh(settings)
    (tessdata / "deu.traineddata").write_bytes(b"fake")
    asked = len(calls(bin_dir))
    profile, resolved = fresh(settings)
    assert calls(bin_dir)[asked:] == ["tesseract.py --list-langs"]
    assert resolved.ocr_lang_candidates == ("deu", "eng", "fra")
    assert (profile, resolved) == start(settings, None)


def test_another_tessdata_prefix_is_asked_again(settings: Settings, bin_dir: Path, tessdata: Path) -> None:
    fresh(settings)
    asked = len(calls(bin_dir))
    moved = Settings(**{**settings.__dict__, "tool_env": (*settings.tool_env, ("TESSDATA_PREFIX", str(tessdata)))})
    fresh(moved)
    assert calls(bin_dir)[asked:] == ["tesseract.py --list-langs"]


def test_an_old_answer_is_asked_again(settings: Settings, bin_dir: Path) -> None:
    fresh(settings)
    document = json.loads(cache_file(settings).read_text(encoding="utf-8"))
    for entry in document["entries"]:
        entry["probedAt"] -= MAX_AGE_SECONDS + 60
    cache_file(settings).write_text(json.dumps(document), encoding="utf-8")
    asked = len(calls(bin_dir))
    fresh(settings)
    assert len(calls(bin_dir)) == asked + 5


def test_a_tool_that_is_not_found_is_not_remembered(make_settings: Callable[..., Settings], bin_dir: Path,
                                                    tessdata: Path, tmp_path: Path) -> None:
    """OFFICE_INPUT=auto without LibreOffice: asked at every start (it costs nothing), installed later: seen."""
    settings = make_settings(SOFFICE=str(tmp_path / "no-such-soffice"), FAKE_TESSDATA=str(tessdata))
    assert "soffice" not in fresh(settings)[0]["tool_versions"]
    document = json.loads(cache_file(settings).read_text(encoding="utf-8"))
    assert all(entry["command"] != [str(tmp_path / "no-such-soffice")] for entry in document["entries"])


# ----- hostile cache files ----------------------------------------------------------------------------------


def tamper(document: dict[str, Any], how: str) -> Any:
    """The valid cache of a start, changed in one way that must make it count as absent."""
    entry = document["entries"][0]
    if how == "format-as-text":
        document["format"] = "1"
    elif how == "format-as-bool":
        document["format"] = True
    elif how == "another-machine":
        document["machine"] = document["machine"] + "-elsewhere"
    elif how == "extra-field":
        document["entries"][1]["note"] = "hi"
    elif how == "path-as-key":
        document["/etc/passwd"] = document.pop("entries")
    elif how == "path-as-entry-key":
        entry["/etc/passwd"] = entry.pop("identity")
    elif how == "entries-as-object":
        document["entries"] = {str(n): e for n, e in enumerate(document["entries"])}
    elif how == "identity-as-number":
        entry["identity"] = 12345
    elif how == "identity-not-hex":
        entry["identity"] = "Z" * 64
    elif how == "version-not-a-version":
        for e in document["entries"]:
            if e["probe"] == "version":
                e["result"] = "1.0; rm -rf /"
    elif how == "version-as-list":
        for e in document["entries"]:
            if e["probe"] == "version":
                e["result"] = ["1.0.0"]
    elif how == "languages-with-a-path":
        for e in document["entries"]:
            if e["probe"] == "languages":
                e["result"] = ["eng", "../../etc/passwd"]
    elif how == "tessdata-relative":
        for e in document["entries"]:
            if e["probe"] == "languages":
                e["folders"] = ["../../elsewhere"]
    elif how == "command-not-text":
        entry["command"] = [1, 2]
    elif how == "probed-as-text":
        entry["probedAt"] = "now"
    elif how == "probed-in-the-future":
        entry["probedAt"] = entry["probedAt"] + 10 * 24 * 3600
    elif how == "probed-nan":
        return json.dumps(document).replace(str(entry["probedAt"]), "NaN", 1)
    elif how == "twice":
        document["entries"].append(dict(entry))
    elif how == "not-json":
        return "{not json"
    elif how == "deeply-nested":
        return "[" * 100_000 + "]" * 100_000
    elif how == "a-list":
        return [document]
    elif how == "too-big":
        document["padding"] = "x" * 300_000
    else:
        raise AssertionError(how)
    return document


HOW = ["format-as-text", "format-as-bool", "another-machine", "extra-field", "path-as-key", "path-as-entry-key",
       "entries-as-object", "identity-as-number", "identity-not-hex", "version-not-a-version", "version-as-list",
       "languages-with-a-path", "tessdata-relative", "command-not-text", "probed-as-text", "probed-in-the-future",
       "probed-nan", "twice", "not-json", "deeply-nested", "a-list", "too-big"]


@pytest.mark.parametrize("how", HOW)
def test_a_cache_file_not_as_written_counts_as_none(settings: Settings, bin_dir: Path, how: str) -> None:
    expected = fresh(settings)
    document = json.loads(cache_file(settings).read_text(encoding="utf-8"))
    changed = tamper(document, how)
    cache_file(settings).write_text(changed if isinstance(changed, str) else json.dumps(changed), encoding="utf-8")
    asked = len(calls(bin_dir))

    assert fresh(settings) == expected
    assert len(calls(bin_dir)) == asked + 5, "every tool asked again"
    assert fresh(settings) == expected and len(calls(bin_dir)) == asked + 5, "and the rewritten cache is used"


def test_a_link_in_place_of_the_cache_is_not_read_and_what_it_points_to_is_untouched(
        settings: Settings, bin_dir: Path, tmp_path: Path) -> None:
    fresh(settings)
    outside = tmp_path / "outside.json"
    cache_file(settings).replace(outside)  # a valid cache, planted elsewhere and linked to
    before = outside.read_bytes()
    try:
        cache_file(settings).symlink_to(outside)
    except OSError:
        pytest.skip("no symbolic links here")
    asked = len(calls(bin_dir))
    fresh(settings)
    assert len(calls(bin_dir)) == asked + 5, "not read through the link"
    assert outside.read_bytes() == before, "what the link points to is not written either"
    assert not cache_file(settings).is_symlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_in_place_of_the_cache_does_not_block(settings: Settings, bin_dir: Path) -> None:
    settings.index_dir.mkdir(parents=True)
    os.mkfifo(cache_file(settings))
    assert fresh(settings) == start(settings, None)
    assert cache_file(settings).is_file()


def test_a_folder_in_place_of_the_cache_costs_only_the_probes(settings: Settings, bin_dir: Path) -> None:
    cache_file(settings).mkdir(parents=True)
    assert fresh(settings) == start(settings, None)
    assert fresh(settings) == start(settings, None)
    assert cache_file(settings).is_dir()


def test_an_index_folder_that_is_a_link_gets_no_cache(settings: Settings, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settings.data_dir.mkdir(parents=True)
    try:
        settings.index_dir.symlink_to(elsewhere, target_is_directory=True)
    except OSError:
        pytest.skip("no symbolic links here")
    assert fresh(settings) == start(settings, None)
    assert list(elsewhere.iterdir()) == [], "nothing written through the link"
    trusted = ProbeCache.for_index(settings.index_dir, trusted=True)  # INDEX_DIR set by the operator: used
    assert trusted.path == settings.index_dir / CACHE_FILE


def test_doctor_always_asks_the_tools_themselves(settings: Settings, bin_dir: Path) -> None:
    from ocrpipe.ops.doctor import doctor

    fresh(settings)
    asked = len(calls(bin_dir))
    doctor(settings, out=io.StringIO())
    assert {line.split()[0] for line in calls(bin_dir)[asked:]} == {f"{tool}.py" for tool in TOOLS}


def test_one_old_answer_is_asked_again_alone(settings: Settings, bin_dir: Path) -> None:
    fresh(settings)
    document = json.loads(cache_file(settings).read_text(encoding="utf-8"))
    [gs] = [e for e in document["entries"] if e["command"][-1].endswith("gs.py")]
    gs["probedAt"] -= MAX_AGE_SECONDS + 60
    cache_file(settings).write_text(json.dumps(document), encoding="utf-8")
    asked = len(calls(bin_dir))
    fresh(settings)
    assert calls(bin_dir)[asked:] == ["gs.py --version"]
