"""timm's model API on a compiled network, derived from its graph (``structure``: which layers are the
features, the head and the stages): code written for timm models (a training script, a detection backbone
reading ``forward_intermediates``) runs on any vitdsl classifier. Where a blueprint has no answer (a video
model, several outputs, no head) the methods say so in one VitdslError."""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import VitdslError
from .build import build_graph
from .structure import Layout, grid, layout, no_answer, reduction

TIMM_POOL = {"cls": "token", "mean": "avg", "seq": "map", "last": "last"}  # our pool modes in timm's words
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # timm's defaults


class Layers(nn.ModuleDict):
    """The container of a path's inner parts. A repeat's iterations are also reached by position, as in
    timm's ``nn.Sequential`` (``model.blocks[0]``, ``model.stages[-1]``); names (state_dict keys) stay the
    strings ``"0"``, ``"1"``, …"""

    def __getitem__(self, key: Any) -> nn.Module:
        if isinstance(key, int) and not isinstance(key, bool):
            iterations = [k for k in self._modules if k.isdigit()]
            if not -len(iterations) <= key < len(iterations):
                raise IndexError(f"index {key} is out of range: this repeat has {len(iterations)} iterations")
            key = iterations[key]
        return super().__getitem__(key)


class FeatureInfo(list):
    """timm's ``feature_info``: one dict per feature (``num_chs``, ``reduction``, ``module``), with timm's
    FeatureInfo accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]


def take_indices(count: int, indices: int | list[int] | None) -> list[int]:
    """timm's rule: None all stages, an int the last n, a list those (negative from the end)."""
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise VitdslError(f"indices={indices}: the network has {count} stages (take 1 … {count} last ones)")
        return list(range(count - indices, count))
    out = []
    for i in indices:
        if not -count <= i < count:
            raise VitdslError(f"stage index {i} is out of range: the network has {count} stages")
        out.append(i % count)
    return out


class TimmApi:
    """Mixed into ``Network``: forward_features / forward_head / forward_intermediates, the classifier,
    parameter groups, activation checkpointing and feature metadata, all from ``self.graph``."""

    grad_checkpointing = False
    feature_paths: list[str] | None = None  # set by features_only

    # -- structure --------------------------------------------------------------------------------
    @property
    def classifier_layout(self) -> Layout:
        """Where the features, head and stages are (``structure.layout``); refused for a network without
        its head (an objective's partial one, a features-only one)."""
        if not self.complete or self.feature_paths is not None:
            raise VitdslError("this network holds only some layers (an objective's, or a features-only backbone's):"
                              " timm's model API needs the whole network",
                              hint="build the blueprint itself; a backbone's forward returns its features")
        found = self.__dict__.get("_layout")
        if found is None:
            found = self.__dict__["_layout"] = layout(self.graph)
        return found

    @property
    def num_classes(self) -> int:
        return self.__dict__.get("_classes", self.classifier_layout.num_classes)

    @property
    def num_features(self) -> int:
        return self.classifier_layout.num_features

    @property
    def head_hidden_size(self) -> int:
        return self.classifier_layout.num_features

    def _slot(self, path: str) -> int:
        return self.paths.index(path) + 1

    # -- running ----------------------------------------------------------------------------------
    def _spans(self) -> dict[int, tuple]:
        """Each innermost repeat iteration as (end step, input slots, produced slots, output slots) keyed by its
        first step: the unit activation checkpointing recomputes."""
        table = self.__dict__.get("_span_table")
        if table is None:
            table, keys = {}, [n.repeats[-1] if n.repeats else None for n, _, _ in self.graph]
            i = 0
            while i < len(keys):
                j = i
                while j + 1 < len(keys) and keys[j + 1] == keys[i]:
                    j += 1
                if keys[i] is not None:
                    made = frozenset(range(i + 1, j + 2))
                    ins = sorted({s for step in self.steps[i:j + 1] for s in step.ins} - made)
                    later = {s for step in self.steps[j + 1:] for s in step.ins} | set(self.out_slots)
                    table[i] = (j + 1, tuple(ins), made, tuple(sorted(made & later)))
                i = j + 1
            self.__dict__["_span_table"] = table
        return table

    def _span(self, start: int, end: int, ins: tuple, outs: tuple, extras: tuple, *args: Any) -> tuple:
        values, found = dict(zip(ins, args)), dict(zip(ins, extras))
        for step in self.steps[start:end]:
            self._step(step, values, found)
        return tuple(values[j] for j in outs), tuple(found.get(j) for j in outs)

    def _execute(self, x: Any, upto: int, keep: frozenset) -> list:
        """The values of the first ``upto`` steps (slots in ``keep`` kept), each repeat iteration under
        ``torch.utils.checkpoint`` when checkpointing is on and gradients are recorded."""
        spans = self._spans() if self.grad_checkpointing and torch.is_grad_enabled() else {}
        skip = self._dropped() if self.training and self.layer_drops else {}
        values: list[Any] = [x] + [None] * len(self.steps)
        extras: list[Any] = [None] * len(values)  # beside each value (graph/network.py)
        i = 0
        while i < upto:
            if i in skip:
                end, src, dst = skip[i]
                values[dst], extras[dst] = values[src], extras[src]
                i = end
                continue
            if i in spans and spans[i][0] <= upto:
                end, ins, made, outs = spans[i]
                outs = tuple(sorted(set(outs) | (keep & made)))
                got, got_extras = checkpoint(self._span, i, end, ins, outs, tuple(extras[j] for j in ins),
                                             *[values[j] for j in ins], use_reentrant=False)
                for j, v, e in zip(outs, got, got_extras):
                    values[j], extras[j] = v, e
                frees = {j for step in self.steps[i:end] for j in step.frees}
            else:
                self._step(self.steps[i], values, extras)
                frees, end = self.steps[i].frees, i + 1
            for j in frees:
                if j not in keep:
                    values[j] = extras[j] = None
            i = end
        return values

    # -- features and head ------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Every layer up to the features (the last layer whose output is not a vector)."""
        slot = self._slot(self.classifier_layout.features)
        return self._execute(x, slot, frozenset({slot}))[slot]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The head on ``forward_features``' output; ``pre_logits``: what the classifiers' linear maps read
        (several classifiers, as DeiT's: what the head makes of theirs, e.g. their mean)."""
        head = self.classifier_layout
        values = {head.features: x}
        for path in head.head:
            module = self._at(tuple(path.split(".")))
            args = [values[i] for i in self.graph.nx.nodes[path]["node"].inputs]
            run = module.features if pre_logits and path in head.classifiers else module
            values[path] = run(*args)
        return values[head.head[-1]]

    def get_classifier(self) -> nn.Module | tuple[nn.Module, ...]:
        fcs = tuple(self.get_submodule(p).fc for p in self.classifier_layout.classifiers)
        return fcs[0] if len(fcs) == 1 else fcs if fcs else nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new linear map of ``num_classes`` outputs in each classifier (0: the identity, as timm's), its
        norm and pre-logits layer kept. ``global_pool`` must name the pool the blueprint has (a different
        pool is a blueprint change)."""
        head = self.classifier_layout
        if global_pool is not None:
            pools = {TIMM_POOL[self.get_submodule(p).mode] for p in head.pools}
            if pools != {global_pool}:
                raise VitdslError(f"global_pool={global_pool!r}: this network pools with "
                                  f"{', '.join(sorted(pools)) or 'no pool'}; another pool is a blueprint change",
                                  hint="set the pool block's mode in the blueprint")
        if num_classes and not head.classifiers:
            raise VitdslError(f"blueprint '{self.blueprint.name}' has no classifier to reset (its head is "
                              f"{', '.join(head.head)})", hint="build it with classes > 0, or add a head block")
        like = next(self.parameters())
        for path in head.classifiers:
            node = self.graph.nx.nodes[path]
            fc: nn.Module = nn.Identity()
            if num_classes:
                spec = node["node"].spec.model_copy(update={"classes": num_classes})
                fc = spec.build(*node["inputs"]).fc.to(device=like.device, dtype=like.dtype)
            self.get_submodule(path).fc = fc
        self.__dict__["_classes"] = num_classes
        self.output_shape = (num_classes or head.num_features,)
        self.output_shapes = [self.output_shape]
        self._retarget(num_classes)

    def _retarget(self, num_classes: int) -> None:
        """Keep ``self.blueprint`` this network's recipe (``vitdsl.save`` embeds it): its ``classes`` parameter
        set to ``num_classes`` where the classifiers it then checks to have that many are what it sets."""
        if "classes" not in self.blueprint.params:
            return
        try:
            blueprint = self.blueprint.with_params(overrides={"classes": num_classes})
            found = layout(build_graph(blueprint.resolve()))
        except VitdslError:
            return
        if found.num_classes == num_classes and len(found.classifiers) in (0, len(self.classifier_layout.classifiers)):
            self.blueprint = blueprint

    # -- training ---------------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each repeat iteration in the backward pass instead of keeping its activations."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Parameters timm's optimizers keep free of weight decay besides 1-D ones: those of pos-embed and
        tokens blocks, of any module with the word ``pos`` in its name (relative position tables such as
        ``rel_pos_bias``, NesT's ``pos``) and attention temperatures (as timm's XCiT)."""
        names = set()
        for node, _, _ in self.graph:
            if node.spec.block in ("pos-embed", "tokens"):
                names |= {f"{node.path}.{n}" for n, _ in self.get_submodule(node.path).named_parameters()}
        return names | {n for n, _ in self.named_parameters() if n.endswith("temperature") or any(
            "pos" in part.split("_") for part in n.split("."))}

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups (layer-wise decay, freezing): the layers before the first stage, one group
        per stage, and what follows the last (the head falls in the last group, as in timm)."""
        head = self.classifier_layout
        order = self.paths[:self._slot(head.features)]
        cut = self._slot(head.stages[0].path) - 1 if head.stages else len(order)
        last = self._slot(head.stages[-1].path) if head.stages else len(order)
        starts = {s.module for s in head.stages}

        def of(paths: list[str]) -> str:
            return "^(?:" + "|".join(re.escape(p) + r"\." for p in paths) + ")"  # timm reads groups as numbers

        stem = [p for p in order[:cut] if not any(p.startswith(m + ".") for m in starts)]
        tail = order[last:]
        groups = [(rf"^{re.escape(s.module)}\.", (k,)) for k, s in enumerate(head.stages)]
        return {**({"stem": of(stem)} if stem else {}),
                "blocks": groups + ([(of(tail), (99999,))] if tail else [])}

    # -- intermediates ----------------------------------------------------------------------------
    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None,
                              return_prefix_tokens: bool = False, norm: bool = False, stop_early: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = False) -> Any:
        """timm's: the outputs of the stages ``indices`` picks (token stages without their special tokens,
        as (B, C, H, W) maps for NCHW), with ``forward_features``' output unless ``intermediates_only``;
        ``norm``: the final norm applied to those of its shape."""
        if output_fmt not in ("NCHW", "NLC"):
            raise VitdslError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        head = self.classifier_layout
        if not head.stages:
            raise no_answer(self.graph, "has no repeat or stages item before its features, so no stages")
        stages = [head.stages[i] for i in take_indices(len(head.stages), indices)]
        slots = {self._slot(s.path) for s in stages}
        features = self._slot(head.features)
        values = self._execute(x, max(slots) if intermediates_only or stop_early else features,
                               frozenset(slots | {features}))
        final = self.get_submodule(head.final_norm) if norm and head.final_norm else None
        takes = self.graph.nx.nodes[head.final_norm]["inputs"][0] if final is not None else None
        out = []
        for s in stages:
            y, shape = values[self._slot(s.path)], self.graph.shape(s.path)
            if final is not None and shape == takes:
                y = final(y)
            out.append(self._format(x, y, s.path, output_fmt, return_prefix_tokens))
        if intermediates_only:
            return out
        return values[features], out

    def _format(self, x: torch.Tensor, y: torch.Tensor, path: str, fmt: str, prefix_tokens: bool) -> Any:
        shape = self.graph.shape(path)
        if shape.kind == "image":
            return y.flatten(2).transpose(1, 2) if fmt == "NLC" else y
        if shape.kind != "tokens":
            raise VitdslError(f"the output of {path} is {shape.kind}: intermediates are maps or tokens", path=path)
        special = torch.cat([y[:, :shape.prefix], y[:, y.shape[1] - shape.suffix:]], dim=1)
        y = y[:, shape.prefix:y.shape[1] - shape.suffix]
        if fmt == "NCHW":
            rows = grid(self.graph, path)
            if rows is None:
                raise VitdslError(f"the tokens of {path} have no grid, so no (B, C, H, W) map",
                                  path=path, hint="ask for output_fmt='NLC'")
            h, w = rows
            if h * w != y.shape[1]:  # another input size than the blueprint's: the grid scales with it
                h, w = x.shape[-2] * h // self.input_shape[-2], x.shape[-1] * w // self.input_shape[-1]
            y = y.reshape(y.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
        return (y, special) if prefix_tokens else y

    # -- features only --------------------------------------------------------------------------
    def features_only(self, which: list[str] | bool = True) -> "TimmApi":
        """Make this network a backbone (timm's ``features_only=True``): forward returns the outputs of
        ``which`` (stage modules as ``feature_info`` names them, e.g. ``stages.1``, or layer paths; True: every
        stage) in execution order, token outputs as maps; the layers after the last are removed."""
        head = self.classifier_layout
        stages = {s.module: s for s in head.stages} | {s.path: s for s in head.stages}
        names = [s.module for s in head.stages] if which is True else list(which)
        trunk = self.paths[:self._slot(head.features)]
        for name in names:
            if name not in stages and name not in trunk:
                raise VitdslError(f"features names '{name}', which is no stage or layer before the head",
                                  hint="stages: " + ", ".join(s.module for s in head.stages))
        names.sort(key=lambda n: self._slot(stages[n].path if n in stages else n))
        paths = [stages[n].path if n in stages else n for n in names]
        info = []
        for name, path in zip(names, paths):
            shape = self.graph.shape(path)
            info.append({"num_chs": shape.features, "reduction": reduction(self.graph, path), "module": name})
        last = self._slot(paths[-1])
        for path in self.paths[last:]:
            parent, _, leaf = path.rpartition(".")
            self.get_submodule(parent)._modules.pop(leaf)
        self.feature_paths = paths
        self.__dict__["_feature_info"] = FeatureInfo(info)
        return self

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        slots = [self._slot(p) for p in self.feature_paths]
        values = self._execute(x, max(slots), frozenset(slots))
        return [self._format(x, values[j], p, "NCHW", False) for j, p in zip(slots, self.feature_paths)]

    @property
    def feature_info(self) -> FeatureInfo:
        if self.feature_paths is not None:
            return self.__dict__["_feature_info"]
        return FeatureInfo({"num_chs": s.channels, "reduction": s.reduction, "module": s.module}
                           for s in self.classifier_layout.stages)

    # -- configuration ----------------------------------------------------------------------------
    def timm_names(self) -> list[str]:
        """The timm models this network is (same blueprint, variant and overrides, classes aside), via the
        lookup the package layer installs (``name_source``): the graph layer cannot read the interop one."""
        names = self.__dict__.get("_timm_names")
        if names is None:
            source = self.__dict__.get("name_source")
            names = self.__dict__["_timm_names"] = list(source(self.blueprint)) if source else []
        return names

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        names = self.timm_names()
        try:
            head: Layout | None = self.classifier_layout
        except VitdslError:
            head = None
        classifiers = head.classifiers if head else ()
        return {"architecture": names[0] if names else self.blueprint.name, "timm_names": names,
                "blueprint": self.blueprint.name, "input_size": tuple(self.input_shape),
                "num_classes": self.num_classes if head else None, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                "crop_pct": 0.9, "interpolation": "bicubic", "first_conv": self.paths[0],
                "classifier": classifiers[0] if len(classifiers) == 1 else classifiers or None}

    @property
    def default_cfg(self) -> dict[str, Any]:
        return self.pretrained_cfg
