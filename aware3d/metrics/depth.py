"""Depth accuracy of generated shapes: SIDE and MAD with a depth network trained on ground truth.

The ShadeGAN / unsup3d protocol, adapted to our synthetic datasets (which have exact depth): a small
depth-estimation network is trained once on the dataset's (image, ground-truth depth, mask) items and
cached; it is then applied to generated images and its prediction is compared with the generator's own
rendered depth of the same image:

* SIDE, the scale-invariant depth error (Eigen et al. 2014, as unsup3d computes it): with
  ``delta = log d_pred - log d_gen`` on the pixels of the mask M,
  ``SIDE = sqrt(mean_M((delta - mean_M(delta))^2))`` per image, averaged over images. A global scale
  between the two depths (a shift of ``delta``) costs nothing.
* MAD, the mean angle deviation in degrees between the normals of the two depth maps, each computed from
  its depth through the camera intrinsics (:func:`normals_from_depth`), averaged over M per image, then
  over images.

The mask is the generator's foreground (opacity > 0.5) and the network's predicted foreground, eroded by
one pixel (a 3x3 average of the mask must exceed 0.99, as unsup3d does; this also drops the border ring
where normals are undefined).

SIDE and MAD forgive a global depth scale and are computed where the generator is opaque, so a painted
sheet at the background's distance scores well. :func:`foreground_depth_scores` is absolute instead (world
units, on the reference's own foreground mask, not the generator's opacity): the mean absolute depth error,
the separation between background and foreground (about 0 for a sheet), the fraction of foreground pixels
within :data:`WITHIN_TOLERANCE` and the normal angle error. The metrics built on it (``fg_depth_abs`` and its
siblings, see :func:`aware3d.metrics.builtin.foreground_depth_pass`) take the reference from this depth
network's absolute depth and foreground prediction, and state their floor: the same scores for the ground
truth itself on held-out dataset items.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor, nn
from tqdm import tqdm

from ..cameras import PixelGrid, camera_directions
from ..io.atomic import atomic_write_bytes


# ------------------------------------------------------------------------------------ the errors

def erode_mask(mask: Tensor) -> Tensor:
    """(B, 1, H, W) {0,1} mask eroded by one pixel; image borders count as background (unsup3d's erosion)."""
    return (F.avg_pool2d(mask.float(), 3, stride=1, padding=1, count_include_pad=True) > 0.99).float()


def scale_invariant_depth_error(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """(B,) SIDE of (B, 1, H, W) positive depths on a (B, 1, H, W) mask; NaN for images with an empty mask."""
    m = mask.float()
    delta = (pred.clamp_min(1e-8).log() - target.clamp_min(1e-8).log()) * m
    n = m.flatten(1).sum(1)
    mean = delta.flatten(1).sum(1) / n
    sq = ((delta - mean[:, None, None, None]) ** 2 * m).flatten(1).sum(1) / n
    return sq.sqrt()


def normals_from_depth(depth: Tensor, intrinsics: Tensor, grid: PixelGrid = "pixel_centers") -> Tensor:
    """Camera-frame unit normals (B, 3, H, W) of a (B, 1, H, W) depth map (distance along each pixel ray).

    Each pixel is lifted to ``depth * ray direction`` (OpenCV camera frame, through ``intrinsics``); the
    normal is the cross product of the central differences along the image columns and rows, oriented
    toward the camera. The one-pixel border copies its inner neighbour (it is masked out by the metrics).
    """
    B, _, H, W = depth.shape
    dirs = camera_directions(intrinsics, H, W, grid)  # (B, H*W, 3)
    pts = (dirs * depth.reshape(B, H * W, 1)).reshape(B, H, W, 3)
    dx = pts[:, 1:-1, 2:] - pts[:, 1:-1, :-2]
    dy = pts[:, 2:, 1:-1] - pts[:, :-2, 1:-1]
    # x right, y down, z forward: dy x dx points against +z, i.e. toward the camera for a facing surface.
    n = F.normalize(torch.cross(dy, dx, dim=-1), dim=-1)
    n = n.permute(0, 3, 1, 2)
    return F.pad(n, (1, 1, 1, 1), mode="replicate")


def mean_angle_deviation(n1: Tensor, n2: Tensor, mask: Tensor) -> Tensor:
    """(B,) mean angle in degrees between (B, 3, H, W) unit normal maps over a (B, 1, H, W) mask."""
    cos = (n1 * n2).sum(1, keepdim=True).clamp(-1, 1)
    ang = torch.rad2deg(torch.acos(cos)) * mask
    return ang.flatten(1).sum(1) / mask.flatten(1).sum(1)


# --------------------------------------------------------------------- absolute foreground depth

WITHIN_TOLERANCE = 0.01
"""Distance (world units) within which a foreground pixel's depth counts as right (``fg_depth_within_0.01``)."""


@dataclass(frozen=True)
class ForegroundDepthConfig:
    """Settings of the absolute foreground-depth metrics (``fg_depth_abs`` and its siblings)."""

    min_pixels: int = 16
    """Images whose eroded foreground or eroded background has fewer pixels are skipped (and counted)."""
    gt_items: int = 64
    """Held-out dataset items (the ones after the depth network's training items) on which the ground truth
    itself is scored: the ``<name>_gt`` values, what a generator with exactly the true depth would get."""
    camera_tolerance: float = 0.02
    """Largest relative difference of the generated cameras' distance to the origin and focal length from the
    dataset's: absolute depth is only defined at the cameras the depth network learned."""


def masked_median(x: Tensor, mask: Tensor) -> Tensor:
    """(B,) median of (B, 1, H, W) ``x`` over the pixels where the (B, 1, H, W) mask is set (the lower of the
    two middle values for an even count); NaN for an empty mask."""
    values = torch.where(mask > 0.5, x.float(), torch.full_like(x, float("nan"), dtype=torch.float32))
    return torch.nanmedian(values.flatten(1), dim=1).values


def foreground_depth_scores(depth: Tensor, truth: Tensor, truth_mask: Tensor, intrinsics: Tensor,
                            grid: PixelGrid = "pixel_centers", tolerance: float = WITHIN_TOLERANCE) -> dict[str, Tensor]:
    """Per-image absolute scores of a depth map against a reference depth and its foreground mask.

    ``depth`` and ``truth`` are (B, 1, H, W) distances along the unit pixel rays (world units; the renderer's
    ``surface_depth`` and the synthetic sets' ``depth`` both are), ``truth_mask`` (B, 1, H, W) in {0, 1} the
    reference's foreground and ``intrinsics`` (B, 3, 3) the normalised cameras. ``inside`` is the mask eroded
    by one pixel and ``outside`` its complement eroded by one pixel (:func:`erode_mask`), so a silhouette off
    by a pixel and the border ring where normals are undefined count for neither. Returns (B,) tensors:

    * ``abs``: mean ``|depth - truth|`` inside (world units);
    * ``separation``: median depth outside minus median depth inside (world units; positive when the
      foreground stands in front of the background, about 0 for a flat sheet);
    * ``within``: fraction of inside pixels with ``|depth - truth| <= tolerance``;
    * ``normal_deg``: mean angle inside between the normals of the two maps (:func:`normals_from_depth`);
    * ``inside_pixels`` / ``outside_pixels``: the pixel counts (NaN scores where a count is 0).
    """
    inside = erode_mask(truth_mask)
    outside = erode_mask(1 - truth_mask.float())
    n_in = inside.flatten(1).sum(1)
    err = (depth - truth).abs()
    abs_err = (err * inside).flatten(1).sum(1) / n_in
    within = ((err <= tolerance).float() * inside).flatten(1).sum(1) / n_in
    separation = masked_median(depth, outside) - masked_median(depth, inside)
    normal = mean_angle_deviation(normals_from_depth(depth, intrinsics, grid), normals_from_depth(truth, intrinsics, grid),
                                  inside)
    return {"abs": abs_err, "separation": separation, "within": within, "normal_deg": normal,
            "inside_pixels": n_in, "outside_pixels": outside.flatten(1).sum(1)}


# ----------------------------------------------------------------------------- the depth network

@dataclass(frozen=True)
class DepthNetConfig:
    """The depth-estimation network and how it is trained (changing any field retrains it)."""

    resolution: int = 64
    """Input and output size in pixels (images are resized to it)."""
    width: int = 16
    """Channels of the first level (doubled at each downsampling)."""
    levels: int = 3
    """Downsampling steps of the encoder (the decoder mirrors them with skip connections)."""
    steps: int = 300
    """Adam steps of training (about 2 minutes on one CPU core at the defaults)."""
    batch: int = 16
    """Items per training step."""
    lr: float = 2e-3
    """Adam learning rate (cosine-decayed to 0)."""
    train_items: int = 512
    """Distinct dataset items rendered for training (the first ones); flips double them."""
    seed: int = 0
    """Seed of the initialisation and of the batch order."""


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(min(8, cout), cout), nn.SiLU())


class DepthNet(nn.Module):
    """A small U-Net: image (B, 3, R, R) in [-1, 1] -> log-depth (B, 1, R, R) and foreground logit (B, 1, R, R).

    The log-depth head predicts an offset from ``log_depth_mean`` (a buffer set from the training data), so
    the network starts near the right scale.
    """

    def __init__(self, config: DepthNetConfig = DepthNetConfig()) -> None:
        super().__init__()
        self.config = config
        chans = [config.width * 2 ** i for i in range(config.levels + 1)]
        self.down = nn.ModuleList([_block(3, chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(config.levels)])
        self.up = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(config.levels))])
        self.head = nn.Conv2d(chans[0], 2, 1)
        self.register_buffer("log_depth_mean", torch.zeros(()))

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        R = self.config.resolution
        if image.shape[-2:] != (R, R):
            raise ValueError(f"DepthNet takes {R}x{R} images, got {tuple(image.shape[-2:])}")
        skips = []
        x = image
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        out = self.head(x)
        return out[:, :1] + self.log_depth_mean, out[:, 1:]

    @torch.no_grad()
    def predict(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Depth (B, 1, H, W) and foreground probability (B, 1, H, W) for images of any size H x W
        (resized to the network's resolution and back)."""
        H, W = image.shape[-2:]
        R = self.config.resolution
        x = image if (H, W) == (R, R) else F.interpolate(image, size=(R, R), mode="bilinear", antialias=True,
                                                         align_corners=False)
        log_d, logit = self(x)
        if (H, W) != (R, R):
            log_d = F.interpolate(log_d, size=(H, W), mode="bilinear", align_corners=False)
            logit = F.interpolate(logit, size=(H, W), mode="bilinear", align_corners=False)
        return log_d.exp(), torch.sigmoid(logit)


GroundTruthFn = Callable[[list[int]], tuple[Tensor, Tensor, Tensor]]
"""indices -> (image (B, 3, R, R) in [-1, 1], depth (B, 1, R, R), mask (B, 1, R, R)) at the net's resolution."""


def train_depth_net(ground_truth: GroundTruthFn, num_items: int, config: DepthNetConfig = DepthNetConfig(),
                    device: str | torch.device = "cpu", progress: bool = True) -> tuple[DepthNet, dict]:
    """Train a :class:`DepthNet` on ``min(num_items, config.train_items)`` dataset items.

    Loss: L1 on log-depth over the ground-truth foreground + binary cross-entropy of the foreground logit;
    random horizontal flips. Returns the network (eval mode) and a training record (losses, time).
    """
    n = min(num_items, config.train_items)
    if n < 1:
        raise ValueError("the depth network needs at least one training item")
    start = time.time()
    images, depths, masks = [], [], []
    for s in range(0, n, 64):
        im, d, m = ground_truth(list(range(s, min(n, s + 64))))
        images.append(im.float().cpu())
        depths.append(d.float().cpu())
        masks.append(m.float().cpu())
    images, depths, masks = torch.cat(images), torch.cat(depths), torch.cat(masks)
    if float(masks.sum()) == 0:
        raise ValueError("the depth network's training items have no foreground pixels")
    log_depth = depths.clamp_min(1e-6).log()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = DepthNet(config)
    net.log_depth_mean.fill_(float((log_depth * masks).sum() / masks.sum()))
    net = net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / config.steps)))
    g = torch.Generator().manual_seed(config.seed)
    losses = []
    for _ in tqdm(range(config.steps), desc="depth net", unit="step", disable=not progress, leave=False):
        idx = torch.randint(0, n, (config.batch,), generator=g)
        flip = torch.rand(config.batch, generator=g) < 0.5
        im, ld, m = images[idx], log_depth[idx], masks[idx]
        im, ld, m = (torch.where(flip[:, None, None, None], t.flip(-1), t) for t in (im, ld, m))
        im, ld, m = im.to(device), ld.to(device), m.to(device)
        pred, logit = net(im)
        depth_loss = ((pred - ld).abs() * m).sum() / m.sum().clamp_min(1)
        mask_loss = F.binary_cross_entropy_with_logits(logit, m)
        loss = depth_loss + mask_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append((depth_loss.item(), mask_loss.item()))
    k = max(1, len(losses) // 10)
    record = {"items": n, "steps": config.steps, "time_s": time.time() - start,
              "depth_l1_log_first": sum(l[0] for l in losses[:k]) / k,
              "depth_l1_log_last": sum(l[0] for l in losses[-k:]) / k,
              "mask_bce_last": sum(l[1] for l in losses[-k:]) / k}
    return net.eval(), record


def depth_net_key(fingerprint: str, config: DepthNetConfig) -> str:
    """Cache key of a trained network: the dataset's content hash and every config field."""
    blob = json.dumps({"dataset": fingerprint, "config": asdict(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_or_train_depth_net(ground_truth: GroundTruthFn, num_items: int, fingerprint: str, cache_dir: str | os.PathLike,
                            config: DepthNetConfig = DepthNetConfig(), device: str | torch.device = "cpu",
                            progress: bool = True) -> tuple[DepthNet, dict]:
    """The cached network for (dataset fingerprint, config) from ``cache_dir``, trained and saved
    (safetensors + JSON, atomically) when absent. The record says whether it came from the cache."""
    key = depth_net_key(fingerprint, config)
    weights = Path(cache_dir) / f"depthnet-{key}.safetensors"
    meta_file = weights.with_suffix(".json")
    if weights.is_file() and meta_file.is_file():
        net = DepthNet(config)
        net.load_state_dict(load_safetensors_bytes(weights.read_bytes()))
        meta = json.loads(meta_file.read_text())
        return net.to(device).eval(), {**meta.get("training", {}), "cached": True, "file": str(weights)}
    net, record = train_depth_net(ground_truth, num_items, config, device, progress)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(weights, save_safetensors_bytes(tensors, metadata={"format": "aware3d-depthnet"}))
    meta = {"format": "aware3d-depthnet", "dataset_fingerprint": fingerprint, "config": asdict(config), "training": record}
    atomic_write_bytes(meta_file, json.dumps(meta, indent=2).encode())
    return net, {**record, "cached": False, "file": str(weights)}


__all__ = [
    "DepthNet", "DepthNetConfig", "ForegroundDepthConfig", "WITHIN_TOLERANCE", "depth_net_key", "erode_mask",
    "foreground_depth_scores", "load_or_train_depth_net", "masked_median", "mean_angle_deviation",
    "normals_from_depth", "scale_invariant_depth_error", "train_depth_net",
]
