import numpy as np
import pytest
import torch
from PIL import Image

from genkit.data.schemas import CELEBAMASK_TO_HELEN, HELEN11, load_schema
from genkit.data.synthetic import synthetic_face
from genkit.core.errors import DataError
from genkit.core.files import atomic_path
from genkit.core.metadata import read_metadata
from genkit.core.saving import save_image


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_png_metadata_round_trip(tmp_path):
    p = save_image(torch.rand(3, 8, 8), tmp_path / "x.png", metadata={"random_weights": True, "alpha": 0.6})
    assert read_metadata(p) == {"random_weights": True, "alpha": 0.6}
    p = save_image(Image.new("RGB", (4, 4)), tmp_path / "x.jpg", metadata={"a": 1})
    assert read_metadata(p) == {"a": 1}


def test_celebamask_to_helen_mapping_is_declared_for_every_class():
    lut = CELEBAMASK_TO_HELEN.lut()
    assert len(lut) == 19 and lut.max() <= 10
    names = CELEBAMASK_TO_HELEN.source.classes
    assert HELEN11.classes[lut[names.index("l_eye")]] == "left_eye"
    assert HELEN11.classes[lut[names.index("mouth")]] == "inner_mouth"
    assert HELEN11.classes[lut[names.index("cloth")]] == "background"


def test_flip_permutation_swaps_left_right():
    lut = HELEN11.flip_permutation()
    assert lut[HELEN11.index("left_eye")] == HELEN11.index("right_eye")
    assert lut[HELEN11.index("right_brow")] == HELEN11.index("left_brow")
    assert lut[HELEN11.index("nose")] == HELEN11.index("nose")


def test_schema_file_errors(tmp_path):
    bad = tmp_path / "schema.yaml"
    bad.write_text("classes: 3\n")
    with pytest.raises(DataError, match="schema.yaml: 'classes' must be a list"):
        load_schema(bad)
    bad.write_text("classes: {0: bg, 2: face}\n")
    with pytest.raises(DataError, match="without gaps"):
        load_schema(bad)
    good = tmp_path / "s.json"
    good.write_text('{"name": "two", "classes": ["bg", "face"]}')
    assert load_schema(good).num_classes == 2


def test_synthetic_faces_are_seeded_and_have_all_helen_classes():
    a_img, a_lab = synthetic_face(96, 3)
    b_img, b_lab = synthetic_face(96, 3)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    c_img, _ = synthetic_face(96, 4)
    assert not np.array_equal(a_img, c_img)
    present = set()
    for seed in range(10):
        _, lab = synthetic_face(96, seed)
        assert lab.min() >= 0 and lab.max() <= 10
        present |= set(np.unique(lab).tolist())
    assert present == set(range(11))
    assert a_img.dtype == np.uint8 and a_img.shape == (96, 96, 3)
