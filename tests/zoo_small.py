"""Every zoo blueprint at a size a CPU test can afford: one overrides dict per file of blueprints/ and
blueprints/examples/ (tiny widths, one or two layers, small images), each still valid under its own
rules (windows divide the maps, patches the image, heads × dim_head the width). Dropout is left as the
file has it: tests run models in eval mode.

`SMALL[name]` is the dict for `blueprints/NAME.yaml`, `SMALL["examples/NAME"]` for the hybrids;
`build(name)` builds it. test_export_zoo checks that the table names every file and nothing else, so
a new blueprint needs an entry here.
"""
from __future__ import annotations

from pathlib import Path

BLUEPRINTS = Path(__file__).resolve().parent.parent / "blueprints"

_VIT = {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2, "dim_head": 16, "mlp": 64, "classes": 10}
_VIT_3D = {"image_size": 16, "frames": 4, "patch": 8, "frame_patch": 2, "dim": 32, "depth": 1, "heads": 2,
           "dim_head": 16, "mlp": 64, "classes": 10}
_MAXVIT = {"image_size": 32, "stem": 8, "dims": [8, 16], "depths": [1, 1], "window": 2, "dim_head": 4,
           "classes": 10}

SMALL: dict[str, dict] = {
    "ats_vit": {**{k: v for k, v in _VIT.items() if k != "depth"}, "max_tokens": [8, 4]},
    "beit": {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2, "classes": 10},
    "cait": {**_VIT, "cls_depth": 1},
    "cct": {"image_height": 32, "image_width": 48, "conv_layers": 1, "in_planes": 8, "kernel": 3, "dim": 32,
            "depth": 1, "heads": 2, "mlp_ratio": 2.0, "classes": 10},
    "cct_3d": {"image_height": 16, "image_width": 16, "frames": 4, "conv_layers": 1, "in_planes": 8, "kernel": 3,
               "dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "classes": 10},
    "cross_vit": {"image_size": 32, "depth": 1, "dims": [16, 32], "patches": [8, 16], "depths": [1, 1],
                  "heads": [2, 2], "dim_heads": [8, 8], "mlps": [32, 32], "cross_depth": 1, "cross_heads": 2,
                  "cross_dim_head": 8, "classes": 10},
    "crossformer": {"image_size": 32, "dims": [8, 16], "depths": [1, 1], "local_windows": [2, 2],
                    "global_windows": [4, 2], "kernels": [[4, 8], [2, 4]], "strides": [4, 2], "dim_head": 8,
                    "classes": 10},
    "cvt": {"image_size": 32, "dims": [16, 32], "emb_kernels": [7, 3], "emb_strides": [4, 2], "proj_kernels": [3, 3],
            "kv_strides": [2, 2], "heads": [1, 2], "depths": [1, 1], "mlp_mults": [4, 4], "dim_head": 16,
            "classes": 10},
    "davit": {"image_size": 32, "dims": [8, 16], "depths": [1, 1], "dim_head": 8, "window": 2, "classes": 10},
    "deepvit": dict(_VIT),
    "deit": dict(_VIT),
    "deit3": dict(_VIT),
    "dinov2": {**_VIT, "registers": 2},
    "distill_vit": dict(_VIT),
    "efficient_vit": dict(_VIT),
    "eva02": {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2, "mlp": 64, "rope_ref": 4,
              "classes": 10},
    "learnable_memory_vit": dict(_VIT),
    "levit": {"image_size": 64, "dims": [16, 24, 32], "depths": [1, 1, 1], "heads": [2, 2, 2], "dim_key": 8,
              "dim_value": 8, "classes": 10},
    "levit_distill": {"image_size": 64, "dims": [16, 24, 32], "depths": [1, 1, 1], "heads": [2, 2, 2],
                      "dim_key": 8, "dim_value": 8, "classes": 10, "distill_classes": 10},
    "maxvit": dict(_MAXVIT),
    "mobilevit": {"image_size": 64, "dims": [16, 16, 16], "widths": [8, 8, 8, 8, 8, 8, 8, 8, 16, 16, 32],
                  "depths": [1, 1, 1], "heads": 2, "dim_head": 8, "expansion": 2, "classes": 10},
    "mp3_vit": dict(_VIT),
    "mvitv2": {"image_size": 32, "dims": [8, 16], "heads": [1, 1], "depths": [1, 1], "q_strides": [1, 2],
               "kv_strides": [4, 2], "classes": 10},
    "navit": dict(_VIT),
    "nest": {"image_size": 16, "patch": 4, "dim": 16, "heads": 2, "depths": [1, 1], "classes": 10},
    "parallel_vit": dict(_VIT),
    "patch_merger": {"tokens": 16, "dim": 32, "merge_tokens": 4},
    "patch_merger_vit": {**_VIT, "depth": 2, "merge_layer": 1, "merge_tokens": 4},
    "pit": {"image_size": 32, "patch": 8, "dim": 16, "depths": [1, 1], "heads": [2, 2], "dim_head": 8, "mlp": [32, 32],
            "classes": 10},
    "pvt_v2": {"image_size": 32, "dims": [8, 16], "kernels": [7, 3], "strides": [4, 2], "depths": [1, 1],
               "reductions": [2, 1], "mlp_mults": [2, 2], "dim_head": 8, "classes": 10},
    "regionvit": {"image_size": 64, "dims": [8, 16], "depths": [1, 1], "heads": [2, 2], "dim_head": 4, "window": 2,
                  "classes": 10},
    "rope_vit": {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2, "classes": 10},
    "scalable_vit": {"image_size": 32, "dim": 8, "heads": [1, 2], "depths": [1, 1], "ssa_dim_key": [8, 8],
                     "ssa_dim_value": 8, "reductions": [2, 1], "windows": [4, None], "iwsa_dim_key": 8,
                     "iwsa_dim_value": 8, "classes": 10},
    "sepvit": {"image_size": 32, "dim": 8, "heads": [1, 2], "depths": [1, 1], "window": 2, "dim_head": 8,
               "classes": 10},
    "siglip": {"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2},
    "simple_vit": dict(_VIT),
    "simple_vit_3d": dict(_VIT_3D),
    "small_data_vit": dict(_VIT),
    "spt": {"image_size": 32, "patch": 8, "dim": 32},
    "swin": {"image_size": 16, "patch": 2, "dims": [8, 16], "depths": [2, 2], "dim_head": 8, "window": 2,
             "classes": 10},
    "t2t_vit": {"image_size": 32, "t2t_layers": [[3, 2], [3, 2]], "dim": 32, "depth": 1, "heads": 2,
                "dim_head": 16, "mlp": 64, "classes": 10},
    "twins_pcpvt": {"image_size": 32, "dims": [8, 16], "patches": [4, 2], "depths": [1, 1], "reductions": [2, 1],
                    "mlp_mults": [2, 2], "dim_head": 8, "classes": 10},
    "twins_svt": {"image_size": 32, "dims": [8, 16], "patches": [4, 2], "windows": [2, 2], "reductions": [2, 1],
                  "depths": [1, 1], "heads": 2, "dim_head": 8, "classes": 10},
    "vit": dict(_VIT),
    "vit_3d": dict(_VIT_3D),
    "vivit": {**{k: v for k, v in _VIT_3D.items() if k != "depth"}, "spatial_depth": 1, "temporal_depth": 1},
    "xcit": {**_VIT, "cls_depth": 1},
    "examples/maxvit_cait": {**_MAXVIT, "cls_heads": 2},
    "examples/maxvit_mvit": {**_MAXVIT, "heads": [1, 2], "kv_strides": [2, 1]},
    "examples/pvt_v2_map": {"image_size": 32, "dims": [8, 16], "kernels": [7, 3], "strides": [4, 2], "depths": [1, 1],
                            "reductions": [2, 1], "mlp_mults": [2, 2], "dim_head": 8, "map_heads": 2, "map_mlp": 32,
                            "classes": 10},
    "examples/swin_rope_swiglu": {"image_size": 16, "patch": 2, "dims": [8, 16], "depths": [2, 2], "dim_head": 8,
                                  "window": 3, "classes": 10},
    "examples/twins_crossformer": {"image_size": 32, "dims": [8, 16], "depths": [1, 1], "windows": [2, 2],
                                   "reductions": [2, 1], "kernels": [[4, 8], [2, 4]], "strides": [4, 2], "dim_head": 8,
                                   "classes": 10},
    "examples/vivit_maxvit": {**_MAXVIT, "frames": 2, "temporal_depth": 1, "heads": 2},
}


def path(name: str) -> Path:
    return BLUEPRINTS / f"{name}.yaml"


def files() -> list[str]:
    """The table's keys as they should be: one per blueprint file."""
    return sorted([p.stem for p in BLUEPRINTS.glob("*.yaml")] + [f"examples/{p.stem}" for p in
                                                                  (BLUEPRINTS / "examples").glob("*.yaml")])


def build(name: str, **kwargs):
    """The small model, in eval mode."""
    import vitdsl

    return vitdsl.build(path(name), overrides=SMALL[name], **kwargs).eval()
