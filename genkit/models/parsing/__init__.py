"""Face parsing: the network, its training module, the frozen-parser loss and parser loading.

Public API::

    from genkit.models.parsing import ParserNet, ParsingLoss, load_parser, ParserModule

``load_parser`` also loads the pretrained BiSeNet (``"bisenet-celebamask"`` or a ``79999_iter.pth`` path,
:mod:`genkit.models.parsing.bisenet`) and maps parsers of another schema onto the expected one
(:mod:`genkit.models.parsing.mapped`).
"""

from genkit.models.parsing.checkpoint import load_mask_consistency, load_parser, load_parser_with_info
from genkit.models.parsing.loss import ParsingLoss
from genkit.models.parsing.network import ParserNet

__all__ = ["ParserNet", "ParsingLoss", "load_mask_consistency", "load_parser", "load_parser_with_info", "ParserModule"]


def __getattr__(name: str):
    # The Lightning module imports lightning/torchmetrics; load it only when asked for.
    if name == "ParserModule":
        from genkit.models.parsing.module import ParserModule

        return ParserModule
    raise AttributeError(name)
