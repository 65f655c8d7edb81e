"""Every failure of `genkit` is one line and a non-zero exit: OSErrors (disk full), bad option values, sizes past
the ceiling (#22 items 5 and 6)."""

import errno
import subprocess
import sys
import time

import pytest

from genkit.cli import main


def test_disk_full_is_one_line_naming_the_output_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import genkit.core.files as files

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    out = tmp_path / "faces"
    assert main(["data", "synth", "--out", str(out), "-n", "2", "--size", "32"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("genkit")]
    assert err == [f"genkit: error: {out}/images/synth_00000.png: No space left on device"]
    assert not out.exists() and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("argv, says", [
    (["stylize", "a.png", "b.png", "-o", "c.png", "--optimize", "--lr", "nan"],
     "argument --lr: must be a finite number, got 'nan'"),
    (["stylize", "a.png", "b.png", "-o", "c.png", "--optimize", "--lr", "-1"],
     "argument --lr: must be a positive number, got '-1'"),
    (["stylize", "a.png", "b.png", "-o", "c.png", "--optimize", "--tolerance", "inf"],
     "argument --tolerance: must be a finite number"),
    (["edit", "--checkpoint", "c", "--target", "t.png", "-o", "o.png", "--face-scale", "0"],
     "argument --face-scale: must be a positive number"),
    # a negative thread count was torch.set_num_threads' RuntimeError traceback (stylize, demo) or a late error
    (["stylize", "a.png", "b.png", "-o", "c.png", "--optimize", "--threads", "-3"],
     "argument --threads: must be >= 0 (0: the default), got '-3'"),
    (["parse", "x.png", "--parser", "p", "-o", "o", "--threads", "-1"], "argument --threads: must be >= 0"),
    (["demo", "--threads", "-2"], "argument --threads: must be >= 0"),
    # an empty output path (an unset shell variable) wrote into the current folder (the trailing bad option stops
    # the old code before it writes anything)
    (["stylize", "a.png", "b.png", "-o", "", "--optimize"], "argument -o/--out: empty path ''"),
    (["stylize", "", "b.png", "-o", "c.png", "--optimize"], "argument content: empty path"),  # '' read the cwd
    (["parse", "x.png", "--parser", "p", "-o", ""], "argument -o/--out: empty path"),
    (["edit", "--checkpoint", "c", "--target", "t.png", "-o", ""], "argument -o/--out: empty path"),
    (["eval", "stats", "real", "-o", ""], "argument -o/--output: empty path"),
    (["export", "pretrained", "src", "-o", ""], "argument -o/--out: empty path"),
    (["data", "synth", "--out", "", "-n", "x"], "argument --out: empty path"),
    (["demo", "--out", " ", "--seed", "x"], "argument --out: empty path ' '"),
])
def test_an_invalid_option_value_is_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and says in err


@pytest.mark.parametrize("argv", [["parse", "x.png", "--parser", "p", "-o", "o", "--size", "100000"],
                                  ["stylize", "a.png", "b.png", "-o", "c.png", "--optimize", "--size", "100000"],
                                  ["stylize", "a.png", "b.png", "-o", "c.png", "--optimize", "--style-size", "9000"],
                                  ["data", "synth", "--out", "o", "--size", "100000"]])
def test_a_size_past_the_ceiling_is_refused_at_once(argv, tmp_path):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "genkit", *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2 and "px ceiling" in proc.stderr and "--allow-large" in proc.stderr
    assert proc.stderr.count("\n") == 1 and not list(tmp_path.iterdir())
    assert elapsed < 5  # well under a second on an idle machine: nothing is imported or read (benchmarks/safety.py)


def test_allow_large_lets_a_size_past_the_ceiling_through(tmp_path, capsys):
    # past the size check, the run goes on to the next problem (here: the missing photo)
    assert main(["stylize", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "c.png"),
                 "--optimize", "--size", "5000", "--allow-large"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["stylize", "parse", "demo"])
def test_every_threads_option_says_what_0_means(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    entry = help_text.split("--threads N ")[-1][:160]  # the option's line (the first mention is the usage)
    assert entry.startswith("CPU threads") and "0 or unset: " in entry, entry
