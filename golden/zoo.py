"""Builders of the zoo networks; ``configs/networks/*.yaml`` are generated from them.

The definitions follow torchvision's (ResNet v1.5, VGG-16 with a norm after every conv, DenseNet-121,
GoogLeNet without the auxiliary heads, MobileNet-v2) so that the parameter counts equal the published
figures; ``tests/golden/test_network.py`` checks them. Dropout and torchvision's adaptive average pool
before VGG's classifier are left out (dropout is random; the adaptive pool is the identity at 224x224).

Regenerate the YAML files with ``python -m wavecore.golden.zoo`` (a test checks they are up to date).
"""

from __future__ import annotations

import sys

from wavecore.files import write_atomic
from wavecore.golden.network import ZOO, NetworkBuilder, zoo_path

__all__ = ["BUILDERS", "build_spec", "write_zoo"]


def _conv_norm_relu(
    b: NetworkBuilder,
    name,
    out_channels,
    kernel,
    stride=1,
    padding=0,
    groups=1,
    relu=True,
    max_value=None,
    inputs=None,
):
    b.conv(f"{name}", out_channels, kernel, stride, padding, groups, inputs=inputs)
    b.norm_layer(f"{name}_norm")
    if relu:
        b.relu(f"{name}_relu", max_value=max_value)
    return b.last


def resnet(depth: int) -> NetworkBuilder:
    blocks, bottleneck = {18: ([2, 2, 2, 2], False), 50: ([3, 4, 6, 3], True)}[depth]
    b = NetworkBuilder(f"resnet{depth}", (3, 224, 224), num_classes=1000)
    _conv_norm_relu(b, "conv1", 64, 7, 2, 3)
    b.maxpool("pool1", 3, 2, 1)
    channels = 64
    for stage, count in enumerate(blocks, start=2):
        planes = 64 * 2 ** (stage - 2)
        for index in range(count):
            stride = 2 if (stage > 2 and index == 0) else 1
            prefix = f"conv{stage}_{index + 1}"
            block_input = b.last
            expansion = 4 if bottleneck else 1
            if bottleneck:
                _conv_norm_relu(b, f"{prefix}a", planes, 1)
                _conv_norm_relu(b, f"{prefix}b", planes, 3, stride, 1)  # v1.5: stride on the 3x3
                _conv_norm_relu(b, f"{prefix}c", planes * 4, 1, relu=False)
            else:
                _conv_norm_relu(b, f"{prefix}a", planes, 3, stride, 1)
                _conv_norm_relu(b, f"{prefix}b", planes, 3, 1, 1, relu=False)
            main = b.last
            shortcut = block_input
            if stride != 1 or channels != planes * expansion:
                _conv_norm_relu(
                    b, f"{prefix}_down", planes * expansion, 1, stride, relu=False, inputs=block_input
                )
                shortcut = b.last
            b.add(f"{prefix}_add", [main, shortcut])
            b.relu(f"{prefix}_relu")
            channels = planes * expansion
    b.global_avgpool("pool5")
    b.flatten("flatten")
    b.linear("fc", 1000)
    b.loss("loss")
    return b


def vgg16() -> NetworkBuilder:
    b = NetworkBuilder("vgg16", (3, 224, 224), num_classes=1000, norm="none")
    for stage, (count, channels) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], start=1):
        for index in range(1, count + 1):
            b.conv(f"conv{stage}_{index}", channels, 3, 1, 1, bias=True)
            b.norm_layer(f"bn{stage}_{index}")
            b.relu(f"relu{stage}_{index}")
        b.maxpool(f"pool{stage}", 2, 2)
    b.flatten("flatten")
    b.linear("fc6", 4096)
    b.relu("relu6")
    b.linear("fc7", 4096)
    b.relu("relu7")
    b.linear("fc8", 1000)
    b.loss("loss")
    return b


def densenet121() -> NetworkBuilder:
    growth, bottleneck_width = 32, 4
    b = NetworkBuilder("densenet121", (3, 224, 224), num_classes=1000)
    _conv_norm_relu(b, "conv0", 64, 7, 2, 3)
    b.maxpool("pool0", 3, 2, 1)
    channels = 64
    for block, count in enumerate([6, 12, 24, 16], start=1):
        features = b.last
        for index in range(1, count + 1):
            prefix = f"block{block}_layer{index}"
            # Pre-activation composite layer: norm, ReLU, 1x1 conv, norm, ReLU, 3x3 conv.
            b.norm_layer(f"{prefix}_norm1", inputs=features)
            b.relu(f"{prefix}_relu1")
            b.conv(f"{prefix}_conv1", bottleneck_width * growth, 1)
            b.norm_layer(f"{prefix}_norm2")
            b.relu(f"{prefix}_relu2")
            b.conv(f"{prefix}_conv2", growth, 3, 1, 1)
            features = b.concat(f"{prefix}_concat", [features, b.last])
            channels += growth
        if block < 4:
            channels //= 2
            b.norm_layer(f"transition{block}_norm")
            b.relu(f"transition{block}_relu")
            b.conv(f"transition{block}_conv", channels, 1)
            b.avgpool(f"transition{block}_pool", 2, 2)
    b.norm_layer("norm5")
    b.relu("relu5")
    b.global_avgpool("pool5")
    b.flatten("flatten")
    b.linear("classifier", 1000)
    b.loss("loss")
    return b


_GOOGLENET_MODULES = {
    # name: (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj); torchvision uses 3x3 for the "5x5".
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet() -> NetworkBuilder:
    b = NetworkBuilder("googlenet", (3, 224, 224), num_classes=1000)
    _conv_norm_relu(b, "conv1", 64, 7, 2, 3)
    b.maxpool("pool1", 3, 2, ceil_mode=True)
    _conv_norm_relu(b, "conv2", 64, 1)
    _conv_norm_relu(b, "conv3", 192, 3, 1, 1)
    b.maxpool("pool2", 3, 2, ceil_mode=True)
    for name, (c1, r3, c3, r5, c5, proj) in _GOOGLENET_MODULES.items():
        module_input = b.last
        prefix = f"inception{name}"
        branch1 = _conv_norm_relu(b, f"{prefix}_1x1", c1, 1, inputs=module_input)
        _conv_norm_relu(b, f"{prefix}_3x3_reduce", r3, 1, inputs=module_input)
        branch2 = _conv_norm_relu(b, f"{prefix}_3x3", c3, 3, 1, 1)
        _conv_norm_relu(b, f"{prefix}_5x5_reduce", r5, 1, inputs=module_input)
        branch3 = _conv_norm_relu(b, f"{prefix}_5x5", c5, 3, 1, 1)
        b.maxpool(f"{prefix}_pool", 3, 1, 1, ceil_mode=True, inputs=module_input)
        branch4 = _conv_norm_relu(b, f"{prefix}_pool_proj", proj, 1)
        b.concat(f"{prefix}_concat", [branch1, branch2, branch3, branch4])
        if name == "3b":
            b.maxpool("pool3", 3, 2, ceil_mode=True)
        if name == "4e":
            b.maxpool("pool4", 2, 2, ceil_mode=True)
    b.global_avgpool("pool5")
    b.flatten("flatten")
    b.linear("fc", 1000)
    b.loss("loss")
    return b


def mobilenet_v2() -> NetworkBuilder:
    b = NetworkBuilder("mobilenet_v2", (3, 224, 224), num_classes=1000)
    _conv_norm_relu(b, "conv0", 32, 3, 2, 1, max_value=6)
    channels = 32
    index = 0
    for expand, out_channels, repeats, first_stride in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for repeat in range(repeats):
            index += 1
            stride = first_stride if repeat == 0 else 1
            prefix = f"block{index}"
            block_input = b.last
            hidden = channels * expand
            if expand != 1:
                _conv_norm_relu(b, f"{prefix}_expand", hidden, 1, max_value=6)
            _conv_norm_relu(b, f"{prefix}_dw", hidden, 3, stride, 1, groups=hidden, max_value=6)
            _conv_norm_relu(b, f"{prefix}_project", out_channels, 1, relu=False)
            if stride == 1 and channels == out_channels:
                b.add(f"{prefix}_add", [b.last, block_input])
            channels = out_channels
    _conv_norm_relu(b, "conv_last", 1280, 1, max_value=6)
    b.global_avgpool("pool")
    b.flatten("flatten")
    b.linear("classifier", 1000)
    b.loss("loss")
    return b


def tiny_resnet() -> NetworkBuilder:
    """16x16 input, 8-16 channels: a stem, an identity residual block, a projection residual block."""
    b = NetworkBuilder("tiny_resnet", (3, 16, 16), num_classes=10, norm="gn", gn_groups=2)
    _conv_norm_relu(b, "stem", 8, 3, 1, 1)
    block_input = b.last
    _conv_norm_relu(b, "res1a", 8, 3, 1, 1)
    _conv_norm_relu(b, "res1b", 8, 3, 1, 1, relu=False)
    b.add("res1_add", [b.last, block_input])
    b.relu("res1_relu")
    block_input = b.last
    _conv_norm_relu(b, "res2a", 16, 3, 2, 1)
    main = _conv_norm_relu(b, "res2b", 16, 3, 1, 1, relu=False)
    shortcut = _conv_norm_relu(b, "res2_down", 16, 1, 2, relu=False, inputs=block_input)
    b.add("res2_add", [main, shortcut])
    b.relu("res2_relu")
    b.maxpool("pool", 2, 2)
    b.global_avgpool("gap")
    b.flatten("flatten")
    b.linear("fc", 10)
    b.loss("loss")
    return b


def tiny_concat() -> NetworkBuilder:
    """8x8 input: an Inception-style concat module, a dense (pre-activation) layer and an avg-pool."""
    b = NetworkBuilder("tiny_concat", (4, 8, 8), num_classes=10, norm="gn", gn_groups=2)
    _conv_norm_relu(b, "stem", 8, 3, 1, 1)
    module_input = b.last
    left = _conv_norm_relu(b, "branch1", 4, 1, inputs=module_input)
    _conv_norm_relu(b, "branch2_reduce", 4, 1, inputs=module_input)
    middle = _conv_norm_relu(b, "branch2", 4, 3, 1, 1)
    b.maxpool("branch3_pool", 3, 1, 1, inputs=module_input)
    right = _conv_norm_relu(b, "branch3", 4, 1)
    features = b.concat("module_concat", [left, middle, right])
    b.norm_layer("dense_norm", inputs=features)
    b.relu("dense_relu")
    b.conv("dense_conv", 4, 3, 1, 1)
    b.concat("dense_concat", [features, b.last])
    b.avgpool("pool", 2, 2)
    b.conv("head", 10, 1, bias=True)
    b.global_avgpool("gap")
    b.flatten("flatten")
    b.linear("fc", 10)
    b.loss("loss")
    return b


def tiny_mobilenet() -> NetworkBuilder:
    """8x8 input: an inverted residual block (expand, depthwise with ReLU6, project, add)."""
    b = NetworkBuilder("tiny_mobilenet", (3, 8, 8), num_classes=10, norm="gn", gn_groups=2)
    _conv_norm_relu(b, "stem", 8, 3, 1, 1, max_value=6)
    block_input = b.last
    _conv_norm_relu(b, "block_expand", 16, 1, max_value=6)
    _conv_norm_relu(b, "block_dw", 16, 3, 1, 1, groups=16, max_value=6)
    _conv_norm_relu(b, "block_project", 8, 1, relu=False)
    b.add("block_add", [b.last, block_input])
    _conv_norm_relu(b, "down_dw", 8, 3, 2, 1, groups=8, max_value=6)
    b.global_avgpool("gap")
    b.flatten("flatten")
    b.linear("fc", 10)
    b.loss("loss")
    return b


BUILDERS = {
    "resnet18": lambda: resnet(18),
    "resnet50": lambda: resnet(50),
    "vgg16": vgg16,
    "densenet121": densenet121,
    "googlenet": googlenet,
    "mobilenet_v2": mobilenet_v2,
    "tiny_resnet": tiny_resnet,
    "tiny_concat": tiny_concat,
    "tiny_mobilenet": tiny_mobilenet,
}

_DESCRIPTIONS = {
    "resnet18": "ResNet-18 (torchvision definition). 11,689,512 parameters with norm: bn or gn.",
    "resnet50": "ResNet-50 v1.5 (stride on the 3x3 conv, torchvision). 25,557,032 parameters.",
    "vgg16": "VGG-16: 13 conv + 3 FC. norm: none (the default here) gives the original "
    "(138,357,544 parameters);\n"
    "norm: bn gives torchvision's vgg16_bn (138,365,992). Dropout and the adaptive pool are omitted.",
    "densenet121": "DenseNet-121 (growth 32, bottleneck 4, compression 0.5). 7,978,856 parameters.",
    "googlenet": "GoogLeNet (torchvision, without the auxiliary heads; its '5x5' branch uses 3x3 kernels).\n"
    "6,624,904 parameters.",
    "mobilenet_v2": "MobileNet-v2 (width 1.0, ReLU6). 3,504,872 parameters.",
    "tiny_resnet": "Tiny network for RTL runs: 16x16 input, two residual blocks (identity and projection).",
    "tiny_concat": "Tiny network for RTL runs: 8x8 input, an Inception-style concat and a dense layer.",
    "tiny_mobilenet": "Tiny network for RTL runs: 8x8 input, an inverted residual block with depthwise conv.",
}


def build_spec(name: str) -> NetworkBuilder:
    return BUILDERS[name]()


def yaml_text(name: str) -> str:
    header = (
        f"{_DESCRIPTIONS[name]}\nGenerated by `python -m wavecore.golden.zoo` from golden/zoo.py; "
        "format: docs/golden.md."
    )
    return BUILDERS[name]().yaml_text(header)


def write_zoo() -> list[str]:
    written = []
    for name in ZOO:
        path = zoo_path(name)
        write_atomic(path, yaml_text(name))
        written.append(str(path))
    return written


if __name__ == "__main__":
    for written_path in write_zoo():
        sys.stdout.write(f"wrote {written_path}\n")
