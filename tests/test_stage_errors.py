"""A window, patch, window count or key reduction that does not fit the feature map at some stage is
refused before any weight exists, naming the stage's block, the map size there and the sizes that
would fit it — for every hierarchical blueprint of the zoo."""
import pytest

import vitdsl
from vitdsl.errors import ShapeError

CASES = [  # (blueprint, image size, block path, message start, hint start)
    ("maxvit", 112, "stages.3.blocks.0.block_attn", "window 7 does not divide the feature map 4×4 (height 4)",
     "windows that fit 4×4: 1, 2, 4; square input sizes that work (up to 1024): 221–224, 445–448"),
    ("twins_svt", 112, "stages.3.patchify", "image height 7 is not divisible by the patch height 2",
     "square patches that fit 7×7: 1, 7; "),
    ("crossformer", 112, "stages.0.blocks.0.long_attn", "window 8 does not divide the feature map 28×28 (height 28)",
     "windows that fit 28×28: 1, 2, 4, 7, 14, 28; "),
    ("scalable_vit", 200, "stages.0.blocks.0.ssa", "kv_reduction 8 does not divide the feature map 50×50 (height 50)",
     "kv reductions that fit 50×50: 1, 2, 5, 10, 25, 50; "),
    ("sepvit", 112, "stages.3.blocks.0.attn", "window 7 does not divide the feature map 4×4 (height 4)",
     "windows that fit 4×4: 1, 2, 4; "),
    ("nest", 200, "stages.0.pos", "4 windows per side do not tile the feature map 50×50 (height 50)",
     "window counts that fit 50×50: 1, 2, 5, 10, 25, 50; "),
    ("mobilevit", 96, "trunk.2.transformer.0.attn", "2 windows per side do not tile the feature map 3×3 (height 3)",
     "window counts that fit 3×3: 1, 3; "),
    ("regionvit", 112, "stages.3.blocks.0.attn", "the 1×1 region tokens split the 4×4 patch grid into 4×4 windows, "
     "not the 7×7 windows that window: 7 says", "set window: 4 (or leave it out); windows that fit 4×4: 1, 2, 4; "),
    ("examples/twins_crossformer", 200, "stages.0.blocks.0.local_attn",
     "window 7 does not divide the feature map 50×50 (height 50)", "windows that fit 50×50: 1, 2, 5, 10, 25, 50; "),
]


@pytest.mark.parametrize("name,size,path,message,hint", CASES, ids=[c[0] for c in CASES])
def test_a_size_that_does_not_fit_names_the_stage_the_map_and_what_fits(name, size, path, message, hint):
    with pytest.raises(ShapeError) as e:
        vitdsl.validate(name, overrides={"image_size": size})
    assert e.value.path == path
    assert e.value.message.startswith(message)
    assert e.value.hint.startswith(hint) and "square input sizes that work" in e.value.hint
