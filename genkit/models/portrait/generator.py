"""The mask-guided generator of paper (A): local embedding + mask-guided generative + background fusing networks.

Data flow for a target mask ``m_t`` (labels), component codes ``z``, a photo ``x`` and the pixels of it that are
known background ``k`` (outside the edit region)::

    one_hot(m_t) --MaskEncoder (7x7, 2x stride-2)--> M  (4*ngf, H/4, W/4)
    z[eye/mouth] --feature decoders--> crop-sized maps, pasted at m_t's component centres onto the H/4 grid
    z[skin/hair] --feature decoders--> full-grid maps (masked to m_t's skin/hair region)
    z[every component] --linear--> a vector broadcast over the component's region in m_t (added to its map), so
                                   each region's features carry its own code directly (as SEAN's per-region codes);
                                   and one vector per class of the component is added to G at full resolution (a
                                   short path from code to colour)
    x * k, k --BackgroundEncoder--> B_low (H/4, into the trunk: context to fill uncovered background)
                                    B_high (full resolution, fused before the output convolution)
    concat(M, 5 maps, B_low) --1x1 conv--> res blocks (9) --2x upsampling--> G  (ngf, H, W)
    concat(G, B_high, one_hot(m_t)) --3x3 conv--> 7x7 output conv --> tanh image

:meth:`PortraitGenerator.render` then pastes the generated face into the photo (:mod:`compositing`): outside the
edit region, grown by ``paste_grow`` and feathered over ``paste_feather`` pixels (both given at 256 px), the
result *is* the photo.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from genkit.data.schemas import LabelSchema, get_schema
from genkit.data.transforms import one_hot
from genkit.models.portrait import compositing
from genkit.models.portrait.components import FEATURE_STRIDE, ComponentLayout
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
    """Known background pixels (+ their mask) -> features at H/4 (for the trunk) and at full resolution.

    Two stride-2 levels and residual blocks give the trunk the context it needs to fill background that the photo
    does not show (hair removed, face made smaller); the full-resolution path keeps the texture near the seam.
    """

    def __init__(self, channels: int = 32, norm: str = "instance", n_res: int = 2):
        super().__init__()
        c = channels
        self.stem = ConvBlock(4, c, 7, norm=norm)
        self.down = nn.Sequential(ConvBlock(c, c * 2, 3, stride=2, norm=norm),
                                  ConvBlock(c * 2, c * 4, 3, stride=2, norm=norm),
                                  *[ResBlock(c * 4, norm=norm) for _ in range(n_res)])
        self.up = nn.Sequential(UpBlock(c * 4, c * 2, norm=norm), UpBlock(c * 2, c, norm=norm))
        self.merge = ConvBlock(c * 2, c, 3, norm=norm)
        self.out_channels = c
        self.low_channels = c * 4

    def forward(self, image: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(torch.cat([image * known, known], 1))
        low = self.down(s)
        return low, self.merge(torch.cat([s, self.up(low)], 1))


class PortraitGenerator(nn.Module):
    """The full generator. All constructor arguments are plain values (see :meth:`config`)."""

    def __init__(self, schema: str | dict | LabelSchema = "helen11", image_size: int = 256, latent_dim: int = 512,
                 feature_channels: int = 256, encoder_channels: int = 32, encoder_max_channels: int = 256,
                 bottleneck_channels: int = 64, variational: bool = False, ngf: int = 64, n_res_blocks: int = 9,
                 background: bool = True, background_channels: int = 32, mask_full_components: bool = True,
                 norm: str = "instance", paste_grow: float = 4.0, paste_feather: float = 8.0,
                 broadcast_codes: bool = True, region_pooling: bool = True):
        super().__init__()
        if isinstance(schema, dict):
            from genkit.models.parsing.checkpoint import schema_from_dict

            schema = schema_from_dict(schema)
        self.schema = get_schema(schema)
        self.layout = ComponentLayout(self.schema, image_size)
        self.image_size = int(image_size)
        if paste_grow < 0 or paste_feather < 0:
            raise ValueError("paste_grow and paste_feather must be >= 0")
        self._config = dict(
            schema=self.schema.to_dict(), image_size=int(image_size), latent_dim=latent_dim,
            feature_channels=feature_channels, encoder_channels=encoder_channels,
            encoder_max_channels=encoder_max_channels, bottleneck_channels=bottleneck_channels,
            variational=bool(variational), ngf=ngf, n_res_blocks=n_res_blocks, background=bool(background),
            background_channels=background_channels, mask_full_components=bool(mask_full_components), norm=norm,
            paste_grow=float(paste_grow), paste_feather=float(paste_feather), broadcast_codes=bool(broadcast_codes),
            region_pooling=bool(region_pooling))
        self.variational = bool(variational)
        self.background = bool(background)
        self.mask_full_components = bool(mask_full_components)
        # the paste band, given at 256 px, at this resolution
        self.paste_grow = compositing.scaled_pixels(paste_grow, image_size)
        self.paste_feather = compositing.scaled_pixels(paste_feather, image_size)

        self.embedding = LocalEmbedding(self.layout, latent_dim, feature_channels, encoder_channels,
                                        encoder_max_channels, variational, norm, bottleneck_channels, region_pooling)
        self.code_broadcast = (nn.ModuleDict({n: nn.Linear(latent_dim, feature_channels) for n in self.layout.names})
                               if broadcast_codes else None)
        # and again at full resolution, one vector per class of the component (lips and inner mouth apart), just
        # before the output layers: a short path from code to colour
        self.code_broadcast_full = (nn.ModuleDict({n: nn.Linear(latent_dim, ngf * len(self.layout.labels[n]))
                                                   for n in self.layout.names}) if broadcast_codes else None)
        self.mask_encoder = MaskEncoder(self.schema.num_classes, ngf, norm)
        trunk = self.mask_encoder.out_channels
        fuse_in = trunk + feature_channels * len(self.layout.names)
        if self.background:
            self.background_encoder = BackgroundEncoder(background_channels, norm)
            fuse_in += self.background_encoder.low_channels
        self.fuse = nn.Conv2d(fuse_in, trunk, 1)
        self.fuse_act = nn.ReLU(inplace=True)
        self.res_blocks = nn.Sequential(*[ResBlock(trunk, norm=norm) for _ in range(n_res_blocks)])
        self.upsample = nn.Sequential(UpBlock(trunk, ngf * 2, norm=norm), UpBlock(ngf * 2, ngf, norm=norm))
        # the last features, the full-resolution background features and the one-hot mask at full resolution (the
        # trunk works at H/4; without the mask here every edge between components comes out blurred)
        self.out_fuse = ConvBlock(ngf + (background_channels if self.background else 0) + self.schema.num_classes,
                                  ngf, 3, norm="none")
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
        inputs, regions = self.layout.extract_with_regions(image, mask)
        return self.embedding.encode(inputs, self.layout.presence(mask), sample=sample, regions=regions)

    def placed_features(self, codes: ComponentCodes, target_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each component's decoded feature map on the (H/4, W/4) grid, placed for ``target_mask``."""
        feats = self.embedding.decode_features(codes)
        centres = self.layout.centres(target_mask)
        present = self.layout.presence(target_mask)
        out = {}
        for name in self.layout.names:
            f = feats[name]
            keep = present[name].to(f.dtype).view(-1, 1, 1, 1)
            region = F.avg_pool2d(self.layout.region(target_mask, name), FEATURE_STRIDE).to(f.dtype)
            if name in self.layout.crop_size:
                f = self.layout.place(f, centres[name])
            elif self.mask_full_components:
                f = f * region
            if self.code_broadcast is not None:
                f = f + self.code_broadcast[name](codes.z[name]).to(f.dtype)[:, :, None, None] * region
            out[name] = f * keep
        return out

    def background_mask(self, target_mask: torch.Tensor) -> torch.Tensor:
        return self.layout.background(target_mask)

    def known_background(self, *masks: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W): the pixels every one of ``masks`` calls background (what the photo shows for sure)."""
        return 1.0 - compositing.face_union(list(masks), self.layout.background_label)

    def edit_alpha(self, *masks: torch.Tensor) -> torch.Tensor:
        """The paste weight for an edit between ``masks`` (the photo's and the edited label map)."""
        return compositing.edit_alpha(list(masks), self.paste_grow, self.paste_feather, self.layout.background_label)

    def synthesize(self, target_mask: torch.Tensor, codes: ComponentCodes, background_image: torch.Tensor | None = None,
                   known: torch.Tensor | None = None) -> torch.Tensor:
        """The raw generated image: ``codes`` rendered into the layout of ``target_mask``, with the background
        encoder shown ``background_image`` where ``known`` (B, 1, H, W) says it is background (default: the target
        mask's background). Use :meth:`render` for a result that keeps the photo."""
        self.check_inputs(background_image, target_mask)
        onehot = one_hot(target_mask, self.schema.num_classes)
        m = self.mask_encoder(onehot)
        placed = self.placed_features(codes, target_mask)
        parts = [m] + [placed[n].to(m.dtype) for n in self.layout.names]
        high = None
        if self.background:
            if known is None:
                known = self.background_mask(target_mask)
            if background_image is None:
                background_image = torch.zeros(target_mask.shape[0], 3, *target_mask.shape[-2:],
                                               device=target_mask.device, dtype=m.dtype)
                known = torch.zeros_like(known)
            low, high = self.background_encoder(background_image, known.to(background_image.dtype))
            parts.append(low.to(m.dtype))
        h = self.fuse_act(self.fuse(torch.cat(parts, 1)))
        h = self.upsample(self.res_blocks(h))
        if self.code_broadcast_full is not None:
            present = self.layout.presence(target_mask)
            for name in self.layout.names:
                labels = self.layout.labels[name]
                vec = self.code_broadcast_full[name](codes.z[name]).to(h.dtype).view(h.shape[0], len(labels), -1)
                on = present[name].to(h.dtype).view(-1, 1, 1, 1)
                for k, lab in enumerate(labels):
                    h = h + vec[:, k, :, None, None] * (target_mask == lab).unsqueeze(1).to(h.dtype) * on
        h = self.out_fuse(torch.cat([h] + ([high.to(h.dtype)] if high is not None else []) + [onehot.to(h.dtype)], 1))
        return self.to_image(h)

    def render(self, target_mask: torch.Tensor, codes: ComponentCodes, photo: torch.Tensor,
               photo_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The edit as a user sees it: generated for ``target_mask`` and pasted into ``photo`` (whose own label map
        is ``photo_mask``, default: the target mask). Returns ``image`` (equal to ``photo`` outside the edit
        region), ``raw`` (the generator's output) and ``alpha`` (the paste weight)."""
        masks = [target_mask] if photo_mask is None else [photo_mask, target_mask]
        raw = self.synthesize(target_mask, codes, photo, self.known_background(*masks))
        alpha = self.edit_alpha(*masks)
        return {"image": compositing.paste(raw, photo, alpha), "raw": raw, "alpha": alpha}

    def decode_components(self, codes: ComponentCodes) -> dict[str, torch.Tensor]:
        """The image decoders' reconstructions of the component inputs (local reconstruction loss)."""
        return self.embedding.decode_images(codes)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Reconstruct ``image`` from its own mask and components (pasted into ``image``)."""
        return self.render(mask, self.encode(image, mask, sample=sample), image)["image"]
