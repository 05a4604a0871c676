"""Bit-exact checksums of synthetic items: a guard for refactors of :mod:`aware3d.data.synthetic`.

Every tensor field of a few items (single items, batches, the image adapter with mirroring, the
in-memory pool, the morphable-model renderers, non-default configs) is hashed with sha256 and compared
with digests recorded from the code as it was *before* the module was split into a package (the tree
based on commit aaa2764). Any change of a single bit in any field fails, naming the case and field.

The digests pin float rounding, so they hold for the torch build and CPU kernels they were recorded
with (:data:`RECORDED_WITH`); elsewhere the last bit of a transcendental may legitimately differ, so
the test skips rather than fail. Re-record (``python tests/test_synthetic_checksums.py``) only for an
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


def _digests(obj, names: tuple[str, ...] | None = None) -> dict[str, str]:
    """{field: digest} of every tensor field of a dataclass (or of ``names`` only), or of a dict."""
    if is_dataclass(obj):
        items = {f.name: getattr(obj, f.name) for f in fields(obj)}
    else:
        items = dict(obj)
    return {k: _digest(v) for k, v in items.items() if isinstance(v, Tensor) and (names is None or k in names)}


_IMAGE_BATCH_FIELDS = ("image", "label", "has_label", "index")
"""The :class:`ImageBatch` fields that existed when the digests were recorded (new ones are not pinned)."""


def current_digests() -> dict[str, dict[str, str]]:
    """Digests of every case, computed from the current code."""
    heads = make_synthetic("synthetic-heads", resolution=32, length=100)
    objects = make_synthetic("synthetic-objects", resolution=32, length=100)
    out = {f"heads[{i}]": _digests(heads[i]) for i in (0, 1, 17)}
    out.update({f"objects[{i}]": _digests(objects[i]) for i in (0, 5)})
    out["heads.get_batch([17, 0, 3])"] = _digests(heads.get_batch([17, 0, 3]))
    out["objects.get_batch([5, 2])"] = _digests(objects.get_batch([5, 2]))
    out["heads.sample_params(17)"] = _digests(heads.sample_params(17))
    out["heads.cameras([1, 17])"] = _digests(heads.cameras([1, 17]))
    p = heads.sample_params(1)
    out["heads.render(item 1)"] = _digests(heads.render(p["identity"], p["expression"], heads.cameras([1]),
                                                        p["light_dir"], p["background"]))
    # Non-default configs: edge-aligned grid, no antialiasing, black background, another seed and size.
    variant = make_synthetic("synthetic-heads", resolution=20, grid="edge_aligned", antialias=False,
                             background="black", seed=3)
    out["heads(res 20, edge_aligned, no AA, black, seed 3)[2]"] = _digests(variant[2])
    edge_heads = make_synthetic("synthetic-heads", resolution=20, grid="edge_aligned", seed=5)
    out["heads(res 20, edge_aligned, seed 5)[3]"] = _digests(edge_heads[3])
    edge_cars = make_synthetic("synthetic-objects", resolution=18, grid="edge_aligned", background="black", length=50)
    out["objects(res 18, edge_aligned, black).get_batch([4, 1])"] = _digests(edge_cars.get_batch([4, 1]))
    # Non-square images from explicit parameters and cameras.
    cams = Cameras.from_angles(torch.tensor([1.3, 2.0]), torch.tensor([1.5, 1.2]), 12.0, 1.0)
    h = heads.sample_params(4)
    out["render_head(20x28, 2 cameras)"] = _digests(render_head(h["identity"], h["expression"], cams,
                                                                 torch.tensor([0.3, 0.5, 0.81]), 20, 28))
    o = objects.sample_params(3)
    car_cams = Cameras.from_angles(torch.tensor([0.4]), torch.tensor([1.0]), 30.0, 1.0)
    out["render_object(24, default args)"] = _digests(render_object(o["identity"], car_cams, o["light_dir"], 24))
    # The ImageDataset adapter: mirrored items, ground truth, the in-memory pool, labels alone.
    adapter = open_dataset("synthetic-heads", 24, mirror=True, length=10, seed=1)
    out["adapter.get_batch([1, 12, 7])"] = _digests(adapter.get_batch([1, 12, 7]), _IMAGE_BATCH_FIELDS)
    out["adapter.ground_truth([12, 1])"] = _digests(adapter.ground_truth([12, 1]))
    out["adapter.get_labels([3, 13])"] = _digests(dict(zip(("label", "has_label"), adapter.get_labels([3, 13]))))
    pool = open_dataset("synthetic-objects:6", 16, mirror=True)
    out["objects:6 pool.get_batch([0, 5, 6, 11])"] = _digests(pool.get_batch([0, 5, 6, 11]), _IMAGE_BATCH_FIELDS)
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
    changed = [f"{case}.{name}" for case, ref in expected.items() for name in set(ref) | set(got[case])
               if got[case].get(name) != ref.get(name)]
    assert not changed, f"synthetic data changed bits in: {', '.join(sorted(changed))}"


def test_digest_sees_one_bit():
    x = torch.linspace(0, 1, 7)
    y = x.clone()
    y[3] = torch.nextafter(y[3], torch.tensor(math.inf))
    assert _digest(x) == _digest(x.clone()) != _digest(y)
    assert _digest(x) != _digest(x.double()) and _digest(x) != _digest(x.reshape(7, 1))


if __name__ == "__main__":  # print the digests of the current code, to re-record EXPECTED
    import pprint

    pprint.pprint(current_digests(), width=120, sort_dicts=False)
