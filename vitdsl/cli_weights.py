"""The command line's weights: ``vitdsl verify`` and ``vitdsl build --weights FILE`` (kept out of cli.py,
which stays a short list of commands; the same top layer)."""
from __future__ import annotations

import argparse

from .errors import VitdslError

VERIFY = ("Check that a blueprint is exactly a reference model: build both, re-draw every parameter and "
          "persistent buffer of the reference at random, copy them across through the reference's key map, and "
          "compare the outputs on one random input (eval, float32, the blueprint's input size). Prints the "
          "parameter counts, a per-tensor table (exact / reshaped / missing / unused) and the largest output "
          "difference. Exit status 0 only when exact (same parameter count, every tensor used, outputs within "
          "the tolerance), 1 when not, 2 for a usage error.")
VERIFY_EPILOG = ("vit-pytorch references are built with the README arguments vitdsl knows for the blueprint, "
                 "variant and --set overrides (vitdsl.interop.readme), changed by --reference-arg; e.g. "
                 "'vitdsl verify vit --against vit-pytorch:ViT'. timm references are timm models by name, "
                 "e.g. 'vitdsl verify vit -v base --against timm:vit_base_patch16_224' (needs timm).")


def add_verify(sub) -> None:
    p = sub.add_parser("verify", help="check a blueprint against a reference model (vit-pytorch or timm)",
                       description=VERIFY, epilog=VERIFY_EPILOG)
    p.add_argument("blueprint", metavar="PATH_OR_NAME", help="blueprint file or zoo name")
    p.add_argument("--plugin", dest="plugins", metavar="FILE_OR_MODULE", action="append", default=[],
                   help="import a Python file or module that registers blocks of your own (repeatable)")
    p.add_argument("--variant", "-v", metavar="V", help="a named variant of the blueprint")
    p.add_argument("--set", "-s", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a parameter (YAML value, repeatable)")
    p.add_argument("--compat", metavar="OVERLAY", help="the compatibility overlay (none or vit-pytorch)")
    p.add_argument("--against", required=True, metavar="REF",
                   help="vit-pytorch:CLASS (e.g. vit-pytorch:ViT) or timm:NAME (e.g. timm:deit_small_patch16_224)")
    p.add_argument("--reference-arg", dest="reference_args", metavar="KEY=VALUE", action="append", default=[],
                   help="change an argument of the vit-pytorch constructor (YAML value, lists become tuples; "
                        "repeatable); the blueprint's --set must then describe the same model")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and input (default 0)")
    p.add_argument("--batch", type=int, default=2, help="images in the random input (default 2)")
    p.add_argument("--tolerance", type=float, default=1e-5, help="largest output difference that is exact "
                                                                 "(default 1e-5)")


def add_weights_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE", help="load pretrained weights: a .safetensors, .pth or .bin file "
                   "(or hf-hub:timm/NAME with huggingface_hub); into a modified blueprint (--set image_size=384 "
                   "--set classes=10) through a printed per-tensor plan")
    p.add_argument("--keys", metavar="KIND", default="auto",
                   help="whose key names the file has: vitdsl (a state_dict of this blueprint), vit-pytorch (the "
                        "blueprint's reference class), timm:NAME; auto (default) picks, of these, the one that places "
                        "most of the file's tensors")


def cmd_verify(args, overrides: dict, reference_args: dict, console) -> int:
    from .interop.verify import verify

    if args.batch < 1:
        raise VitdslError(f"--batch must be at least 1, got {args.batch}")
    result = verify(args.blueprint, args.against, args.variant, overrides, compat=args.compat,
                    reference_args=reference_args, seed=args.seed, batch=args.batch, tolerance=args.tolerance)
    for part in result.render():
        console.print(part)
    return 0 if result.exact else 1


def key_map(model, weights, keys: str):
    """The key map for ``--keys`` and how it was chosen (a line to print)."""
    from .interop.maps import collect
    from .interop.transfer import match_state_dict

    reference = getattr(model.blueprint, "reference", None)
    maps = collect()
    if keys.startswith("timm:"):
        from .interop.timm_contract import timm_rules

        rules = timm_rules(keys[len("timm:"):])
        if rules is None:
            raise VitdslError("this timm importer offers no key rules", hint="use vitdsl.interop.timm.import_weights")
        return rules, f"keys: timm ({keys[5:]})"
    if keys == "vitdsl":
        return None, "keys: vitdsl (the blueprint's own)"
    if keys == "vit-pytorch":
        if reference not in maps:
            raise VitdslError(f"blueprint '{model.blueprint.name}' has no vit-pytorch reference with a key map",
                              hint="use --keys vitdsl or --keys timm:NAME")
        return maps[reference], f"keys: vit-pytorch ({reference})"
    if keys != "auto":
        raise VitdslError(f"--keys '{keys}' is not a kind of key names", hint="use auto, vitdsl, vit-pytorch or "
                                                                             "timm:NAME")
    from .interop.timm_contract import timm_rules_for

    ours = model.state_dict()
    candidates = [(sum(k in ours for k in weights.state), None, "vitdsl (the blueprint's own)")]
    for rules, name in ((maps.get(reference), f"vit-pytorch ({reference})"), (timm_rules_for(model), "timm")):
        if rules is not None:
            rows = match_state_dict(model, weights.state, *rules).rows
            candidates.append((sum(r.status in ("exact", "reshaped", "misfit") for r in rows), rules, name))
    best = max(candidates, key=lambda c: c[0])
    if best[0] == 0:
        raise VitdslError(f"none of the {len(weights.state)} tensors of '{weights.source}' has a key of this "
                          "blueprint's", hint="name the file's key names: --keys timm:NAME, vit-pytorch or vitdsl")
    others = ", ".join(f"{name} {n}" for n, _, name in candidates if name != best[2])
    return best[1], f"keys: {best[2]}, chosen: it places {best[0]} tensors" + (f" ({others})" if others else "")


def load_weights(model, source: str, keys: str, console) -> None:
    """``build --weights``: read, plan (printed), apply."""
    from .interop.pretrained import apply, plan, read

    weights = read(source)
    mapping, how = key_map(model, weights, keys)
    for note in weights.notes:
        console.print(f"note: {note}", soft_wrap=True)
    made = plan(model, weights.state, mapping)
    console.print(f"weights: {weights.source} — {how}", soft_wrap=True)
    console.print(made.render())
    apply(model, made)
    console.print(f"loaded: {made.summary()}")
