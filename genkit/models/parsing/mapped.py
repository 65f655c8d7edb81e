"""Parsers in another schema: a parser whose classes map onto the expected schema through a declared table.

A 19-class parser (the pretrained BiSeNet, or genkit's own parser trained on CelebAMask-HQ) serves consumers that
work in Helen-11 (the portrait editor, the parsing loss, the mask-consistency metric) by summing its class
probabilities per target class: the output is ``log P(target class)``, a proper log-distribution, so argmax,
cross-entropy and mIoU work on it unchanged. Summing probabilities, not mapping the source's argmax, is what
makes "hair 0.4, neck 0.3, cloth 0.3" background (0.6) in Helen-11.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from genkit.data.schemas import LabelSchema, SchemaMapping, find_mapping, get_schema
from genkit.core.errors import CheckpointError, GenkitError


class SchemaMappedParser(nn.Module):
    """Wraps ``parser`` (logits in ``mapping.source``) to output log-probabilities in ``mapping.target``.

    Exposes the parser interface of the target schema (``schema``, ``num_classes``) and passes on the wrapped
    parser's ``image_size`` and ``multiple``; ``source_schema`` and ``parser`` say what is inside. A target class
    no source class maps to gets the log of the smallest positive float (never predicted, finite loss).
    """

    def __init__(self, parser: nn.Module, mapping: SchemaMapping):
        super().__init__()
        n_source = getattr(parser, "num_classes", mapping.source.num_classes)
        if n_source != mapping.source.num_classes:
            raise ValueError(f"parser has {n_source} classes, mapping {mapping.source.name}->{mapping.target.name} "
                             f"expects {mapping.source.num_classes}")
        self.parser = parser
        self.mapping = mapping
        self.schema = mapping.target
        self.source_schema = mapping.source
        self.num_classes = mapping.target.num_classes
        self.image_size = getattr(parser, "image_size", None)
        self.multiple = getattr(parser, "multiple", 1)
        self.class_weights = None  # the parser's training weights belong to its own classes
        lut = torch.as_tensor(mapping.lut())
        self._groups = [torch.nonzero(lut == t).flatten() for t in range(self.num_classes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(self.parser(x).float(), dim=1)
        floor = torch.log(torch.tensor(torch.finfo(log_probs.dtype).tiny))
        out = [log_probs.index_select(1, idx.to(log_probs.device)).logsumexp(1) if idx.numel()
               else torch.full_like(log_probs[:, 0], float(floor)) for idx in self._groups]
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Label map (B, H, W) int64 in the target schema."""
        return self(x).argmax(dim=1)


def adapt_parser(parser: nn.Module, expected_schema: LabelSchema | str | Path | None,
                 where: str | Path = "parser") -> nn.Module:
    """``parser`` itself when its ``schema`` is the expected one (or none is expected), wrapped in a
    :class:`SchemaMappedParser` when a mapping is declared, else the standard :class:`CheckpointError`."""
    if expected_schema is None:
        return parser
    from genkit.models.parsing.checkpoint import check_schema

    try:
        expected = get_schema(expected_schema)
    except GenkitError as exc:
        raise CheckpointError(f"expected schema cannot be resolved: {exc}") from None
    found = getattr(parser, "schema", None)
    if not isinstance(found, LabelSchema):
        raise ValueError(f"{where}: the parser declares no label schema ('schema' attribute); load it with "
                         "genkit.models.parsing.load_parser")
    if found.classes == expected.classes:
        return parser
    mapping = find_mapping(found, expected)
    if mapping is None:
        check_schema(found, expected, where)  # raises, naming both schemas
    return SchemaMappedParser(parser, mapping)
