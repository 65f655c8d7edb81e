"""Every command refuses to write over its own inputs (the corpus in tests/fixtures/user_mistakes.py): exit 2 before
any work, one line naming the paths, and every file the user had byte-identical afterwards."""

import pytest

from fixtures.user_mistakes import MISTAKES, snapshot
from genkit.cli import main


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_no_output_replaces_an_input(mistake, tmp_path, capsys):
    argv = mistake.build(tmp_path)
    before = snapshot(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in mistake.says:
        assert fragment in err, err
    assert str(tmp_path) in err  # the paths are named
    assert snapshot(tmp_path) == before  # nothing written, nothing replaced
    assert not [p for p in tmp_path.rglob(".genkit-*")]  # no staging folder left behind
