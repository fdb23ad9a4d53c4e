"""The seed's Generator and Discriminator (sections 4.1, 4.2) and the restorers R, in PyTorch.

With the defaults (nc=3, nz=100, ngf=ndf=64, 64x64) `main` is layer for layer the seed's
`nn.Sequential`, so a state dict saved from the seed's own classes loads with `strict=True`.
Sizes 32 and 128 have one stride-2 layer fewer or more (the DCGAN convention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def num_upsamplings(image_size: int) -> int:
    """Stride-2 layers after the 4x4 start (2 for 32, 4 for 64, 5 for 128)."""
    if image_size not in (32, 64, 128):
        raise ValueError(f"image_size must be 32, 64 or 128, got {image_size}")
    return image_size.bit_length() - 3


class ConditionalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm without its own affine parameters, then each example's class row of the `scale`
    and `shift` tables (conditional BatchNorm, de Vries et al. 2017); `weights_init` initialises
    every row as the seed's BatchNorm weight and bias."""

    def __init__(self, features: int, num_classes: int):
        super().__init__(features, affine=False)
        self.scale = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)

    def forward(self, input: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        normalised = super().forward(input)
        return (
            normalised * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]
        )


class Generator(nn.Module):
    """The seed's G; with `num_classes`, a class embedding (nn.Embedding, size nz) is concatenated
    to the latent (`forward(noise, labels)`); `class_conditioning` "batchnorm" makes every BatchNorm
    a `ConditionalBatchNorm2d` instead, "both" does both."""

    def __init__(
        self,
        nz: int = 100,
        ngf: int = 64,
        nc: int = 3,
        image_size: int = 64,
        num_classes: int = 0,
        class_conditioning: str = "embedding",
    ):
        super().__init__()
        layers = num_upsamplings(image_size)
        width = ngf * 2 ** (layers - 1)
        joined = num_classes and class_conditioning in ("embedding", "both")
        conditional_batchnorm = num_classes and class_conditioning in ("batchnorm", "both")
        if joined:
            self.embed = nn.Embedding(num_classes, nz)

        def norm(features: int) -> nn.Module:
            if conditional_batchnorm:
                return ConditionalBatchNorm2d(features, num_classes)
            return nn.BatchNorm2d(features)

        modules = [
            nn.ConvTranspose2d(nz * (2 if joined else 1), width, 4, 1, 0, bias=False),
            norm(width),
            nn.ReLU(True),
        ]
        for _ in range(1, layers):
            modules += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                norm(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        modules += [nn.ConvTranspose2d(width, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*modules)

    def forward(self, input: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if hasattr(self, "embed"):
            input = torch.cat([input, self.embed(labels)[:, :, None, None]], dim=1)
        x = input
        for module in self.main:
            x = module(x, labels) if isinstance(module, ConditionalBatchNorm2d) else module(x)
        return x


class Discriminator(nn.Module):
    """The seed's D; `batchnorm=False` drops its BatchNorm layers (`spectral_norm` below normalises
    its convolutions, after `weights_init`). With `num_classes`, a projection discriminator: the
    logit gains <embed(y), the 4x4 features summed over positions> (`forward(images, labels)`)."""

    def __init__(
        self,
        ndf: int = 64,
        nc: int = 3,
        image_size: int = 64,
        batchnorm: bool = True,
        num_classes: int = 0,
    ):
        super().__init__()
        layers = num_upsamplings(image_size)
        modules = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for _ in range(1, layers):
            modules += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                *([nn.BatchNorm2d(width * 2)] if batchnorm else []),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        modules += [nn.Conv2d(width, 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*modules)
        if num_classes:
            self.embed = nn.Embedding(num_classes, width)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def logits(self, input: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's output before its last Sigmoid: (N,)."""
        if not hasattr(self, "embed"):
            return self.main[:-1](input).view(-1)
        features = self.main[:-2](input)  # (N, width, 4, 4)
        projection = (self.embed(labels) * features.sum(dim=(2, 3))).sum(dim=1)
        return self.main[-2](features).view(-1) + projection

    def forward(self, input: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not hasattr(self, "embed"):
            return self.main(input)
        return self.main[-1](self.logits(input, labels)).view(-1, 1, 1, 1)


def spectral_norm(model: nn.Module, format: str = "parametrizations") -> nn.Module:
    """Every convolution of `model` spectrally normalised in place, by PyTorch's
    `torch.nn.utils.parametrizations.spectral_norm` or, with format "legacy", the older
    `torch.nn.utils.spectral_norm`; one power iteration per train-mode forward."""
    wrap = {
        "parametrizations": nn.utils.parametrizations.spectral_norm,
        "legacy": nn.utils.spectral_norm,
    }[format]
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            wrap(module)
    return model


class Restorer(nn.Module):
    """R: damaged image + 1-channel mask (1 = missing) -> restored image; see
    jaxgan/models/restorer.py.

    `encoder[i]` = Conv stride 2 (+ BatchNorm from i=1) + LeakyReLU 0.2 down to 4x4; `decoder[j]` =
    ConvTranspose stride 2 + BatchNorm + ReLU, the last one ConvTranspose + Tanh; with `skips`, each
    decoder output is concatenated with the encoder feature of the same resolution.
    """

    def __init__(self, nc: int = 3, width: int = 64, image_size: int = 64, skips: bool = False):
        super().__init__()
        layers = num_upsamplings(image_size)
        self.skips = skips
        widths = [width * 2**i for i in range(layers)]
        encoder = [
            nn.Sequential(nn.Conv2d(nc + 1, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2))
        ]
        for i in range(1, layers):
            encoder.append(
                nn.Sequential(
                    nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=False),
                    nn.BatchNorm2d(widths[i]),
                    nn.LeakyReLU(0.2),
                )
            )
        decoder = []
        channels = widths[-1]
        for j in range(layers - 1):
            out = widths[layers - 2 - j]
            decoder.append(
                nn.Sequential(
                    nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(),
                )
            )
            channels = 2 * out if skips else out
        decoder.append(
            nn.Sequential(nn.ConvTranspose2d(channels, nc, 4, 2, 1, bias=False), nn.Tanh())
        )
        self.encoder = nn.ModuleList(encoder)
        self.decoder = nn.ModuleList(decoder)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([images, mask.to(images.dtype)], dim=1)
        features = []
        for block in self.encoder:
            x = block(x)
            features.append(x)
        layers = len(self.encoder)
        for j, block in enumerate(self.decoder[:-1]):
            x = block(x)
            if self.skips:
                x = torch.cat([x, features[layers - 2 - j]], dim=1)
        return self.decoder[-1](x)


RESIDUAL_BLOCK_SCALE = 0.1  # jaxgan.models.restorer.RESIDUAL_BLOCK_SCALE


class ResidualBlock(nn.Module):
    """x + conv1(relu(conv0(x))), 3x3 convolutions with bias (BatchNorm after each, optional)."""

    def __init__(self, width: int, batchnorm: bool = False):
        super().__init__()
        self.conv0 = nn.Conv2d(width, width, 3, 1, 1)
        self.bn0 = nn.BatchNorm2d(width) if batchnorm else nn.Identity()
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(width) if batchnorm else nn.Identity()
        with torch.no_grad():
            self.conv1.weight.mul_(RESIDUAL_BLOCK_SCALE)
            self.conv1.bias.mul_(RESIDUAL_BLOCK_SCALE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn1(self.conv1(F.relu(self.bn0(self.conv0(x)))))


class ResidualRestorer(nn.Module):
    """R as input + correction; see jaxgan/models/restorer.py's ResidualRestorer.

    pixel_unshuffle(image, mask) -> `stem` 3x3 -> `blocks` -> `upsample` (ConvTranspose, kernel and
    stride = unshuffle) + ReLU -> `head` 3x3 on (features, image, mask), zero-initialised, added to
    the image.
    """

    def __init__(
        self,
        nc: int = 3,
        width: int = 64,
        blocks: int = 4,
        unshuffle: int = 2,
        batchnorm: bool = False,
    ):
        super().__init__()
        self.unshuffle = unshuffle
        self.stem = nn.Conv2d((nc + 1) * unshuffle**2, width, 3, 1, 1)
        self.blocks = nn.ModuleList([ResidualBlock(width, batchnorm) for _ in range(blocks)])
        self.upsample = (
            nn.ConvTranspose2d(width, width, unshuffle, unshuffle) if unshuffle > 1 else None
        )
        self.head = nn.Conv2d(width + nc + 1, nc, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([images, mask.to(images.dtype)], dim=1)
        x = self.stem(F.pixel_unshuffle(inputs, self.unshuffle))
        for block in self.blocks:
            x = block(x)
        if self.upsample is not None:
            x = F.relu(self.upsample(x))
        return images + self.head(torch.cat([x, inputs], dim=1))


def weights_init(module: nn.Module) -> None:
    """DCGAN's initialisation (pytorch/examples): conv weights N(0, 0.02), BatchNorm N(1, 0.02) and
    0."""
    name = type(module).__name__
    if isinstance(module, ConditionalBatchNorm2d):  # the seed's BatchNorm init, for every class
        nn.init.normal_(module.scale.weight.data, 1.0, 0.02)
        nn.init.constant_(module.shift.weight.data, 0)
    elif name.find("Conv") != -1:
        nn.init.normal_(module.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(module.weight.data, 1.0, 0.02)
        nn.init.constant_(module.bias.data, 0)
