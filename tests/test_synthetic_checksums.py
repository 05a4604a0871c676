"""Bit-exact checksums of synthetic items: a guard for refactors of :mod:`aware3d.data.synthetic`.

Every tensor field of a few items (single items, batches, the image adapter with mirroring, the
in-memory pool, the morphable-model renderers, non-default configs) is hashed with sha256 and compared
with digests recorded from the code as it was *before* the module was split into a package (the tree
based on commit aaa2764). Any change of a single bit in any field fails, naming the case and field.

The digests pin float rounding, so they hold for the torch build and CPU kernels they were recorded
with (:data:`RECORDED_WITH`, and the CPUs of :data:`ALSO_RECORDED`); on another CPU the last bit of a
transcendental may legitimately differ, so where only the ray-cast fields differ the bit test skips, and
:data:`SUMMARIES` (a few float64 statistics per tensor, compared to 1e-6) checks the values on every CPU (the ray-cast fields to a
few edge pixels' worth). Re-record (``python tests/test_synthetic_checksums.py``) only for an
intended change of the generated data, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import fields, is_dataclass

import pytest
import torch
from torch import Tensor

from aware3d.cameras import Cameras
from aware3d.data import open_dataset
from aware3d.data.synthetic import make_synthetic, render_head, render_object

RECORDED_WITH = {"torch": "2.13.0+cpu", "cpu": "AVX512"}
"""torch version and CPU capability the digests below were taken with."""

_DIGEST_CHARS = 16
"""Hex digits kept of each sha256 (64 bits: ample to detect any change, short enough to read)."""


def _digest(t: Tensor) -> str:
    """sha256 (first :data:`_DIGEST_CHARS` hex digits) of a tensor's dtype, shape and bytes."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:_DIGEST_CHARS]


def _summary(t: Tensor) -> list[float]:
    """A few float64 statistics of a tensor that survive last-bit rounding differences between CPUs: the mean,
    the mean square and a weighted sum with fixed pseudo-random weights (so a moved or swapped value shows)."""
    x = t.detach().cpu().double().reshape(-1)
    if not x.numel():
        return [0.0, 0.0, 0.0]
    weights = torch.sin(torch.arange(x.numel(), dtype=torch.float64) * 12.9898) * 0.5 + 0.5
    return [x.mean().item(), (x * x).mean().item(), (weights * x).mean().item()]


def _digests(obj, names: tuple[str, ...] | None = None, summarise=_digest) -> dict:
    """{field: summarise(tensor)} of every tensor field of a dataclass (or of ``names`` only), or of a dict."""
    if is_dataclass(obj):
        items = {f.name: getattr(obj, f.name) for f in fields(obj)}
    else:
        items = dict(obj)
    return {k: summarise(v) for k, v in items.items() if isinstance(v, Tensor) and (names is None or k in names)}


_IMAGE_BATCH_FIELDS = ("image", "label", "has_label", "index")
"""The :class:`ImageBatch` fields that existed when the digests were recorded (new ones are not pinned)."""


def current_digests(summarise=_digest) -> dict[str, dict]:
    """Digests (or ``summarise`` of each tensor) of every case, computed from the current code."""

    def take(obj, names=None):
        return _digests(obj, names, summarise)

    heads = make_synthetic("synthetic-heads", resolution=32, length=100)
    objects = make_synthetic("synthetic-objects", resolution=32, length=100)
    out = {f"heads[{i}]": take(heads[i]) for i in (0, 1, 17)}
    out.update({f"objects[{i}]": take(objects[i]) for i in (0, 5)})
    out["heads.get_batch([17, 0, 3])"] = take(heads.get_batch([17, 0, 3]))
    out["objects.get_batch([5, 2])"] = take(objects.get_batch([5, 2]))
    out["heads.sample_params(17)"] = take(heads.sample_params(17))
    out["heads.cameras([1, 17])"] = take(heads.cameras([1, 17]))
    p = heads.sample_params(1)
    out["heads.render(item 1)"] = take(heads.render(p["identity"], p["expression"], heads.cameras([1]),
                                                        p["light_dir"], p["background"]))
    # Non-default configs: edge-aligned grid, no antialiasing, black background, another seed and size.
    variant = make_synthetic("synthetic-heads", resolution=20, grid="edge_aligned", antialias=False,
                             background="black", seed=3)
    out["heads(res 20, edge_aligned, no AA, black, seed 3)[2]"] = take(variant[2])
    edge_heads = make_synthetic("synthetic-heads", resolution=20, grid="edge_aligned", seed=5)
    out["heads(res 20, edge_aligned, seed 5)[3]"] = take(edge_heads[3])
    edge_cars = make_synthetic("synthetic-objects", resolution=18, grid="edge_aligned", background="black", length=50)
    out["objects(res 18, edge_aligned, black).get_batch([4, 1])"] = take(edge_cars.get_batch([4, 1]))
    # Non-square images from explicit parameters and cameras.
    cams = Cameras.from_angles(torch.tensor([1.3, 2.0]), torch.tensor([1.5, 1.2]), 12.0, 1.0)
    h = heads.sample_params(4)
    out["render_head(20x28, 2 cameras)"] = take(render_head(h["identity"], h["expression"], cams,
                                                                 torch.tensor([0.3, 0.5, 0.81]), 20, 28))
    o = objects.sample_params(3)
    car_cams = Cameras.from_angles(torch.tensor([0.4]), torch.tensor([1.0]), 30.0, 1.0)
    out["render_object(24, default args)"] = take(render_object(o["identity"], car_cams, o["light_dir"], 24))
    # The ImageDataset adapter: mirrored items, ground truth, the in-memory pool, labels alone.
    adapter = open_dataset("synthetic-heads", 24, mirror=True, length=10, seed=1)
    out["adapter.get_batch([1, 12, 7])"] = take(adapter.get_batch([1, 12, 7]), _IMAGE_BATCH_FIELDS)
    out["adapter.ground_truth([12, 1])"] = take(adapter.ground_truth([12, 1]))
    out["adapter.get_labels([3, 13])"] = take(dict(zip(("label", "has_label"), adapter.get_labels([3, 13]))))
    pool = open_dataset("synthetic-objects:6", 16, mirror=True)
    out["objects:6 pool.get_batch([0, 5, 6, 11])"] = take(pool.get_batch([0, 5, 6, 11]), _IMAGE_BATCH_FIELDS)
    if summarise is _digest:  # the fingerprints hash the data: exact only
        out["fingerprints"] = {"adapter": adapter.fingerprint()[:_DIGEST_CHARS],
                               "pool": pool.fingerprint()[:_DIGEST_CHARS]}
    return out


EXPECTED: dict[str, dict[str, str]] = {
    "heads[0]": {
        "image": "680c0efcc56fc68d", "depth": "8cf008f162f44669", "normals": "a99da3a8a44f1bee",
        "mask": "de8eabfc1c258a2a", "cam2world": "182f3815a035a3be", "intrinsics": "c51cce7d3b73c6d8",
        "angles": "da756d18c23592cb", "camera_angles": "badae86571b19873", "eg3d_label": "98008f41b3bf80f5",
        "light_dir": "9c1ea14240efb010", "identity": "3390b0fc154de4e1", "expression": "5e064914d509900b",
        "background": "03e5243e73e3acf6", "index": "1ba3f6b6a6a8ab1f",
    },
    "heads[1]": {
        "image": "d13dbb1c0c75ec73", "depth": "826982ec532212cc", "normals": "2fcb83d5efbefd31",
        "mask": "df1e4f497c97afdf", "cam2world": "480e44f1b08cd93c", "intrinsics": "c51cce7d3b73c6d8",
        "angles": "879b7531f72bfe66", "camera_angles": "1c00e5b40b7ac47a", "eg3d_label": "905fdc641d2f773c",
        "light_dir": "3c0a9cc6f0008a01", "identity": "17700fe9dbaa63dc", "expression": "c58b692bd13efe9f",
        "background": "61ff44e05a107f3c", "index": "c487ea372fdfe74d",
    },
    "heads[17]": {
        "image": "7d6c1fdebd335629", "depth": "9fc88e8907e72679", "normals": "48f85c6fd22859e2",
        "mask": "e72607536fdda1c2", "cam2world": "f16b325552f3519a", "intrinsics": "c51cce7d3b73c6d8",
        "angles": "5a025e369d405e37", "camera_angles": "dca95d1ec85ec874", "eg3d_label": "f6b1c72fb14d3143",
        "light_dir": "7c24756552a6d0ca", "identity": "614303786dc8f83b", "expression": "34785c231b6d61c8",
        "background": "0d4c9bdb96696e8d", "index": "d2c9870766bfea41",
    },
    "objects[0]": {
        "image": "b33a038ff1cef8c5", "depth": "88d42cde19fa69ce", "normals": "62ce8877008f7e2e",
        "mask": "c474f4e68bb6d938", "cam2world": "7f6658f593777570", "intrinsics": "15c05ea71efc1453",
        "angles": "4a38f9bd4b2ea8a6", "camera_angles": "17f793c06150caa0", "eg3d_label": "9e4c884176d940fc",
        "light_dir": "18fc460c083d339d", "identity": "7bcbe757b5ad8a37", "expression": "a5a33d6728731424",
        "background": "6f45c36ff71f6011", "index": "1ba3f6b6a6a8ab1f",
    },
    "objects[5]": {
        "image": "9b544c20b89f6daf", "depth": "e2f9805087dd7915", "normals": "eb27dbd7aabdb374",
        "mask": "b82fd3e79c1e88b9", "cam2world": "079391726b863617", "intrinsics": "15c05ea71efc1453",
        "angles": "8c57a1008b63bc32", "camera_angles": "3be2b5434abaf46b", "eg3d_label": "74bb89ff1dbcc8ce",
        "light_dir": "66bb4541744641f4", "identity": "af623a6429be710f", "expression": "a5a33d6728731424",
        "background": "6f45c36ff71f6011", "index": "b2e13856a13bc6f8",
    },
    "heads.get_batch([17, 0, 3])": {
        "image": "b61904ef6e79e23a", "depth": "03f027b9edb4ee92", "normals": "21545d5e0fb05f19",
        "mask": "be607428cf3838c0", "cam2world": "fc598b1dc93bdb54", "intrinsics": "481d22ee6c31fe3c",
        "angles": "8dc7e185420b18fe", "camera_angles": "dad16736c4f01c1f", "eg3d_label": "cdb3cb08b13bcac4",
        "light_dir": "dfd6d4cbbcc0cc93", "identity": "da9b5e01413c1be5", "expression": "2abdf549f098dfdc",
        "background": "98fe4b299932ebe3", "index": "f0fb5e896d0ad812",
    },
    "objects.get_batch([5, 2])": {
        "image": "ae041ad64e544cb2", "depth": "be2f2132ade11423", "normals": "b0c828f106e91b0b",
        "mask": "275f9328ff8132ca", "cam2world": "aabfc76d0cd87905", "intrinsics": "df6d46c3f0e5181b",
        "angles": "5c543810aba2fc9a", "camera_angles": "789f6618e2fc2526", "eg3d_label": "a4fe86a7b69494ce",
        "light_dir": "4cfa654fc6eae083", "identity": "c1043fbc522d4999", "expression": "13f46c48fb5c6465",
        "background": "a60221577870904a", "index": "53d622fd187476e0",
    },
    "heads.sample_params(17)": {
        "yaw": "e377fafa85bda30a", "pitch": "745c5f582975f2eb", "light_dir": "7c24756552a6d0ca",
        "identity": "614303786dc8f83b", "expression": "34785c231b6d61c8", "background": "0d4c9bdb96696e8d",
        "index": "d2c9870766bfea41",
    },
    "heads.cameras([1, 17])": {
        "cam2world": "ffc5fbb3f5105abb", "intrinsics": "99b202e6e02c18bc",
    },
    "heads.render(item 1)": {
        "image": "50a91a6ef8fdc43f", "depth": "f7d4da0807a8a7c5", "normals": "c6e727fd1da2a1ca",
        "mask": "f463b1d586c53df6",
    },
    "heads(res 20, edge_aligned, no AA, black, seed 3)[2]": {
        "image": "6a9cd860f489c24f", "depth": "c4e0c336c85458f2", "normals": "0df94592a32569d3",
        "mask": "999a3afedca0ca83", "cam2world": "719c29c52e669fff", "intrinsics": "c51cce7d3b73c6d8",
        "angles": "48e1552d5e6617f1", "camera_angles": "2389a4f5a655f061", "eg3d_label": "0d1b59c87da19b2e",
        "light_dir": "07e8dcaa2e6dc9ca", "identity": "27c6cca0ec047711", "expression": "1e1ce97d3ad806f5",
        "background": "fbffb05ba63ec105", "index": "61c211090ee99757",
    },
    "heads(res 20, edge_aligned, seed 5)[3]": {
        "image": "9f49e6e0292fef48", "depth": "6647484a57f96b97", "normals": "84b16c4e5b0638f2",
        "mask": "abdd0c331a422070", "cam2world": "8a1d3b42eae5d2d0", "intrinsics": "c51cce7d3b73c6d8",
        "angles": "fce1dc3309fcd394", "camera_angles": "e1d1cc848c022d78", "eg3d_label": "3b62e9fcb03c816d",
        "light_dir": "fdaf00b81ec3daf2", "identity": "bd886d1588d06003", "expression": "af5f7e2fc58b7467",
        "background": "625da795f3cee50f", "index": "ba23404ab8d54861",
    },
    "objects(res 18, edge_aligned, black).get_batch([4, 1])": {
        "image": "ef8e93b98e14c3d1", "depth": "ea9c71f0663ffe40", "normals": "19994eac5ff2bd84",
        "mask": "90d90fe643c9714d", "cam2world": "355a777af8a73bde", "intrinsics": "df6d46c3f0e5181b",
        "angles": "f7182080b8691eb0", "camera_angles": "79bbcabbf5be768a", "eg3d_label": "862ffe39e4e19cdb",
        "light_dir": "9f9e3111fe1305cd", "identity": "f802000f7e970789", "expression": "13f46c48fb5c6465",
        "background": "883ea9899a8766a0", "index": "74acc5e92232caa5",
    },
    "render_head(20x28, 2 cameras)": {
        "image": "cd572bf9d4ba9d2d", "depth": "47f335ebaa65a5c7", "normals": "402402e68c14f8bf",
        "mask": "1d4c50934166f8c3",
    },
    "render_object(24, default args)": {
        "image": "cc43498d9504a606", "depth": "ec187784db3bcf16", "normals": "b6dcfcbcc2a1eadd",
        "mask": "b824babbbe51237c",
    },
    "adapter.get_batch([1, 12, 7])": {
        "image": "d835080ff239a29a", "label": "8a69631ae0c34327", "has_label": "3bd532dbd01a7767",
        "index": "7a3f672223f3289d",
    },
    "adapter.ground_truth([12, 1])": {
        "image": "d4eb553678f527eb", "depth": "ff94085e6f32c0d7", "normals": "987ce09e325f901c",
        "mask": "0c944ac76adaeb7a", "cam2world": "76eaaf6f6182f3b5", "intrinsics": "4cb0eca0316e877c",
        "angles": "b2cbc24b694c4fc8", "camera_angles": "d402c4957da83811", "eg3d_label": "48927546b556b76b",
        "light_dir": "790fc67b0112dd09", "identity": "61041821303ad013", "expression": "d4959a26cf6dad43",
        "background": "c950dc4f871e49d1", "index": "136a15f500c7d359",
    },
    "adapter.get_labels([3, 13])": {
        "label": "d3651dd94079c02b", "has_label": "6262ee8d45895f0b",
    },
    "objects:6 pool.get_batch([0, 5, 6, 11])": {
        "image": "a4b089b71e5d8afb", "label": "9a2a605c835fcc5a", "has_label": "7cfe12ffadb19310",
        "index": "0e399948fc21373f",
    },
    "fingerprints": {
        "adapter": "85ce05d5aec12cdc", "pool": "71ecd942e52bcad9",
    },
}
"""Recorded before the split of aware3d/data/synthetic.py (tree based on commit aaa2764)."""


def cpu_signature() -> str:
    """Vendor, family and model of this CPU from /proc/cpuinfo ('' where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return ""
    info = {k.strip(): v.strip() for k, v in info.items()}
    return f"{info.get('vendor_id', '')} family {info.get('cpu family', '')} model {info.get('model', '')}"


ALSO_RECORDED: dict[str, dict[str, dict[str, str]]] = {
    "AuthenticAMD family 25 model 17": {'heads[0]': {'image': '7095f2c360a5c9b6', 'depth': 'f786288e131ba7b7', 'normals': '846154e8cb5fae7e'},
     'heads[1]': {'image': '1d80cacdba421d33', 'depth': '50a71f994e2edbc1', 'normals': 'd08bf4d496889706'},
     'heads[17]': {'image': '2fe07717d780da9f', 'depth': 'b958e850190e8c5a', 'normals': '24e266943f42db8b'},
     'objects[0]': {'image': '3af54071957b64d4', 'depth': '74bb5b487af8bf02', 'normals': 'e860e0fca8a46dc1'},
     'objects[5]': {'image': '4a629d6295583c8f', 'depth': '33d802ce834111a6', 'normals': '3c3ab64e5b829fe0'},
     'heads.get_batch([17, 0, 3])': {'image': '949e67730e8625ae',
                                     'depth': '9e3ff5ef000c55ad',
                                     'normals': '904b752661b3c48c'},
     'objects.get_batch([5, 2])': {'image': 'd7fb226f47b89400',
                                   'depth': '6a89fa7c1373b3a3',
                                   'normals': '27369db88a79ca49'},
     'heads.render(item 1)': {'image': '96728e188d998ae6', 'depth': '64f67b6d1c826912', 'normals': '6f8ad874177d0730'},
     'heads(res 20, edge_aligned, no AA, black, seed 3)[2]': {'image': '9ad63c51be62c3b3',
                                                              'depth': '1b15e9a359972c94',
                                                              'normals': '919eb11344afb8d9'},
     'heads(res 20, edge_aligned, seed 5)[3]': {'image': 'a82bdb29bcb5f358',
                                                'depth': '748d1bf474638713',
                                                'normals': '93242150320fee70'},
     'objects(res 18, edge_aligned, black).get_batch([4, 1])': {'image': 'ad4e3abf636efe56',
                                                                'depth': 'b8be6ce7b0fc5977',
                                                                'normals': 'd4d47017c4146096'},
     'render_head(20x28, 2 cameras)': {'image': '367109bc249e28d7',
                                       'depth': 'ffdf950effa8eba2',
                                       'normals': '840b8dbdac3f5a07'},
     'render_object(24, default args)': {'image': '93046db9d3e2914d',
                                         'depth': 'a37f79fa7f2303fc',
                                         'normals': 'e54728dba62243c8'},
     'adapter.get_batch([1, 12, 7])': {'image': 'b311bd748e7244ae'},
     'adapter.ground_truth([12, 1])': {'image': '88dc206abd559965',
                                       'depth': '8254fe75c2810dd2',
                                       'normals': '05fb43da22d03735'},
     'objects:6 pool.get_batch([0, 5, 6, 11])': {'image': '05566d5ae6bf5f83'}},
}
"""Digests that differ on these CPUs with the same torch build and capability: the same data up to the last bits
of the ray-cast depths, normals and shading (mask, cameras and parameters are identical). Recorded on 2026-12-02
with the code of commit 23ab263, whose data had matched :data:`EXPECTED` on the machines before."""


SUMMARIES: dict[str, dict[str, list[float]]] = {'heads[0]': {'image': [0.04217922476042683, 0.27549837186781084, 0.01831805323618783],
              'depth': [0.4539580156560987, 0.4353062839549048, 0.22793969491471347],
              'normals': [0.027633140678451202, 0.15787760284875976, 0.011946730140676454],
              'mask': [0.4736328125, 0.4736328125, 0.23780523150956495],
              'cam2world': [0.08515535050537437, 0.31250001085791396, 0.007082807710343784],
              'intrinsics': [1.2793738047281902, 5.1957292744435914, 0.9330051889322077],
              'angles': [1.7792050242424011, 3.2300306997158046, 1.0462864395372078],
              'camera_angles': [0.6625378926595052, 0.8467685873001093, 0.43572489794042407],
              'eg3d_label': [0.5150739940255881, 2.0704625457487578, 0.35883258141487273],
              'light_dir': [0.5449262261390686, 0.3333333094749005, 0.4050440361963544],
              'identity': [0.1809571769699687, 0.09505520448535887, 0.10567847710525514],
              'expression': [0.3524331599473953, 0.17810701821675368, 0.23626727672717715],
              'background': [0.744204064210256, 0.5566415883396173, 0.5107734680944634],
              'index': [0.0, 0.0, 0.0]},
 'heads[1]': {'image': [-0.3918743313212569, 0.19391916161972414, -0.19713760109780165],
              'depth': [0.44121916353469715, 0.42254293259310544, 0.22080592358505552],
              'normals': [0.07040281743707055, 0.15364583202736634, 0.03263506150306617],
              'mask': [0.4609375, 0.4609375, 0.23060973229539758],
              'cam2world': [0.07162167795468122, 0.3125000188858999, 0.006504309688491744],
              'intrinsics': [1.2793738047281902, 5.1957292744435914, 0.9330051889322077],
              'angles': [1.6906858086585999, 2.864583294951082, 1.0109487498914618],
              'camera_angles': [0.6035250822703043, 0.8794852286479701, 0.4121664381765933],
              'eg3d_label': [0.5064124435931444, 2.070462550886669, 0.35846234268088756],
              'light_dir': [0.5649925867716471, 0.33333334254709257, 0.3749382595603226],
              'identity': [0.23970553229446523, 0.13665797076351416, 0.13316025101284465],
              'expression': [0.5149412080645561, 0.3947796988229416, 0.347348793177037],
              'background': [0.29394304752349854, 0.08733101896761752, 0.20046218622364742],
              'index': [1.0, 1.0, 0.5]},
 'heads[17]': {'image': [0.18918041960569099, 0.2303910978869402, 0.09340455061134172],
               'depth': [0.46094339387491345, 0.442411359969761, 0.23144753363847803],
               'normals': [0.14851188827614692, 0.16015624873510106, 0.07438358987475963],
               'mask': [0.48046875, 0.48046875, 0.24107680912874563],
               'cam2world': [0.028295638621784747, 0.3125000064607245, -0.006888645378116523],
               'intrinsics': [1.2793738047281902, 5.1957292744435914, 0.9330051889322077],
               'angles': [1.3768757581710815, 1.9487482418020647, 0.853513631022167],
               'camera_angles': [0.3943183819452922, 0.920766765927913, 0.30720969226373024],
               'eg3d_label': [0.4786837784200907, 2.0704625429345564, 0.34989085143825827],
               'light_dir': [0.5480492413043976, 0.3333333297838754, 0.35864913193527875],
               'identity': [0.22357595041103195, 0.1264864864017672, 0.11579612899853584],
               'expression': [0.44475144892930984, 0.288723003684071, 0.29903530308471754],
               'background': [0.7623228629430135, 0.583446318928722, 0.5338216906555113],
               'index': [17.0, 289.0, 8.5]},
 'objects[0]': {'image': [0.6055929923119644, 0.8594682224774658, 0.3139078799367157],
                'depth': [0.21279747859807685, 0.19846077842492557, 0.09936516858077343],
                'normals': [0.07769852002744908, 0.0761718748469627, 0.037070199066958846],
                'mask': [0.228515625, 0.228515625, 0.10733460791174702],
                'cam2world': [0.08096510914037935, 0.3124999900123031, 0.005367529988878135],
                'intrinsics': [0.6368945439656576, 0.9404557715570768, 0.45235766883896467],
                'angles': [1.4200234413146973, 2.032659731999331, 0.8428082007516133],
                'camera_angles': [0.42308350404103595, 0.5572701125588017, 0.30007273875002777],
                'eg3d_label': [0.2810997056774795, 0.5385640713684217, 0.16754801321589746],
                'light_dir': [0.5612673262755076, 0.3333333505886567, 0.37076743712488147],
                'identity': [0.3933868948370218, 0.37406132790071267, 0.22062200094326415],
                'expression': [0.0, 0.0, 0.0],
                'background': [1.0, 1.0, 0.6933488212055927],
                'index': [0.0, 0.0, 0.0]},
 'objects[5]': {'image': [0.6343259035881298, 0.7492530485423509, 0.320349047358159],
                'depth': [0.30896718881558627, 0.3001416658903441, 0.14579362479441538],
                'normals': [0.07162270488288414, 0.10644531200467115, 0.0299801180325396],
                'mask': [0.3193359375, 0.3193359375, 0.1508666960648992],
                'cam2world': [-0.017360355705022812, 0.31250001185272847, -0.04007781513256997],
                'intrinsics': [0.6368945439656576, 0.9404557715570768, 0.45235766883896467],
                'angles': [2.0694380551576614, 6.767585914748121, 1.0853658647623114],
                'camera_angles': [0.8560265401999155, 1.5162863414260224, 0.46177782822227825],
                'eg3d_label': [0.2181714081764221, 0.5385640853462939, 0.13846299233817064],
                'light_dir': [0.3441760092973709, 0.3333333436585766, 0.20838129845300726],
                'identity': [0.45606416078905265, 0.41818718827549145, 0.23388422825061955],
                'expression': [0.0, 0.0, 0.0],
                'background': [1.0, 1.0, 0.6933488212055927],
                'index': [5.0, 25.0, 2.5]},
 'heads.get_batch([17, 0, 3])': {'image': [-0.07292029364422585, 0.2521299982143209, -0.03737976702898186],
                                 'depth': [0.4590236043053058, 0.4399270922534142, 0.230189066780755],
                                 'normals': [0.08187161364243896, 0.15972222121126176, 0.039822728183799755],
                                 'mask': [0.4791666666666667, 0.4791666666666667, 0.24022120657114057],
                                 'cam2world': [0.06261453604868923, 0.31250000839140873, 0.04429876427168151],
                                 'intrinsics': [1.2793738047281902, 5.1957292744435914, 0.7046784539004007],
                                 'angles': [1.6203060547510784, 2.6988953351588094, 1.3771411661728108],
                                 'camera_angles': [0.5566052463319566, 0.8793276501852981, 0.4468713909163047],
                                 'eg3d_label': [0.5006478727733096, 2.0704625441701947, 0.24796303451958504],
                                 'light_dir': [0.4602450169622898, 0.3333333212210555, 0.3283971153434304],
                                 'identity': [0.19463466228626203, 0.10233754587831158, 0.08950705898399937],
                                 'expression': [0.3863326882322629, 0.20146008720350295, 0.32750971662951006],
                                 'background': [0.5897947880956862, 0.4045081061131499, 0.46553645018759376],
                                 'index': [6.666666666666667, 99.33333333333333, 3.707935105323333]},
 'objects.get_batch([5, 2])': {'image': [0.5731440709496383, 0.7762444779170345, 0.29185887481077283],
                               'depth': [0.3051091591187287, 0.2922222318125039, 0.14676237832501976],
                               'normals': [0.0787950086425629, 0.10677083313534375, 0.035744909649274285],
                               'mask': [0.3203125, 0.3203125, 0.15421275970421244],
                               'cam2world': [0.04449420515447855, 0.3125000056689834, -0.008168406712279988],
                               'intrinsics': [0.6368945439656576, 0.9404557715570768, 0.32016105332812567],
                               'angles': [1.826604925096035, 4.888361382251005, 1.2578253365217282],
                               'camera_angles': [0.6941378066937128, 0.9726236144805323, 0.4937713254029721],
                               'eg3d_label': [0.257758327126503, 0.5385640813886969, 0.1349490888258334],
                               'light_dir': [0.13488434503475824, 0.3333333403347288, 0.07442680208287036],
                               'identity': [0.4384848133350412, 0.40665998453190055, 0.21701200638679405],
                               'expression': [0.0, 0.0, 0.0],
                               'background': [1.0, 1.0, 0.8301800123757358],
                               'index': [3.5, 14.5, 1.9554446916267783]},
 'heads.sample_params(17)': {'yaw': [1.146742343902588, 1.3150180032992012, 0.573371171951294],
                             'pitch': [1.6070091724395752, 2.5824784803049283, 0.8035045862197876],
                             'light_dir': [0.5480492413043976, 0.3333333297838754, 0.35864913193527875],
                             'identity': [0.22357595041103195, 0.1264864864017672, 0.11579612899853584],
                             'expression': [0.44475144892930984, 0.288723003684071, 0.29903530308471754],
                             'background': [0.7623228629430135, 0.583446318928722, 0.5338216906555113],
                             'index': [17.0, 289.0, 8.5]},
 'heads.cameras([1, 17])': {'cam2world': [0.04995865828823298, 0.31250001267331223, 0.02365734461968197],
                            'intrinsics': [1.2793738047281902, 5.1957292744435914, 0.6148786452676405]},
 'heads.render(item 1)': {'image': [-0.3918743313212569, 0.19391916161972414, -0.19713760109780165],
                          'depth': [0.44121916353469715, 0.42254293259310544, 0.22080592358505552],
                          'normals': [0.07040281743707055, 0.15364583202736634, 0.03263506150306617],
                          'mask': [0.4609375, 0.4609375, 0.23060973229539758]},
 'heads(res 20, edge_aligned, no AA, black, seed 3)[2]': {'image': [-0.7999527559677759,
                                                                    0.7331632401464669,
                                                                    -0.40016366997832514],
                                                          'depth': [0.4079743592441082,
                                                                    0.39194028706691214,
                                                                    0.2059586116940305],
                                                          'normals': [0.14386246863248137,
                                                                      0.14166666435270775,
                                                                      0.07435983580114568],
                                                          'mask': [0.425, 0.425, 0.21441049471672222],
                                                          'cam2world': [0.06564183672890067,
                                                                        0.31250000056459865,
                                                                        0.0026776248053498874],
                                                          'intrinsics': [1.2793738047281902,
                                                                         5.1957292744435914,
                                                                         0.9330051889322077],
                                                          'angles': [1.2810776233673096,
                                                                     1.6412186244193094,
                                                                     0.7729214442839003],
                                                          'camera_angles': [0.3304529587427775,
                                                                            0.5830978762503728,
                                                                            0.2534815677715524],
                                                          'eg3d_label': [0.5025853452086448,
                                                                         2.0704625391610363,
                                                                         0.3560132643556767],
                                                          'light_dir': [0.014510986705621084,
                                                                        0.33333332626396367,
                                                                        0.09747263339003258],
                                                          'identity': [0.19093598920153454,
                                                                       0.09479141386558963,
                                                                       0.09551919693251869],
                                                          'expression': [0.44403037428855896,
                                                                         0.27501236273281826,
                                                                         0.2389659499490068],
                                                          'background': [0.0, 0.0, 0.0],
                                                          'index': [2.0, 4.0, 1.0]},
 'heads(res 20, edge_aligned, seed 5)[3]': {'image': [-0.15628200605511666, 0.1175154661782233, -0.08139292971324628],
                                            'depth': [0.4112504275143147, 0.3934910614735635, 0.20821377425936394],
                                            'normals': [0.06776477269285049,
                                                        0.1433333324630552,
                                                        0.033149448591426635],
                                            'mask': [0.43, 0.43, 0.21771918227214357],
                                            'cam2world': [0.05857085663592443,
                                                          0.31250000978019193,
                                                          0.005263167629493883],
                                            'intrinsics': [1.2793738047281902,
                                                           5.1957292744435914,
                                                           0.9330051889322077],
                                            'angles': [1.6720783114433289, 2.7974575277287173, 1.0119227855066697],
                                            'camera_angles': [0.5911200841267904,
                                                              0.9784825028500658,
                                                              0.4128157952533987],
                                            'eg3d_label': [0.49805991794914006,
                                                           2.0704625450590157,
                                                           0.35766801176312896],
                                            'light_dir': [0.1832503378391266,
                                                          0.3333333036233072,
                                                          0.20941701777118696],
                                            'identity': [0.16819311102153733,
                                                         0.08029148492767679,
                                                         0.09273712946403363],
                                            'expression': [0.4410802163183689,
                                                           0.32509047216086717,
                                                           0.30296263191440553],
                                            'background': [0.5298627614974976,
                                                           0.28106016333688427,
                                                           0.3654044633114064],
                                            'index': [3.0, 9.0, 1.5]},
 'objects(res 18, edge_aligned, black).get_batch([4, 1])': {'image': [-0.8347922882425441,
                                                                      0.8544586043846444,
                                                                      -0.4245588170347375],
                                                            'depth': [0.2146827748712198,
                                                                      0.2011728965445003,
                                                                      0.10376648198207909],
                                                            'normals': [0.053191594407728915,
                                                                        0.07664609043917861,
                                                                        0.022042823239981035],
                                                            'mask': [0.22993827160493827,
                                                                     0.22993827160493827,
                                                                     0.11143774762940421],
                                                            'cam2world': [0.06828098034020513,
                                                                          0.3125000073697798,
                                                                          -0.01011674946051646],
                                                            'intrinsics': [0.6368945439656576,
                                                                           0.9404557715570768,
                                                                           0.32016105332812567],
                                                            'angles': [1.7394208312034607,
                                                                       3.9189059214535362,
                                                                       1.3125999235701005],
                                                            'camera_angles': [0.6360150973002116,
                                                                              0.7463596608841669,
                                                                              0.5452914792111564],
                                                            'eg3d_label': [0.272981863245368,
                                                                           0.5385640824772068,
                                                                           0.1488218921148369],
                                                            'light_dir': [0.4118511577447255,
                                                                          0.3333333447944167,
                                                                          0.3145174998855699],
                                                            'identity': [0.46283456751455865,
                                                                         0.46654326119271894,
                                                                         0.22792053993630704],
                                                            'expression': [0.0, 0.0, 0.0],
                                                            'background': [0.0, 0.0, 0.0],
                                                            'index': [2.5, 8.5, 1.352722345813389]},
 'render_head(20x28, 2 cameras)': {'image': [-0.10395155345045384, 0.13065608751704005, -0.050738720153283276],
                                   'depth': [0.4728799049343382, 0.45235941766860344, 0.22996119781739846],
                                   'normals': [0.11329346169921423, 0.1648809516801143, 0.05604124574278831],
                                   'mask': [0.49464285714285716, 0.49464285714285716, 0.24099827586820954]},
 'render_object(24, default args)': {'image': [0.6048662719420261, 0.8450877902909667, 0.3046383049826364],
                                     'depth': [0.2267216481268406, 0.2085363093426843, 0.11426365154288004],
                                     'normals': [0.086582019247645, 0.0827546291236721, 0.042547998480062306],
                                     'mask': [0.2482638888888889, 0.2482638888888889, 0.12535710593668473]},
 'adapter.get_batch([1, 12, 7])': {'image': [-0.14751354773977288, 0.17386575238919655, -0.07385550425564508],
                                   'label': [0.504943661885336, 2.0704625404833883, 0.2451806292916809],
                                   'has_label': [1.0, 1.0, 0.6933488212055927],
                                   'index': [6.666666666666667, 64.66666666666667, 5.029182901150446]},
 'adapter.ground_truth([12, 1])': {'image': [-0.07751855783647409, 0.17205201392593114, -0.03826726401615473],
                                   'depth': [0.45500093817503917, 0.435427760889209, 0.22540982117211344],
                                   'normals': [0.10466647002636752, 0.1585648135857385, 0.05285826515951241],
                                   'mask': [0.4756944444444444, 0.4756944444444444, 0.2357579668307203],
                                   'cam2world': [0.06219887313636718, 0.31250000379633014, 0.026472589263374403],
                                   'intrinsics': [1.2793738047281902, 5.1957292744435914, 0.6148786452676405],
                                   'angles': [1.560819149017334, 2.4465972900088744, 1.1777168506214573],
                                   'camera_angles': [0.5169473091761271, 0.819058573830541, 0.4274326801610215],
                                   'eg3d_label': [0.5003818485094235, 2.0704625412293445, 0.25084246975328806],
                                   'light_dir': [0.572440524895986, 0.33333335425732713, 0.4744698096644859],
                                   'identity': [0.1732852882705629, 0.08077103751343803, 0.09578174006011513],
                                   'expression': [0.4080745158717036, 0.29631350412948576, 0.35963645117953524],
                                   'background': [0.6201239029566447, 0.4032845335910942, 0.49792783522664424],
                                   'index': [6.5, 72.5, 3.352722345813389]},
 'adapter.get_labels([3, 13])': {'label': [0.4995722245424986, 2.070462539800456, 0.25570680930878437],
                                 'has_label': [1.0, 1.0, 0.6027223458133891]},
 'objects:6 pool.get_batch([0, 5, 6, 11])': {'image': [0.6228948063217103, 0.7739968842435784, 0.3153451415572374],
                                             'label': [0.24789120137691498, 0.5385640783573578, 0.15139754358641205],
                                             'has_label': [1.0, 1.0, 0.7644098898185601],
                                             'index': [5.5, 45.5, 4.882089535576494]}}
""":func:`_summary` of every tensor of every case (:func:`current_digests` with ``summarise=_summary``), recorded on
2026-12-02 from the same code as :data:`ALSO_RECORDED`: the values, to float32 rounding, on any CPU."""

_SUMMARY_RTOL = 1e-6
"""Relative tolerance of the summaries: float32 last-bit differences average far below it; a changed value does not."""

_RAY_CAST_TOL = 2e-3
"""Tolerance of the ray-cast fields' summaries, as a fraction of the field's root mean square. Sphere tracing is
discontinuous at silhouettes: a last-bit difference can turn a grazing ray from hit to miss and change a whole edge
pixel, which moves a 32x32 image's mean by ~3e-4 of its RMS per pixel (the worst CPU seen so far, Intel family 6
model 167, moves two: 7e-4). A shading, colour or geometry change moves thousands of pixels and lands far above."""

ROUNDING_FIELDS = {"image", "depth", "normals", "adapter", "pool"}
"""The fields whose last bits differ between CPUs (the ray-cast depths, normals and shading, and the fingerprints
that hash them); masks, cameras and parameters are bit-identical everywhere."""


def expected_here() -> dict[str, dict[str, str]]:
    """:data:`EXPECTED` with this CPU's recorded differences, if any."""
    extra = ALSO_RECORDED.get(cpu_signature(), {})
    return {case: {**ref, **extra.get(case, {})} for case, ref in EXPECTED.items()}


def _recorded_here() -> bool:
    return (torch.__version__ == RECORDED_WITH["torch"]
            and torch.backends.cpu.get_cpu_capability() == RECORDED_WITH["cpu"])


@pytest.mark.skipif(not _recorded_here(), reason=f"checksums were recorded with {RECORDED_WITH}; this is torch "
                    f"{torch.__version__} on {torch.backends.cpu.get_cpu_capability()}")
def test_synthetic_items_are_bit_identical_to_the_recorded_checksums():
    got, expected = current_digests(), expected_here()
    assert set(got) == set(expected)
    changed = [(case, name) for case, ref in expected.items() for name in set(ref) | set(got[case])
               if got[case].get(name) != ref.get(name)]
    unrecorded_cpu = cpu_signature() not in ALSO_RECORDED
    if changed and unrecorded_cpu and all(name in ROUNDING_FIELDS for _, name in changed):
        pytest.skip(f"this CPU ({cpu_signature()}) rounds the last bits of {len(changed)} ray-cast fields differently "
                    "from the recorded machines; test_synthetic_items_match_the_recorded_summaries checks the values")
    names = sorted(f"{case}.{name}" for case, name in changed)
    assert not changed, f"synthetic data changed bits in: {', '.join(names)}"


def _summary_close(name: str, got: list[float], ref: list[float]) -> bool:
    """Whether a field's summary matches the record: to float32 rounding, or for a ray-cast field (whose edge pixels
    may flip on another CPU) to :data:`_RAY_CAST_TOL` of its root mean square."""
    if name in ROUNDING_FIELDS:
        tol = _RAY_CAST_TOL * math.sqrt(abs(ref[1]))
        return all(abs(a - b) <= tol for a, b in zip(got, ref))
    return all(math.isclose(a, b, rel_tol=_SUMMARY_RTOL, abs_tol=1e-9) for a, b in zip(got, ref))


def test_summaries_tell_a_flipped_edge_pixel_from_a_changed_image():
    """The ray-cast tolerance admits a few flipped pixels of a 32x32 image and rejects a 1% change of its shading."""
    torch.manual_seed(0)
    image = torch.rand(3, 32, 32)
    flipped = image.clone()
    flipped[:, 5, 7] = 1 - flipped[:, 5, 7]
    assert _summary_close("image", _summary(flipped), _summary(image))
    assert not _summary_close("image", _summary(image * 1.01), _summary(image))
    assert not _summary_close("label", _summary(flipped), _summary(image))


def test_synthetic_items_match_the_recorded_summaries():
    """On every CPU: each tensor of each case has the recorded mean, mean square and weighted sum."""
    got = current_digests(summarise=_summary)
    assert set(got) == set(SUMMARIES)
    off = [f"{case}.{name}: {got[case].get(name)} != {ref}" for case, fields_ in SUMMARIES.items()
           for name, ref in fields_.items() if name not in got[case] or not _summary_close(name, got[case][name], ref)]
    assert not off and set().union(*map(set, got.values())) == set().union(*map(set, SUMMARIES.values())), off


def test_digest_sees_one_bit():
    x = torch.linspace(0, 1, 7)
    y = x.clone()
    y[3] = torch.nextafter(y[3], torch.tensor(math.inf))
    assert _digest(x) == _digest(x.clone()) != _digest(y)
    assert _digest(x) != _digest(x.double()) and _digest(x) != _digest(x.reshape(7, 1))


if __name__ == "__main__":  # print the digests of the current code, to re-record EXPECTED
    import pprint

    pprint.pprint(current_digests(), width=120, sort_dicts=False)
