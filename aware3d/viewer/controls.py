"""The viewer's GUI panel: one control per setting of :class:`~.frames.ViewState`, built from what the model
declares (its condition kinds, its number of classes, its displays), never from its family's name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..models.base import Generator3D
from .frames import Frame, ViewState

Update = Callable[..., None]
"""``update(**changes)``: set fields of the viewer's :class:`ViewState` and render."""
Saver = Callable[[], tuple[str, bytes]]
"""Writes a file under the viewer's --out and returns (its path, its contents) for the browser's download."""

LIGHT_SLIDERS = (("ambient", 0.0, 1.0), ("diffuse", 0.0, 1.0), ("light dx", -2.0, 2.0), ("light dy", -2.0, 2.0))
"""(label, min, max) of the four numbers of a light code (:attr:`Condition.light`)."""


@dataclass
class Controls:
    """The GUI handles, by setting name, and the status line."""

    handles: dict[str, Any] = field(default_factory=dict)
    """viser GUI handles: seed, seed_b, mix, truncation_psi, resolution, num_samples, display, fast, light, class_label,
    save_view, save_shape (those the model has)."""
    status: Any = None
    """The markdown readout (camera and milliseconds per frame)."""

    def show_frame(self, frame: Frame, text: str) -> None:
        """Show a frame's readout, and offer the displays it reports."""
        self.status.content = text
        display = self.handles.get("display")
        if display is not None and tuple(display.options) != frame.displays and frame.displays:
            display.options = frame.displays

    def show_error(self, text: str) -> None:
        self.status.content = f"**render failed**: {text}"


def _latent_controls(gui, state: ViewState, update: Update) -> dict:
    with gui.add_folder("Latent"):
        seed = gui.add_number("Seed", state.seed, min=0, step=1, hint="seed of the latent z")
        seed_b = gui.add_number("Seed B", state.seed_b, min=0, step=1, hint="the other end of the interpolation")
        mix = gui.add_slider("Seed A → B", 0.0, 1.0, 0.01, state.mix, hint="linear interpolation in w space")
        psi = gui.add_slider("Truncation psi", 0.0, 1.2, 0.01, state.truncation_psi, hint="1: no truncation")
    seed.on_update(lambda _: update(seed=int(seed.value)))
    seed_b.on_update(lambda _: update(seed_b=int(seed_b.value)))
    mix.on_update(lambda _: update(mix=float(mix.value)))
    psi.on_update(lambda _: update(truncation_psi=float(psi.value)))
    return {"seed": seed, "seed_b": seed_b, "mix": mix, "truncation_psi": psi}


def _render_controls(gui, state: ViewState, displays: tuple[str, ...], update: Update) -> dict:
    res0, samples0 = int(state.resolution), int(state.num_samples)
    with gui.add_folder("Rendering"):
        res = gui.add_slider("Resolution", 4, max(256, 2 * res0), 4, res0,
                             hint="rendering resolution once the view settles (a super-resolving model's neural one)")
        samples = gui.add_slider("Samples per ray", 4, max(128, 2 * samples0), 1, samples0,
                                 hint="coarse samples per ray (and fine ones where the model importance-samples)")
        display = gui.add_dropdown("Display", displays, initial_value=state.display)
        fast = gui.add_checkbox("Fast mode", state.fast,
                                hint="sample only near the surface a sparse probe finds; bfloat16 where fast")
    res.on_update(lambda _: update(resolution=int(res.value)))
    samples.on_update(lambda _: update(num_samples=int(samples.value)))
    display.on_update(lambda _: update(display=str(display.value)))
    fast.on_update(lambda _: update(fast=bool(fast.value)))
    return {"resolution": res, "num_samples": samples, "display": display, "fast": fast}


def _light_controls(gui, G: Generator3D, state: ViewState, update: Update) -> dict:
    sliders = [gui.add_slider(label, lo, hi, 0.01, float(v)) for (label, lo, hi), v in zip(LIGHT_SLIDERS, state.light)]

    def changed(_) -> None:
        update(light=tuple(float(s.value) for s in sliders))
    for s in sliders:
        s.on_update(changed)
    return {"light": sliders}


def _class_controls(gui, G: Generator3D, state: ViewState, update: Update) -> dict:
    if G.num_classes == 0:
        gui.add_markdown("class label: this model is not class-conditional")
        return {}
    label = gui.add_number("Class", state.class_label or 0, min=0, max=G.num_classes - 1, step=1,
                           hint=f"class index in 0..{G.num_classes - 1}")
    label.on_update(lambda _: update(class_label=int(label.value)))
    return {"class_label": label}


CONDITION_CONTROLS = {"light": _light_controls, "class_label": _class_controls}
"""The controls of each condition kind (:data:`aware3d.models.base.ConditionKind`)."""


def _condition_controls(gui, G: Generator3D, state: ViewState, update: Update) -> dict:
    handles: dict = {}
    if not G.capabilities.conditions:
        return handles
    with gui.add_folder("Condition"):
        for kind in G.capabilities.conditions:
            build = CONDITION_CONTROLS.get(kind)
            if build is None:
                gui.add_markdown(f"{kind}: no control yet (the model's default is rendered)")
                continue
            handles.update(build(gui, G, state, update))
    return handles


def _save_button(gui, label: str, save: Saver):
    button = gui.add_button(label)

    def clicked(event) -> None:
        try:
            path, data = save()
        except Exception as e:  # a failed export (e.g. no surface at the level) is reported, not fatal
            if event.client is not None:
                event.client.add_notification(f"{label} failed", f"{type(e).__name__}: {e}", color="red")
            return
        if event.client is not None:
            event.client.send_file_download(Path(path).name, data)
            event.client.add_notification(label, f"saved {path}", auto_close_seconds=8)
    button.on_click(clicked)
    return button


def add_controls(gui, G: Generator3D, state: ViewState, displays: tuple[str, ...], update: Update,
                 save_view: Saver, save_shape: Saver) -> Controls:
    """Build the panel on viser's ``gui`` for model ``G`` starting from ``state``; every change calls ``update``."""
    controls = Controls()
    controls.handles.update(_latent_controls(gui, state, update))
    controls.handles.update(_render_controls(gui, state, displays, update))
    controls.handles.update(_condition_controls(gui, G, state, update))
    controls.status = gui.add_markdown("rendering the first frame ...")
    controls.handles["save_view"] = _save_button(gui, "Save view (PNG)", save_view)
    controls.handles["save_shape"] = _save_button(gui, "Save shape (GLB)", save_shape)
    return controls


__all__ = ["CONDITION_CONTROLS", "LIGHT_SLIDERS", "Controls", "add_controls"]
