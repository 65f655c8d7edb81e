import pytest
from torch.utils.data import DataLoader, Dataset
from genkit.core.errors import DataError

class Bad(Dataset):
    def __len__(self): return 2
    def __getitem__(self, i): raise DataError("/data/x.png", "cannot be decoded as an image")

def test_worker_error_stays_dataerror():
    with pytest.raises(DataError) as exc:
        next(iter(DataLoader(Bad(), num_workers=1)))
    assert str(exc.value) == "/data/x.png: cannot be decoded as an image"
