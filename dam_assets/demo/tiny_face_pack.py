"""A tiny, hand-designed face pack for tests and the offline demo: not a face model.

insightface's weights cannot be downloaded here, so this writes two small ONNX files with the
exact interfaces insightface loads (an SCRFD-style detector and an ArcFace-style recognizer),
so the real loading, detection, alignment, recognition, tracking and clustering code runs
end to end. What they "see" is designed, not learned:

- the detector finds saturated colour squares of about 64 px (`samples.make_face_video` draws
  them) on a grey background: colour saturation in a 64 px window at stride 32 against the
  ring around it, with a fixed 64 px box and landmarks at the ArcFace template's places;
- the recognizer embeds an aligned crop by its hue (channel means after removing grey), so
  squares of one colour are one "person" and red, green and blue are three people.
"""

from __future__ import annotations

import warnings
from pathlib import Path

# ArcFace's 112 px landmark template around the crop centre, in units of half a 64 px box
# (the box spans ±1 stride of 32 px): eyes, nose, mouth corners.
_TEMPLATE_112 = [(38.29, 51.70), (73.53, 51.50), (56.03, 71.74), (41.55, 92.37), (70.73, 92.20)]
_KPS = [((x - 56.0) / 56.0, (y - 56.0) / 56.0) for x, y in _TEMPLATE_112]


def write_tiny_face_pack(folder: Path, dim: int = 512, seed: int = 0, extra=None) -> Path:
    """Write `det_tiny.onnx` and `rec_tiny.onnx` into `folder` (created); returns it.
    `extra` (benchmarks only): two modules, for the detector and the recognizer, whose
    (zero) outputs are added to the scores and embeddings, to give the graphs a real
    network's compute without changing what they find."""
    import torch
    import torch.nn.functional as F

    extra_det, extra_rec = extra or (None, None)

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("kps", torch.tensor([[c for xy in _KPS for c in xy]]))
            self.extra = extra_det

        def forward(self, x):  # x: 1×3×H×W, RGB, (pixel − 127.5) / 128
            sat = x.amax(1, keepdim=True) - x.amin(1, keepdim=True)  # colour, 0 for greys
            outs_scores, outs_boxes, outs_kps = [], [], []
            for stride in (8, 16, 32):
                if stride == 32:
                    # mean saturation in a 64 px window centred on each anchor point, and in
                    # the ring around it out to 128 px: a face is a colour patch on grey, not
                    # part of a larger coloured area (colour bars find nothing)
                    inner = F.avg_pool2d(F.pad(sat, (32, 0, 32, 0)), 64, 32)
                    outer = F.avg_pool2d(F.pad(sat, (64, 32, 64, 32)), 128, 32)
                    ring = (4.0 * outer - inner) / 3.0
                    score = torch.sigmoid(20.0 * (inner - ring - 1.0))
                    if self.extra is not None:
                        score = score + self.extra(x)
                else:
                    score = F.avg_pool2d(sat, stride, stride) * 0.0  # never fires
                cells = score.permute(0, 2, 3, 1).reshape(-1, 1)  # (y, x) order
                score = torch.stack([cells, cells * 0.0], dim=1).reshape(-1, 1)  # 2 anchors
                ones = torch.ones_like(score)
                outs_scores.append(score)
                outs_boxes.append(ones.repeat(1, 4))  # ±1 stride: a 64 px box at stride 32
                outs_kps.append(ones * self.kps)
            return (*outs_scores, *outs_boxes, *outs_kps)

    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, 3, generator=generator))

    class Recognizer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("basis", basis.T.contiguous())  # 3 × dim, orthonormal rows
            self.extra = extra_rec

        def forward(self, x):  # x: N×3×112×112
            hue = (x - x.mean(1, keepdim=True)).mean((2, 3))  # greys cancel out
            out = hue @ self.basis
            return out if self.extra is None else out + self.extra(x)

    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in (8, 16, 32)]
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes
        warnings.simplefilter("ignore")
        _export(torch, Detector(), Recognizer(), folder, names)
    return folder


def _export(torch, detector, recognizer, folder: Path, names: list[str]) -> None:
    torch.onnx.export(
        detector,
        (torch.zeros(1, 3, 160, 160),),
        str(folder / "det_tiny.onnx"),
        input_names=["input"],
        output_names=names,
        dynamic_axes={"input": {2: "height", 3: "width"}},
        opset_version=17,
        dynamo=False,
    )
    torch.onnx.export(
        recognizer,
        (torch.zeros(2, 3, 112, 112),),
        str(folder / "rec_tiny.onnx"),
        input_names=["input"],
        output_names=["embedding"],
        dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
