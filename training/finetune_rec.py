"""Fine-tune PP-OCRv6 small's recognizer on free handwriting and write it back as ONNX.

One command (see training/README.md): the base model comes from the rapidocr wheel, is
converted to PyTorch with onnx2torch, trained with CTC on copiste_fr training-writer lines
(CC BY 4.0) plus synthetic lines rendered with Debian handwriting fonts, and its weights are
written back into the base ONNX graph (same graph, same character dictionary), so rapidocr
loads it through ``Rec.model_path`` like the base model.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench.copiste import Part, line_boxes, pages
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.photolines import degrade

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "eval" / "handwriting" / "copiste_fr"
HEIGHT = 48
MAX_WIDTH = 1600

#: Fonts for the synthetic lines. None of them is used by bench.synthnotes, whose notes stay
#: held out (Debian packages fonts-bwht, fonts-dancingscript, fonts-ecolier-court,
#: fonts-rufscript, fonts-kaushanscript; all under the SIL Open Font License or GPL+FE).
TRAIN_FONTS = (
    "/usr/share/fonts/opentype/bwht/BecauseWeBuild-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeConnect-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeCreate-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeLearn-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeMentor-Regular.otf",
    "/usr/share/fonts/opentype/bwht/BecauseWeOrganize-Regular.otf",
    "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
    "/usr/share/fonts/truetype/ecolier-court/Ecolier-court.ttf",
    "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",
    "/usr/share/fonts/opentype/kaushanscript/KaushanScript-Regular.otf",
)
SYNTH_LANGUAGES = ("en", "es", "fr")


def _stub_torchvision() -> None:
    # onnx2torch imports torchvision for NMS/RoIAlign converters this model does not use;
    # the PyPI torchvision wheel does not match the CPU torch build, so it is left out.
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.roi_align = None  # type: ignore[attr-defined]
    tv.ops = ops  # type: ignore[attr-defined]
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.ops", ops)


def base_model_path() -> Path:
    """Return the PP-OCRv6 small recognizer shipped in the rapidocr wheel."""
    import rapidocr

    return Path(rapidocr.__file__).resolve().parent / "models" / "PP-OCRv6_rec_small.onnx"


def load_onnx(path: Path) -> Any:
    """Return the ONNX model with SAME_UPPER paddings made explicit (onnx2torch needs that)."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        for attr in list(node.attribute):
            if attr.name == "auto_pad" and attr.s == b"SAME_UPPER":
                # Every such node here has a 2x2 kernel and stride 1: one pixel after.
                node.attribute.remove(attr)
                node.attribute.append(onnx.helper.make_attribute("pads", [0, 0, 1, 1]))
    return model


def logits_graph(model: Any) -> Any:
    """Return a copy of ``model`` whose output is the logits before the final Softmax."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    last = copy.graph.node[-1]
    if last.op_type != "Softmax":
        raise ValueError(f"expected a final Softmax, found {last.op_type}")
    logits = last.input[0]
    copy.graph.node.remove(last)
    out = copy.graph.output[0]
    out.name = logits
    return copy


def charset(model: Any) -> list[str]:
    """Return the CTC classes: blank, the model's dictionary, space (rapidocr's order)."""
    meta = {p.key: p.value for p in model.metadata_props}
    return ["blank", *meta["character"].split("\n"), " "]


@dataclass
class Sample:
    """A line image (grayscale) and its text."""

    image: Image.Image
    text: str


def copiste_lines(folder: Path, part: Part) -> list[Sample]:
    """Return the written lines of ``part``'s pages, cropped by their boxes (no margin)."""
    out: list[Sample] = []
    for page in pages(folder, part):
        with Image.open(page) as im:
            gray = im.convert("L")
        for line in line_boxes(page):
            out.append(Sample(gray.crop(line.box), line.text))
    return out


def jitter_crop(
    page: Image.Image, box: tuple[int, int, int, int], rng: random.Random
) -> Image.Image:
    """Return ``box`` of ``page`` with random margins (the product's framing varies too)."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    dx = lambda: rng.randint(-h // 6, h // 3)  # noqa: E731
    dy = lambda: rng.randint(-h // 8, h // 4)  # noqa: E731
    return page.crop((max(0, x0 - dx()), max(0, y0 - dy()), x1 + dx(), y1 + dy()))


class Synth:
    """Random lines of frequent words (wordfreq) in a handwriting font, deterministic by seed."""

    def __init__(self, seed: int) -> None:
        from wordfreq import top_n_list

        self.rng = random.Random(seed)
        self.words = {lang: top_n_list(lang, 20000) for lang in SYNTH_LANGUAGES}
        self.fonts = [f for f in TRAIN_FONTS if Path(f).is_file()]
        if not self.fonts:
            raise SystemExit("no training fonts; apt-get install " + " ".join(_FONT_PACKAGES))

    def text(self) -> str:
        rng = self.rng
        words = self.words[rng.choice(SYNTH_LANGUAGES)]
        out: list[str] = []
        for _ in range(rng.randint(2, 9)):
            # Zipf-like: frequent words more often, the long tail too.
            word = words[min(len(words) - 1, int(rng.paretovariate(0.6)) - 1 + rng.randint(0, 50))]
            r = rng.random()
            if r < 0.12:
                word = word.capitalize()
            elif r < 0.14:
                word = word.upper()
            elif r < 0.2:
                word = (
                    str(rng.randint(0, 9999))
                    if rng.random() < 0.5
                    else f"{rng.randint(1, 28)}/{rng.randint(1, 12)}"
                )
            out.append(word)
        text = " ".join(out)
        if rng.random() < 0.5:
            text = text[0].upper() + text[1:]
        if rng.random() < 0.4:
            text += rng.choice([".", ",", ":", "!", "?", ";", " -"])
        return text

    def sample(self) -> Sample:
        rng = self.rng
        text = self.text()
        font = ImageFont.truetype(rng.choice(self.fonts), rng.randint(28, 60))
        left, top, right, bottom = font.getbbox(text)
        pad = rng.randint(4, 20)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        paper = rng.randint(200, 255)
        image = Image.new("L", (w, h), paper)
        draw = ImageDraw.Draw(image)
        if rng.random() < 0.3:  # ruled paper
            y = rng.randint(h // 2, h - 2)
            draw.line((0, y, w, y), fill=paper - rng.randint(30, 90), width=rng.randint(1, 3))
        draw.text((pad - left, pad - top), text, font=font, fill=rng.randint(0, 110))
        image = image.rotate(rng.uniform(-2, 2), expand=True, fillcolor=paper)
        if rng.random() < 0.5:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
        arr = np.asarray(image, dtype=np.float32)
        arr += np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(0, 8), arr.shape)
        return Sample(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), text)


_FONT_PACKAGES = (
    "fonts-bwht",
    "fonts-dancingscript",
    "fonts-ecolier-court",
    "fonts-rufscript",
    "fonts-kaushanscript",
)


def to_tensor(images: Sequence[Image.Image]) -> Any:
    """Return a float batch as rapidocr feeds it: RGB, height 48, (x/255-0.5)/0.5, zero-padded."""
    import torch

    resized = []
    for im in images:
        w = max(8, min(MAX_WIDTH, math.ceil(HEIGHT * im.width / max(1, im.height))))
        arr = np.asarray(im.convert("L").resize((w, HEIGHT), Image.Resampling.BILINEAR), np.float32)
        resized.append((arr / 255.0 - 0.5) / 0.5)
    width = max(a.shape[1] for a in resized)
    batch = np.zeros((len(resized), 3, HEIGHT, width), np.float32)
    for i, arr in enumerate(resized):
        batch[i, :, :, : arr.shape[1]] = arr[None]
    return torch.from_numpy(batch)


def greedy(logits: Any, classes: Sequence[str]) -> list[str]:
    """Return the greedy CTC readings of a (N, T, C) logits batch."""
    best = logits.argmax(-1).numpy()
    out = []
    for row in best:
        chars, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                chars.append(classes[k])
            prev = k
        out.append("".join(chars))
    return out


def cer(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Return the case-insensitive CER (micro-average) of ``hyps`` against ``refs``."""
    from rapidfuzz.distance import Levenshtein

    edits = sum(Levenshtein.distance(h.lower(), r.lower()) for h, r in zip(hyps, refs, strict=True))
    return edits / max(1, sum(len(r) for r in refs))


class Trainable:
    """The converted model plus the map from its tensors back to the ONNX initializers."""

    def __init__(self, onnx_model: Any, *, train_from: str | None = None) -> None:
        _stub_torchvision()
        import onnx2torch
        import torch
        from onnx import numpy_helper

        self.module: Any = onnx2torch.convert(logits_graph(onnx_model))
        self.module.eval()  # BatchNorm statistics and dropout stay as trained
        tensors: dict[bytes, list[tuple[Any, str]]] = {}
        for _, owner in self.module.named_modules():
            for kind in ("_parameters", "_buffers"):
                for name, t in list(getattr(owner, kind).items()):
                    if t is None or not t.is_floating_point():
                        continue
                    key = t.detach().contiguous().numpy().tobytes()
                    tensors.setdefault(key, []).append((owner, name))
        self.mapping: dict[str, tuple[Any, str]] = {}
        self.params: list[Any] = []
        trainable = train_from is None
        for init in onnx_model.graph.initializer:
            trainable = trainable or init.name == train_from
            arr = numpy_helper.to_array(init)
            if arr.dtype != np.float32 or arr.size <= 1:
                continue
            hits = tensors.get(np.ascontiguousarray(arr).tobytes(), [])
            if len(hits) != 1:
                continue  # shared or unmatched values stay frozen
            owner, name = hits[0]
            if "running" in name:
                continue
            t = getattr(owner, name)
            if name in owner._buffers:
                del owner._buffers[name]
                param = torch.nn.Parameter(t.detach().clone())
                owner.register_parameter(name, param)
            else:
                param = t
            self.mapping[init.name] = (owner, name)
            if trainable:
                self.params.append(param)
        for p in self.module.parameters():
            p.requires_grad_(False)
        for p in self.params:
            p.requires_grad_(True)

    def state(self) -> dict[str, np.ndarray]:
        """Return the trainable tensors by ONNX initializer name."""
        return {k: getattr(o, n).detach().numpy().copy() for k, (o, n) in self.mapping.items()}

    def load(self, state: dict[str, np.ndarray]) -> None:
        import torch

        with torch.no_grad():
            for k, (o, n) in self.mapping.items():
                getattr(o, n).copy_(torch.from_numpy(state[k]))


def export(base: Path, state: dict[str, np.ndarray], out: Path) -> None:
    """Write the base ONNX graph (original paddings, final Softmax) with ``state``'s weights."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(base))
    for init in model.graph.initializer:
        if init.name in state:
            init.CopyFrom(numpy_helper.from_array(state[init.name], init.name))
    meta = {p.key: p for p in model.metadata_props}
    note = meta.get("ocrwatch") or model.metadata_props.add()
    note.key, note.value = "ocrwatch", "fine-tuned by ocrwatch training/finetune_rec.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))


def check_export(path: Path, trainable: Trainable, classes: Sequence[str]) -> float:
    """Return the largest difference between onnxruntime on ``path`` and the torch model."""
    import onnxruntime as ort
    import torch

    x = torch.randn(2, 3, HEIGHT, 320)
    with torch.no_grad():
        ref = torch.softmax(trainable.module(x), -1).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})[0]
    return float(np.abs(ref - got).max())


def batches(
    train: list[tuple[Image.Image, tuple[int, int, int, int], str]],
    synth: Synth,
    *,
    batch_size: int,
    synth_share: float,
    rng: random.Random,
    photo_share: float = 0.0,
) -> Iterator[list[Sample]]:
    """Yield batches forever: copiste lines (jittered) and synthetic lines, similar widths;
    a ``photo_share`` of all lines looks photographed (``training.photolines``)."""

    def maybe_photo(sample: Sample) -> Sample:
        if photo_share and rng.random() < photo_share:
            return Sample(degrade(sample.image, rng), sample.text)
        return sample

    while True:
        order = list(range(len(train)))
        rng.shuffle(order)
        pool: list[Sample] = []
        for k in order:
            page, box, text = train[k]
            pool.append(maybe_photo(Sample(jitter_crop(page, box, rng), text)))
            per_line = synth_share / (1 - synth_share)
            extra = int(per_line) + (rng.random() < per_line - int(per_line))
            pool.extend(maybe_photo(synth.sample()) for _ in range(extra))
            if len(pool) >= batch_size * 8:
                yield from _bucket(pool, batch_size, rng)
                pool = []
        if pool:
            yield from _bucket(pool, batch_size, rng)


def _bucket(pool: list[Sample], size: int, rng: random.Random) -> Iterator[list[Sample]]:
    pool.sort(key=lambda s: s.image.width / max(1, s.image.height))
    groups = [pool[i : i + size] for i in range(0, len(pool), size)]
    rng.shuffle(groups)
    yield from groups


def evaluate(trainable: Trainable, samples: Sequence[Sample], classes: Sequence[str]) -> float:
    """Return the case-insensitive CER of greedy decoding on ``samples``."""
    import torch

    hyps: list[str] = []
    order = sorted(
        range(len(samples)), key=lambda i: samples[i].image.width / samples[i].image.height
    )
    out: dict[int, str] = {}
    with torch.no_grad():
        for i in range(0, len(order), 16):
            idx = order[i : i + 16]
            logits = trainable.module(to_tensor([samples[k].image for k in idx]))
            for k, h in zip(idx, greedy(logits, classes), strict=True):
                out[k] = h
    hyps = [out[k] for k in range(len(samples))]
    return cer(hyps, [s.text for s in samples])


def main(argv: Sequence[str] | None = None) -> int:
    """Train; write ``--out`` (ONNX) and ``--out``.curve.json; return an exit code."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="copiste_fr folder")
    ap.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ocrwatch-train"), help="checkpoints")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget")
    ap.add_argument("--max-steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--synth-share", type=float, default=0.4, help="share of synthetic lines")
    ap.add_argument(
        "--photo-share",
        type=float,
        default=0.0,
        help="share of training lines made to look photographed; above 0, checkpoints are "
        "chosen on the mean of the clean and the photographed validation lines",
    )
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--val-lines", type=int, default=120, help="validation lines scored")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--train-from",
        default="conv2d_117.w_0",
        help="first ONNX initializer trained (graph order); earlier layers stay frozen; "
        "'all' trains everything",
    )
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this ONNX recognizer (the same graph: a model this script wrote) "
        "instead of the wheel's PP-OCRv6 small",
    )
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument(
        "--export-only",
        type=Path,
        default=None,
        help="write --out from a checkpoint (.npz from --work) without training",
    )
    args = ap.parse_args(argv)
    if args.export_only is not None:
        with np.load(args.export_only) as ckpt:
            export(args.init or base_model_path(), {k: ckpt[k] for k in ckpt.files}, args.out)
        print(f"wrote {args.out} from {args.export_only}", flush=True)
        return 0

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    base = args.init or base_model_path()
    onnx_model = load_onnx(base)
    classes = charset(onnx_model)
    index = {c: i for i, c in enumerate(classes)}
    trainable = Trainable(
        onnx_model, train_from=None if args.train_from == "all" else args.train_from
    )
    print(
        f"trainable tensors {len(trainable.params)}, values "
        f"{sum(p.numel() for p in trainable.params)}",
        flush=True,
    )

    train: list[tuple[Image.Image, tuple[int, int, int, int], str]] = []
    for page in pages(args.data, Part.TRAIN):
        with Image.open(page) as im:
            gray = im.convert("L")
        train.extend((gray, line.box, line.text) for line in line_boxes(page))
    val = copiste_lines(args.data, Part.VALIDATION)
    val = val[:: max(1, len(val) // args.val_lines)][: args.val_lines]
    photo_rng = random.Random(args.seed + 2)
    val_photos = [Sample(degrade(s.image, photo_rng), s.text) for s in val]
    synth_val_maker = Synth(args.seed + 1)
    synth_val = [synth_val_maker.sample() for _ in range(60)]
    synth = Synth(args.seed)
    print(f"train lines {len(train)}, validation lines {len(val)}", flush=True)

    curve: list[dict[str, float]] = []
    losses: list[float] = []
    best, best_clean, best_state = math.inf, math.inf, trainable.state()

    def checkpoint(step: int) -> None:
        """Score both validation sets, extend the curve, keep the best state so far."""
        nonlocal best, best_clean, best_state
        clean = evaluate(trainable, val, classes)
        photo = evaluate(trainable, val_photos, classes)
        v = (clean + photo) / 2 if args.photo_share > 0 else clean
        recent = losses[-args.eval_every :]
        curve.append(
            {
                "step": step,
                "val_cer": clean,
                "val_photo_cer": photo,
                "synth_cer": evaluate(trainable, synth_val, classes),
                "loss": float(np.mean(recent)) if recent else float("nan"),
            }
        )
        print(json.dumps(curve[-1]), flush=True)
        if v < best:
            best, best_clean, best_state = v, clean, trainable.state()
            np.savez(args.work / "best.npz", **best_state)
        (args.work / "curve.json").write_text(json.dumps(curve, indent=1))

    checkpoint(0)

    opt = torch.optim.AdamW(trainable.params, lr=args.lr, weight_decay=0.0)
    warmup = 50

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.max_steps)))

    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    start = time.monotonic()
    step = 0
    for batch in batches(
        train,
        synth,
        batch_size=args.batch,
        synth_share=args.synth_share,
        rng=rng,
        photo_share=args.photo_share,
    ):
        if step >= args.max_steps or time.monotonic() - start > args.minutes * 60:
            break
        targets = [[index[c] for c in s.text if c in index] for s in batch]
        keep = [k for k, t in enumerate(targets) if t]
        if not keep:
            continue
        x = to_tensor([batch[k].image for k in keep])
        logits = trainable.module(x)  # N, T, C
        logp = torch.log_softmax(logits, -1).permute(1, 0, 2)
        flat = torch.tensor([c for k in keep for c in targets[k]], dtype=torch.long)
        lengths = torch.tensor([len(targets[k]) for k in keep], dtype=torch.long)
        in_len = torch.full((len(keep),), logp.shape[0], dtype=torch.long)
        loss = ctc(logp, flat, in_len, lengths)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable.params, 5.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 25 == 0:
            print(
                f"step {step} loss {np.mean(losses[-25:]):.3f} {time.monotonic() - start:.0f}s",
                flush=True,
            )
        if step % args.eval_every == 0:
            checkpoint(step)
    if not curve or curve[-1]["step"] != step:
        checkpoint(step)
    trainable.load(best_state)
    export(base, best_state, args.out)
    diff = check_export(args.out, trainable, classes)
    report = {
        "best_val_cer": best_clean,  # of the checkpoint kept (tests/test_models.py reads it)
        "best_score": best,
        "score": "mean of val_cer and val_photo_cer" if args.photo_share > 0 else "val_cer",
        "steps": step,
        "export_max_abs_diff": diff,
        "curve": curve,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    args.out.with_suffix(".curve.json").write_text(json.dumps(report, indent=1))
    print(
        f"wrote {args.out} (best validation score {best:.4f}, export diff {diff:.2e})", flush=True
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
