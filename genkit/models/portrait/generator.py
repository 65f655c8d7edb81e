"""The mask-guided generator of paper (A): local embedding + mask-guided generative + background fusing networks.

Data flow for a target mask ``m_t`` (labels), component codes ``z`` and a target image ``x_t``::

    one_hot(m_t) --MaskEncoder (7x7, 2x stride-2)--> M  (4*ngf, H/4, W/4)
    z[eye/mouth] --feature decoders--> crop-sized maps, pasted at m_t's component centres onto the H/4 grid
    z[skin/hair] --feature decoders--> full-grid maps (masked to m_t's skin/hair region)
    concat(M, 5 maps) --1x1 conv--> res blocks (9) --2x upsampling--> G  (ngf, H, W)
    x_t * bg(m_t) --BackgroundEncoder--> B (full resolution)
    concat(G * gate, B) --3x3 conv--> 7x7 output conv --> tanh image

``gate`` (``background_gate=True``) is the target face region (everything but background) dilated by a few
pixels: the generator's features are zeroed far outside the face, so there the output depends only on the
background branch and the kept background is, *by construction*, untouched by component edits (beyond a
band of ``gate_dilation`` + the receptive field of the last two convs). With the gate off, this is the paper's
plain feature-space fusion and background keeping is learned.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from genkit.data.schemas import LabelSchema, get_schema
from genkit.data.transforms import one_hot
from genkit.models.portrait.components import FEATURE_STRIDE, ComponentLayout, dilate
from genkit.models.portrait.encoders import ComponentCodes, LocalEmbedding
from genkit.nn.blocks import ConvBlock, ResBlock, UpBlock


class MaskEncoder(nn.Module):
    """One-hot mask -> (4 ngf, H/4, W/4): a 7x7 conv and two stride-2 convs."""

    def __init__(self, num_classes: int, ngf: int = 64, norm: str = "instance"):
        super().__init__()
        self.net = nn.Sequential(ConvBlock(num_classes, ngf, 7, norm=norm),
                                 ConvBlock(ngf, ngf * 2, 3, stride=2, norm=norm),
                                 ConvBlock(ngf * 2, ngf * 4, 3, stride=2, norm=norm))
        self.out_channels = ngf * 4

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.net(onehot)


class BackgroundEncoder(nn.Module):
    """Masked background image (+ its mask) -> full-resolution features.

    A stride-2 level with residual blocks gives it enough context to fill small unknown areas (pixels that
    are background in the target mask but were face in the photo, e.g. after shrinking a component).
    """

    def __init__(self, channels: int = 32, norm: str = "instance", n_res: int = 2):
        super().__init__()
        self.stem = ConvBlock(4, channels, 7, norm=norm)
        self.down = nn.Sequential(ConvBlock(channels, channels * 2, 3, stride=2, norm=norm),
                                  *[ResBlock(channels * 2, norm=norm) for _ in range(n_res)])
        self.up = UpBlock(channels * 2, channels, norm=norm)
        self.merge = ConvBlock(channels * 2, channels, 3, norm=norm)
        self.out_channels = channels

    def forward(self, image: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        s = self.stem(torch.cat([image * bg, bg], 1))
        return self.merge(torch.cat([s, self.up(self.down(s))], 1))


class PortraitGenerator(nn.Module):
    """The full generator. All constructor arguments are plain values (see :meth:`config`)."""

    def __init__(self, schema: str | dict | LabelSchema = "helen11", image_size: int = 256, latent_dim: int = 512,
                 feature_channels: int = 256, encoder_channels: int = 32, encoder_max_channels: int = 256,
                 bottleneck_channels: int = 64,
                 variational: bool = False, ngf: int = 64, n_res_blocks: int = 9, background: bool = True,
                 background_channels: int = 32, background_gate: bool = True, gate_dilation: int = 8,
                 mask_full_components: bool = True, norm: str = "instance"):
        super().__init__()
        if isinstance(schema, dict):
            from genkit.models.parsing.checkpoint import schema_from_dict

            schema = schema_from_dict(schema)
        self.schema = get_schema(schema)
        self.layout = ComponentLayout(self.schema, image_size)
        self.image_size = int(image_size)
        self._config = dict(
            schema=self.schema.to_dict(), image_size=int(image_size), latent_dim=latent_dim,
            feature_channels=feature_channels, encoder_channels=encoder_channels,
            encoder_max_channels=encoder_max_channels, bottleneck_channels=bottleneck_channels,
            variational=bool(variational), ngf=ngf,
            n_res_blocks=n_res_blocks, background=bool(background), background_channels=background_channels,
            background_gate=bool(background_gate), gate_dilation=gate_dilation,
            mask_full_components=bool(mask_full_components), norm=norm)
        self.variational = bool(variational)
        self.background = bool(background)
        self.background_gate = bool(background_gate) and self.background
        # the dilation is given at 256 px and scaled to the resolution
        self.gate_pixels = max(1, round(gate_dilation * image_size / 256))
        self.mask_full_components = bool(mask_full_components)

        self.embedding = LocalEmbedding(self.layout, latent_dim, feature_channels, encoder_channels,
                                        encoder_max_channels, variational, norm, bottleneck_channels)
        self.mask_encoder = MaskEncoder(self.schema.num_classes, ngf, norm)
        trunk = self.mask_encoder.out_channels
        self.fuse = nn.Conv2d(trunk + feature_channels * len(self.layout.names), trunk, 1)
        self.fuse_act = nn.ReLU(inplace=True)
        self.res_blocks = nn.Sequential(*[ResBlock(trunk, norm=norm) for _ in range(n_res_blocks)])
        self.upsample = nn.Sequential(UpBlock(trunk, ngf * 2, norm=norm), UpBlock(ngf * 2, ngf, norm=norm))
        if self.background:
            self.background_encoder = BackgroundEncoder(background_channels, norm)
            # no norm here: instance statistics over the whole image would let face edits leak into the background
            self.background_fuse = ConvBlock(ngf + background_channels, ngf, 3, norm="none")
        self.to_image = nn.Sequential(nn.Conv2d(ngf, 3, 7, padding=3, padding_mode="reflect"), nn.Tanh())

    # ------------------------------------------------------------------------------------------ metadata
    def config(self) -> dict:
        """The constructor arguments as plain values (stored in checkpoints and exports)."""
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._config.items()}

    @property
    def component_names(self) -> tuple[str, ...]:
        return self.layout.names

    # ---------------------------------------------------------------------------------------------- steps
    def check_inputs(self, image: torch.Tensor | None, mask: torch.Tensor) -> None:
        self.layout.check_mask(mask)
        s = self.image_size
        if tuple(mask.shape[-2:]) != (s, s):
            raise ValueError(f"mask is {mask.shape[-1]}x{mask.shape[-2]}, the model works at {s}x{s}")
        if image is not None:
            if image.dim() != 4 or image.shape[1] != 3:
                raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
            if image.shape[-2:] != mask.shape[-2:] or image.shape[0] != mask.shape[0]:
                raise ValueError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} sizes differ")

    def encode(self, image: torch.Tensor, mask: torch.Tensor, sample: bool = False) -> ComponentCodes:
        """Component codes of ``image`` (values in [-1, 1]) with its label map ``mask``."""
        self.check_inputs(image, mask)
        inputs = self.layout.extract(image, mask)
        return self.embedding.encode(inputs, self.layout.presence(mask), sample=sample)

    def component_inputs(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.layout.extract(image, mask)

    def placed_features(self, codes: ComponentCodes, target_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each component's decoded feature map on the (H/4, W/4) grid, placed for ``target_mask``."""
        feats = self.embedding.decode_features(codes)
        centres = self.layout.centres(target_mask)
        present = self.layout.presence(target_mask)
        out = {}
        for name in self.layout.names:
            f = feats[name]
            keep = present[name].to(f.dtype).view(-1, 1, 1, 1)
            if name in self.layout.crop_size:
                f = self.layout.place(f, centres[name])
            elif self.mask_full_components:
                region = F.avg_pool2d(self.layout.region(target_mask, name), FEATURE_STRIDE).to(f.dtype)
                f = f * region
            out[name] = f * keep
        return out

    def background_mask(self, target_mask: torch.Tensor) -> torch.Tensor:
        return self.layout.background(target_mask)

    def gate(self, target_mask: torch.Tensor) -> torch.Tensor:
        """Where the generator's own features count: the face region dilated by ``gate_pixels``."""
        face = 1.0 - self.layout.background(target_mask)
        return dilate(face, self.gate_pixels)

    def synthesize(self, target_mask: torch.Tensor, codes: ComponentCodes, background_image: torch.Tensor | None = None,
                   background_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Render ``codes`` into the layout of ``target_mask``, keeping ``background_image``'s background.

        ``background_mask`` (B, 1, H, W) says which pixels of ``background_image`` are known background
        (default: the target mask's background class).
        """
        self.check_inputs(background_image, target_mask)
        onehot = one_hot(target_mask, self.schema.num_classes)
        m = self.mask_encoder(onehot)
        placed = self.placed_features(codes, target_mask)
        h = self.fuse_act(self.fuse(torch.cat([m] + [placed[n].to(m.dtype) for n in self.layout.names], 1)))
        h = self.upsample(self.res_blocks(h))
        if self.background:
            if background_mask is None:
                background_mask = self.background_mask(target_mask)
            if background_image is None:
                background_image = torch.zeros(target_mask.shape[0], 3, *target_mask.shape[-2:],
                                               device=target_mask.device, dtype=h.dtype)
                background_mask = torch.zeros_like(background_mask)
            b = self.background_encoder(background_image, background_mask.to(background_image.dtype))
            if self.background_gate:
                h = h * self.gate(target_mask).to(h.dtype)
            h = self.background_fuse(torch.cat([h, b.to(h.dtype)], 1))
        return self.to_image(h)

    def decode_components(self, codes: ComponentCodes) -> dict[str, torch.Tensor]:
        """The image decoders' reconstructions of the component inputs (local reconstruction loss)."""
        return self.embedding.decode_images(codes)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Reconstruct ``image`` from its own mask and components."""
        return self.synthesize(mask, self.encode(image, mask, sample=sample), image)
