"""A repeated `explorer analyze` is answered from its run record; a changed input file is not."""

from __future__ import annotations

import shutil
from pathlib import Path

from explorer.cli import main
from explorer.models.checkpoints import list_zoo


def test_a_repeated_command_is_replayed_and_a_changed_input_recomputed(
    tmp_path: Path, sample_volume_path, capsys
) -> None:
    volume = tmp_path / "scan.nii.gz"
    shutil.copy(sample_volume_path, volume)
    args = [
        "analyze",
        str(volume),
        "--checkpoint",
        str(list_zoo()[0]),
        "--no-zflip",
        "--formats",
        "none",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    shares = (tmp_path / "out" / "shares.csv").read_bytes()
    (tmp_path / "out" / "shares.csv").unlink()  # the replay must bring the whole folder back
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "the record of an identical earlier run" in again and first.splitlines()[0] == again.splitlines()[0]
    assert (tmp_path / "out" / "shares.csv").read_bytes() == shares
    shutil.copy(sample_volume_path.with_name("mni152_gm_mask_2mm.nii.gz"), volume)  # other contents, same name
    main(args)
    assert "identical earlier run" not in capsys.readouterr().out
